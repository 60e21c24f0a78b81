"""RTMP message bodies: protocol control, user control, command, data and aggregate messages.

Owns: the wire layout of each message *payload* (the chunk layer in ``chunks.py`` owns headers). Each type is a
frozen dataclass with ``parse(cls, data)`` and ``__bytes__`` (aiortc ``rtp.py`` style), and
``bytes(T.parse(x)) == x`` for every well-formed ``x``.

Message type ids (RTMP 1.0 §5.4 "Protocol Control Messages", §6.2 "User Control Messages", §7.1 "Types of
Messages"): 1 Set Chunk Size, 2 Abort Message, 3 Acknowledgement, 4 User Control, 5 Window Acknowledgement Size,
6 Set Peer Bandwidth, 8 audio, 9 video, 15/18 data (AMF3/AMF0), 16/19 shared object, 17/20 command, 22 aggregate.

Rules:
- ``parse`` raises only ``RemoteProtocolError`` and names the message type in the error.
- Audio and video bodies are opaque here: they are FLV tag bodies (enhanced RTMP ``ExVideoTagHeader`` included)
  that the core passes through untouched.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final, Self

from . import amf0
from .errors import RemoteProtocolError

__all__ = [
    "AbortMessage",
    "Acknowledgement",
    "AggregateMessage",
    "CommandMessage",
    "DataMessage",
    "LimitType",
    "MessageType",
    "SetChunkSize",
    "SetPeerBandwidth",
    "SubMessage",
    "UserControl",
    "UserControlEvent",
    "WindowAckSize",
]

_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
#: RTMP 1.0 §5.4.1: "Valid sizes are 1 to 2147483647 (0x7FFFFFFF) inclusive".
MAX_CHUNK_SIZE: Final = 0x7FFFFFFF


class MessageType(IntEnum):
    """RTMP message type ids."""

    #: §5.4.1
    SET_CHUNK_SIZE = 1
    #: §5.4.2
    ABORT = 2
    #: §5.4.3
    ACKNOWLEDGEMENT = 3
    #: §6.2 (sent on chunk stream 2, message stream 0)
    USER_CONTROL = 4
    #: §5.4.4
    WINDOW_ACK_SIZE = 5
    #: §5.4.5
    SET_PEER_BANDWIDTH = 6
    #: §7.1.4: the body is an FLV AUDIODATA tag body
    AUDIO = 8
    #: §7.1.5: the body is an FLV VIDEODATA tag body
    VIDEO = 9
    #: §7.1.2 data message, AMF3 flavour
    DATA_AMF3 = 15
    #: §7.1.3 shared object message, AMF3 flavour
    SHARED_OBJECT_AMF3 = 16
    #: §7.1.1 command message, AMF3 flavour
    COMMAND_AMF3 = 17
    #: §7.1.2 data message (``@setDataFrame``, ``onMetaData``)
    DATA_AMF0 = 18
    #: §7.1.3 shared object message
    SHARED_OBJECT_AMF0 = 19
    #: §7.1.1 command message (``connect``, ``publish``, ...)
    COMMAND_AMF0 = 20
    #: §7.1.6
    AGGREGATE = 22


def _u32_body(name: str, data: bytes) -> int:
    if len(data) != 4:
        raise RemoteProtocolError(f"{name}: body must be 4 bytes, got {len(data)}")
    return int(_U32.unpack(data)[0])


@dataclass(frozen=True, slots=True)
class SetChunkSize:
    """§5.4.1: "used to notify the peer of a new maximum chunk size" (31 bits; "bit 0 MUST be zero")."""

    chunk_size: int

    @classmethod
    def parse(cls, data: bytes) -> Self:
        size = _u32_body("Set Chunk Size", data)
        if size & 0x80000000:
            raise RemoteProtocolError("Set Chunk Size: the most significant bit must be zero (RTMP 1.0 §5.4.1)")
        if size == 0:
            raise RemoteProtocolError("Set Chunk Size: the chunk size must be at least 1 (RTMP 1.0 §5.4.1)")
        return cls(size)

    def __bytes__(self) -> bytes:
        return _U32.pack(self.chunk_size)


@dataclass(frozen=True, slots=True)
class AbortMessage:
    """§5.4.2: "the peer ... can discard the partially received message" on ``chunk_stream_id``."""

    chunk_stream_id: int

    @classmethod
    def parse(cls, data: bytes) -> Self:
        return cls(_u32_body("Abort Message", data))

    def __bytes__(self) -> bytes:
        return _U32.pack(self.chunk_stream_id)


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """§5.4.3: "the number of bytes received so far" (wraps at 2**32)."""

    sequence_number: int

    @classmethod
    def parse(cls, data: bytes) -> Self:
        return cls(_u32_body("Acknowledgement", data))

    def __bytes__(self) -> bytes:
        return _U32.pack(self.sequence_number & 0xFFFFFFFF)


@dataclass(frozen=True, slots=True)
class WindowAckSize:
    """§5.4.4: "to inform the peer of the window size to use between sending acknowledgments"."""

    window_size: int

    @classmethod
    def parse(cls, data: bytes) -> Self:
        return cls(_u32_body("Window Acknowledgement Size", data))

    def __bytes__(self) -> bytes:
        return _U32.pack(self.window_size)


class LimitType(IntEnum):
    """§5.4.5 Set Peer Bandwidth limit types."""

    #: "The peer SHOULD limit its output bandwidth to the indicated window size."
    HARD = 0
    #: "... to the window indicated in this message or the limit already in effect, whichever is smaller."
    SOFT = 1
    #: "If the previous Limit Type was Hard, treat this message as though it was marked Hard, otherwise ignore
    #: this message."
    DYNAMIC = 2


@dataclass(frozen=True, slots=True)
class SetPeerBandwidth:
    """§5.4.5: "to limit the output bandwidth of its peer"."""

    window_size: int
    limit_type: LimitType

    @classmethod
    def parse(cls, data: bytes) -> Self:
        if len(data) != 5:
            raise RemoteProtocolError(f"Set Peer Bandwidth: body must be 5 bytes, got {len(data)}")
        if data[4] > 2:
            raise RemoteProtocolError(f"Set Peer Bandwidth: unknown limit type {data[4]}")
        return cls(int(_U32.unpack(data[:4])[0]), LimitType(data[4]))

    def __bytes__(self) -> bytes:
        return _U32.pack(self.window_size) + bytes((self.limit_type,))


class UserControlEvent(IntEnum):
    """§6.2 / §7.1.7 "User Control Message Events"."""

    STREAM_BEGIN = 0
    STREAM_EOF = 1
    STREAM_DRY = 2
    SET_BUFFER_LENGTH = 3
    STREAM_IS_RECORDED = 4
    PING_REQUEST = 6
    PING_RESPONSE = 7


#: Event data sizes of the events defined in §7.1.7 (SetBufferLength carries a stream id and a length).
_EVENT_DATA_SIZE: Final[dict[int, int]] = {
    int(event): 8 if event is UserControlEvent.SET_BUFFER_LENGTH else 4 for event in UserControlEvent
}


@dataclass(frozen=True, slots=True)
class UserControl:
    """§6.2: "The first 2 bytes of the message data are used to identify the Event type", then event data.

    Unknown event types (servers historically sent 31/32 "buffer empty/ready") keep their raw data.
    """

    event_type: int
    data: bytes

    @classmethod
    def parse(cls, data: bytes) -> Self:
        if len(data) < 2:
            raise RemoteProtocolError("User Control: body shorter than its 2-byte event type")
        (event_type,) = _U16.unpack(data[:2])
        needed = _EVENT_DATA_SIZE.get(event_type)
        if needed is not None and len(data) - 2 < needed:
            raise RemoteProtocolError(f"User Control event {event_type}: needs {needed} bytes of event data")
        return cls(event_type, bytes(data[2:]))

    @classmethod
    def of(cls, event: UserControlEvent, *values: int) -> Self:
        """Build an event from its 32-bit fields, e.g. ``UserControl.of(PING_REQUEST, timestamp)``."""
        return cls(int(event), b"".join(_U32.pack(v & 0xFFFFFFFF) for v in values))

    @property
    def value(self) -> int:
        """The first 32-bit field: a stream id, or the timestamp of a ping."""
        return int(_U32.unpack(self.data[:4])[0]) if len(self.data) >= 4 else 0

    def __bytes__(self) -> bytes:
        return _U16.pack(self.event_type) + self.data


@dataclass(frozen=True, slots=True)
class CommandMessage:
    """§7.1.1 / §7.2: command name, transaction id, then the command object and optional arguments.

    ``values`` holds everything after the transaction id exactly as decoded, so absent and ``null`` command
    objects stay distinct and the message re-encodes byte for byte.
    """

    name: str
    transaction_id: float
    values: tuple[Any, ...] = field(default=())

    @classmethod
    def parse(cls, data: bytes) -> Self:
        decoded = amf0.decode(data)
        if len(decoded) < 2 or not isinstance(decoded[0], str) or type(decoded[1]) is not float:
            raise RemoteProtocolError("command message: expected a command name and a transaction id (RTMP §7.1.1)")
        return cls(decoded[0], decoded[1], tuple(decoded[2:]))

    @classmethod
    def build(cls, name: str, transaction_id: float, command_object: Any, *arguments: Any) -> Self:
        """A command with its command object (``None`` for AMF0 null) and arguments."""
        return cls(name, float(transaction_id), (command_object, *arguments))

    @property
    def command_object(self) -> Any:
        """The command object (``None`` when null or absent)."""
        return self.values[0] if self.values else None

    @property
    def arguments(self) -> tuple[Any, ...]:
        """The optional arguments after the command object."""
        return self.values[1:]

    def __bytes__(self) -> bytes:
        return amf0.encode(self.name, self.transaction_id, *self.values)


@dataclass(frozen=True, slots=True)
class DataMessage:
    """§7.1.2: "The client or the server sends this message to send Metadata or any user data to the peer"."""

    values: tuple[Any, ...]

    @classmethod
    def parse(cls, data: bytes) -> Self:
        return cls(tuple(amf0.decode(data)))

    def __bytes__(self) -> bytes:
        return amf0.encode(*self.values)


_SUB_HEADER = struct.Struct(">B3s3sB3s")


@dataclass(frozen=True, slots=True)
class SubMessage:
    """One FLV-tag-shaped message inside an aggregate message."""

    type_id: int
    timestamp: int
    stream_id: int
    payload: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class AggregateMessage:
    """§7.1.6: "a single message that contains a series of RTMP sub-messages" laid out as FLV tags
    (header, body, 4-byte back pointer).

    "The difference between the timestamps of the aggregate message and the first sub-message is the offset
    used to renormalize the timestamps of the sub-messages to the stream timescale" -- applied by the caller.
    """

    messages: tuple[SubMessage, ...]

    @classmethod
    def parse(cls, data: bytes) -> Self:
        view, pos, found = bytes(data), 0, []
        while pos < len(view):
            if len(view) - pos < 11:
                raise RemoteProtocolError("aggregate message: truncated sub-message header")
            type_id, size, ts, ts_ext, sid = _SUB_HEADER.unpack_from(view, pos)
            size = int.from_bytes(size, "big")
            end = pos + 11 + size + 4
            if end > len(view):
                raise RemoteProtocolError("aggregate message: sub-message runs past the end")
            timestamp = int.from_bytes(ts, "big") | ts_ext << 24
            payload = view[pos + 11 : pos + 11 + size]
            found.append(SubMessage(type_id, timestamp, int.from_bytes(sid, "big"), payload))
            pos = end
        return cls(tuple(found))

    def __bytes__(self) -> bytes:
        out = bytearray()
        for sub in self.messages:
            ts = sub.timestamp & 0xFFFFFFFF
            out += _SUB_HEADER.pack(
                sub.type_id,
                len(sub.payload).to_bytes(3, "big"),
                (ts & 0xFFFFFF).to_bytes(3, "big"),
                ts >> 24,
                sub.stream_id.to_bytes(3, "big"),
            )
            out += sub.payload + _U32.pack(len(sub.payload) + 11)
        return bytes(out)
