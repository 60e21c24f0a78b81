"""The ffmpeg run of a live thumbnail: init + segment bytes in, a JPEG and a WebP of the same frame out.

:func:`has_picture` first checks, without ffmpeg, that there is a video keyframe to decode. ffmpeg reads the
bytes on stdin and writes both images into a private temporary folder (Lambda's ``/tmp``), which is removed
whatever happens. The argv comes from :func:`mediakit.ffmpeg_args.live_thumbnail_args`.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mediakit import bmff
from mediakit.ffmpeg_args import live_thumbnail_args

#: Characters of ffmpeg's stderr kept in errors and logs.
STDERR_TAIL = 2000


class DecodeError(Exception):
    """No thumbnail can be made of these bytes: they do not parse, or ffmpeg failed or timed out.

    Attributes:
        stderr: the tail of ffmpeg's stderr (may be empty).
    """

    def __init__(self, message: str, stderr: str = "") -> None:
        super().__init__(f"{message}: {stderr}" if stderr else message)
        self.stderr = stderr


@dataclass(frozen=True, kw_only=True)
class Images:
    """The same frame, encoded twice."""

    jpeg: bytes
    webp: bytes
    #: Seconds ffmpeg ran.
    elapsed: float


def has_picture(init: bytes, segment: bytes) -> bool:
    """Whether the segment holds a video keyframe to decode (no: an audio-only stream, or a force-cut segment).

    Raises:
        DecodeError: the init or the segment does not parse (read through :mod:`mediakit.bmff`).
    """
    try:
        tracks = bmff.read_init(init)
        video = {track_id for track_id, track in tracks.items() if track.handler == "vide"}
        if not video:
            return False
        fragments = bmff.read_fragments(segment, defaults={tid: track.defaults for tid, track in tracks.items()})
    except bmff.MalformedBox as error:
        raise DecodeError("init + segment do not parse", str(error)) from None
    return any(
        bmff.is_sync(flags)
        for fragment in fragments
        for run in fragment.runs
        if run.track_id in video
        for flags in run.flags
    )


def live_thumbnail(
    init: bytes, segment: bytes, *, ffmpeg: str = "ffmpeg", width: int = 640, timeout: float = 10.0
) -> Images:
    """Cut a thumbnail from one live segment.

    Args:
        init: the segment's init segment (``keys.LiveInit`` of its epoch).
        segment: the ``seg_<n>.m4s`` bytes.
        ffmpeg: the ffmpeg executable.
        width: image width in pixels (the height keeps the aspect).
        timeout: seconds before ffmpeg is killed.

    Returns:
        The JPEG and WebP bytes.

    Raises:
        DecodeError: ffmpeg failed, timed out, or wrote no image.
    """
    with tempfile.TemporaryDirectory(prefix="thumb-") as folder:
        jpeg, webp = Path(folder) / "thumb.jpg", Path(folder) / "thumb.webp"
        argv = live_thumbnail_args(source=None, jpeg=jpeg, webp=webp, width=width, ffmpeg_bin=ffmpeg)
        started = time.perf_counter()
        try:
            result = subprocess.run(argv, input=init + segment, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as expired:
            raise DecodeError(f"ffmpeg ran over {timeout:g} s", _tail(expired.stderr)) from None
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise DecodeError(f"ffmpeg exited with {result.returncode}", _tail(result.stderr))
        if not _written(jpeg) or not _written(webp):
            raise DecodeError("ffmpeg wrote no image (no decodable video frame)", _tail(result.stderr))
        return Images(jpeg=jpeg.read_bytes(), webp=webp.read_bytes(), elapsed=elapsed)


def _written(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _tail(stderr: bytes | None) -> str:
    return (stderr or b"").decode("utf-8", "replace").strip()[-STDERR_TAIL:]
