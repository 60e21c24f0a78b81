"""The media half of browser go-live: MediaRecorder's WebM/Matroska → one ffmpeg child → FLV tags, as RTMP gives.

One :class:`CaptureFfmpeg` runs per capture connection, with the argv of :func:`mediakit.ffmpeg_args.capture_args`
(H.264 copied, Opus → AAC, VP8/VP9 → H.264). Its FLV output is cut into tags by the sans-IO
:class:`mediakit.cmaf.flv.FlvReader` as it arrives, and each tag is handed, in order, to ``on_tag``: from there
the broadcast sees exactly what an RTMP publisher's messages would give it.

Rules:
- Back-pressure end to end: :meth:`CaptureFfmpeg.write` awaits ffmpeg's stdin ``drain()``; ``on_tag`` is awaited
  before the next read of stdout, so a slow upload queue slows ffmpeg, which slows the socket, which slows the
  browser (its ``WebSocket.bufferedAmount`` grows).
- ffmpeg's stderr is always drained (a full pipe would stall it); its last lines go into :class:`MediaPipelineError`.
- Failure is loud, never a hang: ffmpeg missing, exiting early or with an error, FLV output that does not parse, an
  ``on_tag`` that raises, or a write ffmpeg does not take within ``stall_timeout`` end the pipeline with
  :class:`MediaPipelineError` (from :meth:`write`, from :meth:`finish`, and through the :attr:`done` task).
- :meth:`finish` closes stdin and waits until every tag ffmpeg still had was handed over; :meth:`kill` drops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from mediakit.cmaf import MediaError
from mediakit.cmaf.flv import FileTag, FlvReader

from ..muxing.ffmpeg_remuxer import _drain_stderr

log = logging.getLogger(__name__)

_READ_SIZE = 1 << 16
_STDERR_LINES = 8


class MediaPipelineError(Exception):
    """ffmpeg could not start, failed, or stalled; the message ends with ffmpeg's last stderr lines."""


class CaptureFfmpeg:
    """One ffmpeg child: WebM/Matroska bytes in, FLV tags out to ``on_tag``.

    Args:
        argv: the command, e.g. from :func:`mediakit.ffmpeg_args.capture_args`.
        on_tag: awaited with each FLV tag, in order.
        stall_timeout: seconds a write may wait for ffmpeg to read before it is called stuck and killed.
        finish_timeout: seconds :meth:`finish` waits for the last tags and the exit before killing ffmpeg.
    """

    def __init__(
        self,
        argv: Sequence[str],
        on_tag: Callable[[FileTag], Awaitable[None]],
        *,
        stall_timeout: float = 30.0,
        finish_timeout: float = 10.0,
    ) -> None:
        self.argv = list(argv)
        self.stall_timeout = stall_timeout
        self.finish_timeout = finish_timeout
        self._on_tag = on_tag
        self._process: asyncio.subprocess.Process | None = None
        self._stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self._stderr_task: asyncio.Task[None] | None = None
        #: The stdout pump: finishes when ffmpeg's output ends; its exception is the pipeline's failure.
        self.done: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """ffmpeg's pid once started."""
        return self._process.pid if self._process else None

    async def start(self) -> None:
        """Start ffmpeg.

        Raises:
            MediaPipelineError: it could not be started.
        """
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as error:
            raise MediaPipelineError(f"cannot start {self.argv[0]!r}: {error}") from error
        assert self._process.stderr is not None
        name = f"ffmpeg-{self._process.pid}"
        self._stderr_task = asyncio.create_task(_drain_stderr(self._process.stderr, self._stderr), name=f"{name}-err")
        self.done = asyncio.create_task(self._pump(), name=f"{name}-out")

    async def write(self, data: bytes) -> None:
        """Give ffmpeg the next bytes of the recording; returns once it has taken them (back-pressure).

        Raises:
            MediaPipelineError: ffmpeg is gone, failed, or read nothing for ``stall_timeout`` seconds.
        """
        process = self._running()
        if self.done is not None and self.done.done():
            raise await self._failure("ffmpeg stopped before the end of the recording")
        stdin = process.stdin
        assert stdin is not None
        try:
            stdin.write(data)
            async with asyncio.timeout(self.stall_timeout):
                await stdin.drain()
        except ConnectionError as error:  # BrokenPipeError / ConnectionResetError: ffmpeg went away
            raise await self._failure(f"ffmpeg stopped reading ({error.__class__.__name__})") from error
        except TimeoutError as error:
            await self.kill()
            raise MediaPipelineError(f"ffmpeg read nothing for {self.stall_timeout:g} s; killed") from error

    async def finish(self) -> None:
        """End of the recording: close stdin, hand over every tag ffmpeg still had, wait for it to exit.

        Raises:
            MediaPipelineError: ffmpeg failed, or did not finish within ``finish_timeout`` (then it is killed).
        """
        process = self._running()
        assert process.stdin is not None and self.done is not None
        with contextlib.suppress(ConnectionError):
            process.stdin.close()
            await process.stdin.wait_closed()
        try:
            await asyncio.wait_for(asyncio.shield(self.done), self.finish_timeout)
        except TimeoutError:
            await self.kill()
            raise MediaPipelineError(f"ffmpeg did not finish within {self.finish_timeout:g} s; killed") from None

    async def kill(self) -> None:
        """Stop ffmpeg now (its pending output is dropped). Idempotent."""
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        tasks = [task for task in (self.done, self._stderr_task) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _running(self) -> asyncio.subprocess.Process:
        if self._process is None:
            raise RuntimeError("CaptureFfmpeg.start() first")
        return self._process

    async def _pump(self) -> None:
        process = self._running()
        assert process.stdout is not None
        reader = FlvReader()
        try:
            while chunk := await process.stdout.read(_READ_SIZE):
                for tag in reader.feed(chunk):
                    await self._on_tag(tag)
            reader.feed(b"")
        except MediaError as error:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise await self._failure(f"ffmpeg's FLV output does not parse: {error}") from None
        if await process.wait() != 0:
            raise await self._failure("ffmpeg failed")

    async def _failure(self, message: str) -> MediaPipelineError:
        """The error to raise, with the exit status and stderr tail once ffmpeg is gone (waits ≤ 5 s for it)."""
        process = self._running()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 5)
        if self._stderr_task is not None:
            await asyncio.gather(asyncio.wait_for(asyncio.shield(self._stderr_task), 5), return_exceptions=True)
        tail = "; ".join(self._stderr)
        status = f" (exit status {process.returncode})" if process.returncode is not None else ""
        return MediaPipelineError(f"{message}{status}" + (f": {tail}" if tail else ""))
