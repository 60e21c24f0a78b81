"""Message bodies: ``bytes(T.parse(x)) == x`` on hand-written vectors and on every message of the captures."""

from __future__ import annotations

from typing import Any

import pytest

from ingest_node.rtmp import UNDEFINED, RemoteProtocolError
from ingest_node.rtmp.buffer import ReceiveBuffer
from ingest_node.rtmp.chunks import ChunkReader, Message
from ingest_node.rtmp.messages import (
    AbortMessage,
    Acknowledgement,
    AggregateMessage,
    CommandMessage,
    DataMessage,
    LimitType,
    MessageType,
    SetChunkSize,
    SetPeerBandwidth,
    SubMessage,
    UserControl,
    UserControlEvent,
    WindowAckSize,
)

from .helpers import FIXTURES

VECTORS: list[tuple[type, bytes, Any]] = [
    (SetChunkSize, bytes.fromhex("00001000"), SetChunkSize(4096)),
    (SetChunkSize, bytes.fromhex("7fffffff"), SetChunkSize(0x7FFFFFFF)),
    (AbortMessage, bytes.fromhex("00000006"), AbortMessage(6)),
    (Acknowledgement, bytes.fromhex("0026 25a0"), Acknowledgement(2_500_000)),
    (WindowAckSize, bytes.fromhex("002625a0"), WindowAckSize(2_500_000)),
    (SetPeerBandwidth, bytes.fromhex("002625a0 02"), SetPeerBandwidth(2_500_000, LimitType.DYNAMIC)),
    (UserControl, bytes.fromhex("0000 00000001"), UserControl.of(UserControlEvent.STREAM_BEGIN, 1)),
    (UserControl, bytes.fromhex("0003 00000001 00000bb8"), UserControl.of(UserControlEvent.SET_BUFFER_LENGTH, 1, 3000)),
    (UserControl, bytes.fromhex("0006 0000ea60"), UserControl.of(UserControlEvent.PING_REQUEST, 60000)),
    (UserControl, bytes.fromhex("0020 00000001"), UserControl(32, bytes.fromhex("00000001"))),
    (
        CommandMessage,
        bytes.fromhex("02 0007 5f726573756c74  00 4010000000000000  05  00 3ff0000000000000"),
        CommandMessage("_result", 4.0, (None, 1.0)),
    ),
    (
        CommandMessage,
        bytes.fromhex("02 0007 5f726573756c74  00 4000000000000000  05  06"),
        CommandMessage("_result", 2.0, (None, UNDEFINED)),
    ),
    (CommandMessage, bytes.fromhex("02 0004 70696e67  00 0000000000000000"), CommandMessage("ping", 0.0, ())),
    (DataMessage, bytes.fromhex("02 000a 6f6e4d65746144617461  03 000009"), DataMessage(("onMetaData", {}))),
    (DataMessage, b"", DataMessage(())),
]


@pytest.mark.parametrize(
    ("cls", "data", "expected"), VECTORS, ids=[f"{c.__name__}-{d.hex()[:16]}" for c, d, _ in VECTORS]
)
def test_vectors_round_trip(cls: type, data: bytes, expected: Any) -> None:
    """Each vector parses to the expected value and serializes back to the same bytes."""
    parsed = cls.parse(data)  # type: ignore[attr-defined]
    assert parsed == expected
    assert bytes(parsed) == data


def test_command_accessors() -> None:
    command = CommandMessage.build("publish", 5, None, "key", "live")
    assert command.command_object is None
    assert command.arguments == ("key", "live")
    assert CommandMessage("x", 0.0, ()).command_object is None


@pytest.mark.parametrize(
    ("cls", "data", "message"),
    [
        (SetChunkSize, bytes.fromhex("80001000"), "most significant bit"),
        (SetChunkSize, bytes.fromhex("00000000"), "at least 1"),
        (SetChunkSize, bytes.fromhex("001000"), "4 bytes"),
        (WindowAckSize, b"", "4 bytes"),
        (SetPeerBandwidth, bytes.fromhex("002625a0 03"), "limit type 3"),
        (SetPeerBandwidth, bytes.fromhex("002625a0"), "5 bytes"),
        (UserControl, b"\x00", "event type"),
        (UserControl, bytes.fromhex("0006 0000"), "needs 4 bytes"),
        (UserControl, bytes.fromhex("0003 00000001"), "needs 8 bytes"),
        (CommandMessage, bytes.fromhex("02 0004 70696e67"), "transaction id"),
        (CommandMessage, bytes.fromhex("00 3ff0000000000000 00 3ff0000000000000"), "command name"),
        (AggregateMessage, bytes.fromhex("09 000010 000000 00 000000"), "runs past the end"),
        (AggregateMessage, bytes.fromhex("09 0000"), "truncated"),
    ],
)
def test_malformed_bodies_raise_remote_protocol_error(cls: type, data: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        cls.parse(data)  # type: ignore[attr-defined]


def test_aggregate_round_trip() -> None:
    """§7.1.6: FLV-tag-shaped sub-messages with back pointers; 32-bit timestamps split 24+8."""
    subs = (
        SubMessage(9, 0x01000010, 1, b"\x17\x01video"),
        SubMessage(8, 0x01000020, 1, b"\xaf\x01audio"),
    )
    data = bytes(AggregateMessage(subs))
    assert data[:11] == bytes.fromhex("09 000007 000010 01 000001")
    assert data[18:22] == (18).to_bytes(4, "big")
    assert AggregateMessage.parse(data).messages == subs
    assert bytes(AggregateMessage.parse(data)) == data


def fixture_messages(name: str) -> list[Message]:
    """Every message in a captured fixture (after the handshake), chunk sizes applied as the client set them."""
    data = (FIXTURES / name).read_bytes()[3073:]
    reader = ChunkReader(max_message_size=1 << 22, max_inflight_bytes=1 << 23)
    buf, messages = ReceiveBuffer(), []
    buf.feed(data)
    while (message := reader.next_message(buf)) is not None:
        if message.type_id == MessageType.SET_CHUNK_SIZE:
            reader.set_chunk_size(SetChunkSize.parse(message.payload).chunk_size)
        messages.append(message)
    assert len(buf) == 0
    return messages


_PARSERS = {
    MessageType.SET_CHUNK_SIZE: SetChunkSize,
    MessageType.WINDOW_ACK_SIZE: WindowAckSize,
    MessageType.USER_CONTROL: UserControl,
    MessageType.COMMAND_AMF0: CommandMessage,
    MessageType.DATA_AMF0: DataMessage,
}


@pytest.mark.parametrize("name", ["ffmpeg_publish.bin", "rtmpsink_publish.bin", "rtmp2sink_publish.bin"])
def test_captured_messages_round_trip(name: str) -> None:
    """aiortc-style: every control, command and data message a real client sent re-serializes byte for byte."""
    checked = 0
    for message in fixture_messages(name):
        parser = _PARSERS.get(message.type_id)
        if parser is not None:
            assert bytes(parser.parse(message.payload)) == message.payload
            checked += 1
    assert checked >= 7
