"""The one public class of the RTMP core: a server-side, sans-IO RTMP connection (h2 ``receive_data`` model).

Owns: the glue between bytes and events -- the handshake phase, the chunk stream phase, automatic protocol
replies, and the caller's publish decisions. No sockets, no clocks, no asyncio: bytes in, events and bytes out.

Rules:
- ``receive_data(data)`` parses everything it can and returns the events; ``b""`` means EOF (h11). Whatever the
  core wants to send -- S0/S1/S2, Window Acknowledgement Size, Set Peer Bandwidth, Set Chunk Size, command
  replies, Acknowledgements, Ping Responses -- is queued for ``data_to_send()``.
- Malformed or forbidden input raises ``RemoteProtocolError`` and nothing else (h11 fuzz invariant); after that
  the connection is dead and any further call raises ``LocalProtocolError``. API misuse raises
  ``LocalProtocolError``.
- A ``PublishRequested`` event pauses parsing (nginx-rtmp stops reading while its ``on_publish`` hook runs):
  bytes keep being accepted and buffered, but nothing after the ``publish`` command is parsed until the caller
  calls ``accept_publish`` or ``reject_publish``. Events from input buffered meanwhile come out of the next
  ``receive_data`` call, or at once from ``pending_events()``.
- Memory and CPU are bounded per connection: see ``ChunkReader`` for chunk-stream limits; media messages are
  limited to ``max_message_size`` (default :data:`MAX_MEDIA_MESSAGE_SIZE`) and every other message (commands,
  data, control) to ``max_command_size`` (default :data:`MAX_AMF_MESSAGE_SIZE`), both from the chunk header,
  before buffering; input buffered while paused is limited to ``max_message_size`` bytes.
- Chunk streams used when sending follow nginx-rtmp: 2 for protocol control, 3 for NetConnection command
  replies, 5 for NetStream status (``onStatus``) on the publishing message stream.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from . import commands
from .buffer import ReceiveBuffer
from .chunks import ChunkReader, ChunkWriter
from .errors import LocalProtocolError, RemoteProtocolError
from .events import ConnectionClosed, Event, HandshakeCompleted
from .handlers import MAX_AMF_MESSAGE_SIZE, MessageHandlers
from .handshake import C1_SIZE, Handshake
from .messages import MAX_CHUNK_SIZE, Acknowledgement, LimitType, UserControl, UserControlEvent
from .state import ConnectionState, ConnInput, StreamInput, StreamState, next_connection_state
from .streams import MessageStream

__all__ = ["MAX_AMF_MESSAGE_SIZE", "MAX_MEDIA_MESSAGE_SIZE", "Connection"]

#: Largest audio/video/aggregate message. The 3-byte length field can announce up to 16 MiB - 1; a 4K keyframe at a
#: high bitrate is 1-2 MB (nginx-rtmp's default ``max_message`` is 1 MB), so 8 MiB is ~4x headroom, and half of
#: what the field allows.
MAX_MEDIA_MESSAGE_SIZE = 8 * 1024 * 1024


class Connection(MessageHandlers):
    """A server-side RTMP connection that accepts publishers.

    Args:
        max_message_size: largest media (audio, video, aggregate) message accepted; a header announcing more is
            refused at once.
        max_command_size: largest message of any other type (commands, data, control), refused the same way.
        window_ack_size: the Window Acknowledgement Size and peer bandwidth announced after ``connect``.
        chunk_size: the chunk size we send with (announced with Set Chunk Size after ``connect``).
        max_chunk_streams: most chunk stream ids the peer may use.
        max_streams: most message streams (``createStream``) the peer may hold at once.
        random_bytes: randomness for S1/S2 (tests inject a deterministic source).
    """

    def __init__(
        self,
        *,
        max_message_size: int = MAX_MEDIA_MESSAGE_SIZE,
        max_command_size: int = MAX_AMF_MESSAGE_SIZE,
        window_ack_size: int = 2_500_000,
        chunk_size: int = 4096,
        max_chunk_streams: int = 64,
        max_streams: int = 8,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        _check_config(max_message_size, window_ack_size, chunk_size)
        self._state = ConnectionState.AWAIT_C0C1
        self._failed = False
        self._buf = ReceiveBuffer()
        self._max_buffered = max(max_message_size, 2 * C1_SIZE)
        self._reader = ChunkReader(
            max_message_size=max_message_size,
            max_command_size=min(max_command_size, max_message_size),
            max_chunk_streams=max_chunk_streams,
            max_inflight_bytes=2 * max_message_size,
        )
        self._writer = ChunkWriter()
        self._out = bytearray()
        self._handshake = Handshake(random_bytes=random_bytes)
        self._window_ack_size = window_ack_size
        self._chunk_size = chunk_size
        self._max_streams = max_streams
        self._streams: dict[int, MessageStream] = {}
        self._next_stream_id = 1
        self._paused_on: int | None = None
        self._app = ""
        self._fc_publish = False
        self._bytes_in = 0
        self._last_ack = 0
        self._peer_window = 0
        self._sent_window = 0
        self._peer_limit: LimitType | None = None
        #: Timestamp of the last Ping Response from the peer (answers ``send_ping``), or ``None``.
        self.last_ping_response: int | None = None

    # -- public API -------------------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """Where the connection is (see ``state.ConnectionState``)."""
        return self._state

    @property
    def paused(self) -> bool:
        """True while a publish waits for ``accept_publish``/``reject_publish``."""
        return self._paused_on is not None

    @property
    def bytes_received(self) -> int:
        """Bytes fed to ``receive_data`` so far."""
        return self._bytes_in

    def stream_state(self, stream_id: int) -> StreamState | None:
        """The state of message stream ``stream_id`` (``None`` if the peer never created it)."""
        stream = self._streams.get(stream_id)
        return stream.state if stream else None

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; return the events they complete.

        Args:
            data: bytes read from the socket; ``b""`` means the peer closed its side (EOF).

        Returns:
            Events in wire order. ``ConnectionClosed`` is the last event after EOF.

        Raises:
            RemoteProtocolError: the peer sent something malformed or forbidden, or exceeded a limit.
            LocalProtocolError: called after EOF or after a ``RemoteProtocolError``.
        """
        self._check_usable()
        events: list[Event] = []
        if not data:
            if self._paused_on is None:
                self._guarded(self._parse, events)
            self._state = next_connection_state(self._state, ConnInput.EOF, "EOF")
            events.append(ConnectionClosed())
            return events
        self._bytes_in += len(data)
        self._buf.feed(data)
        if self._paused_on is None:
            self._guarded(self._parse, events)
        if len(self._buf) > self._max_buffered:
            self._failed = True
            raise RemoteProtocolError(f"peer sent more than {self._max_buffered} bytes that cannot be parsed yet")
        self._maybe_acknowledge()
        return events

    def pending_events(self) -> list[Event]:
        """Parse input buffered while paused (call after ``accept_publish``/``reject_publish``)."""
        self._check_usable()
        events: list[Event] = []
        if self._paused_on is None:
            self._guarded(self._parse, events)
        return events

    def data_to_send(self) -> bytes:
        """Return (and forget) every byte queued for the peer."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def accept_publish(self, stream_id: int) -> None:
        """Accept a ``PublishRequested``: queue StreamBegin, ``onFCPublish`` (if the client sent ``FCPublish``)
        and onStatus ``NetStream.Publish.Start``, and resume parsing.

        Raises:
            LocalProtocolError: no publish is pending on ``stream_id`` (or the connection is closed).
        """
        stream = self._pending_stream(stream_id)
        stream.advance(StreamInput.ACCEPT)
        self._paused_on = None
        self._send_control(UserControl.of(UserControlEvent.STREAM_BEGIN, stream_id))
        if self._fc_publish:
            start = commands.fc_status("onFCPublish", "NetStream.Publish.Start", "Started publishing stream.")
            self._send_command(start)
        self._send_status(stream_id, "status", "NetStream.Publish.Start", "Start publishing")

    def reject_publish(
        self,
        stream_id: int,
        code: str = "NetStream.Publish.BadName",
        description: str = "Publishing refused.",
    ) -> None:
        """Refuse a ``PublishRequested`` with onStatus level "error" (OBS then gives up at once instead of
        hanging, OBS.md); the caller should then flush ``data_to_send()`` and close the connection.

        Raises:
            LocalProtocolError: no publish is pending on ``stream_id`` (or the connection is closed).
        """
        stream = self._pending_stream(stream_id)
        stream.advance(StreamInput.REJECT)
        self._paused_on = None
        self._send_status(stream_id, "error", code, description)

    def send_ping(self, timestamp: int = 0) -> None:
        """Queue a Ping Request (§7.1.7 event 6); the answer lands in :attr:`last_ping_response`."""
        if self._state not in (ConnectionState.AWAIT_CONNECT, ConnectionState.CONNECTED) or self._failed:
            raise LocalProtocolError("send_ping() needs an open chunk stream")
        self._send_control(UserControl.of(UserControlEvent.PING_REQUEST, timestamp))

    # -- parsing ----------------------------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._failed:
            raise LocalProtocolError("the connection already failed with a RemoteProtocolError; close it")
        if self._state is ConnectionState.CLOSED:
            raise LocalProtocolError("the peer already closed the connection (EOF was received)")

    def _guarded(self, step: Callable[[list[Event]], None], events: list[Event]) -> None:
        try:
            step(events)
        except RemoteProtocolError:
            self._failed = True
            raise

    def _parse(self, events: list[Event]) -> None:
        while self._paused_on is None:
            if self._state is ConnectionState.AWAIT_C0C1:
                if not self._read_c0c1():
                    return
            elif self._state is ConnectionState.AWAIT_C2:
                if not self._read_c2(events):
                    return
            else:
                message = self._reader.next_message(self._buf)
                if message is None:
                    return
                self._dispatch(message, events)

    def _read_c0c1(self) -> bool:
        first = self._buf.peek_exactly(1)
        if first is not None:
            Handshake.check_version(first[0])  # fail fast on HTTP & co. before 1537 bytes arrive
        c0c1 = self._buf.consume_exactly(1 + C1_SIZE)
        if c0c1 is None:
            return False
        self._buf.commit()
        self._out += self._handshake.receive_c0c1(c0c1)
        self._state = next_connection_state(self._state, ConnInput.C0C1, "C0+C1")
        return True

    def _read_c2(self, events: list[Event]) -> bool:
        c2 = self._buf.consume_exactly(C1_SIZE)
        if c2 is None:
            return False
        self._buf.commit()
        self._handshake.receive_c2(c2)
        self._state = next_connection_state(self._state, ConnInput.C2, "C2")
        events.append(HandshakeCompleted(digest=self._handshake.digest))
        return True

    def _pending_stream(self, stream_id: int) -> MessageStream:
        self._check_usable()
        stream = self._streams.get(stream_id)
        if stream is None or stream.state is not StreamState.PUBLISH_PENDING:
            raise LocalProtocolError(f"no publish is pending on message stream {stream_id}")
        return stream

    def _maybe_acknowledge(self) -> None:
        """§5.4.3: "The client or the server MUST send an acknowledgment to the peer after receiving bytes equal
        to the window size" -- the window being the one the peer announced with Window Acknowledgement Size."""
        if self._peer_window and self._bytes_in - self._last_ack >= self._peer_window:
            self._last_ack = self._bytes_in
            self._send_control(Acknowledgement(self._bytes_in & 0xFFFFFFFF))


def _check_config(max_message_size: int, window_ack_size: int, chunk_size: int) -> None:
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be within 1..{MAX_CHUNK_SIZE}")
    if max_message_size < 1 or not 1 <= window_ack_size <= 0xFFFFFFFF:
        raise ValueError("max_message_size and window_ack_size must be positive (window: 32 bits)")
