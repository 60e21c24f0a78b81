"""Live health on the ingest node: samples every few seconds, reported in ``health.json`` every few more.

The monitor runs on a fake clock; the broadcast test publishes real H.264 + AAC (ffmpeg lavfi) through the
in-process segmenter and reads the manifests a fake uploader stored, in the order they were queued.
"""

from __future__ import annotations

import itertools
import json

import pytest

from capturestream import keys
from capturestream.models import Channel, HealthManifestBody
from ingest_node.sessions.broadcast import Broadcast
from ingest_node.sessions.health import HealthMonitor
from ingest_node.sessions.stream_stats import StreamStats
from tests.unit.ingest.memory_storage import MemoryUploader
from tests.unit.media.support import FFMPEG, Tag, publish, read_flv, run

KEY = b"\x17\x01\x00\x00\x00" + b"\x00" * 995
INTER = b"\x27\x01\x00\x00\x00" + b"\x00" * 495


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _media(stats: StreamStats, start_ms: int, end_ms: int) -> None:
    for frame in range(start_ms * 30 // 1000, end_ms * 30 // 1000):
        stats.on_video(round(frame * 1000 / 30), KEY if frame % 60 == 0 else INTER)


def test_samples_every_five_seconds_and_reports_the_first_at_once_then_every_second_one() -> None:
    clock, stats = Clock(), StreamStats()
    monitor = HealthMonitor(clock=clock)
    due = []
    for second in range(1, 31):  # one tick per 1 s segment, media in step with the clock
        _media(stats, (second - 1) * 1000, second * 1000)
        clock.now += 1
        if monitor.tick(stats):
            due.append(second)
            samples = monitor.report()
    assert due == [5, 15, 25]
    assert len(samples) == 5 and monitor.pending  # the sample at 30 s waits for the next one
    assert [s.t for s in samples] == sorted(s.t for s in samples)
    assert all(s.t.microsecond % 1000 == 0 for s in samples)  # whole milliseconds: the sample's identity
    for sample in samples:
        assert sample.frame_rate == pytest.approx(30, rel=0.03)
        assert sample.keyframe_interval == 2.0
        assert sample.bitrate_kbps == pytest.approx((1000 + 59 * 500) * 8 / 2000, rel=0.03)


def test_keeps_the_last_minute_and_restarts_its_window_after_a_reconnect() -> None:
    clock, stats = Clock(), StreamStats()
    monitor = HealthMonitor(clock=clock, kept=3)
    for second in range(1, 26):
        _media(stats, (second - 1) * 1000, second * 1000)
        clock.now += 1
        monitor.tick(stats)
    assert len(monitor.report()) == 3
    stats.reset()  # a new publisher: timestamps from 0 again
    monitor.restart()
    _media(stats, 0, 4000)
    clock.now += 5
    monitor.tick(stats)
    newest = monitor.report()[-1]
    assert newest.frame_rate == pytest.approx(30, rel=0.03)  # not a negative span against the old timeline


def test_a_stalled_publisher_makes_no_sample() -> None:
    clock, stats = Clock(), StreamStats()
    monitor = HealthMonitor(clock=clock)
    _media(stats, 0, 5000)
    clock.now += 5
    assert monitor.tick(stats)
    assert len(monitor.report()) == 1
    clock.now += 10
    assert not monitor.tick(stats) and not monitor.pending  # nothing arrived since: no sample


# ---------------------------------------------------------------------------------------------- Broadcast


@pytest.fixture(scope="module")
def flv_gop2(tmp_path_factory: pytest.TempPathFactory) -> list[Tag]:
    """6 s of 320x240 30 fps H.264 with a keyframe every 2 s, and AAC, as FLV tags."""
    if FFMPEG is None:
        pytest.skip("ffmpeg not installed")
    path = tmp_path_factory.mktemp("health") / "gop2.flv"
    lavfi = ["-f", "lavfi", "-i", "testsrc2=s=320x240:r=30", "-f", "lavfi", "-i", "sine=frequency=440"]
    h264 = ["-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0"]
    result = run(
        [FFMPEG, "-hide_banner", "-v", "error", *lavfi, "-t", "6", *h264, "-c:a", "aac", "-f", "flv", str(path)]
    )
    assert result.returncode == 0, result.stderr
    return read_flv(path)


async def test_a_broadcast_reports_health_while_live_and_once_more_before_it_ends(flv_gop2: list[Tag]) -> None:
    """health.json is rewritten with the recent samples and lands before ended.json; a reconnect starts afresh."""
    uploader = MemoryUploader()
    channel, _ = Channel.create(name="health", owner="o")
    ticks = itertools.count(step=2.6)  # every segment (1 s of media) advances the clock 2.6 s: a sample each 2nd
    monitor = HealthMonitor(clock=lambda: next(ticks))
    broadcast = Broadcast(channel, uploader, segment_seconds=1.0, node_id="t", health=monitor)  # type: ignore[arg-type]
    await publish(broadcast, flv_gop2)
    broadcast.suspend()
    await broadcast.resume()  # OBS reconnects: the same media again, timestamps from 0
    await publish(broadcast, flv_gop2)
    await broadcast.end("test")

    health_key = keys.HealthManifest(playback_id=channel.playback_id, session_id=broadcast.session_id).key
    order = [key.rsplit("/", 1)[1] for key, _ in uploader.puts if key.startswith(keys.SESSIONS_PREFIX)]
    assert order[0] == "started.json" and order[-2:] == ["health.json", "ended.json"]
    versions = [HealthManifestBody.model_validate_json(body) for key, body in uploader.puts if key == health_key]
    assert len(versions) >= 2
    final = versions[-1]
    assert (final.playback_id, final.session_id, final.channel_id) == (
        channel.playback_id,
        broadcast.session_id,
        channel.channel_id,
    )
    assert final.media.video_codec and final.media.video_codec.startswith("avc1.")
    assert [s.t for s in final.samples] == sorted({s.t for s in final.samples})
    assert set(versions[0].samples) <= set(final.samples)  # each version repeats the earlier samples
    for sample in final.samples:
        assert sample.frame_rate == pytest.approx(30, rel=0.1)
        assert sample.keyframe_interval is not None and 1.9 <= sample.keyframe_interval <= 2.1
        assert sample.bitrate_kbps is not None and sample.bitrate_kbps > 50
    assert "started_at" not in json.loads(uploader.puts[-2][1])  # a health manifest, not a state manifest
