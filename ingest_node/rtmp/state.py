"""Connection and message-stream state machines of the RTMP core, as tables (h11 ``_state.py``).

Rules:
- Rule 1: every state transition of the core lives in this file, as data. ``connection.py`` feeds inputs and
  acts on the answers; it never assigns a state itself.
- Rule 2: anything not in a table is a protocol error. Inputs caused by the peer raise ``RemoteProtocolError``;
  inputs caused by the caller (``ACCEPT``, ``REJECT``) raise ``LocalProtocolError`` (h2 ``_transitions``:
  "anything not in this map is invalid").
- Rule 3: a stream transition also says whether the input is *reported* (turned into an event). This is how
  "a second unpublish is silent" and "metadata before publish is dropped" are written down, not coded as ifs.

Theory of operation. A connection goes AWAIT_C0C1 → AWAIT_C2 → AWAIT_CONNECT → CONNECTED (RTMP 1.0 §5.2,
§7.2.1.1); EOF from any state closes it. Once connected, each message stream the client creates
(``createStream``, §7.2.1.3) runs its own machine::

    CREATED --publish--> PUBLISH_PENDING --accept--> PUBLISHING --unpublish--> CLOSED --publish--> ...
                                        \\--reject--> REJECTED

While a stream is PUBLISH_PENDING the connection is *paused*: it parses nothing more until the caller decides,
exactly as nginx-rtmp stops reading while an ``on_publish`` hook runs. Media is reported only in PUBLISHING; it
is an error before an accepted publish, and silently dropped after an unpublish (frames still in flight when an
encoder sends ``FCUnpublish`` are not worth killing the connection over).
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from .errors import LocalProtocolError, RemoteProtocolError

__all__ = ["ConnInput", "ConnectionState", "StreamInput", "StreamState", "next_connection_state", "next_stream_state"]


class _TableKey(Enum):
    """An enum used in the transition tables' keys, looked up for every media message: hashed by identity (members
    are singletons, equal only to themselves), in C, instead of ``Enum.__hash__``'s Python-level hash of the name."""

    __hash__ = object.__hash__


class ConnectionState(_TableKey):
    """Where the connection as a whole is."""

    #: Waiting for C0 and C1 (§5.2.2, §5.2.3).
    AWAIT_C0C1 = "AWAIT_C0C1"
    #: S0+S1+S2 sent; waiting for C2 (§5.2.4).
    AWAIT_C2 = "AWAIT_C2"
    #: Chunk stream open; only protocol control messages and ``connect`` are allowed.
    AWAIT_CONNECT = "AWAIT_CONNECT"
    #: ``connect`` answered; stream commands and media flow.
    CONNECTED = "CONNECTED"
    #: The peer sent EOF; nothing more is parsed.
    CLOSED = "CLOSED"


class ConnInput(_TableKey):
    """What can happen to the connection."""

    #: C0+C1 received
    C0C1 = "C0C1"
    #: C2 received
    C2 = "C2"
    #: a ``connect`` command
    CONNECT = "connect"
    #: any other command, data or media message
    MESSAGE = "message"
    #: a protocol control or user control message
    CONTROL = "control"
    #: ``receive_data(b"")``
    EOF = "EOF"


_S = ConnectionState
_I = ConnInput
CONNECTION_TRANSITIONS: Final[dict[tuple[ConnectionState, ConnInput], ConnectionState]] = {
    (_S.AWAIT_C0C1, _I.C0C1): _S.AWAIT_C2,
    (_S.AWAIT_C2, _I.C2): _S.AWAIT_CONNECT,
    (_S.AWAIT_CONNECT, _I.CONTROL): _S.AWAIT_CONNECT,
    (_S.AWAIT_CONNECT, _I.CONNECT): _S.CONNECTED,
    (_S.CONNECTED, _I.CONTROL): _S.CONNECTED,
    (_S.CONNECTED, _I.MESSAGE): _S.CONNECTED,
    **{(state, _I.EOF): _S.CLOSED for state in ConnectionState if state is not _S.CLOSED},
}


def next_connection_state(state: ConnectionState, event: ConnInput, what: str) -> ConnectionState:
    """Look up a connection transition; ``what`` names the input in the error message."""
    try:
        return CONNECTION_TRANSITIONS[state, event]
    except KeyError:
        raise RemoteProtocolError(f"{what} is not allowed in connection state {state.value}") from None


class StreamState(_TableKey):
    """Where one message stream (a ``createStream`` id) is."""

    #: Created by ``createStream``; nothing published yet.
    CREATED = "CREATED"
    #: ``publish`` received; the caller has not decided yet (the connection is paused).
    PUBLISH_PENDING = "PUBLISH_PENDING"
    #: The caller accepted; onStatus NetStream.Publish.Start sent; media flows.
    PUBLISHING = "PUBLISHING"
    #: The caller refused; onStatus level "error" sent; the caller closes the connection.
    REJECTED = "REJECTED"
    #: Unpublished (FCUnpublish / closeStream / deleteStream); may publish again.
    CLOSED = "CLOSED"


class StreamInput(_TableKey):
    """What can happen to a message stream."""

    #: the peer's ``publish``
    PUBLISH = "publish"
    #: the caller's ``accept_publish``
    ACCEPT = "accept_publish"
    #: the caller's ``reject_publish``
    REJECT = "reject_publish"
    #: an audio or video message from the peer
    MEDIA = "media"
    #: a data message (``@setDataFrame``/``onMetaData``) from the peer
    METADATA = "metadata"
    #: the peer's ``FCUnpublish``, ``closeStream`` or ``deleteStream``
    UNPUBLISH = "unpublish"


_LOCAL_INPUTS: Final = frozenset({StreamInput.ACCEPT, StreamInput.REJECT})
_T = StreamState
_E = StreamInput
#: (state, input) -> (next state, report it as an event?)
STREAM_TRANSITIONS: Final[dict[tuple[StreamState, StreamInput], tuple[StreamState, bool]]] = {
    (_T.CREATED, _E.PUBLISH): (_T.PUBLISH_PENDING, True),
    (_T.CREATED, _E.METADATA): (_T.CREATED, False),
    (_T.CREATED, _E.UNPUBLISH): (_T.CLOSED, False),
    (_T.PUBLISH_PENDING, _E.ACCEPT): (_T.PUBLISHING, False),
    (_T.PUBLISH_PENDING, _E.REJECT): (_T.REJECTED, False),
    (_T.PUBLISHING, _E.MEDIA): (_T.PUBLISHING, True),
    (_T.PUBLISHING, _E.METADATA): (_T.PUBLISHING, True),
    (_T.PUBLISHING, _E.UNPUBLISH): (_T.CLOSED, True),
    (_T.REJECTED, _E.METADATA): (_T.REJECTED, False),
    (_T.REJECTED, _E.UNPUBLISH): (_T.REJECTED, False),
    (_T.CLOSED, _E.PUBLISH): (_T.PUBLISH_PENDING, True),
    (_T.CLOSED, _E.MEDIA): (_T.CLOSED, False),
    (_T.CLOSED, _E.METADATA): (_T.CLOSED, False),
    (_T.CLOSED, _E.UNPUBLISH): (_T.CLOSED, False),
}


def next_stream_state(state: StreamState, event: StreamInput, stream_id: int) -> tuple[StreamState, bool]:
    """Look up a stream transition: the next state and whether to report the input as an event."""
    try:
        return STREAM_TRANSITIONS[state, event]
    except KeyError:
        error = LocalProtocolError if event in _LOCAL_INPUTS else RemoteProtocolError
        raise error(f"{event.value} is not allowed on message stream {stream_id} in state {state.value}") from None
