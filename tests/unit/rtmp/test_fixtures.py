"""Replays of real publishers (captured with ``scripts/capture_rtmp.py``): FFmpeg, GStreamer rtmpsink (librtmp,
the RTMP family OBS uses) and GStreamer rtmp2sink, each ~2 s of 320x240@15 H.264 + AAC to ``/live/testkey``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache

import pytest

from ingest_node.rtmp import (
    AudioReceived,
    Connection,
    ConnectionClosed,
    ConnectRequested,
    Event,
    HandshakeCompleted,
    MetadataReceived,
    PublishRequested,
    UnpublishRequested,
    VideoReceived,
)

from .helpers import FIXTURES, feed_all, random_pieces


@dataclass(frozen=True)
class Capture:
    name: str
    digest: bool
    flash_ver: str | None
    audio: int
    video: int
    metadata: int


CAPTURES = [
    Capture("ffmpeg", digest=True, flash_ver="FMLE/3.0 (compatible; Lavf59.27.100)", audio=89, video=32, metadata=1),
    Capture("rtmpsink", digest=False, flash_ver=None, audio=88, video=32, metadata=16),
    Capture("rtmp2sink", digest=False, flash_ver="LNX 10,0,32,18", audio=88, video=32, metadata=16),
]
IDS = [capture.name for capture in CAPTURES]


@cache
def fixture_bytes(name: str) -> bytes:
    data = (FIXTURES / f"{name}_publish.bin").read_bytes()
    assert len(data) < 300_000
    return data


def replay(name: str, pieces: list[int] | None = None) -> list[Event]:
    conn = Connection()
    events = feed_all(conn, fixture_bytes(name), pieces)
    return events + conn.receive_data(b"")


@cache
def whole_events(name: str) -> tuple[Event, ...]:
    return tuple(replay(name))


def of_type(events: tuple[Event, ...], kind: type) -> list:  # type: ignore[type-arg]
    return [event for event in events if isinstance(event, kind)]


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_session_shape(capture: Capture) -> None:
    """Handshake (digest only for FFmpeg), connect to app "live", publish "testkey", metadata, media, one clean
    unpublish, then ConnectionClosed -- in that order."""
    events = whole_events(capture.name)
    assert events[0] == HandshakeCompleted(digest=capture.digest)
    connect = events[1]
    assert isinstance(connect, ConnectRequested)
    assert connect.app == "live" and connect.flash_ver == capture.flash_ver
    assert connect.tc_url is not None and connect.tc_url.endswith("/live")
    assert events[2] == PublishRequested(stream_id=1, stream_key="testkey", publish_type="live", app="live")
    assert isinstance(events[3], MetadataReceived)
    assert events[-2:] == (UnpublishRequested(stream_id=1, reason="FCUnpublish"), ConnectionClosed())
    assert len(of_type(events, UnpublishRequested)) == 1


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_metadata(capture: Capture) -> None:
    """``@setDataFrame onMetaData`` carries the picture size (flvmux re-sends it as tags change)."""
    metadata = of_type(whole_events(capture.name), MetadataReceived)
    assert len(metadata) == capture.metadata
    assert metadata[0].metadata["width"] == 320.0 and metadata[0].metadata["height"] == 240.0
    assert metadata[0].metadata["videocodecid"] == 7.0 and metadata[0].metadata["audiocodecid"] == 10.0


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_sequence_headers_come_first(capture: Capture) -> None:
    """The first audio message is the AAC sequence header and the first video message the AVC one, both before
    any coded frame (FLV: SoundFormat 10 + AACPacketType 0; CodecID 7 + AVCPacketType 0); every client ends
    with an AVC end-of-sequence (AVCPacketType 2), passed through like any other tag body."""
    events = whole_events(capture.name)
    media = [e for e in events if isinstance(e, AudioReceived | VideoReceived)]
    audio = [e for e in media if isinstance(e, AudioReceived)]
    video = [e for e in media if isinstance(e, VideoReceived)]
    assert audio[0].payload[0] >> 4 == 10 and audio[0].payload[1] == 0
    assert video[0].payload[0] == 0x17 and video[0].payload[1] == 0
    assert media.index(audio[0]) < 2 and media.index(video[0]) < 2
    assert all(e.payload[1] == 1 for e in media[2:] if e is not video[-1]), "only coded frames in between"
    assert video[-1].payload[:2] == b"\x17\x02"
    assert video[1].payload[0] == 0x17, "the first coded frame is a keyframe"


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_media_counts_and_timestamps(capture: Capture) -> None:
    """Every audio/video message arrives, each track's timestamps never decrease, and they span ~2 s."""
    events = whole_events(capture.name)
    audio, video = of_type(events, AudioReceived), of_type(events, VideoReceived)
    assert (len(audio), len(video)) == (capture.audio, capture.video)
    for track in (audio, video):
        stamps = [e.timestamp for e in track]
        assert stamps == sorted(stamps)
        assert 1800 <= stamps[-1] <= 2300
    assert all(e.stream_id == 1 for e in audio + video)


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
@pytest.mark.parametrize("seed", [1, 2])
def test_random_pieces_give_the_same_events(capture: Capture, seed: int) -> None:
    """Replaying in random read sizes (1 byte to 8 KiB) yields exactly the events of the whole replay."""
    pieces = random_pieces(seed, len(fixture_bytes(capture.name)))
    assert tuple(replay(capture.name, pieces)) == whole_events(capture.name)


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_byte_by_byte_gives_the_same_events(capture: Capture) -> None:
    """One byte per receive_data call: same events (the parser never needs more than it has)."""
    data = fixture_bytes(capture.name)
    assert tuple(replay(capture.name, [1] * len(data))) == whole_events(capture.name)


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_server_answers_the_whole_dialogue(capture: Capture) -> None:
    """What the core queued during a replay contains S0/S1/S2 and every reply the client waited for."""
    conn = Connection()
    feed_all(conn, fixture_bytes(capture.name))
    out = conn.data_to_send()
    assert out[0] == 3
    for needle in (b"NetConnection.Connect.Success", b"_result", b"NetStream.Publish.Start"):
        assert needle in out


def test_parsing_throughput_floor() -> None:
    """A guard against accidental quadratic parsing: the largest capture parses at well over 5 MB/s
    (about 75 MB/s on the reference machine, whole buffer and 4 KiB reads alike)."""
    data = fixture_bytes("rtmpsink")
    for pieces in (None, [4096] * (len(data) // 4096 + 1)):
        start = time.perf_counter()
        feed_all(Connection(), data, pieces)
        assert len(data) / (time.perf_counter() - start) > 5e6
