"""The recording function's image step: a poster and a storyboard (sprite sheets + WebVTT) from the live segments.

Only the keyframes that are shown are read: one ranged GET per chosen segment (its first video sync sample,
``StoredSegment.first_keyframe``), a few kB each, concurrently. :mod:`mediakit.storyboard` plans the tiles and
packs the keyframes into tiny fragmented MP4s, so ffmpeg decodes ~500 frames for a 4-hour broadcast instead of
the whole of it: one ffmpeg run for the sprite sheets (every init epoch run concatenated, see the
:mod:`mediakit.storyboard` docstring) and one for the poster.

Objects (keys from :mod:`capturestream.keys` only)::

    thumbs/<playback_id>/<session_id>/poster.jpg          image/jpeg, the source width up to 1280 px
    thumbs/<playback_id>/<session_id>/storyboard_<n>.jpg  image/jpeg, 10×10 tiles of 160×90 (16:9) at most
    thumbs/<playback_id>/<session_id>/storyboard.vtt      text/vtt, cues → storyboard_<n>.jpg#xywh=x,y,w,h

Rules:
- Deterministic: the same segments give byte-identical objects (one ffmpeg thread, ``+bitexact``; no dates in
  the files), so a rebuilt recording rewrites the same bytes and caches stay valid: ``Cache-Control: public,
  max-age=31536000`` for the images and the VTT alike.
- Sprites are stored before the VTT that names them; the VTT names them relative to itself.
- ffmpeg runs without a shell, in a private temporary folder (Lambda's ``/tmp``), under a timeout; a failure
  raises :class:`FfmpegError` carrying its stderr tail. Each keyframe read starts only with time for it
  (:func:`.budget.check`); an ffmpeg run already started finishes (about a second for a 4-hour broadcast's
  ~500 frames). A broadcast without any video keyframe (audio only)
  raises :class:`NoVideo`: the caller stores the recording without poster and storyboard.
"""

from __future__ import annotations

import logging
import posixpath
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from capturestream import keys
from capturestream.recordings import Storyboard
from mediakit import bmff, storyboard
from mediakit.cmaf.init import VIDEO_TRACK_ID
from mediakit.ffmpeg_args import poster_args, sprite_name, storyboard_args
from mediakit.stored import StoredSegment

from . import budget

log = logging.getLogger(__name__)

#: Posters keep the source width up to this.
POSTER_MAX_WIDTH = 1280
#: Images and the VTT never change for a recording (deterministic rebuilds): cache for a year.
CACHE_CONTROL = "public, max-age=31536000"
#: Characters of ffmpeg's stderr kept in an :class:`FfmpegError`.
STDERR_TAIL = 2000


class ImagesError(Exception):
    """The poster or storyboard could not be made."""


class NoVideo(ImagesError):
    """No segment holds a video keyframe (an audio-only broadcast): there is nothing to picture."""


class FfmpegError(ImagesError):
    """ffmpeg failed or timed out; the message ends with the tail of its stderr."""


def build_images(
    *,
    s3: Any,
    bucket: str,
    playback_id: str,
    session_id: str,
    inits: Mapping[int, bytes],
    segments: Sequence[StoredSegment],
    duration: float,
    ffmpeg: str = "ffmpeg",
    concurrency: int = 16,
    timeout: float = 600.0,
    time_left: budget.TimeLeft = budget.unlimited,
) -> tuple[str, Storyboard]:
    """Make and store the poster and the storyboard of one recording.

    Args:
        s3: a boto3 S3 client.
        bucket: the media bucket (segments are read from it, images written to it).
        playback_id: the stream's playback id.
        session_id: the broadcast (recording) id.
        inits: init segment bytes by epoch (every epoch the segments name).
        segments: the broadcast's live segments in playlist order (``StoredSegment.first_keyframe`` positions
            are byte offsets into the ``keys.LiveSegment`` objects).
        duration: the recording's duration in seconds (the VTT's last cue ends there).
        ffmpeg: the ffmpeg executable.
        concurrency: ranged GETs in flight.
        timeout: seconds each ffmpeg run may take.
        time_left: the invocation's seconds left (:mod:`.budget`).

    Returns:
        ``(poster key, storyboard)``; the storyboard's paths are object keys.

    Raises:
        NoVideo: no segment has a video keyframe.
        FfmpegError: ffmpeg failed (stderr tail in the message).
        ImagesError: an init missing for a segment's epoch, or a keyframe read that came back short.
        mediakit.bmff.MalformedBox: a corrupt init segment.
        mediakit.storyboard.StoryboardError: a duration that is not positive.
        budget.OutOfTime: the invocation's time ran short.
    """
    started = time.perf_counter()
    video = _video_tracks(inits, segments)
    timescales = {
        epoch: {track_id: track.timescale for track_id, track in bmff.read_init(inits[epoch]).items()}
        for epoch in {segment.epoch for segment in segments}
    }
    durations = [segment.duration(timescales[segment.epoch]) for segment in segments]
    starts = storyboard.segment_starts(durations)
    keyframes = [segment.first_keyframe(VIDEO_TRACK_ID) if segment.epoch in video else None for segment in segments]
    usable = [keyframe is not None for keyframe in keyframes]
    if not any(usable):
        raise NoVideo(f"session {session_id} has no video keyframe")
    first = video[segments[usable.index(True)].epoch]
    layout = storyboard.plan(duration, width=first.width, height=first.height)
    tiles = storyboard.pick_sources(starts, usable, layout.times())
    candidates = storyboard.pick_sources(starts, usable, storyboard.poster_times(duration))
    poster_frames = [candidates[i] for i in storyboard.poster_group([segments[i].epoch for i in candidates])]
    wanted = sorted({*tiles, *poster_frames})
    frames = _fetch_keyframes(s3, bucket, playback_id, session_id, segments, keyframes, wanted, concurrency, time_left)
    with tempfile.TemporaryDirectory(prefix="images-") as folder:
        work = Path(folder)
        sheets = _render_sprites(work, layout, tiles, segments, inits, video, frames, ffmpeg, timeout)
        poster = _render_poster(work, poster_frames, segments, inits, video, frames, ffmpeg, timeout)
        result = _store(s3, bucket, playback_id, session_id, layout, sheets, poster)
    log.info(
        "recording images stored: %d tiles every %d s on %d sheets, %d keyframes read, %.2f s",
        layout.tiles,
        layout.interval,
        layout.sheets,
        len(frames),
        time.perf_counter() - started,
        extra={"playback_id": playback_id, "session_id": session_id},
    )
    return result


def _video_tracks(inits: Mapping[int, bytes], segments: Sequence[StoredSegment]) -> dict[int, bmff.TrackInfo]:
    """The video track of every epoch the segments use (epochs without video are left out)."""
    tracks = {}
    for epoch in sorted({segment.epoch for segment in segments}):
        if epoch not in inits:
            raise ImagesError(f"no init segment for epoch {epoch}")
        track = bmff.read_init(inits[epoch]).get(VIDEO_TRACK_ID)
        if track is not None and track.handler == "vide":
            tracks[epoch] = track
    return tracks


def _fetch_keyframes(
    s3: Any,
    bucket: str,
    playback_id: str,
    session_id: str,
    segments: Sequence[StoredSegment],
    keyframes: Sequence[tuple[int, int] | None],
    wanted: Sequence[int],
    concurrency: int,
    time_left: budget.TimeLeft = budget.unlimited,
) -> dict[int, bytes]:
    """The first keyframe of each wanted segment index, by ranged GETs in parallel."""

    def fetch(index: int) -> bytes:
        budget.check(time_left, f"reading keyframe {index}")
        key = keys.LiveSegment(playback_id=playback_id, session_id=session_id, sequence=segments[index].sequence)
        keyframe = keyframes[index]
        if keyframe is None:  # pick_sources only picks segments with a keyframe
            raise ImagesError(f"{key.key} has no video keyframe to read")
        position, size = keyframe
        body = s3.get_object(Bucket=bucket, Key=key.key, Range=f"bytes={position}-{position + size - 1}")["Body"]
        data = body.read()
        if len(data) != size:
            raise ImagesError(f"{key.key}: keyframe read returned {len(data)} of {size} bytes")
        return data

    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(wanted)))) as pool:
        return dict(zip(wanted, pool.map(fetch, wanted), strict=True))


def _keyframe_file(
    path: Path, epoch: int, frames: list[bytes], inits: Mapping[int, bytes], track: bmff.TrackInfo, seconds: int
) -> Path:
    data = storyboard.keyframe_fmp4(
        inits[epoch],
        frames,
        video_track_id=VIDEO_TRACK_ID,
        timescale=track.timescale,
        interval_ticks=seconds * track.timescale,
    )
    path.write_bytes(data)
    return path


def _render_sprites(
    work: Path,
    layout: storyboard.Plan,
    tiles: list[int],
    segments: Sequence[StoredSegment],
    inits: Mapping[int, bytes],
    video: Mapping[int, bmff.TrackInfo],
    frames: Mapping[int, bytes],
    ffmpeg: str,
    timeout: float,
) -> list[bytes]:
    """One keyframe file per epoch run, one ffmpeg run over all of them; the sheets' bytes in order."""
    sources = [
        _keyframe_file(
            work / f"tiles_{number:03d}.mp4",
            epoch,
            [frames[index] for index in tiles[begin:end]],
            inits,
            video[epoch],
            layout.interval,
        )
        for number, (epoch, begin, end) in enumerate(storyboard.epoch_runs([segments[i].epoch for i in tiles]))
    ]
    out = work / "sprites"
    out.mkdir()
    argv = storyboard_args(
        sources=sources,
        output_dir=out,
        tile_width=layout.tile_width,
        tile_height=layout.tile_height,
        columns=layout.columns,
        rows=layout.rows,
        ffmpeg_bin=ffmpeg,
    )
    _run(argv, timeout, "storyboard")
    written = sorted(path.name for path in out.iterdir())
    if written != [sprite_name(index) for index in range(layout.sheets)]:
        raise FfmpegError(f"storyboard: ffmpeg wrote {len(written)} sheets, expected {layout.sheets}")
    return [(out / name).read_bytes() for name in written]


def _render_poster(
    work: Path,
    chosen: list[int],
    segments: Sequence[StoredSegment],
    inits: Mapping[int, bytes],
    video: Mapping[int, bmff.TrackInfo],
    frames: Mapping[int, bytes],
    ffmpeg: str,
    timeout: float,
) -> bytes:
    """The most representative candidate (all of one epoch, ``storyboard.poster_group``) as a JPEG."""
    epoch = segments[chosen[0]].epoch
    source = _keyframe_file(work / "poster.mp4", epoch, [frames[i] for i in chosen], inits, video[epoch], 1)
    output = work / "poster.jpg"
    _run(
        poster_args(source=source, output=output, max_width=POSTER_MAX_WIDTH, frames=len(chosen), ffmpeg_bin=ffmpeg),
        timeout,
        "poster",
    )
    if not output.is_file() or output.stat().st_size == 0:
        raise FfmpegError("poster: ffmpeg wrote no image")
    return output.read_bytes()


def _store(
    s3: Any,
    bucket: str,
    playback_id: str,
    session_id: str,
    layout: storyboard.Plan,
    sheets: list[bytes],
    poster: bytes,
) -> tuple[str, Storyboard]:
    """Sprites, then the VTT that names them, then the poster."""
    ids = {"playback_id": playback_id, "session_id": session_id}
    sprite_keys = [keys.StoryboardSprite(**ids, index=index).key for index in range(len(sheets))]
    vtt_key = keys.SessionImage(**ids, kind=keys.ImageKind.STORYBOARD_VTT).key
    poster_key = keys.SessionImage(**ids, kind=keys.ImageKind.POSTER).key
    for key, data in zip(sprite_keys, sheets, strict=True):
        _put(s3, bucket, key, data, "image/jpeg")
    names = [posixpath.relpath(key, posixpath.dirname(vtt_key)) for key in sprite_keys]
    _put(s3, bucket, vtt_key, storyboard.vtt(layout, names).encode(), "text/vtt")
    _put(s3, bucket, poster_key, poster, "image/jpeg")
    return poster_key, Storyboard(
        vtt_path=vtt_key,
        sprite_paths=sprite_keys,
        interval=layout.interval,
        tile_width=layout.tile_width,
        tile_height=layout.tile_height,
        columns=layout.columns,
        rows=layout.rows,
        tiles=layout.tiles,
    )


def _put(s3: Any, bucket: str, key: str, body: bytes, content_type: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, CacheControl=CACHE_CONTROL)


def _run(argv: list[str], timeout: float, what: str) -> None:
    """Run ffmpeg (no shell); raise :class:`FfmpegError` with the stderr tail when it fails or overruns."""
    try:
        result = subprocess.run(argv, capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as expired:
        raise FfmpegError(f"{what}: ffmpeg ran over {timeout:g} s: {_tail(expired.stderr)}") from None
    if result.returncode != 0:
        raise FfmpegError(f"{what}: ffmpeg exited with {result.returncode}: {_tail(result.stderr)}")


def _tail(stderr: bytes | None) -> str:
    return (stderr or b"").decode("utf-8", "replace").strip()[-STDERR_TAIL:]
