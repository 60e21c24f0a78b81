"""The transition tables (``state.py``) and the commit/rollback receive buffer (``buffer.py``)."""

from __future__ import annotations

import itertools

import pytest

from ingest_node.rtmp import LocalProtocolError, ProtocolError, RemoteProtocolError
from ingest_node.rtmp.buffer import ReceiveBuffer
from ingest_node.rtmp.state import (
    CONNECTION_TRANSITIONS,
    STREAM_TRANSITIONS,
    ConnectionState,
    ConnInput,
    StreamInput,
    StreamState,
    next_connection_state,
    next_stream_state,
)


@pytest.mark.parametrize(("state", "event"), list(itertools.product(ConnectionState, ConnInput)))
def test_connection_table_is_total(state: ConnectionState, event: ConnInput) -> None:
    """Every (state, input) pair is either in the table or a RemoteProtocolError naming both."""
    if (state, event) in CONNECTION_TRANSITIONS:
        assert next_connection_state(state, event, "x") is CONNECTION_TRANSITIONS[state, event]
    else:
        with pytest.raises(RemoteProtocolError, match=f"x is not allowed in connection state {state.value}"):
            next_connection_state(state, event, "x")


@pytest.mark.parametrize(("state", "event"), list(itertools.product(StreamState, StreamInput)))
def test_stream_table_is_total(state: StreamState, event: StreamInput) -> None:
    """Outside the table, the caller's inputs are Local errors and the peer's are Remote errors."""
    if (state, event) in STREAM_TRANSITIONS:
        assert next_stream_state(state, event, 1) == STREAM_TRANSITIONS[state, event]
        return
    expected = LocalProtocolError if event in (StreamInput.ACCEPT, StreamInput.REJECT) else RemoteProtocolError
    with pytest.raises(expected, match=f"{event.value} is not allowed on message stream 1"):
        next_stream_state(state, event, 1)


def test_media_only_while_publishing() -> None:
    """Media is reported only while publishing, tolerated (dropped) after an unpublish, refused elsewhere."""
    media = {state: report for (state, event), (_, report) in STREAM_TRANSITIONS.items() if event is StreamInput.MEDIA}
    assert media == {StreamState.PUBLISHING: True, StreamState.CLOSED: False}


def test_eof_closes_from_everywhere() -> None:
    for state in ConnectionState:
        if state is not ConnectionState.CLOSED:
            assert CONNECTION_TRANSITIONS[state, ConnInput.EOF] is ConnectionState.CLOSED


def test_protocol_error_is_abstract() -> None:
    """h11 ``_util.py``: the base class cannot be raised directly."""
    with pytest.raises(TypeError):
        ProtocolError("no")
    assert isinstance(RemoteProtocolError("x"), ProtocolError)


class TestReceiveBuffer:
    def test_rollback_returns_to_the_commit_point(self) -> None:
        buf = ReceiveBuffer()
        buf.feed(b"abcdef")
        assert buf.consume_exactly(2) == b"ab"
        buf.commit()
        assert buf.consume_exactly(3) == b"cde"
        buf.rollback()
        assert buf.consume_exactly(4) == b"cdef"

    def test_short_reads_do_not_advance(self) -> None:
        buf = ReceiveBuffer()
        buf.feed(b"ab")
        assert buf.consume_exactly(3) is None
        assert buf.peek_exactly(3) is None
        assert buf.consume_byte() == ord("a") and buf.peek_byte() == ord("b")
        assert buf.consume_at_most(10) == b"b"
        assert buf.consume_byte() is None and buf.peek_byte() is None
        assert buf.consume_at_most(10) == b""

    def test_feed_compacts_committed_bytes(self) -> None:
        """Committed bytes are dropped on the next feed, so a long-lived connection does not grow."""
        buf = ReceiveBuffer()
        for _ in range(1000):
            buf.feed(bytes(1000))
            buf.consume_exactly(1000)
            buf.commit()
        buf.feed(b"x")
        assert len(buf._data) == 1
