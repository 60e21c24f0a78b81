"""The ``--remuxer ffmpeg`` fallback: RTMP audio/video message bodies → an ffmpeg child → CMAF HLS outputs.

It plays the role of :class:`mediakit.cmaf.Segmenter` for :class:`ingest_node.sessions.broadcast.Broadcast` when the
in-process muxer cannot take the publisher's codecs (MP3/Speex/PCM/Opus audio, ...): same outputs
(:class:`~mediakit.cmaf.InitSegment`, :class:`~mediakit.cmaf.Segment`), same file layout, but async because
a process sits behind it.

API (pull, like the sans-IO segmenter): ``await feed_video(ts, body)``, ``await feed_audio(ts, body)`` and
``await feed_metadata(md)`` each return the outputs that became ready since the previous call; ``await poll()``
returns them without feeding; ``await discontinuity(anchor=...)`` ends the publisher session; ``await finish()``
closes ffmpeg's stdin, waits for it and returns the rest; ``await aclose()`` kills it (error paths). While media
flows, an output is returned at most one message after ffmpeg finished it.

Theory of operation
-------------------
One ffmpeg runs per publisher session (an *epoch*), fed ``FLV header + tags`` on stdin, argv from
:func:`mediakit.ffmpeg_args.remux_args`, writing HLS into a private working folder. Until it starts, tags are
buffered (bounded) until the codecs are known: the first audio tag (AAC is copied, anything else is encoded to AAC)
and the first video tag (HEVC gets the ``hvc1`` tag), or ``onMetaData``'s codec ids, or after
:data:`CONFIG_GRACE_MS` of media. :meth:`FfmpegRemuxer.discontinuity` (a reconnect) ends that ffmpeg and the next
media starts another with the next epoch (its own ``init_<epoch>.mp4``) and the next media sequence; its first
segment is flagged as a discontinuity.

How a finished file is detected
-------------------------------
ffmpeg 5.1's HLS muxer closes a segment, then writes the live playlist to ``index.m3u8.tmp`` and renames it to
``index.m3u8`` (INGEST_COST.md: CLOSE_WRITE of the segment, then MOVED_TO of the playlist). So **after each
playlist rename, every segment it lists is complete**, and so is the init segment it maps (written with the first
segment). The rename is observed with inotify (``IN_MOVED_TO``; STYLE rule 12: an event, not polling) through libc
via ctypes, the same calls ``asyncinotify`` makes (that package is on PyPI but not a dependency of the project).
Without inotify (not Linux), the playlist's (inode, mtime, size) is compared at each call instead: still no timer,
one ``stat`` per call. Listed entries are emitted in order; each file is read, then deleted.

Rules:
- Back-pressure: every write awaits ``drain()``, so a slow ffmpeg slows the publisher's connection.
- ffmpeg's stderr is always drained (a full pipe would stall it); its tail goes into :class:`RemuxerError`.
- Failure is loud, never a hang: ffmpeg missing, exiting before ``finish()`` (seen by the next call; e.g. Sorenson
  H.263 or VP6 video, which fMP4 cannot carry), a broken stdin or a non-zero exit raise :class:`RemuxerError`; an
  ffmpeg that reads nothing for ``stall_timeout`` or does not exit within ``finish_timeout`` is killed.
- What ffmpeg can demux bounds the fallback: Debian's ffmpeg 5.1 reads legacy FLV codecs only (Enhanced RTMP
  HEVC/AV1/Opus arrived in 6.1; the ``hvc1`` tagging is there for it).
- ``program_date_time`` = the epoch's anchor (wall clock of its first media, or the caller's) + media time, as in
  the segmenter's rule 8: ffmpeg's own PDT starts after it has probed the input, so it is not used.
- No LL-HLS parts (``parts=()``); ffmpeg cuts before keyframes only, so ``keyframe=True``.
- Files are small (≤ a few MB) and in the page cache; they are read on the loop, not in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mediakit import bmff
from mediakit.cmaf import InitSegment, MediaError, Output, Segment, describe_init
from mediakit.ffmpeg_args import PLAYLIST_NAME, remux_args
from mediakit.hls import PlaylistError, parse_media_playlist

from .dirwatch import PlaylistWatch

log = logging.getLogger(__name__)

#: Media buffered before ffmpeg starts when the codecs are still unknown (the segmenter's grace window too).
CONFIG_GRACE_MS = 1000
_AUDIO, _VIDEO = 8, 9
_FLV_HEADER_AUDIO, _FLV_HEADER_VIDEO = 0x04, 0x01
_AAC_IDS = (10, "mp4a", 0x6D703461)  # FLV SoundFormat, and the Enhanced RTMP FourCC as onMetaData spells it
_HEVC_IDS = (12, "hvc1", 0x68766331)
_STDERR_LINES = 20


class RemuxerError(Exception):
    """ffmpeg could not start, stopped early or failed. ``outputs``: what it finished before (from ``finish()``)."""

    def __init__(self, message: str, *, returncode: int | None = None, stderr: Sequence[str] = ()) -> None:
        tail = "; ".join(stderr)
        super().__init__(f"{message}: {tail}" if tail else message)
        self.returncode = returncode
        self.stderr = list(stderr)
        self.outputs: list[Output] = []


@dataclass(eq=False)
class _Run:
    """One ffmpeg process: one epoch."""

    epoch: int
    process: asyncio.subprocess.Process
    stderr: deque[str]
    stderr_task: asyncio.Task[None]
    anchor: datetime
    discontinuity: bool
    init_done: bool = False
    elapsed: float = 0.0  # media seconds emitted so far in this run


class FfmpegRemuxer:
    """One broadcast's media through ffmpeg into CMAF HLS outputs. See the module docstring.

    Args:
        segment_seconds: HLS target duration (ffmpeg cuts at the first keyframe past it).
        anchor: timezone-aware wall clock of the first media sample; by default, when the first tag arrives.
        workdir: folder for ffmpeg's files; by default a private temporary folder, removed by ``finish()``.
        ffmpeg_bin: the ffmpeg executable.
        max_pending_bytes: media buffered before ffmpeg starts, at most.
        finish_timeout: seconds ``finish()`` waits for ffmpeg to exit before killing it.
        stall_timeout: seconds a write may wait for ffmpeg to read (back-pressure) before it is called stuck.
    """

    def __init__(
        self,
        *,
        segment_seconds: float = 1.0,
        anchor: datetime | None = None,
        workdir: Path | None = None,
        ffmpeg_bin: str = "ffmpeg",
        max_pending_bytes: int = 8 << 20,
        finish_timeout: float = 30.0,
        stall_timeout: float = 30.0,
    ) -> None:
        if anchor is not None and anchor.utcoffset() is None:
            raise ValueError("anchor must be timezone-aware")
        self.segment_seconds = segment_seconds
        self.ffmpeg_bin = ffmpeg_bin
        self.max_pending_bytes = max_pending_bytes
        self.finish_timeout = finish_timeout
        self.stall_timeout = stall_timeout
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="capturestream-remux-")) if workdir is None else workdir
        self._anchor = anchor
        self._run: _Run | None = None
        self._watch: PlaylistWatch | None = None
        self._pending: list[tuple[int, int, bytes]] = []
        self._pending_bytes = 0
        self._metadata: dict[str, Any] = {}
        self._audio: str | None = None  # "aac" / "other", from the first tag of each kind
        self._video: str | None = None  # "hevc" / "other"
        self._epoch = -1
        self._next_sequence = 0
        self._failed: RemuxerError | None = None
        self._finished = False

    # ------------------------------------------------------------------ public API

    async def feed_video(self, timestamp_ms: int, payload: bytes) -> list[Output]:
        """Feed one RTMP video message body (FLV VIDEODATA); returns the outputs ready now.

        Raises:
            RemuxerError: ffmpeg could not start or has stopped.
        """
        if self._video is None and payload:
            first = payload[0]
            hevc = bytes(payload[1:5]) == b"hvc1" if first & 0x80 else (first & 0x0F) in _HEVC_IDS
            self._video = "hevc" if hevc else "other"
        return await self._feed(_VIDEO, timestamp_ms, payload)

    async def feed_audio(self, timestamp_ms: int, payload: bytes) -> list[Output]:
        """Feed one RTMP audio message body (FLV AUDIODATA); see :meth:`feed_video`."""
        if self._audio is None and payload:
            sound_format = payload[0] >> 4
            aac_ = sound_format == 10 or (sound_format == 9 and bytes(payload[1:5]) == b"mp4a")
            self._audio = "aac" if aac_ else "other"
        return await self._feed(_AUDIO, timestamp_ms, payload)

    async def feed_metadata(self, metadata: dict[str, Any]) -> list[Output]:
        """``onMetaData``: its codec ids let ffmpeg start before the first tag of each kind."""
        self._check_open()
        self._metadata = dict(metadata)
        return await self.poll()

    async def poll(self) -> list[Output]:
        """The outputs finished since the previous call, without feeding anything."""
        self._check_open()
        run = self._run
        if run is None:
            return []
        if run.process.returncode is not None:
            raise await self._fail(run, "ffmpeg exited before finish()")
        return self._collect(run)

    async def discontinuity(self, *, anchor: datetime | None = None) -> list[Output]:
        """The publisher reconnected: flush this session's ffmpeg; the next media starts a new epoch.

        Args:
            anchor: wall clock of the new session's first sample; by default PDT continues the previous timeline.
        """
        self._check_open(allow_failed=True)
        outputs, error = await self._end_run()
        if error is not None:
            log.warning("ffmpeg remuxer failed before the reconnect: %s", error)
        self._failed, self._audio, self._video, self._metadata = None, None, None, {}
        if anchor is not None:
            self._anchor = anchor
        return outputs

    async def finish(self) -> list[Output]:
        """End of the broadcast: close stdin, wait for ffmpeg, return the last outputs, remove the working folder.

        Raises:
            RemuxerError: ffmpeg failed (or had failed); ``error.outputs`` holds what it finished anyway.
        """
        self._check_open(allow_failed=True)
        self._finished = True
        try:
            outputs, error = await self._end_run()
        finally:
            await self.aclose()
        if error is not None:
            error.outputs = outputs
            raise error
        return outputs

    async def aclose(self) -> None:
        """Kill ffmpeg if it runs, stop watching, remove the working folder if it is ours. Idempotent."""
        self._finished = True
        run, self._run = self._run, None
        if run is not None and run.process.returncode is None:
            run.process.kill()
            await run.process.wait()
        if run is not None:
            await asyncio.gather(run.stderr_task, return_exceptions=True)
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        self._remove_files()
        if self._own_workdir:
            with contextlib.suppress(OSError):
                self.workdir.rmdir()

    # ------------------------------------------------------------------ feeding

    async def _feed(self, kind: int, timestamp_ms: int, payload: bytes) -> list[Output]:
        self._check_open()
        tag = _flv_tag(kind, timestamp_ms, payload)
        if self._run is None:
            if not self._pending and self._anchor is None:
                self._anchor = datetime.now(UTC)
            self._pending.append((kind, timestamp_ms, tag))
            self._pending_bytes += len(tag)
            if not self._decided():
                return []
            await self._start()
        else:
            await self._write(self._run, tag)
        return await self.poll()

    def _decided(self) -> bool:
        md = self._metadata
        listed = "audiocodecid" in md or "videocodecid" in md  # then an absent id means "no such track"
        audio_known = self._audio is not None or listed
        video_known = self._video is not None or listed
        if audio_known and video_known:
            return True
        span = self._pending[-1][1] - min(ts for _, ts, _ in self._pending)
        return span >= CONFIG_GRACE_MS or self._pending_bytes >= self.max_pending_bytes

    async def _start(self) -> None:
        md = self._metadata
        audio = self._audio or ("aac" if md.get("audiocodecid") in _AAC_IDS else None)
        video = self._video or ("hevc" if md.get("videocodecid") in _HEVC_IDS else None)
        has_audio = self._audio is not None or md.get("audiocodecid") is not None
        has_video = self._video is not None or md.get("videocodecid") is not None
        self._epoch += 1
        transcode_audio, hevc = audio != "aac", video == "hevc"
        argv = remux_args(
            workdir=self.workdir,
            segment_seconds=self.segment_seconds,
            epoch=self._epoch,
            start_number=self._next_sequence,
            transcode_audio=transcode_audio,
            hevc=hevc,
            ffmpeg_bin=self.ffmpeg_bin,
        )
        if self._watch is None:
            self._watch = PlaylistWatch(self.workdir / PLAYLIST_NAME)
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
            )
        except OSError as error:
            self._failed = RemuxerError(f"cannot start {self.ffmpeg_bin!r}: {error}")
            raise self._failed from error
        tail: deque[str] = deque(maxlen=_STDERR_LINES)
        assert process.stderr is not None
        stderr_task = asyncio.create_task(_drain_stderr(process.stderr, tail), name=f"ffmpeg-{process.pid}-stderr")
        anchor = self._anchor or datetime.now(UTC)
        self._anchor = None
        run = _Run(self._epoch, process, tail, stderr_task, anchor, discontinuity=self._next_sequence > 0)
        self._run = run
        log.info(
            "ffmpeg remuxer started",
            extra={"pid": process.pid, "epoch": self._epoch, "transcode_audio": transcode_audio, "hevc": hevc},
        )
        flags = (_FLV_HEADER_AUDIO if has_audio else 0) | (_FLV_HEADER_VIDEO if has_video else 0)
        header = b"FLV\x01" + bytes([flags]) + (9).to_bytes(4, "big") + bytes(4)  # header + PreviousTagSize0
        await self._write(run, header + b"".join(tag for _, _, tag in pending))

    async def _write(self, run: _Run, data: bytes) -> None:
        stdin = run.process.stdin
        assert stdin is not None
        if run.process.returncode is not None:
            raise await self._fail(run, "ffmpeg exited before finish()")
        try:
            stdin.write(data)
            async with asyncio.timeout(self.stall_timeout):
                await stdin.drain()
        except ConnectionError as error:  # BrokenPipeError / ConnectionResetError: ffmpeg went away
            raise await self._fail(run, f"ffmpeg stopped reading its input ({error!r})") from error
        except TimeoutError as error:
            run.process.kill()
            raise await self._fail(run, f"ffmpeg read nothing for {self.stall_timeout} s; killed") from error

    async def _fail(self, run: _Run, message: str) -> RemuxerError:
        """Record the failure (the stderr tail and exit status, once ffmpeg is gone) and return it to raise."""
        if self._failed is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.process.wait(), 5)
            await asyncio.gather(asyncio.wait_for(run.stderr_task, 5), return_exceptions=True)
            code = run.process.returncode
            self._failed = RemuxerError(f"{message} (exit status {code})", returncode=code, stderr=run.stderr)
            log.error("ffmpeg remuxer failed: %s", self._failed, extra={"pid": run.process.pid, "epoch": run.epoch})
        return self._failed

    def _check_open(self, *, allow_failed: bool = False) -> None:
        if self._finished:
            raise RuntimeError("the remuxer is finished; no more input")
        if self._failed is not None and not allow_failed:
            raise self._failed

    # ------------------------------------------------------------------ ending a run

    async def _end_run(self) -> tuple[list[Output], RemuxerError | None]:
        """Close stdin, wait for ffmpeg, collect everything it finished; the error, if any, is returned."""
        if self._run is None and self._pending and self._failed is None:
            with contextlib.suppress(RemuxerError):
                await self._start()  # a stream shorter than the grace window
        run, self._run = self._run, None
        if run is None:
            self._pending, self._pending_bytes = [], 0
            return [], self._failed
        stdin = run.process.stdin
        assert stdin is not None
        with contextlib.suppress(ConnectionError):
            stdin.close()
            await stdin.wait_closed()
        error = self._failed
        try:
            await asyncio.wait_for(run.process.wait(), self.finish_timeout)
        except TimeoutError:
            run.process.kill()
            await run.process.wait()
            error = error or RemuxerError(f"ffmpeg did not exit within {self.finish_timeout} s; killed")
        await asyncio.gather(run.stderr_task, return_exceptions=True)
        if error is None and run.process.returncode != 0:
            error = await self._fail(run, "ffmpeg failed")
        outputs = self._collect(run, final=True)
        self._anchor = run.anchor + timedelta(seconds=run.elapsed)  # PDT continues unless the caller re-anchors
        self._remove_files()
        return outputs, error

    # ------------------------------------------------------------------ outputs

    def _collect(self, run: _Run, *, final: bool = False) -> list[Output]:
        """Emit every segment of the playlist not emitted yet (and the init before the first one)."""
        if not final and (self._watch is None or not self._watch.changed()):
            return []
        try:
            text = (self.workdir / PLAYLIST_NAME).read_text()
        except FileNotFoundError:
            return []
        try:
            playlist = parse_media_playlist(text)
        except PlaylistError as error:
            raise RemuxerError(f"ffmpeg's playlist does not parse: {error}") from None
        outputs: list[Output] = []
        for entry in playlist.segments:
            sequence, duration = entry.sequence, entry.duration
            if sequence < self._next_sequence:
                continue
            if not run.init_done:
                if entry.init_uri is None:
                    raise RemuxerError("ffmpeg's playlist has no EXT-X-MAP")
                outputs.append(_describe_init(run.epoch, self._take(entry.init_uri)))
                run.init_done = True
            outputs.append(
                Segment(
                    sequence=sequence,
                    data=self._take(entry.uri),
                    duration=duration,
                    epoch=run.epoch,
                    discontinuity=run.discontinuity,
                    program_date_time=run.anchor + timedelta(seconds=run.elapsed),
                    keyframe=True,
                    parts=(),
                )
            )
            run.discontinuity = False
            run.elapsed += duration
            self._next_sequence = sequence + 1
        return outputs

    def _take(self, name: str) -> bytes:
        """Read one finished file of the working folder and delete it."""
        if not name or name != Path(name).name or name.startswith("."):
            raise RemuxerError(f"ffmpeg's playlist names {name!r}, not a file of its folder")
        path = self.workdir / name
        try:
            data = path.read_bytes()
        except FileNotFoundError as error:
            raise RemuxerError(f"ffmpeg's playlist lists {name}, which is not on disk") from error
        path.unlink()
        return data

    def _remove_files(self) -> None:
        """Delete what ffmpeg left in the folder (its playlist, unlisted files); only names ffmpeg writes."""
        with contextlib.suppress(FileNotFoundError):
            for path in self.workdir.iterdir():
                if path.name.startswith(("index.m3u8", "init_", "seg_")):
                    path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- helpers


def _flv_tag(kind: int, timestamp_ms: int, body: bytes) -> bytes:
    """An FLV tag (FLV 10.1 Annex E.4.1: type, UI24 size, UI24 timestamp + UI8 extension, stream id 0) + its
    PreviousTagSize."""
    size, ts = len(body), timestamp_ms & 0xFFFFFFFF
    header = bytes((kind, *size.to_bytes(3, "big"), *(ts & 0xFFFFFF).to_bytes(3, "big"), ts >> 24, 0, 0, 0))
    return header + bytes(body) + (11 + size).to_bytes(4, "big")


async def _drain_stderr(stream: asyncio.StreamReader, tail: deque[str]) -> None:
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # a line over the reader's limit: dropped, keep draining
            continue
        if not line:
            return
        text = line.decode(errors="replace").rstrip()
        tail.append(text)
        log.debug("ffmpeg: %s", text)


def _describe_init(epoch: int, data: bytes) -> InitSegment:
    """ffmpeg's init with its codecs; an init whose codecs can't be read still goes out (players read it)."""
    try:
        return describe_init(epoch, data)
    except (bmff.MalformedBox, MediaError) as error:
        log.warning("cannot read the codecs of ffmpeg's init segment: %s", error)
        return InitSegment(epoch=epoch, data=data, codecs="", width=None, height=None)
