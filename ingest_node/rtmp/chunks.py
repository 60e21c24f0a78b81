"""The RTMP chunk stream (RTMP 1.0 §5.3): messages split into chunks, interleaved, reassembled.

Owns: basic headers, message headers of types 0-3, extended timestamps, per-chunk-stream header state, the chunk
size of each direction, Abort Message handling, and the limits that keep reassembly memory bounded.

Wire format (§5.3.1 "Chunk Format")::

    | Basic Header (1-3) | Message Header (0, 3, 7 or 11) | Extended Timestamp (0 or 4) | Chunk Data |

Rules:
- §5.3.1.1: chunk stream ids 2-63 use the 1-byte form; "Value 0 indicates the 2 byte form and an ID in the range
  of 64-319 (the second byte + 64). Value 1 indicates the 3 byte form and an ID in the range of 64-65599 ((the
  third byte)*256 + the second byte + 64)".
- §5.3.1.2.1: "Type 0 chunk headers are 11 bytes long. This type MUST be used at the start of a chunk stream",
  so a first chunk of type 1-3 on an unknown chunk stream is refused. Types 0-2 are refused in the middle of a
  message (only type 3 continues one).
- §5.3.1.2.4 (type 3): "If a Type 3 chunk follows a Type 0 chunk, then the timestamp delta for this Type 3
  chunk is the same as the timestamp of the Type 0 chunk"; after type 1/2 it repeats their delta.
- §5.3.1.3: the extended timestamp "is present in Type 3 chunks when the most recent Type 0, 1, or 2 chunk for
  the same chunk stream ID indicated the presence of an extended timestamp field" -- continuations included.
  Some senders omit it there ("Messages with type=3 should never have ext timestamp field according to standard.
  However that's not always the case in real life", nginx-rtmp ``ngx_rtmp_recv``), so, like SRS, a type 3 chunk
  consumes the 4 bytes only when they repeat the value of the last extended field; otherwise they are payload.
- Chunk-level timestamps are 32-bit serial numbers (mod 2**32); unwrapping into absolute ms is the
  connection's job, per message stream.
- Memory: a message announcing more than its type's limit is refused from its header, before any payload is
  buffered: audio, video and aggregate messages (§7.1.4-6) up to ``max_message_size``, every other type
  (commands, data, shared objects, protocol and user control, unknown types) up to ``max_command_size``,
  because they are decoded value by value (AMF0 costs ~0.4 µs of CPU per byte of small values, so one 1 MiB
  command stalls the event loop ~0.4 s) and real ones are under 4 KB. At most ``max_chunk_streams`` chunk
  streams may exist; the announced sizes of all partially received messages may not exceed
  ``max_inflight_bytes``. Chunk data is consumed as it arrives, so the peer's chunk size (up to 2**31-1) never
  makes us buffer a whole chunk before reading it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from .buffer import ReceiveBuffer
from .errors import LocalProtocolError, RemoteProtocolError
from .messages import MAX_CHUNK_SIZE, MessageType

__all__ = ["DEFAULT_CHUNK_SIZE", "MEDIA_TYPES", "ChunkReader", "ChunkWriter", "Message"]

#: §5.4.1: "The maximum chunk size defaults to 128 bytes".
DEFAULT_CHUNK_SIZE: Final = 128
_EXTENDED: Final = 0xFFFFFF
_MASK32: Final = 0xFFFFFFFF
_MAX_CSID: Final = 65599
_HEADER_SIZES: Final = (11, 7, 3, 0)
#: Message types limited by ``max_message_size``; all others by ``max_command_size``.
MEDIA_TYPES: Final = frozenset((MessageType.AUDIO, MessageType.VIDEO, MessageType.AGGREGATE))


@dataclass(slots=True)
class Message:
    """One reassembled RTMP message (§6.1 "RTMP Message Format")."""

    type_id: int
    stream_id: int
    #: 32-bit timestamp in ms, as carried by the chunk headers (wraps at 2**32).
    timestamp: int
    payload: bytes = field(repr=False)
    chunk_stream_id: int = 0


@dataclass(slots=True)
class _ChunkStream:
    """Header state of one chunk stream (the fields later headers may omit)."""

    timestamp: int = 0
    delta: int = 0
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    has_extended: bool = False
    #: the raw value of the last extended timestamp field (type 3 chunks repeat it)
    extended_value: int = 0
    #: a message has started on this chunk stream and is not complete yet
    in_progress: bool = False
    #: payload received so far; one bytearray (not a list of pieces) so that a peer dribbling bytes one at a
    #: time costs one byte of memory per byte, not one Python object per byte
    data: bytearray = field(default_factory=bytearray)
    received: int = 0


@dataclass(slots=True)
class _Header:
    """A parsed chunk header, applied to the chunk stream only once it is complete."""

    fmt: int
    csid: int
    timestamp: int = 0
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    extended: bool = False


class ChunkReader:
    """Reassembles messages from the peer's chunk stream.

    Args:
        max_message_size: largest audio/video/aggregate message length accepted from a header.
        max_command_size: largest length accepted from a header for any other message type.
        max_chunk_streams: most chunk stream ids the peer may use on one connection.
        max_inflight_bytes: most bytes that partially received messages may announce, all together.
    """

    def __init__(
        self,
        *,
        max_message_size: int,
        max_command_size: int | None = None,
        max_chunk_streams: int = 64,
        max_inflight_bytes: int,
    ) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.max_message_size = max_message_size
        self.max_command_size = max_message_size if max_command_size is None else max_command_size
        self.max_chunk_streams = max_chunk_streams
        self.max_inflight_bytes = max_inflight_bytes
        self._streams: dict[int, _ChunkStream] = {}
        self._current: _ChunkStream | None = None
        self._csid = 0
        self._chunk_left = 0
        self._inflight = 0

    def set_chunk_size(self, size: int) -> None:
        """Apply the peer's Set Chunk Size (§5.4.1) to the chunks that follow it."""
        if not 1 <= size <= MAX_CHUNK_SIZE:
            raise RemoteProtocolError(f"Set Chunk Size {size} outside 1..{MAX_CHUNK_SIZE} (RTMP 1.0 §5.4.1)")
        self.chunk_size = size

    def abort(self, csid: int) -> None:
        """§5.4.2 Abort Message: discard the partially received message on ``csid`` (unknown ids are ignored).

        An Abort Message is itself a message, so it is only ever read between chunks: the aborted message is
        never the one whose chunk data is being read.
        """
        stream = self._streams.get(csid)
        if stream is None or not stream.in_progress:
            return
        self._inflight -= stream.length
        stream.data, stream.received, stream.in_progress = bytearray(), 0, False

    def next_message(self, buf: ReceiveBuffer) -> Message | None:
        """Consume chunks from ``buf`` until one message is complete; ``None`` when ``buf`` runs dry first."""
        while True:
            stream = self._current or self._continuation(buf)
            if stream is None:
                header = self._read_header(buf)
                if header is None:
                    return None
                stream = self._apply(header)
                if stream.length == 0:  # a zero-length message is complete with its header
                    return self._finish(stream, header.csid, b"")
                self._current, self._csid = stream, header.csid
                self._chunk_left = min(self.chunk_size, stream.length - stream.received)
            data = buf.consume_at_most(self._chunk_left)
            buf.commit()
            if not data:
                return None
            if len(data) == stream.length:  # the whole message in one piece: no reassembly copy
                self._current = None
                return self._finish(stream, self._csid, data)
            stream.data += data
            stream.received += len(data)
            self._chunk_left -= len(data)
            if self._chunk_left:
                return None
            self._current = None
            if stream.received == stream.length:
                return self._finish(stream, self._csid, bytes(stream.data))

    def _continuation(self, buf: ReceiveBuffer) -> _ChunkStream | None:
        """Fast path for the commonest chunk: a 1-byte type 3 header continuing a message (no extended field)."""
        first = buf.peek_byte()
        if first is None or first < 0xC0:
            return None
        stream = self._streams.get(first & 0x3F)  # ids 0 and 1 (longer basic headers) are never keys
        if stream is None or not stream.in_progress or stream.has_extended:
            return None
        buf.skip(1)
        self._current, self._csid = stream, first & 0x3F
        self._chunk_left = min(self.chunk_size, stream.length - stream.received)
        return stream

    def _finish(self, stream: _ChunkStream, csid: int, payload: bytes) -> Message:
        self._inflight -= stream.length
        stream.data, stream.received, stream.in_progress = bytearray(), 0, False
        return Message(stream.type_id, stream.stream_id, stream.timestamp, payload, csid)

    def _read_header(self, buf: ReceiveBuffer) -> _Header | None:
        header = self._read_basic_header(buf)
        if header is None or not self._read_message_header(buf, header):
            buf.rollback()
            return None
        buf.commit()
        return header

    def _read_basic_header(self, buf: ReceiveBuffer) -> _Header | None:
        first = buf.consume_byte()
        if first is None:
            return None
        csid = first & 0x3F
        if csid == 0:
            second = buf.consume_byte()
            if second is None:
                return None
            csid = second + 64
        elif csid == 1:
            extra = buf.consume_exactly(2)
            if extra is None:
                return None
            csid = extra[1] * 256 + extra[0] + 64
        return _Header(first >> 6, csid)

    def _read_message_header(self, buf: ReceiveBuffer, header: _Header) -> bool:
        """Fill ``header`` from the message header and extended timestamp; False when incomplete."""
        stream = self._streams.get(header.csid)
        if stream is None and header.fmt != 0:
            raise RemoteProtocolError(
                f"chunk stream {header.csid} starts with a type {header.fmt} header; "
                "a chunk stream must start with type 0 (RTMP 1.0 §5.3.1.2.1)"
            )
        raw = buf.consume_exactly(_HEADER_SIZES[header.fmt])
        if raw is None:
            return False
        if header.fmt <= 2:
            header.timestamp = int.from_bytes(raw[0:3], "big")
            header.extended = header.timestamp == _EXTENDED
        if header.fmt <= 1:
            header.length = int.from_bytes(raw[3:6], "big")
            header.type_id = raw[6]
        if header.fmt == 0:
            header.stream_id = int.from_bytes(raw[7:11], "little")
        if header.fmt == 3:
            assert stream is not None
            return not stream.has_extended or self._skip_repeated_extended(buf, stream)
        if header.extended:
            ext = buf.consume_exactly(4)
            if ext is None:
                return False
            header.timestamp = int.from_bytes(ext, "big")
        return True

    @staticmethod
    def _skip_repeated_extended(buf: ReceiveBuffer, stream: _ChunkStream) -> bool:
        """Consume a type 3 chunk's extended timestamp if it is there (see the module rules)."""
        ext = buf.peek_exactly(4)
        if ext is None:
            return False
        if int.from_bytes(ext, "big") == stream.extended_value:
            buf.consume_exactly(4)
        return True

    def _apply(self, header: _Header) -> _ChunkStream:
        """Update the chunk stream's state from a complete header (§5.3.1.2)."""
        stream = self._streams.get(header.csid)
        if stream is None:
            if len(self._streams) >= self.max_chunk_streams:
                raise RemoteProtocolError(f"peer uses more than {self.max_chunk_streams} chunk streams")
            stream = self._streams[header.csid] = _ChunkStream()
        if stream.in_progress:
            if header.fmt != 3:
                raise RemoteProtocolError(
                    f"type {header.fmt} chunk on chunk stream {header.csid} before its message was complete"
                )
            return stream
        self._start_message(stream, header)
        return stream

    def _start_message(self, stream: _ChunkStream, header: _Header) -> None:
        fmt = header.fmt
        if fmt == 0:
            stream.timestamp = stream.delta = header.timestamp
            stream.stream_id = header.stream_id
        elif fmt <= 2:
            stream.delta = header.timestamp
            stream.timestamp = (stream.timestamp + header.timestamp) & _MASK32
        else:
            stream.timestamp = (stream.timestamp + stream.delta) & _MASK32
        if fmt <= 1:
            media = header.type_id in MEDIA_TYPES
            limit = self.max_message_size if media else self.max_command_size
            if header.length > limit:
                raise RemoteProtocolError(
                    f"message of type {header.type_id} and {header.length} bytes on chunk stream {header.csid} "
                    f"exceeds the {limit}-byte limit of {'media' if media else 'command/data/control'} messages"
                )
            stream.length, stream.type_id = header.length, header.type_id
        if fmt <= 2:
            stream.has_extended = header.extended
            stream.extended_value = header.timestamp
        if self._inflight + stream.length > self.max_inflight_bytes:
            raise RemoteProtocolError(
                f"partially received messages would exceed {self.max_inflight_bytes} bytes in flight"
            )
        self._inflight += stream.length
        stream.in_progress = True


def _basic_header(fmt: int, csid: int) -> bytes:
    if 2 <= csid <= 63:
        return bytes((fmt << 6 | csid,))
    if 64 <= csid <= 319:
        return bytes((fmt << 6, csid - 64))
    if 320 <= csid <= _MAX_CSID:
        rest = csid - 64
        return bytes((fmt << 6 | 1, rest & 0xFF, rest >> 8))
    raise LocalProtocolError(f"chunk stream id {csid} outside 2..{_MAX_CSID}")


class ChunkWriter:
    """Serializes outgoing messages into chunks of ``chunk_size`` bytes.

    Every message starts with a type 0 header (always valid, §5.3.1.2.1) and continues with type 3 chunks,
    which repeat the extended timestamp when the type 0 header carried one (§5.3.1.3).
    """

    def __init__(self) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE

    def write(self, csid: int, type_id: int, stream_id: int, timestamp: int, payload: bytes) -> bytes:
        """Return the chunks carrying one message."""
        timestamp &= _MASK32
        extended = timestamp >= _EXTENDED
        ext = timestamp.to_bytes(4, "big") if extended else b""
        header = (
            _basic_header(0, csid)
            + min(timestamp, _EXTENDED).to_bytes(3, "big")
            + len(payload).to_bytes(3, "big")
            + bytes((type_id,))
            + stream_id.to_bytes(4, "little")
            + ext
        )
        size = self.chunk_size
        if len(payload) <= size:
            return header + payload
        continuation = _basic_header(3, csid) + ext
        pieces = [header, payload[:size]]
        for start in range(size, len(payload), size):
            pieces += (continuation, payload[start : start + size])
        return b"".join(pieces)
