"""Storyboards and posters of a recording, planned from the live segments (pure: plain values and bytes).

A *storyboard* is a WebVTT file whose cues point at tiles of JPEG sprite sheets
(``storyboard_000.jpg#xywh=x,y,w,h``): players show the tile under the seek bar. This module decides how many
tiles, how big, which live segment each tile is cut from, writes the VTT text, and packs the chosen keyframes into
a tiny fragmented MP4 so that one ffmpeg run decodes only those frames (never the whole broadcast).

Theory of operation
-------------------
1. :func:`plan` picks the tile interval from :data:`INTERVALS` so that a broadcast needs at most
   :data:`MAX_TILES` tiles (a 4 h VOD: 30 s tiles, 480 tiles, 5 sheets of 10×10); past the ladder the interval
   grows in whole minutes. Tile ``k`` covers ``[k·N, min((k+1)·N, duration))``, so the cues cover
   ``[0, duration]`` exactly, without gaps or overlaps (times in whole milliseconds, as WebVTT writes them).
2. :func:`pick_sources` maps each tile's start time to the live segment playing then (segment start times are the
   VOD playlist's: cumulative segment durations, so reconnects do not shift the storyboard against the player).
   Each segment contributes its *first keyframe* only (one ranged read of a few kB); a segment without one
   (audio-only epoch, force-cut segment) is replaced by the nearest earlier segment that has one, else the next.
3. :func:`keyframe_fmp4` writes the init segment of one epoch followed by one ``moof``/``mdat`` per chosen
   keyframe (a single sync sample each, ``interval_ticks`` apart). ffmpeg decodes exactly those frames.

Multi-epoch recordings (a codec or resolution change mid-broadcast starts a new init epoch): keyframes of
different epochs cannot share one init, so the caller cuts the tile sequence into *epoch runs* (consecutive tiles
of the same epoch, :func:`epoch_runs`), writes one keyframe file per run, and gives them all to ONE ffmpeg
run that scales and pads every frame to the same tile size (letterboxed, aspect kept) and concatenates them
before the ``tile`` filter (``mediakit.ffmpeg_args.storyboard_args``). The tile size follows the first video
epoch. The poster comes from the epoch holding most poster candidates (:func:`poster_group`), so its frames
share one init too.

Rules:
- No I/O and no clock (the package rule); box bytes are read only through :mod:`mediakit.bmff` and written only
  through :mod:`mediakit.cmaf.fragment`.
- Every output is a pure function of the inputs, so rebuilding a recording stores byte-identical objects.
- Invalid input raises :class:`StoryboardError` (a ``ValueError``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from . import bmff
from .cmaf.fragment import SYNC_SAMPLE_FLAGS, TrackRun, build_fragment

#: Tile intervals (seconds) to choose from, shortest first.
INTERVALS = (1, 2, 5, 10, 15, 30, 60)
#: At most this many tiles: ~5 sheets of 10×10; keeps a 4 h VOD at ~500 decoded keyframes.
MAX_TILES = 500
#: Sheet grid: at most this many columns and rows (a short VOD gets fewer rows, or fewer columns).
COLUMNS = 10
ROWS = 10
#: The longer side of a tile, in pixels (16:9 → 160×90, 4:3 → 160×120, 9:16 → 90×160).
TILE_LONG_SIDE = 160
#: Poster candidates: this many keyframes spread over the first third of the broadcast (at most 10 minutes).
POSTER_CANDIDATES = 10
POSTER_WINDOW = 600.0
#: A recording's sprite sheets may be numbered up to 999 (``keys.StoryboardSprite``).
MAX_SHEETS = 1000


class StoryboardError(ValueError):
    """An input the planner refuses (no duration, no keyframes, a frame list without frames, ...)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Cue:
    """One WebVTT cue: ``[start_ms, end_ms)`` shows tile ``(x, y)`` of sheet ``sheet``."""

    start_ms: int
    end_ms: int
    sheet: int
    x: int
    y: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """How a recording's storyboard is laid out."""

    #: Media duration in whole milliseconds (the last cue ends here).
    duration_ms: int
    #: Seconds between tiles.
    interval: int
    tiles: int
    columns: int
    rows: int
    tile_width: int
    tile_height: int

    @property
    def per_sheet(self) -> int:
        """Tiles per sprite sheet."""
        return self.columns * self.rows

    @property
    def sheets(self) -> int:
        """Number of sprite sheets (the last one may be partly empty)."""
        return math.ceil(self.tiles / self.per_sheet)

    def times(self) -> list[float]:
        """Start of every tile, in seconds of media time."""
        return [index * self.interval for index in range(self.tiles)]

    def cues(self) -> list[Cue]:
        """The cues, in order, covering ``[0, duration_ms]``."""
        step = self.interval * 1000
        cues = []
        for index in range(self.tiles):
            sheet, slot = divmod(index, self.per_sheet)
            row, column = divmod(slot, self.columns)
            cues.append(
                Cue(
                    start_ms=index * step,
                    end_ms=min((index + 1) * step, self.duration_ms),
                    sheet=sheet,
                    x=column * self.tile_width,
                    y=row * self.tile_height,
                )
            )
        return cues


def interval_for(duration: float, *, max_tiles: int = MAX_TILES) -> int:
    """The shortest tile interval (seconds) from :data:`INTERVALS` giving at most ``max_tiles`` tiles.

    Past the ladder (over ``max_tiles`` minutes) the interval grows in whole minutes.
    """
    duration_ms = _duration_ms(duration)
    for interval in INTERVALS:
        if math.ceil(duration_ms / (interval * 1000)) <= max_tiles:
            return interval
    return 60 * math.ceil(duration_ms / (max_tiles * 60_000))


def tile_size(width: int, height: int, *, long_side: int = TILE_LONG_SIDE) -> tuple[int, int]:
    """Tile ``(width, height)`` keeping the source aspect: the longer side is ``long_side``, both even.

    An unknown source size (0) gives 16:9.
    """
    if width <= 0 or height <= 0:
        width, height = 16, 9
    if width >= height:
        return long_side, max(2, _even(long_side * height / width))
    return max(2, _even(long_side * width / height)), long_side


def plan(duration: float, *, width: int, height: int, columns: int = COLUMNS, rows: int = ROWS) -> Plan:
    """The storyboard layout of a ``duration``-second recording whose video is ``width``×``height``.

    Raises:
        StoryboardError: ``duration`` is not a positive finite number, or the grid is empty.
    """
    if columns < 1 or rows < 1:
        raise StoryboardError(f"a sprite sheet needs at least one column and one row, got {columns}x{rows}")
    duration_ms = _duration_ms(duration)
    interval = interval_for(duration)
    tiles = math.ceil(duration_ms / (interval * 1000))
    tile_width, tile_height = tile_size(width, height)
    used_columns = min(columns, tiles)
    result = Plan(
        duration_ms=duration_ms,
        interval=interval,
        tiles=tiles,
        columns=used_columns,
        rows=min(rows, math.ceil(tiles / used_columns)),
        tile_width=tile_width,
        tile_height=tile_height,
    )
    if result.sheets > MAX_SHEETS:
        raise StoryboardError(f"{result.sheets} sprite sheets exceed the {MAX_SHEETS} the key layout numbers")
    return result


def vtt(layout: Plan, sprite_names: Sequence[str]) -> str:
    """The WebVTT text of ``layout``; ``sprite_names[n]`` is sheet ``n``'s URI relative to the VTT file.

    Raises:
        StoryboardError: not exactly one name per sheet, or a name that would break a cue line.
    """
    if len(sprite_names) != layout.sheets:
        raise StoryboardError(f"{layout.sheets} sprite sheets need as many names, got {len(sprite_names)}")
    if any(not name or any(char in name for char in "\r\n#") or "-->" in name for name in sprite_names):
        raise StoryboardError("sprite names must be non-empty, single-line and without '#' or '-->'")
    lines = ["WEBVTT", ""]
    for cue in layout.cues():
        lines.append(f"{_timestamp(cue.start_ms)} --> {_timestamp(cue.end_ms)}")
        lines.append(f"{sprite_names[cue.sheet]}#xywh={cue.x},{cue.y},{layout.tile_width},{layout.tile_height}")
        lines.append("")
    return "\n".join(lines)


def poster_times(duration: float, *, count: int = POSTER_CANDIDATES) -> list[float]:
    """Media times of the poster candidates: ``count`` points spread over the first part of the broadcast.

    The first third (at most :data:`POSTER_WINDOW` seconds; the whole of a broadcast under 30 s), sampled at the
    middle of ``count`` equal slices, so neither the "starting soon" screen nor the fade-in dominates.
    """
    seconds = _duration_ms(duration) / 1000
    window = seconds if seconds < 30 else min(seconds / 3, POSTER_WINDOW)
    return [(index + 0.5) * window / count for index in range(count)]


def segment_starts(durations: Sequence[float]) -> list[float]:
    """Start time of each segment on the VOD timeline (cumulative durations, as the VOD playlist adds EXTINFs)."""
    starts, total = [], 0.0
    for duration in durations:
        starts.append(total)
        total += duration
    return starts


def pick_sources(starts: Sequence[float], usable: Sequence[bool], times: Sequence[float]) -> list[int]:
    """For each time, the index of the segment whose first keyframe stands for it.

    Args:
        starts: segment start times (ascending), e.g. :func:`segment_starts`.
        usable: per segment, whether it has a video keyframe to show.
        times: media times to find frames for (tile starts, poster candidates).

    Returns:
        One segment index per time: the segment playing at that time, or the nearest earlier usable one, or
        (at the start of a broadcast) the next usable one.

    Raises:
        StoryboardError: no segment is usable (an audio-only broadcast), or the lists disagree in length.
    """
    if len(starts) != len(usable):
        raise StoryboardError(f"{len(starts)} segment starts but {len(usable)} usable flags")
    if not any(usable):
        raise StoryboardError("no segment has a video keyframe")
    before: list[int | None] = []
    last: int | None = None
    for index, ok in enumerate(usable):
        last = index if ok else last
        before.append(last)
    after: list[int | None] = [None] * len(usable)
    following: int | None = None
    for index in range(len(usable) - 1, -1, -1):
        following = index if usable[index] else following
        after[index] = following
    picks = []
    for time in times:
        index = max(0, bisect.bisect_right(starts, time + 1e-6) - 1)
        choice = before[index] if before[index] is not None else after[index]
        assert choice is not None  # some segment is usable
        picks.append(choice)
    return picks


def epoch_runs(epochs: Sequence[int]) -> list[tuple[int, int, int]]:
    """Cut a sequence of per-frame init epochs into runs: ``(epoch, first index, end index)``, in order."""
    runs: list[tuple[int, int, int]] = []
    for index, epoch in enumerate(epochs):
        if runs and runs[-1][0] == epoch:
            runs[-1] = (epoch, runs[-1][1], index + 1)
        else:
            runs.append((epoch, index, index + 1))
    return runs


def poster_group(epochs: Sequence[int]) -> list[int]:
    """Indexes of the poster candidates to use: those of the epoch holding most candidates (ties: earliest)."""
    if not epochs:
        raise StoryboardError("no poster candidates")
    counts: dict[int, int] = {}
    for epoch in epochs:
        counts[epoch] = counts.get(epoch, 0) + 1
    best = max(counts, key=lambda epoch: (counts[epoch], -epochs.index(epoch)))
    return [index for index, epoch in enumerate(epochs) if epoch == best]


def keyframe_fmp4(
    init: bytes, frames: Sequence[bytes], *, video_track_id: int, timescale: int, interval_ticks: int
) -> bytes:
    """A fragmented MP4 holding only ``frames``: the init's bytes, then one single-sync-sample fragment per frame.

    Args:
        init: the epoch's init segment, as stored (its other tracks simply get no samples).
        frames: keyframe sample payloads (as stored in the segments: length-prefixed NAL units / OBUs).
        video_track_id: the video track of ``init`` (1 in the CaptureStream layout).
        timescale: that track's timescale; checked against the init.
        interval_ticks: decode-time step between frames, in ``timescale`` ticks.

    Returns:
        Bytes ffmpeg reads as ``len(frames)`` video frames ``interval_ticks`` apart.

    Raises:
        StoryboardError: no frames, an unknown or non-video track, a timescale that is not the init's, or an
            interval outside ``1..2**32-1``.
        bmff.MalformedBox: ``init`` is not an init segment.
    """
    if not frames:
        raise StoryboardError("a keyframe file needs at least one frame")
    track = bmff.read_init(init).get(video_track_id)
    if track is None or track.handler != "vide":
        raise StoryboardError(f"init has no video track {video_track_id}")
    if track.timescale != timescale:
        raise StoryboardError(f"track {video_track_id} has timescale {track.timescale}, not {timescale}")
    if not 0 < interval_ticks < 1 << 32:
        raise StoryboardError(f"interval_ticks must be in 1..2**32-1, got {interval_ticks}")
    parts = [bytes(init)]
    for index, frame in enumerate(frames):
        if not frame:
            raise StoryboardError(f"frame {index} is empty")
        run = TrackRun(
            track_id=video_track_id,
            base_time=index * interval_ticks,
            durations=[interval_ticks],
            payloads=[frame],
            flags=[SYNC_SAMPLE_FLAGS],
            offsets=[0],
        )
        parts.append(build_fragment(index + 1, [run]))
    return b"".join(parts)


def _duration_ms(duration: float) -> int:
    if isinstance(duration, bool) or not isinstance(duration, int | float) or not math.isfinite(duration):
        raise StoryboardError(f"duration must be a finite number of seconds, got {duration!r}")
    duration_ms = round(duration * 1000)
    if duration_ms <= 0:
        raise StoryboardError(f"duration must be at least 1 ms, got {duration!r}")
    return duration_ms


def _even(value: float) -> int:
    return 2 * round(value / 2)


def _timestamp(milliseconds: int) -> str:
    """WebVTT ``HH:MM:SS.mmm`` (hours grow past 99 if they must)."""
    seconds, millis = divmod(milliseconds, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"
