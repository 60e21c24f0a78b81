"""The chunk stream (RTMP 1.0 §5.3): header types, extended timestamps, interleaving, limits; reader and writer."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest_node.rtmp import RemoteProtocolError
from ingest_node.rtmp.buffer import ReceiveBuffer
from ingest_node.rtmp.chunks import ChunkReader, ChunkWriter, Message

from .helpers import ClientChunker, basic_header, remaining, tr

MB = 1024 * 1024


def new_reader(chunk_size: int = 128, **limits: int) -> ChunkReader:
    reader = ChunkReader(
        max_message_size=limits.get("max_message_size", 4 * MB),
        max_chunk_streams=limits.get("max_chunk_streams", 64),
        max_inflight_bytes=limits.get("max_inflight_bytes", 8 * MB),
    )
    reader.chunk_size = chunk_size
    return reader


def reads_messages(
    prefix: bytes = b"", chunk_size: int = 128
) -> Callable[[], Callable[[ReceiveBuffer], Message | None]]:
    """A ``tr`` reader factory: consume ``prefix`` messages first, then return the next message."""

    def make() -> Callable[[ReceiveBuffer], Message | None]:
        reader = new_reader(chunk_size)
        if prefix:
            buf = ReceiveBuffer()
            buf.feed(prefix)
            while reader.next_message(buf) is not None:
                pass
            assert len(buf) == 0
        return reader.next_message

    return make


def msg(type_id: int, stream_id: int, timestamp: int, payload: bytes, csid: int) -> Message:
    return Message(type_id, stream_id, timestamp, payload, csid)


# -- basic header forms (§5.3.1.1) ------------------------------------------------------------------------------


@pytest.mark.parametrize("csid", [2, 3, 63, 64, 319, 320, 65599])
def test_basic_header_forms(csid: int) -> None:
    """1-, 2- and 3-byte basic headers all address the right chunk stream, whole/byte by byte/trailing."""
    data = basic_header(0, csid) + bytes.fromhex("000064 000003 09 01000000") + b"abc"
    assert len(basic_header(0, csid)) == (1 if csid < 64 else 2 if csid < 320 else 3)
    tr(reads_messages(), data, msg(9, 1, 100, b"abc", csid))


# -- message header types (§5.3.1.2) -------------------------------------------------------------------------------

TYPE0_AUDIO = bytes.fromhex("04 0003e8 000020 08 01000000") + bytes(32)


def test_type0_header() -> None:
    """Type 0: absolute timestamp, length, type id, little-endian message stream id."""
    tr(reads_messages(), TYPE0_AUDIO, msg(8, 1, 1000, bytes(32), 4))


def test_type1_header_applies_delta_and_new_length() -> None:
    """Type 1: timestamp delta, length and type; the message stream id is inherited."""
    data = bytes.fromhex("44 000014 000004 09") + b"abcd"
    tr(reads_messages(TYPE0_AUDIO), data, msg(9, 1, 1020, b"abcd", 4))


def test_type2_header_applies_delta_only() -> None:
    """Type 2: delta only; length and type inherited."""
    data = bytes.fromhex("84 000014") + bytes(32)
    tr(reads_messages(TYPE0_AUDIO), data, msg(8, 1, 1020, bytes(32), 4))


def test_type3_after_type2_repeats_the_delta() -> None:
    """§5.3.2.1 Example 1: type 0 at 1000, type 2 +20, then type 3 chunks keep adding 20."""
    prefix = TYPE0_AUDIO + bytes.fromhex("84 000014") + bytes(32)
    tr(reads_messages(prefix), b"\xc4" + bytes(32), msg(8, 1, 1040, bytes(32), 4))


def test_type3_after_type0_uses_its_timestamp_as_delta() -> None:
    """§5.3.1.2.4: "If a Type 3 chunk follows a Type 0 chunk, then the timestamp delta for this Type 3 chunk is
    the same as the timestamp of the Type 0 chunk"."""
    tr(reads_messages(TYPE0_AUDIO), b"\xc4" + bytes(32), msg(8, 1, 2000, bytes(32), 4))


def test_message_split_into_chunks() -> None:
    """§5.3.2.2 Example 2: a 307-byte message in 128-byte chunks, continued with type 3 headers."""
    payload = bytes(range(256)) + bytes(51)
    data = bytes.fromhex("04 0003e8 000133 09 01000000") + payload[:128] + b"\xc4" + payload[128:256]
    data += b"\xc4" + payload[256:]
    tr(reads_messages(), data, msg(9, 1, 1000, payload, 4))


def test_zero_length_message() -> None:
    """A message of length 0 is complete with its header."""
    tr(reads_messages(), bytes.fromhex("03 000000 000000 14 00000000"), msg(20, 0, 0, b"", 3))


# -- extended timestamps (§5.3.1.3) --------------------------------------------------------------------------------


def test_extended_timestamp_type0() -> None:
    """A 0xFFFFFF timestamp field means the real 32-bit timestamp follows."""
    data = bytes.fromhex("04 ffffff 000002 08 01000000 12345678") + b"ab"
    tr(reads_messages(), data, msg(8, 1, 0x12345678, b"ab", 4))


def test_extended_timestamp_repeats_in_continuations() -> None:
    """Type 3 continuation chunks carry the extended timestamp again when the message's header did."""
    payload = bytes(200)
    data = bytes.fromhex("04 ffffff 0000c8 09 01000000 01000000") + payload[:128]
    data += bytes.fromhex("c4 01000000") + payload[128:]
    tr(reads_messages(), data, msg(9, 1, 0x01000000, payload, 4))


def test_omitted_extended_timestamp_in_continuation_is_tolerated() -> None:
    """A sender that omits the repeated extended timestamp on type 3 chunks still parses (SRS/nginx-rtmp)."""
    payload = bytes(range(200))
    data = bytes.fromhex("04 ffffff 0000c8 09 01000000 01000000") + payload[:128] + b"\xc4" + payload[128:]
    tr(reads_messages(), data, msg(9, 1, 0x01000000, payload, 4))


def test_extended_delta_type1_and_type3_new_message() -> None:
    """An extended *delta* (type 1) is added, and a following type 3 message adds it again."""
    prefix = bytes.fromhex("04 000010 000001 08 01000000") + b"a"
    first = bytes.fromhex("44 ffffff 000001 08 01000000") + b"b"
    tr(reads_messages(prefix), first, msg(8, 1, 0x10 + 0x01000000, b"b", 4))
    tr(reads_messages(prefix + first), bytes.fromhex("c4 01000000") + b"c", msg(8, 1, 0x10 + 0x02000000, b"c", 4))


def test_timestamps_wrap_at_32_bits_in_the_chunk_layer() -> None:
    """Chunk timestamps are serial numbers: the reader reports them mod 2**32 (the connection unwraps)."""
    prefix = bytes.fromhex("04 ffffff 000001 08 01000000 fffffff0") + b"a"
    tr(reads_messages(prefix), bytes.fromhex("44 000020 000001 08") + b"b", msg(8, 1, 0x10, b"b", 4))


# -- interleaving, chunk size, abort -------------------------------------------------------------------------------


def test_interleaved_chunk_streams() -> None:
    """Chunks of different chunk streams interleave; each message is reassembled on its own stream."""
    video, audio = bytes(range(200)), bytes(range(50, 90))
    data = bytes.fromhex("06 000000 0000c8 09 01000000") + video[:128]
    data += bytes.fromhex("04 000000 000028 08 01000000") + audio + b"\xc6" + video[128:]
    reader, buf = new_reader(), ReceiveBuffer()
    buf.feed(data)
    assert reader.next_message(buf) == msg(8, 1, 0, audio, 4)
    assert reader.next_message(buf) == msg(9, 1, 0, video, 6)
    assert reader.next_message(buf) is None


@pytest.mark.parametrize("chunk_size", [1, 128, 4096, 0x7FFFFFFF])
def test_any_chunk_size(chunk_size: int) -> None:
    """Chunk sizes from 1 to 2**31-1 (§5.4.1) reassemble; a huge size does not make the reader wait for it."""
    payload = bytes(range(256)) * 4
    data = ClientChunker(chunk_size).message(5, 9, 1, 40, payload)
    tr(reads_messages(chunk_size=chunk_size), data, msg(9, 1, 40, payload, 5))


def test_partial_chunk_data_is_consumed_as_it_arrives() -> None:
    """With a 2**31-1 chunk size the receive buffer never holds more than what was just fed."""
    reader, buf = new_reader(0x7FFFFFFF), ReceiveBuffer()
    buf.feed(bytes.fromhex("06 000000 100000 09 01000000"))  # a 1 MiB message in one chunk
    for _ in range(16):
        buf.feed(bytes(65536))
        assert reader.next_message(buf) in (None, msg(9, 1, 0, bytes(1 << 20), 6))
        assert len(buf) == 0


def test_abort_discards_partial_message() -> None:
    """§5.4.2 Abort: the partial message on that chunk stream is dropped; the next one starts fresh."""
    reader, buf = new_reader(), ReceiveBuffer()
    buf.feed(bytes.fromhex("06 000000 0000c8 09 01000000") + bytes(128))
    assert reader.next_message(buf) is None
    reader.abort(6)
    reader.abort(99)  # unknown chunk streams are ignored
    buf.feed(bytes.fromhex("06 000000 000002 09 01000000") + b"ok")
    assert reader.next_message(buf) == msg(9, 1, 0, b"ok", 6)


# -- refusals and limits --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("first", [0x44, 0x84, 0xC4])
def test_first_chunk_must_be_type0(first: int) -> None:
    """§5.3.1.2.1: type 0 "MUST be used at the start of a chunk stream"."""
    buf = ReceiveBuffer()
    buf.feed(bytes((first,)) + bytes(16))
    with pytest.raises(RemoteProtocolError, match="must start with type 0"):
        new_reader().next_message(buf)


def test_new_header_inside_a_message_is_refused() -> None:
    """Only type 3 may continue a message; a type 0-2 header in the middle of one is refused."""
    buf = ReceiveBuffer()
    buf.feed(bytes.fromhex("06 000000 0000c8 09 01000000") + bytes(128) + bytes.fromhex("46 000000 000001 09"))
    with pytest.raises(RemoteProtocolError, match="before its message was complete"):
        new_reader().next_message(buf)


def test_oversized_message_is_refused_from_its_header() -> None:
    """A header announcing more than max_message_size is refused before a payload byte is buffered."""
    buf = ReceiveBuffer()
    buf.feed(bytes.fromhex("06 000000 ffffff 09 01000000"))
    with pytest.raises(RemoteProtocolError, match="exceeds the 4194304-byte limit"):
        new_reader().next_message(buf)


def test_chunk_stream_count_is_bounded() -> None:
    """A peer cycling through chunk stream ids cannot grow per-stream state without bound."""
    reader, buf = new_reader(max_chunk_streams=4), ReceiveBuffer()
    for csid in range(2, 6):
        buf.feed(basic_header(0, csid) + bytes.fromhex("000000 000000 09 01000000"))
        assert reader.next_message(buf) is not None
    buf.feed(basic_header(0, 6) + bytes.fromhex("000000 000000 09 01000000"))
    with pytest.raises(RemoteProtocolError, match="more than 4 chunk streams"):
        reader.next_message(buf)


def test_inflight_bytes_are_bounded() -> None:
    """Many half-sent large messages on different chunk streams cannot add up past the in-flight limit."""
    reader, buf = new_reader(max_inflight_bytes=3 * MB), ReceiveBuffer()
    for csid in (4, 5):
        buf.feed(basic_header(0, csid) + bytes.fromhex("000000 180000 09 01000000") + bytes(128))
        assert reader.next_message(buf) is None
    buf.feed(basic_header(0, 6) + bytes.fromhex("000000 180000 09 01000000"))
    with pytest.raises(RemoteProtocolError, match="in flight"):
        reader.next_message(buf)


@pytest.mark.parametrize("size", [0, 0x80000000])
def test_bad_chunk_sizes_are_refused(size: int) -> None:
    with pytest.raises(RemoteProtocolError, match="Set Chunk Size"):
        new_reader().set_chunk_size(size)


# -- the writer ------------------------------------------------------------------------------------------------------


def test_writer_uses_type0_then_type3() -> None:
    """The writer starts each message with type 0 and continues with type 3 (§5.3.2.2)."""
    writer = ChunkWriter()
    data = writer.write(3, 20, 0, 0, bytes(300))
    assert data[:12] == bytes.fromhex("03 000000 00012c 14 00000000")
    assert data[12 + 128] == 0xC3 and data[12 + 128 + 1 + 128] == 0xC3
    assert len(data) == 12 + 300 + 2


def test_writer_extended_timestamp_in_every_chunk() -> None:
    writer = ChunkWriter()
    data = writer.write(400, 9, 1, 0x01020304, bytes(129))
    assert data[:3] == bytes((0x01, 0x50, 0x01)) and data[3:6] == b"\xff\xff\xff"
    assert data[14:18] == bytes.fromhex("01020304")
    assert data[18 + 128 : 18 + 128 + 7] == bytes((0xC1, 0x50, 0x01)) + bytes.fromhex("01020304")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([2, 3, 4, 6, 70, 400]),
            st.sampled_from([8, 9, 18, 20]),
            st.integers(0, 3),
            st.integers(0, 0xFFFFFFFF),
            st.binary(max_size=600),
        ),
        max_size=12,
    ),
    st.sampled_from([1, 7, 128, 4096]),
)
def test_writer_reader_round_trip(items: list[tuple[int, int, int, int, bytes]], chunk_size: int) -> None:
    """Whatever the server writes, a reader with the same chunk size reads back unchanged."""
    writer, reader, buf = ChunkWriter(), new_reader(chunk_size), ReceiveBuffer()
    writer.chunk_size = chunk_size
    for csid, type_id, stream_id, timestamp, payload in items:
        buf.feed(writer.write(csid, type_id, stream_id, timestamp, payload))
        assert reader.next_message(buf) == msg(type_id, stream_id, timestamp, payload, csid)
    assert remaining(buf) == b""


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([4, 5, 6]), st.sampled_from([8, 9]), st.integers(0, 40), st.binary(max_size=300)),
        min_size=1,
        max_size=15,
    ),
    st.sampled_from([1, 50, 128]),
    st.integers(1, 64),
)
def test_compressed_headers_from_a_librtmp_style_client(
    items: list[tuple[int, int, int, bytes]], chunk_size: int, piece: int
) -> None:
    """Type 0/1/2/3 headers chosen like librtmp, fed in pieces: same messages, timestamps exact."""
    chunker = ClientChunker(chunk_size)
    clocks: dict[int, int] = {}
    data, expected = b"", []
    for csid, type_id, step, payload in items:
        clocks[csid] = clocks.get(csid, 0) + step
        data += chunker.message(csid, type_id, 1, clocks[csid], payload)
        expected.append(msg(type_id, 1, clocks[csid], payload, csid))
    reader, buf, got = new_reader(chunk_size), ReceiveBuffer(), []
    for start in range(0, len(data), piece):
        buf.feed(data[start : start + piece])
        while (message := reader.next_message(buf)) is not None:
            got.append(message)
    assert got == expected
