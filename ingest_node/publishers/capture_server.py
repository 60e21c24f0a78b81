"""Browser go-live: the ingest node's WebSocket listener (``ws://host:port/capture``) and its connections.

The studio page records the camera or the screen with ``MediaRecorder`` and sends the chunks here; each connection
is a publisher exactly like an RTMP one: the same stream-key check, the same :class:`SessionRegistry` (one live
publisher per channel, takeover, reconnect window) and the same :class:`Broadcast` (CMAF segmenter, ordered S3
uploads, manifests). Only the media's way in differs: :mod:`.capture_ffmpeg` turns WebM/Matroska into FLV tags,
which are the bodies RTMP messages carry. The wire protocol is :mod:`.capture_protocol` (sans-IO).

Rules:
- Deadlines: ``start_native_capture`` within ``setup_timeout``; then a media chunk at least every
  ``idle_timeout`` (the browser sends one per timeslice), else the publisher is dropped like an idle RTMP one.
- Ending: ``stop_capture`` → the media still inside ffmpeg is flushed into the broadcast, which **ends at once**
  (a last ``capture_stats`` with the totals, then ``capture_stopped``, close 1000). The socket closing without
  it (tab closed, network lost), a timeout or an ffmpeg failure → flushed as far as possible, then a **drop**:
  the broadcast waits the reconnect window.
  A takeover closes the old connection with ``taken_over`` (4409); node shutdown closes with 1001.
- The stream key is used for one lookup and dropped; it is never logged (only ``mimeType`` and the codecs are).
- Memory is bounded: messages over :data:`~.capture_protocol.MAX_CHUNK_BYTES` are refused (with an ``error``
  up to twice that size, by aiohttp's own 1009 close beyond it), and the stream head kept to find its codecs is
  bounded by :data:`~.webm_tracks.MAX_HEADER_BYTES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any

from aiohttp import WSMsgType, web

from capturestream.errors import Unauthorized
from mediakit.cmaf.flv import FileTag
from mediakit.ffmpeg_args import capture_args

from .. import metrics
from ..rtmp import ProtocolError, amf0
from ..sessions.broadcast import Broadcast
from ..sessions.registry import Publisher, SessionRegistry
from ..storage.upload_watch import UploadWatch, WatchedUploader
from .capture_ffmpeg import CaptureFfmpeg, MediaPipelineError
from .capture_protocol import (
    MAX_CHUNK_BYTES,
    CaptureError,
    CaptureProtocol,
    CaptureRequest,
    CaptureState,
    CaptureStats,
    ErrorCode,
    StartRequested,
    StopRequested,
    stopped_message,
)
from .stream_keys import KeyCheckUnavailable, PublishHeld, StreamKeyChecker
from .webm_tracks import NotMatroska, RecordedTracks, read_tracks

log = logging.getLogger(__name__)

#: The WebSocket path of the listener.
CAPTURE_PATH = "/capture"
_ids = itertools.count(1)
_AUDIO, _VIDEO, _SCRIPT = 8, 9, 18
_GOING_AWAY = 1001


class CaptureServer:
    """The ``/capture`` listener and the state its connections share."""

    def __init__(
        self,
        registry: SessionRegistry,
        keys: StreamKeyChecker,
        *,
        uploads: WatchedUploader | None = None,
        setup_timeout: float = 10.0,
        idle_timeout: float = 30.0,
        stats_interval: float = 2.0,
        ffmpeg_bin: str = "ffmpeg",
    ) -> None:
        self.registry = registry
        self.keys = keys
        self.uploads = uploads
        self.setup_timeout = setup_timeout
        self.idle_timeout = idle_timeout
        self.stats_interval = stats_interval
        self.ffmpeg_bin = ffmpeg_bin
        self.connections: set[CaptureConnection] = set()
        self.closing = False
        self._runner: web.AppRunner | None = None

    def register(self, app: web.Application) -> None:
        """Add the ``/capture`` route to ``app`` (the node's one HTTP app, :mod:`ingest_node.http_app`, which
        listens and cleans up; :meth:`close` then only closes the connections)."""
        app.router.add_get(CAPTURE_PATH, self._handle)

    async def start(self, host: str, port: int) -> int:
        """Listen on an app of its own (go-live alone); return the bound port (``port=0`` picks a free one)."""
        app = web.Application()
        self.register(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        return self._runner.addresses[0][1]

    async def close(self) -> None:
        """Stop accepting, close every connection (1001; their broadcasts are dropped) and wait for them."""
        self.closing = True
        connections = list(self.connections)
        for connection in connections:
            connection.shut_down()
        await asyncio.gather(*(c.finished.wait() for c in connections), return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        # Twice the chunk limit: a chunk in between gets a proper `error`; aiohttp closes (1009) on anything bigger.
        ws = web.WebSocketResponse(max_msg_size=2 * MAX_CHUNK_BYTES, compress=False)
        await ws.prepare(request)
        connection = CaptureConnection(self, ws, request.remote or "?")
        self.connections.add(connection)
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)
        return ws


class CaptureConnection:
    """One browser publisher."""

    def __init__(self, server: CaptureServer, ws: web.WebSocketResponse, peer: str) -> None:
        self.server = server
        self.ws = ws
        self.peer = peer
        self.name = f"capture-{next(_ids)}"
        self.protocol = CaptureProtocol()
        self.publisher = Publisher(self.name, self._publisher_closed)
        self.broadcast: Broadcast | None = None
        self.finished = asyncio.Event()
        self._request: CaptureRequest | None = None
        self._head = bytearray()  # the stream's first bytes, until its codecs are known
        self._ffmpeg: CaptureFfmpeg | None = None
        self._watch: UploadWatch | None = None
        self._ending: asyncio.Task[None] | None = None
        self._finishing = False  # the recording is over: ffmpeg's output ending is expected now
        self._bytes = 0
        self._media_ms = 0

    @property
    def ffmpeg_pid(self) -> int | None:
        """The pid of this connection's ffmpeg, once the stream's codecs are known."""
        return self._ffmpeg.pid if self._ffmpeg else None

    @property
    def log_extra(self) -> dict[str, Any]:
        """Log fields: the connection, and the broadcast once attached."""
        return {**(self.broadcast.log_extra if self.broadcast else {}), "connection": self.name}

    async def run(self) -> None:
        """Serve the connection until it ends; never raises for what the client did."""
        stats: asyncio.Task[None] | None = None
        stopped = False
        try:
            if await self._start():
                stats = asyncio.create_task(self._report_stats(), name=f"{self.name}-stats")
                stopped = await self._receive_media()
        except CaptureError as error:
            self._end(error)
        except Exception:
            log.exception("capture connection failed", extra=self.log_extra)
            self._end(CaptureError(ErrorCode.MEDIA_ERROR, "internal error"))
        try:
            await self._flush_media()
        finally:
            await self._cleanup(stats, stopped)

    def shut_down(self) -> None:
        """The node is stopping: close with 1001 (the broadcast is dropped; the registry then ends it)."""
        self._end(None, close_code=_GOING_AWAY, reason="ingest node shutting down")

    async def _start(self) -> bool:
        """``start_native_capture`` → stream key → attach to the channel's broadcast → ``capture_started``."""
        data = await self._receive(self.server.setup_timeout, "no start_native_capture")
        if data is None:
            return False
        if isinstance(data, bytes):
            self.protocol.receive_binary(data)  # raises: media before the start
        start = self.protocol.receive_text(data)
        assert isinstance(start, StartRequested)  # the only message the protocol lets through first
        self._request = start.request
        try:
            channel = await self.server.keys.channel_for(start.request.stream_key.get_secret_value())
        except Unauthorized as refusal:
            if not isinstance(refusal, (KeyCheckUnavailable, PublishHeld)):
                metrics.REJECTED_KEYS.inc()
            log.info("capture refused: %s", type(refusal).__name__, extra={"connection": self.name, "peer": self.peer})
            raise CaptureError(ErrorCode.UNAUTHORIZED, "stream key refused") from None
        self.broadcast = await self.server.registry.attach(channel, self.publisher)
        reply = self.protocol.accept(playback_id=self.broadcast.playback_id, session_id=self.broadcast.session_id)
        with contextlib.suppress(ConnectionError):  # gone while its key was checked: the next receive sees it
            await self.ws.send_str(reply)
        if self.server.uploads is not None:
            self._watch = self.server.uploads.watch(self.broadcast.playback_id, self.broadcast.session_id)
        log.info("capture publishing", extra={**self.log_extra, "peer": self.peer, "mime": start.request.mime_type})
        return True

    async def _receive(self, timeout: float, what: str) -> str | bytes | None:
        """The next data message, or ``None`` once the socket is closing or closed (a drop)."""
        try:
            message = await self.ws.receive(timeout=timeout)
        except TimeoutError:
            raise CaptureError(ErrorCode.TIMEOUT, f"{what} for {timeout:g} s") from None
        if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            return message.data
        if message.type is WSMsgType.ERROR:
            log.info("capture socket error: %s", message.data, extra=self.log_extra)
        return None

    async def _receive_media(self) -> bool:
        """Chunks until ``stop_capture`` (True) or the socket goes away (False)."""
        while self.protocol.state is CaptureState.CAPTURING and not self.ws.closed:
            data = await self._receive(self.server.idle_timeout, "no media")
            if data is None:
                return False
            if isinstance(data, str):
                if isinstance(self.protocol.receive_text(data), StopRequested):
                    return True
                continue
            await self._media(self.protocol.receive_binary(data).data)
        return False

    async def _media(self, chunk: bytes) -> None:
        self._bytes += len(chunk)
        if self._ffmpeg is not None:
            await self._write(chunk)
            return
        self._head += chunk
        try:
            tracks = read_tracks(self._head)
        except NotMatroska as error:
            raise CaptureError(ErrorCode.UNSUPPORTED_MEDIA, f"{error} (send MediaRecorder's WebM/Matroska)") from None
        if tracks is not None:
            head, self._head = bytes(self._head), bytearray()
            await self._start_ffmpeg(tracks)
            await self._write(head)

    async def _start_ffmpeg(self, tracks: RecordedTracks) -> None:
        request = self._request
        assert request is not None
        argv = capture_args(
            copy_video=tracks.copy_video or tracks.video is None,
            copy_audio=tracks.copy_audio or tracks.audio is None,
            video_bitrate_kbps=request.video_bitrate_kbps,
            keyframe_seconds=request.keyframe_interval_seconds,
            audio_bitrate_kbps=request.audio_bitrate_kbps,
            ffmpeg_bin=self.server.ffmpeg_bin,
        )
        ffmpeg = CaptureFfmpeg(argv, self._on_tag)
        try:
            await ffmpeg.start()
        except MediaPipelineError as error:
            raise _media_error(error) from None
        self._ffmpeg = ffmpeg
        assert ffmpeg.done is not None
        ffmpeg.done.add_done_callback(self._pipeline_done)
        log.info(
            "capture media",
            extra={**self.log_extra, "video": tracks.video, "audio": tracks.audio, "pid": ffmpeg.pid},
        )

    async def _write(self, data: bytes) -> None:
        assert self._ffmpeg is not None
        try:
            await self._ffmpeg.write(data)
        except MediaPipelineError as error:
            raise _media_error(error) from None

    async def _on_tag(self, tag: FileTag) -> None:
        """One FLV tag from ffmpeg → the broadcast, as the RTMP connection hands over its messages."""
        broadcast = self.broadcast if self.publisher.active else None
        if broadcast is None:
            return
        if tag.kind == _VIDEO:
            self._media_ms = max(self._media_ms, tag.timestamp)
            await broadcast.on_video(tag.timestamp, tag.body)
        elif tag.kind == _AUDIO:
            self._media_ms = max(self._media_ms, tag.timestamp)
            await broadcast.on_audio(tag.timestamp, tag.body)
        elif tag.kind == _SCRIPT and (metadata := _on_metadata(tag.body)) is not None:
            await broadcast.on_metadata(metadata)

    def _pipeline_done(self, task: asyncio.Task[None]) -> None:
        """ffmpeg's output ended; before the end of the recording, that is a failure to report."""
        if task.cancelled() or self._finishing:
            return
        error = task.exception()
        if not isinstance(error, MediaPipelineError):
            log.error("capture media failed", exc_info=error, extra=self.log_extra)
            error = MediaPipelineError("ffmpeg's output ended before the recording did")
        self._end(_media_error(error))

    async def _flush_media(self) -> None:
        """The recording is over: hand the broadcast what ffmpeg still holds (unless it failed or was replaced)."""
        self._finishing = True
        ffmpeg = self._ffmpeg
        if ffmpeg is None or ffmpeg.done is None or ffmpeg.done.done() or not self.publisher.active:
            return
        try:
            await ffmpeg.finish()
        except MediaPipelineError as error:
            log.warning("capture media ended badly: %s", error, extra=self.log_extra)

    def _publisher_closed(self, reason: str) -> None:
        """The registry dropped this publisher: another one took over, or the node shuts down."""
        if self.server.closing:
            self._end(None, close_code=_GOING_AWAY, reason=reason)
        else:
            self._end(CaptureError(ErrorCode.TAKEN_OVER, "another publisher took this channel over"))

    def _end(self, error: CaptureError | None, *, close_code: int | None = None, reason: str = "") -> None:
        """Send ``error`` (if any) and close the socket, once; safe from callbacks."""
        if self._ending is not None:
            return
        if error is not None:
            log.info("capture ended: %s", error, extra=self.log_extra)
        message = self.protocol.reject(error) if error is not None else None
        code = error.close_code if error is not None else (close_code or _GOING_AWAY)
        self._ending = asyncio.ensure_future(self._close(message, code, reason))

    async def _close(self, message: str | None, code: int, reason: str = "") -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            if message is not None and not self.ws.closed:
                await self.ws.send_str(message)
            await self.ws.close(code=code, message=reason.encode()[:120])

    async def _report_stats(self) -> None:
        while not self.ws.closed:
            await asyncio.sleep(self.server.stats_interval)
            if self.broadcast is None or self.ws.closed or self._ending is not None:
                return
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(self._stats().message())

    def _stats(self) -> CaptureStats:
        assert self.broadcast is not None
        measured = self.broadcast.stats
        return CaptureStats(
            bytes_received=self._bytes,
            media_seconds=round(self._media_ms / 1000, 3),
            segments_uploaded=self._watch.segments if self._watch else 0,
            pending_uploads=self.broadcast.pending_uploads,
            upload_lag_seconds=self._watch.lag if self._watch else None,
            bitrate_kbps=measured.bitrate_kbps,
            frame_rate=measured.frame_rate,
            keyframe_interval_seconds=measured.keyframe_interval,
        )

    async def _cleanup(self, stats: asyncio.Task[None] | None, stopped: bool) -> None:
        if stats is not None:
            stats.cancel()
            await asyncio.gather(stats, return_exceptions=True)
        if self._ffmpeg is not None:
            await self._ffmpeg.kill()
        if self._watch is not None and self.server.uploads is not None:
            self.server.uploads.unwatch(self._watch)
        if self.broadcast is not None and self.publisher.active:
            self.publisher.active = False
            reason = "publisher_stopped" if stopped else "publisher_left"
            self.server.registry.detach(self.broadcast.channel.channel_id, self.publisher, reason, clean=stopped)
        if stopped and self._ending is None:
            with contextlib.suppress(ConnectionError, RuntimeError):  # the totals, now that every chunk is in
                await self.ws.send_str(self._stats().message())
            self._ending = asyncio.ensure_future(self._close(stopped_message(), 1000))
        elif self._ending is None:
            self._end(None, close_code=1000)
        await asyncio.gather(self._ending, return_exceptions=True)
        self.finished.set()


def _media_error(error: MediaPipelineError) -> CaptureError:
    return CaptureError(ErrorCode.MEDIA_ERROR, str(error)[:300])


def _on_metadata(body: bytes) -> dict[str, Any] | None:
    """``onMetaData`` from an FLV script tag (ffmpeg writes one first), or ``None`` for any other script data."""
    try:
        values = amf0.decode(body)
    except ProtocolError:  # a malformed script tag carries nothing the broadcast needs
        return None
    if len(values) < 2 or values[0] != "onMetaData" or not isinstance(values[1], dict):
        return None
    return dict(values[1])
