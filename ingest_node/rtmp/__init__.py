"""Sans-IO RTMP server core: bytes in, events and bytes out, no networking code at all.

The I/O layer (``ingest_node.publishers.rtmp_server``) owns sockets, deadlines and policy; this package owns
RTMP 1.0 (handshake §5.2, chunk stream §5.3, protocol control §5.4, user control §6.2/§7.1.7, commands §7.2),
AMF0 and the Flash-era digest handshake. Typical use::

    conn = Connection()
    for event in conn.receive_data(data):      # b"" at EOF
        if isinstance(event, PublishRequested):
            conn.accept_publish(event.stream_id)   # or conn.reject_publish(event.stream_id)
    sock.sendall(conn.data_to_send())

Modules (all internal; import from here): ``connection`` (:class:`Connection`), ``handlers`` (what each message
does), ``events``, ``state`` (transition tables), ``handshake``, ``chunks``, ``messages``, ``amf0``,
``commands`` (reply builders), ``streams`` (per message stream bookkeeping), ``buffer``, ``errors``.
"""

from .amf0 import UNDEFINED, Date, EcmaArray
from .connection import MAX_AMF_MESSAGE_SIZE, MAX_MEDIA_MESSAGE_SIZE, Connection
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .events import (
    AudioReceived,
    ConnectionClosed,
    ConnectRequested,
    Event,
    HandshakeCompleted,
    MetadataReceived,
    PublishRequested,
    UnpublishRequested,
    VideoReceived,
)
from .state import ConnectionState, StreamState

__all__ = [
    "MAX_AMF_MESSAGE_SIZE",
    "MAX_MEDIA_MESSAGE_SIZE",
    "UNDEFINED",
    "AudioReceived",
    "ConnectRequested",
    "Connection",
    "ConnectionClosed",
    "ConnectionState",
    "Date",
    "EcmaArray",
    "Event",
    "HandshakeCompleted",
    "LocalProtocolError",
    "MetadataReceived",
    "ProtocolError",
    "PublishRequested",
    "RemoteProtocolError",
    "StreamState",
    "UnpublishRequested",
    "VideoReceived",
]
