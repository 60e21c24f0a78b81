"""Test helpers for the RTMP core: a minimal *client* encoder, a ConnectionPair, and the three-way ``tr`` check.

The client side is written independently of the server code it tests (h11 ``tests/helpers.py``): its chunk
encoder picks header types the way librtmp/OBS do, and its digest handshake follows librtmp ``handshake.h``
(C1 digest, then verification of S1's digest and of S2's signature), so a bug cannot hide by being symmetric.
Only AMF0 encoding is shared with the core; ``test_amf0.py`` pins it against hand-written bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ingest_node.rtmp import Connection, Event, PublishRequested, amf0
from ingest_node.rtmp.buffer import ReceiveBuffer
from ingest_node.rtmp.chunks import ChunkReader, Message
from ingest_node.rtmp.messages import CommandMessage, MessageType

T = TypeVar("T")
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "rtmp"

# librtmp handshake.h: GenuineFPKey / GenuineFMSKey (typed again here on purpose, not imported from the core).
_TAIL = bytes.fromhex("F0EEC24A8068BEE82E00D0D1029E7E576EEC5D2D29806FAB93B8E636CFEB31AE")
GENUINE_FP_KEY = b"Genuine Adobe Flash Player 001" + _TAIL
GENUINE_FMS_KEY = b"Genuine Adobe Flash Media Server 001" + _TAIL

AAC_SEQUENCE_HEADER = bytes.fromhex("af00") + bytes.fromhex("1190")  # AAC-LC 48 kHz stereo ASC
AVC_SEQUENCE_HEADER = bytes.fromhex("1700000000") + bytes.fromhex("014d401effe1000a674d401eeca0a0fd0080000100046ebc80")
#: enhanced RTMP ExVideoTagHeader: IsExHeader | FrameType 1 (key) | PacketType 0 (SequenceStart), then the FourCC
EX_KEY_SEQUENCE_START = bytes((0x80 | 1 << 4 | 0,))
HEVC_SEQUENCE_START = EX_KEY_SEQUENCE_START + b"hvc1" + bytes.fromhex("01016000000090000000000078f000fcfdf8f800")
AV1_SEQUENCE_START = EX_KEY_SEQUENCE_START + b"av01" + bytes.fromhex("81000c000a0b00000042ab")


def avc_frame(keyframe: bool, cts: int = 0, size: int = 100) -> bytes:
    """An FLV AVC NALU tag body (FrameType/CodecID, AVCPacketType 1, composition time, one fake NAL unit)."""
    first = 0x17 if keyframe else 0x27
    return bytes((first, 1)) + cts.to_bytes(3, "big", signed=True) + size.to_bytes(4, "big") + bytes(size)


def aac_frame(size: int = 200) -> bytes:
    """An FLV AAC raw tag body."""
    return bytes((0xAF, 1)) + bytes(size)


# -- three-way parser check (h11 tests/test_io.py ``tr``) -------------------------------------------------------


def remaining(buf: ReceiveBuffer) -> bytes:
    """Everything left unread in ``buf``."""
    return buf.consume_at_most(len(buf))


def tr(make_reader: Callable[[], Callable[[ReceiveBuffer], T | None]], data: bytes, expected: T) -> None:
    """Check a streaming reader on the whole input, byte by byte, and with trailing data.

    ``make_reader`` returns a fresh stateful ``read(buf)`` for each run: it must return ``None`` until ``data`` is
    complete, then ``expected``, and it must leave bytes after ``data`` untouched.
    """
    read = make_reader()
    buf = ReceiveBuffer()
    buf.feed(data)
    assert read(buf) == expected
    assert remaining(buf) == b""

    read = make_reader()
    buf = ReceiveBuffer()
    for index in range(len(data)):
        buf.feed(data[index : index + 1])
        result = read(buf)
        if index < len(data) - 1:
            assert result is None, f"reader returned {result!r} after {index + 1} of {len(data)} bytes"
        else:
            assert result == expected

    trailing = b"\xc4\x00trailing"
    read = make_reader()
    buf = ReceiveBuffer()
    buf.feed(data + trailing)
    assert read(buf) == expected
    assert remaining(buf) == trailing


def feed_all(conn: Connection, data: bytes, pieces: Iterable[int] | None = None) -> list[Event]:
    """Feed ``data`` (whole, or in pieces of the given sizes), accepting every publish; return all events."""
    events: list[Event] = []
    sizes = iter(pieces) if pieces is not None else iter([len(data)])
    pos = 0
    while pos < len(data):
        size = max(1, next(sizes, len(data)))
        events += _accepting(conn, conn.receive_data(data[pos : pos + size]))
        pos += size
    return events


def _accepting(conn: Connection, events: list[Event]) -> list[Event]:
    out = list(events)
    for event in events:
        if isinstance(event, PublishRequested):
            conn.accept_publish(event.stream_id)
            out += _accepting(conn, conn.pending_events())
    return out


def random_pieces(seed: int, total: int, low: int = 1, high: int = 8192) -> list[int]:
    """Random read sizes adding up to at least ``total``."""
    rng = random.Random(seed)
    sizes, left = [], total
    while left > 0:
        sizes.append(rng.randint(low, high))
        left -= sizes[-1]
    return sizes


# -- a minimal RTMP client ----------------------------------------------------------------------------------


def _digest_offset(packet: bytes, base: int) -> int:
    return sum(packet[base : base + 4]) % 728 + base + 4


def _hmac(key: bytes, *parts: bytes) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.digest()


class ClientHandshake:
    """The client half of §5.2, plain or with librtmp's FP9 digest (``digest_base`` 8 or 772)."""

    def __init__(self, *, digest: bool = False, digest_base: int = 8, seed: int = 1) -> None:
        rng = random.Random(seed)
        version = bytes((9, 0, 124, 2)) if digest else bytes(4)
        c1 = bytearray(struct.pack(">I", 1234) + version + rng.randbytes(1528))
        self.digest_pos: int | None = None
        if digest:
            pos = _digest_offset(bytes(c1), digest_base)
            c1[pos : pos + 32] = _hmac(GENUINE_FP_KEY[:30], bytes(c1[:pos]), bytes(c1[pos + 32 :]))
            self.digest_pos = pos
        self.c1 = bytes(c1)

    @classmethod
    def from_c1(cls, c1: bytes, digest_pos: int | None) -> ClientHandshake:
        """Wrap a C1 captured from a real client."""
        handshake = cls()
        handshake.c1, handshake.digest_pos = bytes(c1), digest_pos
        return handshake

    def c0c1(self) -> bytes:
        return b"\x03" + self.c1

    def verify_server(self, s0s1s2: bytes) -> None:
        """librtmp ``HandShake``: S1 digest under either scheme, then S2 = HMAC(HMAC(FMS key, C1 digest), S2[:1504])."""
        assert s0s1s2[0] == 3
        s1, s2 = s0s1s2[1:1537], s0s1s2[1537:3073]
        if self.digest_pos is None:
            assert s2 == self.c1, "plain handshake: S2 must echo C1"
            return
        assert any(
            hmac.compare_digest(_hmac(GENUINE_FMS_KEY[:36], s1[:pos], s1[pos + 32 :]), s1[pos : pos + 32])
            for pos in (_digest_offset(s1, 772), _digest_offset(s1, 8))
        ), "Couldn't verify the server digest"
        key = _hmac(GENUINE_FMS_KEY, self.c1[self.digest_pos : self.digest_pos + 32])
        assert hmac.compare_digest(_hmac(key, s2[:1504]), s2[1504:]), "Server not genuine Adobe!"

    @staticmethod
    def c2(s0s1s2: bytes) -> bytes:
        return s0s1s2[1:1537]  # echo S1, as FFmpeg does when publishing


def basic_header(fmt: int, csid: int) -> bytes:
    if csid < 64:
        return bytes((fmt << 6 | csid,))
    if csid < 320:
        return bytes((fmt << 6, csid - 64))
    return bytes((fmt << 6 | 1, (csid - 64) & 0xFF, (csid - 64) >> 8))


@dataclass
class _Last:
    timestamp: int
    delta: int
    length: int
    type_id: int
    stream_id: int
    ext: bool
    ext_value: int


class ClientChunker:
    """Chunks messages the way librtmp (OBS) does: type 0 for a new chunk stream or message stream, type 1 when
    the length or type changes, type 2 when only the delta changes, type 3 otherwise; type 3 continuations.

    ``fmt`` forces a header type; ``ext_in_continuations=False`` omits the extended timestamp on type 3 chunks
    (a sender bug that the core tolerates).
    """

    def __init__(self, chunk_size: int = 128, *, ext_in_continuations: bool = True) -> None:
        self.chunk_size = chunk_size
        self.ext_in_continuations = ext_in_continuations
        self._last: dict[int, _Last] = {}

    def _choose(self, csid: int, type_id: int, stream_id: int, timestamp: int, length: int) -> tuple[int, int]:
        last = self._last.get(csid)
        if last is None or last.stream_id != stream_id or timestamp < last.timestamp:
            return 0, timestamp
        delta = timestamp - last.timestamp
        if last.length != length or last.type_id != type_id:
            return 1, delta
        return (2, delta) if delta != last.delta else (3, delta)

    def message(
        self, csid: int, type_id: int, stream_id: int, timestamp: int, payload: bytes, fmt: int | None = None
    ) -> bytes:
        chosen, delta = self._choose(csid, type_id, stream_id, timestamp, len(payload))
        fmt = chosen if fmt is None else fmt
        last = self._last.get(csid)
        head = basic_header(fmt, csid)
        if fmt == 3:  # §5.3.1.2.4: a new message with type 3 repeats the previous delta and extended field
            assert last is not None
            delta, ext, ext_value = last.delta, last.ext, last.ext_value
        else:
            field = timestamp if fmt == 0 else delta
            ext, ext_value = field >= 0xFFFFFF, field
            head += min(field, 0xFFFFFF).to_bytes(3, "big")
            if fmt <= 1:
                head += len(payload).to_bytes(3, "big") + bytes((type_id,))
            if fmt == 0:
                head += stream_id.to_bytes(4, "little")
                delta = timestamp
        ext_bytes = ext_value.to_bytes(4, "big") if ext else b""
        continuation = basic_header(3, csid) + (ext_bytes if self.ext_in_continuations else b"")
        out = [head + ext_bytes, payload[: self.chunk_size]]
        for start in range(self.chunk_size, len(payload), self.chunk_size):
            out += [continuation, payload[start : start + self.chunk_size]]
        self._last[csid] = _Last(timestamp, delta, len(payload), type_id, stream_id, ext, ext_value)
        return b"".join(out)


class Client:
    """Builds the byte stream an RTMP publisher sends."""

    def __init__(self, chunk_size: int = 128, **chunker: Any) -> None:
        self.chunker = ClientChunker(chunk_size, **chunker)

    def control(self, type_id: int, body: bytes, csid: int = 2) -> bytes:
        return self.chunker.message(csid, type_id, 0, 0, body)

    def set_chunk_size(self, size: int) -> bytes:
        data = self.control(MessageType.SET_CHUNK_SIZE, size.to_bytes(4, "big"))
        self.chunker.chunk_size = size
        return data

    def command(self, name: str, txn: float, *values: Any, csid: int = 3, stream_id: int = 0) -> bytes:
        return self.chunker.message(csid, MessageType.COMMAND_AMF0, stream_id, 0, amf0.encode(name, txn, *values))

    def data(self, *values: Any, csid: int = 4, stream_id: int = 1, timestamp: int = 0) -> bytes:
        return self.chunker.message(csid, MessageType.DATA_AMF0, stream_id, timestamp, amf0.encode(*values))

    def audio(self, timestamp: int, payload: bytes, csid: int = 4, stream_id: int = 1) -> bytes:
        return self.chunker.message(csid, MessageType.AUDIO, stream_id, timestamp, payload)

    def video(self, timestamp: int, payload: bytes, csid: int = 4, stream_id: int = 1) -> bytes:
        return self.chunker.message(csid, MessageType.VIDEO, stream_id, timestamp, payload)


OBS_CONNECT = {
    "app": "live",
    "type": "nonprivate",
    "supportsGoAway": True,
    "flashVer": "FMLE/3.0 (compatible; FMSc/1.0)",
    "swfUrl": "rtmp://127.0.0.1:1935/live",
    "tcUrl": "rtmp://127.0.0.1:1935/live",
}
OBS_METADATA = amf0.EcmaArray(
    duration=0.0,
    fileSize=0.0,
    width=1280.0,
    height=720.0,
    videocodecid=7.0,
    videodatarate=2500.0,
    framerate=30.0,
    audiocodecid=10.0,
    audiodatarate=160.0,
    audiosamplerate=48000.0,
    audiosamplesize=16.0,
    audiochannels=2.0,
    stereo=True,
    encoder="obs-output module (libobs version 29.0.2)",
)


@dataclass
class Reply:
    """One message the server sent, decoded."""

    type_id: int
    stream_id: int
    chunk_stream_id: int
    payload: bytes
    command: CommandMessage | None = None


class ConnectionPair:
    """A client byte encoder wired to a server ``Connection``; server output is decoded into :class:`Reply`."""

    def __init__(self, *, digest: bool = False, client_chunk_size: int = 128, **server: Any) -> None:
        server.setdefault("random_bytes", random.Random(7).randbytes)
        self.server = Connection(**server)
        self.client = Client(client_chunk_size)
        self.handshake = ClientHandshake(digest=digest)
        self._reader = ChunkReader(max_message_size=1 << 24, max_inflight_bytes=1 << 25)
        self._in = ReceiveBuffer()
        self._handshaken = False
        self.replies: list[Reply] = []

    def send(self, data: bytes, *, accept: bool = True) -> list[Event]:
        """Feed ``data`` to the server (accepting publishes unless told not to) and decode what it answers."""
        events = self.server.receive_data(data)
        if accept:
            events = _accepting(self.server, events)
        self._collect()
        return events

    def do_handshake(self) -> list[Event]:
        events = self.send(self.handshake.c0c1())
        s0s1s2 = self._server_bytes_for_handshake
        self.handshake.verify_server(s0s1s2)
        return events + self.send(self.handshake.c2(s0s1s2))

    def take_replies(self) -> list[Reply]:
        replies, self.replies = self.replies, []
        return replies

    def commands(self) -> list[CommandMessage]:
        return [reply.command for reply in self.take_replies() if reply.command is not None]

    def _collect(self) -> None:
        out = self.server.data_to_send()
        if not self._handshaken and out:
            assert len(out) >= 3073
            self._server_bytes_for_handshake, out = out[:3073], out[3073:]
            self._handshaken = True
        self._in.feed(out)
        while (message := self._reader.next_message(self._in)) is not None:
            self._record(message)

    def _record(self, message: Message) -> None:
        command = None
        if message.type_id == MessageType.SET_CHUNK_SIZE:
            self._reader.set_chunk_size(int.from_bytes(message.payload, "big"))
        elif message.type_id == MessageType.COMMAND_AMF0:
            command = CommandMessage.parse(message.payload)
        reply = Reply(message.type_id, message.stream_id, message.chunk_stream_id, message.payload, command)
        self.replies.append(reply)

    # -- canned publisher sequences -----------------------------------------------------------------------------

    def obs_publish(self, key: str = "testkey") -> list[Event]:
        """OBS.md: Set Chunk Size 4096 before connect; connect → (releaseStream, FCPublish, createStream) pipelined
        → publish on message stream 1 → @setDataFrame → AAC then AVC sequence headers, all on chunk stream 4."""
        c = self.client
        events = self.do_handshake()
        events += self.send(c.set_chunk_size(4096) + c.command("connect", 1, OBS_CONNECT))
        pipelined = c.command("releaseStream", 2, None, key)
        pipelined += c.command("FCPublish", 3, None, key) + c.command("createStream", 4, None)
        events += self.send(pipelined)
        events += self.send(c.command("publish", 5, None, key, "live", csid=4, stream_id=1))
        events += self.send(c.data("@setDataFrame", "onMetaData", OBS_METADATA))
        events += self.send(c.audio(0, AAC_SEQUENCE_HEADER) + c.video(0, AVC_SEQUENCE_HEADER))
        return events


KEY = "sekrit-stream-key"


def published_pair(**server: Any) -> ConnectionPair:
    """A pair past OBS's publish sequence (accepted), replies drained."""
    pair = ConnectionPair(**server)
    pair.obs_publish(KEY)
    pair.take_replies()
    return pair
