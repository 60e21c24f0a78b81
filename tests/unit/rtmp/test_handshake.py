"""The server handshake (RTMP 1.0 §5.2), plain and Flash-era digest, verified the way librtmp verifies it."""

from __future__ import annotations

import random

import pytest

from ingest_node.rtmp import Connection, ConnectionState, HandshakeCompleted, LocalProtocolError, RemoteProtocolError
from ingest_node.rtmp.handshake import FP_KEY, Handshake, find_digest

from .helpers import FIXTURES, ClientHandshake


def server() -> Connection:
    return Connection(random_bytes=random.Random(3).randbytes)


def test_plain_handshake_echoes_c1() -> None:
    """§5.2.4: S2 echoes C1; S1 has the zero field; no digest is claimed."""
    client = ClientHandshake()
    conn = server()
    assert conn.receive_data(client.c0c1()) == []
    out = conn.data_to_send()
    assert len(out) == 1 + 1536 + 1536
    assert out[0] == 3 and out[5:9] == bytes(4)
    client.verify_server(out)
    assert conn.receive_data(client.c2(out)) == [HandshakeCompleted(digest=False)]
    assert conn.state is ConnectionState.AWAIT_CONNECT


@pytest.mark.parametrize("base", [8, 772], ids=["scheme0", "scheme1"])
def test_digest_handshake_satisfies_librtmp(base: int) -> None:
    """A digest C1 (either scheme) gets a digest S1 and a signed S2 that librtmp's checks accept."""
    client = ClientHandshake(digest=True, digest_base=base)
    conn = server()
    conn.receive_data(client.c0c1())
    out = conn.data_to_send()
    assert out[5:9] != bytes(4), "a digest S1 carries a non-zero server version"
    client.verify_server(out)
    assert conn.receive_data(client.c2(out)) == [HandshakeCompleted(digest=True)]


def test_known_good_vector_ffmpeg_c1() -> None:
    """FFmpeg's real C1 (captured, version 9.0.124.2) carries a scheme-0 digest at offset 494; we find it, and
    our S1/S2 pass librtmp's verification against it."""
    data = (FIXTURES / "ffmpeg_publish.bin").read_bytes()
    c1 = data[1:1537]
    assert tuple(c1[4:8]) == (9, 0, 124, 2)
    assert find_digest(c1, FP_KEY[:30]) == (0, 494)
    client = ClientHandshake.from_c1(c1, 494)
    conn = server()
    conn.receive_data(data[:1537])
    client.verify_server(conn.data_to_send())


def test_librtmp_c1_is_plain() -> None:
    """GStreamer's rtmpsink (librtmp 2.4) sends a plain C1 for rtmp:// URLs: version 0, no digest."""
    c1 = (FIXTURES / "rtmpsink_publish.bin").read_bytes()[1:1537]
    assert c1[4:8] == bytes(4)
    assert find_digest(c1, FP_KEY[:30]) is None


def test_version_without_valid_digest_falls_back_to_plain() -> None:
    """A non-zero version with no verifiable digest gets the plain echo (nginx-rtmp "digest not found")."""
    client = ClientHandshake()
    client.c1 = client.c1[:4] + bytes((10, 0, 45, 2)) + client.c1[8:]
    conn = server()
    conn.receive_data(client.c0c1())
    out = conn.data_to_send()
    assert out[1537:] == client.c1
    assert conn.receive_data(out[1:1537]) == [HandshakeCompleted(digest=False)]


def test_handshake_byte_by_byte() -> None:
    """Nothing is answered before C1 is complete; HandshakeCompleted appears only with C2's last byte."""
    client = ClientHandshake(digest=True)
    conn = server()
    for byte in client.c0c1()[:-1]:
        assert conn.receive_data(bytes((byte,))) == []
        assert conn.data_to_send() == b""
    conn.receive_data(client.c0c1()[-1:])
    out = conn.data_to_send()
    client.verify_server(out)
    c2 = client.c2(out)
    for byte in c2[:-1]:
        assert conn.receive_data(bytes((byte,))) == []
    assert conn.receive_data(c2[-1:]) == [HandshakeCompleted(digest=True)]


def test_handshake_with_trailing_data() -> None:
    """Bytes after C2 (the start of the chunk stream) are kept for the chunk parser, not eaten."""
    client = ClientHandshake()
    conn = server()
    conn.receive_data(client.c0c1())
    c2 = client.c2(conn.data_to_send())
    partial_chunk = bytes.fromhex("02 000000 000004 01")  # a Set Chunk Size header without its body
    assert conn.receive_data(c2 + partial_chunk) == [HandshakeCompleted(digest=False)]
    assert conn.receive_data(bytes.fromhex("00 00 10 00")) == []  # the body completes the message


@pytest.mark.parametrize("first", [ord("G"), ord("P"), 32, 255])
def test_non_rtmp_first_byte_is_refused_at_once(first: int) -> None:
    """§5.2.2: "Values 32-255 are not allowed, to make it possible to distinguish RTMP from text-based
    protocols" -- refused on the first byte, before 1537 bytes are buffered."""
    conn = server()
    with pytest.raises(RemoteProtocolError, match="not an RTMP handshake"):
        conn.receive_data(bytes((first,)))
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"more")


@pytest.mark.parametrize("version", [6, 8, 9])
def test_rtmpe_is_refused(version: int) -> None:
    """Encrypted RTMP (RTMPE) handshake types are refused by name."""
    with pytest.raises(RemoteProtocolError, match="RTMPE"):
        server().receive_data(bytes((version,)) + bytes(1536))


def test_unknown_low_version_is_answered_with_3() -> None:
    """§5.2.2: "A server that does not recognize the client's requested version SHOULD respond with 3"."""
    conn = server()
    conn.receive_data(b"\x01" + bytes(1536))
    assert conn.data_to_send()[0] == 3


def test_handshake_object_is_deterministic_with_injected_randomness() -> None:
    """Same randomness, same answer: the S1/S2 bytes are reproducible in tests."""
    c0c1 = ClientHandshake(digest=True).c0c1()
    one = Handshake(random_bytes=random.Random(1).randbytes).receive_c0c1(c0c1)
    two = Handshake(random_bytes=random.Random(1).randbytes).receive_c0c1(c0c1)
    assert one == two and len(one) == 3073
