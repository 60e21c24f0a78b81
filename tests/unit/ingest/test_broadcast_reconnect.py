"""What a reconnect leaves behind in a broadcast: measurements, the segment in progress, the playlist.

OBS restarts its RTMP timestamps at 0 on every new connection (``../shared/OBS.md``); the measured frame rate and
bitrate must be the new publisher's, not a mix of two timelines (a real OBS at 30 fps / 1.6 Mb/s was once reported
at 60–74 fps and 2.2–2.5x the bitrate after a resume).
"""

from __future__ import annotations

import asyncio

import pytest

from capturestream import keys
from capturestream.models import Channel, SessionManifestBody
from ingest_node.sessions.broadcast import Broadcast
from mediakit.hls import parse_media_playlist
from tests.unit.ingest.memory_storage import MemoryUploader
from tests.unit.media.support import FFMPEG, Tag, publish, read_flv, run

FPS = 30
KBPS = 1500 + 128  # video CBR + audio


@pytest.fixture(scope="module")
def flv_cbr(tmp_path_factory: pytest.TempPathFactory) -> list[Tag]:
    """8 s of 30 fps H.264 at 1.5 Mb/s CBR (1 s GOP) and 128 kb/s AAC, as FLV tags (timestamps from 0)."""
    if FFMPEG is None:
        pytest.skip("ffmpeg not installed")
    path = tmp_path_factory.mktemp("cbr") / "cbr.flv"
    lavfi = ["-f", "lavfi", "-i", f"testsrc2=s=640x360:r={FPS}", "-f", "lavfi", "-i", "sine=frequency=440"]
    cbr = [
        "-b:v",
        "1500k",
        "-minrate",
        "1500k",
        "-maxrate",
        "1500k",
        "-bufsize",
        "1500k",
        "-x264-params",
        "nal-hrd=cbr",
    ]
    h264 = ["-c:v", "libx264", "-preset", "veryfast", "-g", str(FPS), "-keyint_min", str(FPS), "-sc_threshold", "0"]
    result = run(
        [FFMPEG, "-hide_banner", "-v", "error", *lavfi, "-t", "8", *h264, *cbr, "-c:a", "aac", "-b:a", "128k",
         "-f", "flv", str(path)]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return read_flv(path)


def _manifests(uploader: MemoryUploader, name: str) -> list[SessionManifestBody]:
    return [SessionManifestBody.model_validate_json(body) for key, body in uploader.puts if key.endswith(name)]


async def test_measurements_after_timestamp_restarts_are_the_publishers_own(flv_cbr: list[Tag]) -> None:
    uploader = MemoryUploader()
    channel, _ = Channel.create(name="obs", owner="o")
    broadcast = Broadcast(channel, uploader, segment_seconds=1.0, node_id="t")  # type: ignore[arg-type]
    for _ in range(3):  # publish, drop, come back with timestamps from 0 — twice
        await publish(broadcast, flv_cbr)
        broadcast.suspend()
        await broadcast.dropped()
        await broadcast.resume()
    await publish(broadcast, flv_cbr)
    await broadcast.end("test")

    reconnecting, ended = _manifests(uploader, "reconnecting.json"), _manifests(uploader, "ended.json")
    assert len(reconnecting) == 3 and len(ended) == 1
    for manifest in [*reconnecting, *ended]:
        assert manifest.media.frame_rate == pytest.approx(FPS, rel=0.05)
        assert manifest.media.bitrate_kbps == pytest.approx(KBPS, rel=0.2)
        assert manifest.media.keyframe_interval == pytest.approx(1.0, abs=0.05)
    assert broadcast.stats.frame_rate == pytest.approx(FPS, rel=0.05)


async def test_a_drop_closes_the_segment_in_progress_at_once(flv_cbr: list[Tag]) -> None:
    """The media before a drop is queued for storage at the drop, not when the window ends or the publisher
    returns: 4.5 s published → 4 whole segments while live, the 5th (0.5 s) at the drop."""
    uploader = MemoryUploader()
    channel, _ = Channel.create(name="drop", owner="o")
    broadcast = Broadcast(channel, uploader, segment_seconds=1.0, node_id="t")  # type: ignore[arg-type]
    playlist_key = keys.LivePlaylist(playback_id=channel.playback_id, session_id=broadcast.session_id).key

    async def stored_playlist() -> str:
        for _ in range(100):
            await asyncio.sleep(0.01)  # let the upload worker store what was queued
            if broadcast.pending_uploads == 0:
                break
        return [body for key, body in uploader.puts if key == playlist_key][-1].decode()

    await publish(broadcast, [tag for tag in flv_cbr if tag.timestamp < 4500])
    live = parse_media_playlist(await stored_playlist())
    broadcast.suspend()
    await broadcast.dropped()
    dropped = parse_media_playlist(await stored_playlist())
    await broadcast.end("test")
    assert len(live.segments) == 4
    assert len(dropped.segments) == 5 and dropped.segments[-1].duration == pytest.approx(0.5, abs=0.05)
    assert not dropped.ended
