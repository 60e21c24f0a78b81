"""The RTMP listener: the only socket code of the ingest node.

Each TCP connection is an ``asyncio.Protocol`` (measured cheaper than StreamReader: INGEST_COST.md) that feeds
bytes to the sans-IO :class:`ingest_node.rtmp.Connection` and writes back whatever the core queued. Events are
handled in order by one task per connection, because checking a stream key and queueing uploads are async.

Rules:
- Deadlines: the handshake and the command sequence up to ``publish`` must finish within ``setup_timeout``;
  a publisher that sends no media for ``idle_timeout`` is dropped (slowloris, stalled encoders).
- Backpressure: reading pauses while the connection has too many unhandled events or its broadcast has too many
  uploads pending; TCP then pushes back on the publisher instead of this process buffering without bound.
- ``RemoteProtocolError`` closes the connection (the core has bounded what it buffered); any other failure in a
  connection's task is logged and closes that connection only.
- A wrong stream key gets ``NetStream.Publish.BadName`` (OBS shows "could not access the stream key" and does not
  retry), then the connection closes. The key is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from typing import Any

from capturestream.errors import Unauthorized

from .. import rtmp
from ..sessions.broadcast import Broadcast
from ..sessions.registry import Publisher, SessionRegistry
from .stream_keys import StreamKeyChecker

log = logging.getLogger(__name__)

_ids = itertools.count(1)
_MAX_QUEUED_EVENTS = 512  # unhandled events before reading pauses
_MAX_PENDING_UPLOADS = 128  # objects of the broadcast waiting for S3 before reading pauses
_RESUME_BELOW = 64  # both must fall below this to read again


class RtmpConnection(asyncio.Protocol):
    """One publisher connection."""

    def __init__(self, server: RtmpServer) -> None:
        self.server = server
        self.name = f"rtmp-{next(_ids)}"
        self.core = rtmp.Connection()
        self.transport: asyncio.Transport | None = None
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.broadcast: Broadcast | None = None
        self.publisher = Publisher(self.name, self.close)
        self.paused = False
        self.resumer: asyncio.Task[None] | None = None
        self.released = False
        self.failed = False
        self.last_media = time.monotonic()
        self.peer = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports aren't asyncio subclasses
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.task = asyncio.create_task(self._run(), name=self.name)
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self._feed(data)

    def eof_received(self) -> bool:
        self._feed(b"")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.put_nowait(rtmp.ConnectionClosed())
        self.server.connections.discard(self)

    def close(self, reason: str) -> None:
        """Close the socket (idempotent); the task then sees ConnectionClosed."""
        if self.transport is not None and not self.transport.is_closing():
            log.info("closing publisher connection", extra={"connection": self.name, "reason": reason})
            self.transport.close()

    def _feed(self, data: bytes) -> None:
        if self.failed:
            return
        try:
            for event in self.core.receive_data(data):
                self.events.put_nowait(event)
        except rtmp.ProtocolError as error:
            self.failed = True
            log.warning("protocol error from %s: %s", self.peer, error, extra={"connection": self.name})
            self._flush()
            self.close("protocol error")
            return
        self._flush()
        uploads = self.broadcast.pending_uploads if self.broadcast else 0
        if self.events.qsize() > _MAX_QUEUED_EVENTS or uploads > _MAX_PENDING_UPLOADS:
            self._pause()

    def _flush(self) -> None:
        out = self.core.data_to_send()
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out)

    async def _run(self) -> None:
        try:
            async with asyncio.timeout(self.server.setup_timeout) as deadline:
                while self.broadcast is None:
                    if not await self._handle(await self.events.get()):
                        return
                deadline.reschedule(None)
            watchdog = asyncio.create_task(self._idle_watchdog())
            try:
                while await self._handle(await self.events.get()):
                    pass
            finally:
                watchdog.cancel()
        except TimeoutError:
            log.info("publisher too slow to start", extra={"connection": self.name, "peer": self.peer})
        except Exception:
            log.exception("connection task failed", extra={"connection": self.name})
        finally:
            self.close("connection finished")
            self._release("publisher_left")

    async def _handle(self, event: Any) -> bool:
        """Act on one core event; False when the connection is done."""
        broadcast = self.broadcast if self.publisher.active else None
        if isinstance(event, rtmp.VideoReceived) and broadcast is not None:
            self.last_media = time.monotonic()
            await broadcast.on_video(event.timestamp, event.payload)
        elif isinstance(event, rtmp.AudioReceived) and broadcast is not None:
            self.last_media = time.monotonic()
            await broadcast.on_audio(event.timestamp, event.payload)
        elif isinstance(event, rtmp.MetadataReceived) and broadcast is not None:
            await broadcast.on_metadata(event.metadata)
        elif isinstance(event, rtmp.PublishRequested):
            return await self._publish(event)
        elif isinstance(event, rtmp.UnpublishRequested):
            # A clean stop (OBS "Stop Streaming"): the broadcast ends at once (unless the channel asks to wait).
            # Leave the socket to the client (rtmp2sink waits for it and calls a reset an error); the connection
            # ends when the client closes it or goes idle.
            self._release("publisher_unpublished", clean=True)
        elif isinstance(event, rtmp.ConnectionClosed):
            return False
        return True

    def _release(self, reason: str, *, clean: bool = False) -> None:
        if self.broadcast is not None and not self.released:
            self.released = True
            self.publisher.active = False
            self.server.registry.detach(self.broadcast.channel.channel_id, self.publisher, reason, clean=clean)

    async def _publish(self, event: Any) -> bool:
        if self.broadcast is not None:
            return True  # a second publish on one connection: ignore, the first stands
        try:
            channel = await self.server.keys.channel_for(event.stream_key)
        except Unauthorized:
            log.info("publish refused: bad stream key", extra={"connection": self.name, "peer": self.peer})
            with contextlib.suppress(rtmp.ProtocolError):  # the peer may be gone already
                self.core.reject_publish(event.stream_id)
            self._flush()
            return False
        try:
            self.core.accept_publish(event.stream_id)
        except rtmp.ProtocolError:
            return False  # the peer went away while its key was being checked
        self._flush()
        for pending in self.core.pending_events():  # media the core held back while we decided
            self.events.put_nowait(pending)
        self.broadcast = await self.server.registry.attach(channel, self.publisher)
        log.info("publishing", extra={**self.broadcast.log_extra, "connection": self.name, "peer": self.peer})
        return True

    def _pause(self) -> None:
        """Stop reading until the event queue and the broadcast's uploads have drained (TCP pushes back)."""
        if self.paused or self.transport is None:
            return
        self.paused = True
        self.transport.pause_reading()
        self.resumer = asyncio.get_running_loop().create_task(self._resume_when_drained())

    async def _resume_when_drained(self) -> None:
        while self.paused and self.transport is not None and not self.transport.is_closing():
            uploads = self.broadcast.pending_uploads if self.broadcast else 0
            if self.events.qsize() < _RESUME_BELOW and uploads < _RESUME_BELOW:
                self.paused = False
                self.transport.resume_reading()
                return
            await asyncio.sleep(0.05)

    async def _idle_watchdog(self) -> None:
        timeout = self.server.idle_timeout
        while True:
            await asyncio.sleep(timeout / 4)
            if time.monotonic() - self.last_media > timeout:
                log.info("publisher idle, dropping it", extra={"connection": self.name})
                self.close("no media")
                return


class RtmpServer:
    """The listening socket and the state every connection shares."""

    def __init__(
        self,
        registry: SessionRegistry,
        keys: StreamKeyChecker,
        *,
        setup_timeout: float = 10.0,
        idle_timeout: float = 30.0,
    ) -> None:
        self.registry = registry
        self.keys = keys
        self.setup_timeout = setup_timeout
        self.idle_timeout = idle_timeout
        self.connections: set[RtmpConnection] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen; return the bound port (``port=0`` picks a free one)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: RtmpConnection(self), host, port, reuse_address=True)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop accepting, close every connection and wait for their tasks."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        tasks = [conn.task for conn in self.connections if conn.task is not None]
        for conn in list(self.connections):
            conn.close("server shutting down")
        await asyncio.gather(*tasks, return_exceptions=True)
