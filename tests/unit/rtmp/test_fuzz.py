"""Fuzzing the core (h11 ``fuzz/afl-server.py`` invariant): on any input the connection parses it or raises
``RemoteProtocolError`` -- never another exception -- whether fed whole or in pieces, and memory stays bounded."""

from __future__ import annotations

import os
import random
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest_node.rtmp import Connection, ConnectionClosed, RemoteProtocolError, VideoReceived, amf0
from ingest_node.rtmp.buffer import ReceiveBuffer
from ingest_node.rtmp.chunks import ChunkReader

from .helpers import FIXTURES, ClientHandshake, feed_all

_HANDSHAKE = ClientHandshake()
#: C0+C1 and a C2, so fuzzed bytes land on the chunk parser rather than the handshake
PREAMBLE = _HANDSHAKE.c0c1() + bytes(1536)
FFMPEG = (FIXTURES / "ffmpeg_publish.bin").read_bytes()
RTMPSINK = (FIXTURES / "rtmpsink_publish.bin").read_bytes()
#: RTMP_FUZZ_EXAMPLES=5000 for a long hunt; the default keeps the suite fast
FUZZ = settings(
    max_examples=int(os.environ.get("RTMP_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def survives(data: bytes, pieces: list[int] | None = None) -> None:
    """Feed ``data`` (then EOF); only RemoteProtocolError may escape."""
    conn = Connection(random_bytes=random.Random(0).randbytes)
    try:
        feed_all(conn, data, pieces)
        assert conn.receive_data(b"")[-1] == ConnectionClosed()
    except RemoteProtocolError:
        pass


@FUZZ
@given(st.binary(max_size=3000))
def test_random_chunk_stream_whole(garbage: bytes) -> None:
    survives(PREAMBLE + garbage)


@FUZZ
@given(st.binary(max_size=400))
def test_random_chunk_stream_byte_by_byte(garbage: bytes) -> None:
    data = PREAMBLE + garbage
    survives(data, [len(PREAMBLE)] + [1] * len(garbage))


@FUZZ
@given(st.binary(min_size=1, max_size=2000))
def test_random_handshake(garbage: bytes) -> None:
    survives(b"\x03" + garbage)


@st.composite
def mutated(draw: st.DrawFn, source: bytes, span: int) -> bytes:
    """``source`` cut to ~``span`` bytes with a few bytes flipped, inserted or deleted after the handshake."""
    data = bytearray(source[: draw(st.integers(3073, min(span, len(source))))])
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(3073, max(3073, len(data) - 1)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "max"]))
        if action == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif pos < len(data):
            data[pos] = 0xFF
    return bytes(data)


@FUZZ
@given(mutated(FFMPEG, 30_000), st.integers(0, 1000))
def test_mutated_ffmpeg_capture(data: bytes, seed: int) -> None:
    """FFmpeg's capture with a few corrupted bytes: fed whole, then in random pieces."""
    survives(data)
    rng = random.Random(seed)
    survives(data, [rng.randint(1, 700) for _ in range(len(data))])


@FUZZ
@given(mutated(RTMPSINK, 20_000))
def test_mutated_librtmp_capture(data: bytes) -> None:
    """librtmp's capture (128-byte chunks, everything on chunk stream 4) with corrupted bytes."""
    survives(data)


def test_every_truncation_of_a_capture_closes_cleanly() -> None:
    """A publisher can vanish after any byte: EOF then reports ConnectionClosed, never an error."""
    data = FFMPEG[:6000]
    for end in range(0, len(data), 7):
        conn = Connection()
        feed_all(conn, data[:end])
        assert conn.receive_data(b"")[-1] == ConnectionClosed()


def handshaken() -> Connection:
    conn = Connection()
    feed_all(conn, PREAMBLE)
    return conn


def test_oversized_announcement_is_refused_from_the_header() -> None:
    """The largest length a header can announce (24 bits, ~16 MiB) is refused from the 12 header bytes alone."""
    conn = handshaken()
    with pytest.raises(RemoteProtocolError, match="exceeds the 8388608-byte limit"):
        conn.receive_data(bytes.fromhex("06 000000 ffffff 09 01000000"))


def test_a_1_mib_command_costs_nothing_to_refuse() -> None:
    """A 1 MiB command of tiny AMF0 values, the costliest kind to decode, is refused from its header.

    Before the header cap it was buffered and decoded: ~0.4 s of CPU per message (the node's one event loop, so
    every stream on the node stalled). Now the refusal costs microseconds (the bound is loose for busy boxes).
    """
    body = amf0.encode("connect", 1.0, {"app": "live"}) + b"\x0a" + (1 << 20).to_bytes(4, "big") + b"\x05" * (1 << 20)
    message = bytes.fromhex("03 000000") + len(body).to_bytes(3, "big") + b"\x14" + bytes(4)
    conn = handshaken()
    started = time.process_time()
    with pytest.raises(RemoteProtocolError, match="command/data/control"):
        conn.receive_data(message + body[:65536])
    refused = time.process_time() - started
    assert refused < 0.02, f"refusing a 1 MiB command took {refused * 1000:.1f} ms of CPU"


def test_50_mb_while_paused_is_refused() -> None:
    """50 MB pushed at a connection whose publish is undecided stop being buffered at max_message_size."""
    conn = handshaken()
    conn.receive_data(_command(3, 0, "connect", 1.0, {"app": "x"}))
    conn.receive_data(_command(4, 1, "publish", 0.0, None, "k", "live"))
    assert conn.paused
    with pytest.raises(RemoteProtocolError, match="cannot be parsed yet"):
        for _ in range(50 * 16):
            conn.receive_data(bytes(65536))


def test_50_mb_of_media_does_not_accumulate() -> None:
    """50 x 1 MiB video messages in 64 KiB reads: each is handed out as it completes, nothing piles up."""
    conn = handshaken()
    conn.receive_data(bytes.fromhex("02 000000 000004 01 00000000 7fffffff"))
    conn.receive_data(_command(3, 0, "connect", 1.0, {"app": "x"}))
    conn.receive_data(_command(4, 1, "publish", 0.0, None, "k", "live"))
    conn.accept_publish(1)
    frame = bytes((0x17, 1)) + bytes(1024 * 1024 - 2)
    message = bytes.fromhex("06 000000 100000 09 01000000") + frame
    delivered = 0
    for index in range(50):
        for start in range(0, len(message), 65536):
            events = conn.receive_data(message[start : start + 65536])
            delivered += sum(isinstance(e, VideoReceived) and len(e.payload) == len(frame) for e in events)
            assert len(conn._buf) == 0
        assert delivered == index + 1
    assert conn._reader._inflight == 0


def test_many_chunk_streams_are_refused() -> None:
    """Cycling through chunk stream ids is refused past the limit (64)."""
    conn = handshaken()
    ack_window = bytes.fromhex("000000 000004 05 00000000 00001000")
    data = b"".join(bytes((0x01, n & 0xFF, n >> 8)) + ack_window for n in range(100))
    with pytest.raises(RemoteProtocolError, match="more than 64 chunk streams"):
        conn.receive_data(data)


def _command(csid: int, stream_id: int, *values: object) -> bytes:
    body = amf0.encode(*values)
    header = bytes((csid,)) + bytes(3) + len(body).to_bytes(3, "big") + b"\x14" + stream_id.to_bytes(4, "little")
    return header + body


_amf_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from(["live", "onMetaData", "@setDataFrame", "hvc1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_names = st.sampled_from(
    ["connect", "releaseStream", "FCPublish", "createStream", "publish", "FCUnpublish", "deleteStream"]
    + ["closeStream", "play", "play2", "_checkbw", "onStatus"]
)


@FUZZ
@given(
    st.lists(
        st.tuples(_names, st.floats(), st.lists(_amf_values, max_size=4), st.integers(0, 3), st.sampled_from([18, 20])),
        max_size=12,
    )
)
def test_random_commands_with_random_arguments(calls: list[tuple[str, float, list[object], int, int]]) -> None:
    """Well-framed command and data messages with arbitrary AMF0 arguments, in any order, on any stream."""
    big_chunks = bytes.fromhex("02 000000 000004 01 00000000 7fffffff")  # one chunk per message below
    data = PREAMBLE + big_chunks + _command(3, 0, "connect", 1.0, {"app": "live"})
    for name, txn, args, stream_id, type_id in calls:
        body = amf0.encode(name, txn, *args)
        header = b"\x03" + bytes(3) + len(body).to_bytes(3, "big") + bytes((type_id,)) + stream_id.to_bytes(4, "little")
        data += header + body
    survives(data)


def test_dribbled_message_costs_its_size_not_an_object_per_byte() -> None:
    """A 64 KiB message fed one byte per call keeps memory near 64 KiB (one growing buffer, not 65536
    little bytes objects, which would cost ~40x more)."""
    reader = ChunkReader(max_message_size=1 << 20, max_inflight_bytes=1 << 21)
    reader.set_chunk_size(1 << 20)
    buf = ReceiveBuffer()
    buf.feed(bytes.fromhex("06 000000 010000 09 01000000"))
    assert reader.next_message(buf) is None
    tracemalloc.start()
    for _ in range((1 << 16) - 1):
        buf.feed(b"\x01")
        assert reader.next_message(buf) is None
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert current < 200_000
    buf.feed(b"\x01")
    message = reader.next_message(buf)
    assert message is not None and message.payload == b"\x01" * (1 << 16)
