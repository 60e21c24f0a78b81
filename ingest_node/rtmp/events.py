"""Events the RTMP core reports to its caller (h11 ``_events.py``).

Owns: the vocabulary between ``Connection.receive_data`` and the I/O layer.

Rules:
- Every event is a frozen, keyword-only dataclass under :class:`Event`. Don't subclass the concrete events:
  the I/O layer dispatches on their exact types.
- Constructors validate their fields (``LocalProtocolError`` on a bad value): the core checks the peer's values
  before building an event, so a failure here is a bug, not bad input.
- A stream key is never part of a repr (``PublishRequested.stream_key`` is ``repr=False``); payloads are left out
  of reprs too, so logging an event stays cheap and safe.
- Timestamps are absolute milliseconds as Python ints: 32-bit wraparound is already unwound (never negative).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import LocalProtocolError

__all__ = [
    "AudioReceived",
    "ConnectRequested",
    "ConnectionClosed",
    "Event",
    "HandshakeCompleted",
    "MetadataReceived",
    "PublishRequested",
    "UnpublishRequested",
    "VideoReceived",
]


class Event:
    """Base class of every event."""

    __slots__ = ()


def _check_stream_id(stream_id: int) -> None:
    if not isinstance(stream_id, int) or not 0 <= stream_id <= 0xFFFFFFFF:
        raise LocalProtocolError(f"stream_id must be a 32-bit unsigned int, got {stream_id!r}")


def _check_timestamp(timestamp: int) -> None:
    if not isinstance(timestamp, int) or timestamp < 0:
        raise LocalProtocolError(f"timestamp must be a non-negative int (ms), got {timestamp!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class HandshakeCompleted(Event):
    """C2 arrived: the chunk stream starts (RTMP 1.0 §5.2.1)."""

    #: True when the client used the Flash-era digest handshake and was answered with digests.
    digest: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectRequested(Event):
    """The client sent ``connect`` (§7.2.1.1); the core has already answered it (Window Ack Size, Set Peer
    Bandwidth, Set Chunk Size, ``_result`` NetConnection.Connect.Success)."""

    #: "The Server application name the client is connected to", e.g. ``"live"``.
    app: str
    #: "URL of the server", e.g. ``"rtmp://host:1935/live"`` (``None`` if the client omitted it).
    tc_url: str | None = None
    #: "Flash Player version", e.g. ``"FMLE/3.0 (compatible; FMSc/1.0)"`` for OBS.
    flash_ver: str | None = None
    #: The whole command object (``fourCcList`` of enhanced RTMP included).
    properties: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.app, str):
            raise LocalProtocolError("ConnectRequested.app must be a str")


@dataclass(frozen=True, kw_only=True, slots=True)
class PublishRequested(Event):
    """The client asked to publish (§7.2.2.6). Parsing pauses until the caller decides with
    ``Connection.accept_publish`` or ``Connection.reject_publish``."""

    stream_id: int
    #: The publishing name: the stream key. Secret: never logged, never in a repr.
    stream_key: str = field(repr=False)
    #: "live", "record" or "append" (``"live"`` when the client omitted it).
    publish_type: str = "live"
    #: The ``app`` of the connection's ``connect``.
    app: str = ""

    def __post_init__(self) -> None:
        _check_stream_id(self.stream_id)
        if not isinstance(self.stream_key, str) or not isinstance(self.publish_type, str):
            raise LocalProtocolError("PublishRequested.stream_key and publish_type must be str")


@dataclass(frozen=True, kw_only=True, slots=True)
class MetadataReceived(Event):
    """``@setDataFrame("onMetaData", ...)`` or a plain ``onMetaData`` data message (§7.1.2)."""

    stream_id: int
    timestamp: int
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_stream_id(self.stream_id)
        _check_timestamp(self.timestamp)


@dataclass(frozen=True, kw_only=True, slots=True)
class AudioReceived(Event):
    """An audio message (§7.1.4): ``payload`` is the FLV AUDIODATA tag body exactly as received."""

    stream_id: int
    timestamp: int
    payload: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_stream_id(self.stream_id)
        _check_timestamp(self.timestamp)


@dataclass(frozen=True, kw_only=True, slots=True)
class VideoReceived(Event):
    """A video message (§7.1.5): ``payload`` is the FLV VIDEODATA tag body exactly as received (legacy
    ``CodecID`` header or enhanced RTMP ``ExVideoTagHeader`` with a FourCC such as ``hvc1``/``av01``)."""

    stream_id: int
    timestamp: int
    payload: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_stream_id(self.stream_id)
        _check_timestamp(self.timestamp)


@dataclass(frozen=True, kw_only=True, slots=True)
class UnpublishRequested(Event):
    """An accepted publish ended cleanly: ``reason`` is the command (``FCUnpublish``, ``deleteStream``,
    ``closeStream``). Reported once per publish."""

    stream_id: int
    reason: str

    def __post_init__(self) -> None:
        _check_stream_id(self.stream_id)


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectionClosed(Event):
    """The peer closed its side (``receive_data(b"")``). Nothing more will be reported."""
