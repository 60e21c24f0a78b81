"""Measured stream health: frame rate, keyframe interval and bitrate from RTMP message bodies."""

from __future__ import annotations

import pytest

from ingest_node.sessions.stream_stats import StreamStats

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


def _publish(stats: StreamStats, start_ms: int, end_ms: int, *, fps: int = 30, gop: int = 60, kbps: int = 2400) -> None:
    """Video at ``fps`` with a keyframe every ``gop`` frames (counted from 0 ms), ``kbps`` of payload in total."""
    size = kbps * 1000 // 8 // fps
    for frame in range(start_ms * fps // 1000, end_ms * fps // 1000):
        body = AVC_KEY[:5] if frame % gop == 0 else AVC_INTER[:5]
        stats.on_video(round(frame * 1000 / fps), body + b"\x00" * (size - 5))


def test_a_window_measures_only_the_media_since_the_previous_one() -> None:
    stats = StreamStats()
    _publish(stats, 0, 5000, kbps=2400)
    first = stats.window(None)
    assert first is not None and first.until == 4967
    assert first.bitrate_kbps == pytest.approx(2400, rel=0.02)
    assert first.frame_rate == pytest.approx(30, rel=0.02)
    assert first.keyframe_interval == 2.0
    _publish(stats, 5000, 10000, kbps=600)  # the encoder drops its bitrate: the next window shows it alone
    second = stats.window(first.until)
    assert second is not None and second.bitrate_kbps == pytest.approx(600, rel=0.02)
    assert second.frame_rate == pytest.approx(30, rel=0.02)
    assert stats.window(second.until) is None  # nothing new since


def test_a_window_older_than_the_rolling_ten_seconds_is_clamped() -> None:
    stats = StreamStats()
    _publish(stats, 0, 30000, kbps=1000)
    window = stats.window(0)
    assert window is not None and window.bitrate_kbps == pytest.approx(1000, rel=0.02)


def test_keyframe_interval_of_a_window_is_the_latest_gap_or_the_wait_since_the_last_keyframe() -> None:
    stats = StreamStats()
    _publish(stats, 0, 3000, gop=30)  # 1 s GOP: the last keyframe at 2000 ms...
    assert stats.window(None).keyframe_interval == 1.0
    _publish(stats, 3000, 9000, gop=10_000)  # ...then the encoder stops sending keyframes
    window = stats.window(3000)
    assert window is not None and window.keyframe_interval == 6.967  # known to be at least that long already
    stats.on_video(9000, AVC_KEY)
    window = stats.window(window.until)
    assert window is not None and window.keyframe_interval == 7.0


def test_audio_only_windows_have_no_frame_rate_and_reset_forgets_the_old_timeline() -> None:
    stats = StreamStats()
    for ms in range(0, 5001, 20):
        stats.on_audio(ms, b"\xaf\x01" + b"\x00" * 318)  # 50 messages/s of 320 bytes = 128 kbps
    window = stats.window(None)
    assert window is not None and window.frame_rate is None and window.keyframe_interval is None
    assert window.bitrate_kbps == pytest.approx(128, rel=0.02)
    stats.reset()  # a reconnecting publisher starts its timestamps at 0 again
    assert stats.window(None) is None
    _publish(stats, 0, 2000, gop=30)
    assert (stats.keyframe_interval, stats.window(None).keyframe_interval) == (1.0, 1.0)
