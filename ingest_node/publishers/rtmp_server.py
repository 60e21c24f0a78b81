"""The RTMP listener: the only socket code of the ingest node.

Each TCP connection is an ``asyncio.Protocol`` (measured cheaper than StreamReader: INGEST_COST.md) that feeds
bytes to the sans-IO :class:`ingest_node.rtmp.Connection` and writes back whatever the core queued. Events are
handled in order by one task per connection, because checking a stream key and queueing uploads are async.

Rules:
- Limits (:class:`ConnectionLimits`), each refusal counted in ``connections_refused_total{reason}`` and closed
  at once (``abort``: no lingering close): at most ``max_connections`` per node (``node_limit``); at most
  ``max_preauth_per_address`` connections per remote address that have **not yet published**
  (``address_limit``; publishing ones count only toward the node cap, so many publishers behind one NAT are
  fine); before its publish is accepted a connection may send ``preauth_bytes`` (``preauth_bytes``: the
  handshake is 3073 bytes and OBS's commands < 1 KB, so 64 KiB is plenty; the core's own caps bound every
  message, :mod:`ingest_node.rtmp.chunks`).
- Deadlines: the handshake and the command sequence up to ``publish`` must finish within ``setup_timeout``
  (``setup_timeout``; with the per-address cap, a slowloris at 1 byte/s holds at most that many sockets for that
  long); a publisher that sends no media for ``idle_timeout`` is dropped (stalled encoders). Time while *we*
  paused reading does not count as idle: a slow S3 never gets a healthy publisher dropped.
- Backpressure, in bytes: reading pauses while the connection's unhandled events hold more than
  ``max_queued_bytes`` (payload plus a per-event overhead) or its broadcast reports ``upload_backpressure``
  (memory and disk spool full), and resumes below half of it with no backpressure; TCP then pushes back on the
  publisher instead of this process buffering without bound.
- Merged read (SRS's ``mr``): once publishing, a connection reads at most every ``read_coalesce`` seconds
  (``READ_COALESCE_MS``, 50 ms): the kernel buffers what arrives meanwhile and one read takes it all. ffmpeg and
  OBS send each 4 KiB chunk as it is ready, so reading on every arrival cost ~1.5 reads per message; merging
  cut the node's CPU at 30 publishers by a fifth (bench/README.md), for at most 50 ms more ingest latency. The
  wake-ups share timers (:class:`CoalescedReads`): every connection due in the same 10 ms tick resumes on one.
- ``RemoteProtocolError`` closes the connection (the core has bounded what it buffered); any other failure in a
  connection's task is logged and closes that connection only.
- A wrong stream key gets ``NetStream.Publish.BadName`` (OBS shows "could not access the stream key" and does not
  retry), then the connection closes; a channel held after an end-stream gets ``NetStream.Publish.Denied``; a key
  that could not be checked (DynamoDB unavailable, no live session to vouch for it) gets
  ``NetStream.Publish.Rejected`` (OBS retries a reconnect). The key is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from capturestream.errors import Unauthorized

from .. import metrics, rtmp
from ..muxing.muxer import TagKind
from ..sessions.broadcast import Broadcast
from ..sessions.registry import Publisher, SessionRegistry
from .stream_keys import KeyCheckUnavailable, PublishHeld, StreamKeyChecker

log = logging.getLogger(__name__)

_ids = itertools.count(1)
#: Bytes an unhandled event is counted as besides its payload (the event object and the queue's slot).
_EVENT_OVERHEAD = 128
#: Queued after a hot-path message whose outputs wait for S3 (``Broadcast.store_outputs``).
_STORE_OUTPUTS = object()


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one node lets publishers hold (see the module rules); defaults are the production ones."""

    max_connections: int = 1000
    max_preauth_per_address: int = 64
    preauth_bytes: int = 64 * 1024
    setup_timeout: float = 10.0
    idle_timeout: float = 30.0
    max_queued_bytes: int = 4 * 1024 * 1024
    #: Merged read for publishing connections (seconds; 0: read whenever data arrives), see the module rules.
    read_coalesce: float = 0.05
    #: The RTMP core's per-message caps (see :mod:`ingest_node.rtmp.chunks`).
    max_command_size: int = rtmp.MAX_AMF_MESSAGE_SIZE
    max_message_size: int = rtmp.MAX_MEDIA_MESSAGE_SIZE


def _refuse(transport: asyncio.BaseTransport, reason: str) -> None:
    metrics.CONNECTIONS_REFUSED.labels(reason=reason).inc()
    transport.abort()  # type: ignore[attr-defined]  # at once: no lingering close, nothing more is read


class RtmpConnection(asyncio.Protocol):
    """One publisher connection."""

    def __init__(self, server: RtmpServer) -> None:
        self.server = server
        self.name = f"rtmp-{next(_ids)}"
        limits = server.limits
        self.core = rtmp.Connection(max_message_size=limits.max_message_size, max_command_size=limits.max_command_size)
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
        self.address = "?"
        #: counted against its address's pre-auth cap (until its publish is accepted or it closes)
        self.preauth = False
        self.queued_bytes = 0
        #: the task is inside ``_handle`` (the hot path must then queue behind it)
        self.handling = False
        self.coalescing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.address = str(peer[0]) if peer else "?"
        server, limits = self.server, self.server.limits
        if len(server.connections) >= limits.max_connections:
            return _refuse(transport, "node_limit")
        if server.preauth[self.address] >= limits.max_preauth_per_address:
            return _refuse(transport, "address_limit")
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports aren't asyncio subclasses
        self.preauth = True
        server.preauth[self.address] += 1
        server.connections.add(self)
        self.task = asyncio.create_task(self._run(), name=self.name)

    def data_received(self, data: bytes) -> None:
        metrics.RECEIVED_BYTES.value += len(data)
        if self.preauth and self.core.bytes_received + len(data) > self.server.limits.preauth_bytes:
            self.failed = True
            log.info("refused: too many bytes before publishing", extra={"connection": self.name, "peer": self.peer})
            if self.transport is not None:
                _refuse(self.transport, "preauth_bytes")
            return
        self._feed(data)

    def eof_received(self) -> bool:
        self._feed(b"")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            return  # refused in connection_made: never counted
        self._end_preauth()
        self._enqueue(rtmp.ConnectionClosed())
        self.server.connections.discard(self)

    def _end_preauth(self) -> None:
        if self.preauth:
            self.preauth = False
            count = self.server.preauth[self.address] - 1
            if count > 0:
                self.server.preauth[self.address] = count
            else:
                del self.server.preauth[self.address]

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
                if not self._handle_now(event):
                    self._enqueue(event)
        except rtmp.ProtocolError as error:
            self.failed = True
            metrics.PROTOCOL_ERRORS.labels(protocol="rtmp").inc()
            log.warning("protocol error from %s: %s", self.peer, error, extra={"connection": self.name})
            self._flush()
            self.close("protocol error")
            return
        self._flush()
        if self.queued_bytes > self.server.limits.max_queued_bytes or self._storage_backpressure():
            self._pause()
        elif self.broadcast is not None and self.server.limits.read_coalesce and not self.coalescing:
            self._coalesce()

    def _coalesce(self) -> None:
        """Merged read: stop reading for ``read_coalesce`` seconds, so the next read takes what arrived meanwhile
        in one piece (the kernel buffers it) instead of one wake-up per TCP segment."""
        if self.transport is None:
            return
        self.coalescing = True
        self.transport.pause_reading()
        self.server.coalesced_reads.resume_later(self)

    def end_coalescing(self) -> None:
        """Read again (called by :class:`CoalescedReads` once the merged-read pause is over)."""
        self.coalescing = False  # reading stays paused while storage pushes back (_resume_when_drained resumes)
        if not self.paused and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _handle_now(self, event: Any) -> bool:
        """The hot path: an audio/video message muxed right here, without a trip through the event queue and the
        connection's task, when nothing is queued before it and the task is idle (so order holds)."""
        cls = type(event)
        if cls is rtmp.VideoReceived:
            kind = TagKind.VIDEO
        elif cls is rtmp.AudioReceived:
            kind = TagKind.AUDIO
        else:
            return False
        if self.failed:
            return True  # muxing failed earlier in this batch: the connection is closing, its media is dropped
        broadcast = self.broadcast
        if broadcast is None or self.handling or not self.events.empty() or not self.publisher.active:
            return False
        try:
            if not broadcast.feed_now(kind, event.timestamp, event.payload):
                return False
        except Exception:
            log.exception("muxing failed", extra={"connection": self.name})
            self.failed = True
            self.close("muxing failed")
            return True
        self.last_media = time.monotonic()
        if broadcast.outputs_unstored:
            self._enqueue(_STORE_OUTPUTS)
        return True

    def _enqueue(self, event: Any) -> None:
        self.queued_bytes += _EVENT_OVERHEAD + len(getattr(event, "payload", b""))
        self.events.put_nowait(event)

    async def _next_event(self) -> Any:
        event = await self.events.get()
        self.queued_bytes -= _EVENT_OVERHEAD + len(getattr(event, "payload", b""))
        return event

    def _storage_backpressure(self) -> bool:
        return self.broadcast is not None and self.broadcast.upload_backpressure

    def _flush(self) -> None:
        out = self.core.data_to_send()
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out)

    async def _run(self) -> None:
        try:
            async with asyncio.timeout(self.server.limits.setup_timeout) as deadline:
                while self.broadcast is None:
                    if not await self._handle_next():
                        return
                deadline.reschedule(None)
            watchdog = asyncio.create_task(self._idle_watchdog())
            try:
                while await self._handle_next():
                    pass
            finally:
                watchdog.cancel()
        except TimeoutError:
            metrics.CONNECTIONS_REFUSED.labels(reason="setup_timeout").inc()
            log.info("publisher too slow to start", extra={"connection": self.name, "peer": self.peer})
        except Exception:
            log.exception("connection task failed", extra={"connection": self.name})
        finally:
            self.close("connection finished")
            self._release("publisher_left")

    async def _handle_next(self) -> bool:
        """Wait for the next queued event and act on it; False when the connection is done."""
        event = await self._next_event()
        self.handling = True
        try:
            return await self._handle(event)
        finally:
            self.handling = False

    async def _handle(self, event: Any) -> bool:
        """Act on one core event; False when the connection is done."""
        broadcast = self.broadcast if self.publisher.active else None
        if event is _STORE_OUTPUTS:
            if self.broadcast is not None:
                await self.broadcast.store_outputs()  # even after a takeover: the outputs are already muxed
        elif isinstance(event, rtmp.VideoReceived) and broadcast is not None:
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
        except Unauthorized as refusal:
            self._refuse_publish(event.stream_id, refusal)
            return False
        try:
            self.core.accept_publish(event.stream_id)
        except rtmp.ProtocolError:
            return False  # the peer went away while its key was being checked
        self._end_preauth()
        self._flush()
        for pending in self.core.pending_events():  # media the core held back while we decided
            self._enqueue(pending)
        self.broadcast = await self.server.registry.attach(channel, self.publisher)
        log.info("publishing", extra={**self.broadcast.log_extra, "connection": self.name, "peer": self.peer})
        return True

    def _refuse_publish(self, stream_id: int, refusal: Unauthorized) -> None:
        """Answer a refused publish with an onStatus error (never silence: OBS.md), then the caller closes."""
        if isinstance(refusal, KeyCheckUnavailable):
            code, text, why = "NetStream.Publish.Rejected", "Stream key check unavailable; retry.", "key check failed"
        elif isinstance(refusal, PublishHeld):
            code, text, why = "NetStream.Publish.Denied", "The channel's owner ended the stream.", "held"
        else:
            code, text, why = "NetStream.Publish.BadName", "Publishing refused.", "bad stream key"
            metrics.REJECTED_KEYS.inc()
        log.info("publish refused: %s", why, extra={"connection": self.name, "peer": self.peer})
        with contextlib.suppress(rtmp.ProtocolError):  # the peer may be gone already
            self.core.reject_publish(stream_id, code, text)
        self._flush()

    def _pause(self) -> None:
        """Stop reading until the event queue and the broadcast's uploads have drained (TCP pushes back)."""
        if self.paused or self.transport is None:
            return
        self.paused = True
        self.transport.pause_reading()
        self.resumer = asyncio.get_running_loop().create_task(self._resume_when_drained())

    async def _resume_when_drained(self) -> None:
        resume_below = self.server.limits.max_queued_bytes // 2
        while self.paused and self.transport is not None and not self.transport.is_closing():
            if self.queued_bytes < resume_below and not self._storage_backpressure():
                self.paused = False
                self.last_media = max(self.last_media, time.monotonic())  # time paused by us is not idle time
                self.transport.resume_reading()
                return
            await asyncio.sleep(0.05)

    async def _idle_watchdog(self) -> None:
        timeout = self.server.limits.idle_timeout
        while True:
            await asyncio.sleep(timeout / 4)
            if not self.paused and time.monotonic() - self.last_media > timeout:
                log.info("publisher idle, dropping it", extra={"connection": self.name})
                self.close("no media")
                return


class CoalescedReads:
    """The merged-read pauses of every connection, ended in groups: one timer per ``tick`` for all connections due
    in it, instead of one per pause (at 30 publishers that was 600 timers a second, ~1 % of the node's CPU). A
    pause lasts between ``delay`` and ``delay + tick``."""

    def __init__(self, delay: float, tick: float = 0.01) -> None:
        self.delay = delay
        self.tick = tick
        self._due: dict[int, list[RtmpConnection]] = {}

    def resume_later(self, connection: RtmpConnection) -> None:
        """Have ``connection`` read again at the end of the first tick at least ``delay`` from now."""
        loop = asyncio.get_running_loop()
        slot = math.ceil((loop.time() + self.delay) / self.tick)
        group = self._due.get(slot)
        if group is None:
            self._due[slot] = [connection]
            loop.call_at(slot * self.tick, self._resume, slot)
        else:
            group.append(connection)

    def _resume(self, slot: int) -> None:
        for connection in self._due.pop(slot, ()):
            connection.end_coalescing()


class RtmpServer:
    """The listening socket and the state every connection shares."""

    def __init__(
        self,
        registry: SessionRegistry,
        keys: StreamKeyChecker,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.registry = registry
        self.keys = keys
        self.limits = limits or ConnectionLimits()
        self.connections: set[RtmpConnection] = set()
        #: connections not yet publishing, by remote address
        self.preauth: Counter[str] = Counter()
        self.coalesced_reads = CoalescedReads(self.limits.read_coalesce)
        self._server: asyncio.Server | None = None
        metrics.watch(metrics.CONNECTIONS, lambda: len(self.connections), protocol="rtmp")

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
