"""The ffmpeg run of a live thumbnail: init + segment bytes in, a JPEG and a WebP of the same frame out.

:func:`has_picture` first checks, without ffmpeg, that there is a video keyframe to decode. ffmpeg reads the
bytes from a file in a private temporary folder (Lambda's ``/tmp``) and writes both images there (its stderr too,
so nothing has to be pumped while it runs); the folder is removed whatever happens. The argv comes from
:func:`mediakit.ffmpeg_args.live_thumbnail_args`.

ffmpeg runs under two limits: its own ``timeout`` (running over it is a :class:`DecodeError`: something is wrong
with the bytes) and the invocation's time left (``time_left``, read from the Lambda context while ffmpeg runs):
when that runs out ffmpeg is killed at once and :class:`OutOfTime` says so. Nothing is wrong with the segment
then; the invocation is ending (its deadline, or locally ``up`` stopping) and must not leave ffmpeg behind.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mediakit import bmff
from mediakit.ffmpeg_args import live_thumbnail_args

#: Characters of ffmpeg's stderr kept in errors and logs.
STDERR_TAIL = 2000
#: Seconds between two looks at the invocation's time left while ffmpeg runs.
TIME_LEFT_POLL = 0.1


def unlimited() -> float:
    """``time_left`` of a call with no invocation deadline (tests, tools)."""
    return math.inf


class OutOfTime(Exception):
    """The invocation's time ran out before the thumbnail was done (ffmpeg, if started, was killed)."""


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
    init: bytes,
    segment: bytes,
    *,
    ffmpeg: str = "ffmpeg",
    width: int = 640,
    timeout: float = 10.0,
    time_left: Callable[[], float] = unlimited,
) -> Images:
    """Cut a thumbnail from one live segment.

    Args:
        init: the segment's init segment (``keys.LiveInit`` of its epoch).
        segment: the ``seg_<n>.m4s`` bytes.
        ffmpeg: the ffmpeg executable.
        width: image width in pixels (the height keeps the aspect).
        timeout: seconds before ffmpeg is killed as unable to decode.
        time_left: seconds the invocation has left (read again every :data:`TIME_LEFT_POLL` s while ffmpeg runs).

    Returns:
        The JPEG and WebP bytes.

    Raises:
        DecodeError: ffmpeg failed, ran over ``timeout``, or wrote no image.
        OutOfTime: ``time_left`` reached 0 first (ffmpeg was killed, or never started).
    """
    if time_left() <= 0:
        raise OutOfTime("no time left to start ffmpeg")
    with tempfile.TemporaryDirectory(prefix="thumb-") as name:
        folder = Path(name)
        source, jpeg, webp = folder / "segment.mp4", folder / "thumb.jpg", folder / "thumb.webp"
        source.write_bytes(init + segment)
        argv = live_thumbnail_args(source=source, jpeg=jpeg, webp=webp, width=width, ffmpeg_bin=ffmpeg)
        started = time.perf_counter()
        returncode, stderr = _run(argv, folder / "ffmpeg.log", started + timeout, time_left)
        elapsed = time.perf_counter() - started
        if returncode is None:
            raise DecodeError(f"ffmpeg ran over {timeout:g} s", _tail(stderr))
        if returncode != 0:
            raise DecodeError(f"ffmpeg exited with {returncode}", _tail(stderr))
        if not _written(jpeg) or not _written(webp):
            raise DecodeError("ffmpeg wrote no image (no decodable video frame)", _tail(stderr))
        return Images(jpeg=jpeg.read_bytes(), webp=webp.read_bytes(), elapsed=elapsed)


def _run(argv: list[str], log: Path, deadline: float, time_left: Callable[[], float]) -> tuple[int | None, bytes]:
    """Run ffmpeg until it exits (its exit code and stderr), ``deadline`` (``perf_counter``) passes (``None``), or
    ``time_left()`` reaches 0 (:class:`OutOfTime`); ffmpeg is killed in the last two cases. Its stderr goes to
    ``log``, so nothing has to be read while it runs."""
    with (
        log.open("wb") as stderr,
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr) as process,
    ):
        while True:
            try:
                returncode: int | None = process.wait(max(0.0, min(TIME_LEFT_POLL, deadline - time.perf_counter())))
                break
            except subprocess.TimeoutExpired:
                if time_left() <= 0:
                    process.kill()
                    process.wait()
                    raise OutOfTime("the invocation's time ran out while ffmpeg ran") from None
                if time.perf_counter() >= deadline:
                    process.kill()
                    process.wait()
                    returncode = None
                    break
    return returncode, log.read_bytes()


def _written(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _tail(stderr: bytes | None) -> str:
    return (stderr or b"").decode("utf-8", "replace").strip()[-STDERR_TAIL:]
