"""Measured stream health: frame rate, keyframe interval and bitrate from RTMP message bodies."""

from __future__ import annotations

import pytest

from ingest_node.stream_stats import StreamStats

AVC_SEQ = b"\x17\x00\x00\x00\x00" + b"\x01" * 20
AVC_KEY = b"\x17\x01\x00\x00\x00" + b"\x00" * 995
AVC_INTER = b"\x27\x01\x00\x00\x00" + b"\x00" * 495
HEVC_EXT_KEY = bytes([0x80 | 0x10 | 1]) + b"hvc1" + b"\x00" * 995  # enhanced: keyframe, CodedFrames
HEVC_EXT_SEQ = bytes([0x80 | 0x10 | 0]) + b"hvc1" + b"\x00" * 30  # enhanced: SequenceStart


@pytest.mark.parametrize(("gop", "fps"), [(30, 30), (60, 30), (120, 60)])
def test_keyframe_interval_and_frame_rate(gop: int, fps: int) -> None:
    stats = StreamStats()
    stats.on_video(0, AVC_SEQ)
    for frame in range(fps * 6):
        stats.on_video(round(frame * 1000 / fps), AVC_KEY if frame % gop == 0 else AVC_INTER)
    assert stats.keyframe_interval == pytest.approx(gop / fps, abs=0.02)
    assert stats.frame_rate == pytest.approx(fps, rel=0.02)


def test_enhanced_rtmp_headers_are_understood() -> None:
    stats = StreamStats()
    stats.on_video(0, HEVC_EXT_SEQ)
    for frame in range(90):
        stats.on_video(frame * 33, HEVC_EXT_KEY if frame % 30 == 0 else bytes([0x80 | 0x20 | 1]) + b"hvc1" + b"x")
    assert stats.keyframe_interval == pytest.approx(0.99, abs=0.01)


def test_bitrate_counts_audio_and_video() -> None:
    stats = StreamStats()
    for ms in range(0, 5001, 100):  # 10 messages/s of 1000 + 500 bytes = 15 kB/s = 120 kbps
        stats.on_video(ms, b"\x27\x01" + b"\x00" * 998)
        stats.on_audio(ms, b"\xaf\x01" + b"\x00" * 498)
    assert stats.bitrate_kbps == pytest.approx(120, rel=0.05)


def test_nothing_measured_yet() -> None:
    stats = StreamStats()
    assert (stats.bitrate_kbps, stats.frame_rate, stats.keyframe_interval) == (None, None, None)
    stats.on_video(0, AVC_SEQ)  # a sequence header is not a frame
    assert stats.frame_rate is None and stats.keyframe_interval is None
