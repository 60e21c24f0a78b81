"""Low-latency playback from the node, end to end (issue 11 items 6 and 7): a real ffmpeg publisher over RTMP into
an in-process node (RtmpServer + SessionRegistry + Uploader against the moto server, the PlaybackHub observing,
NodeHttp serving), read by real HTTP and WebSocket clients (aiohttp), checked with ffprobe/ffmpeg and the
Prometheus text parser.

The publisher's GOP is 2 s, so a viewer without the GOP cache would wait up to 2 s for its first picture.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiobotocore.session import get_session
from prometheus_client.parser import text_string_to_metric_families

from ingest_node.http_app import NodeHttp
from ingest_node.playback.gop_cache import Role, classify
from ingest_node.playback.hub import PlaybackHub
from ingest_node.publishers.rtmp_server import ConnectionLimits, RtmpServer
from ingest_node.publishers.stream_keys import StreamKeyChecker
from ingest_node.sessions.registry import SessionRegistry
from ingest_node.storage.uploader import Uploader
from mediakit.cmaf.flv import FileTag, FlvReader
from mediakit.hls import parse_media_playlist
from tests.integration.node_support import BUCKET, TABLE, PublishTarget
from tests.support.waiting import eventually

FFMPEG, FFPROBE = shutil.which("ffmpeg"), shutil.which("ffprobe")
pytestmark = pytest.mark.skipif(FFMPEG is None or FFPROBE is None, reason="needs ffmpeg and ffprobe")
FPS = 30
#: Parsed ``/metrics``: family name → its one label's value ("" without labels) → sample value.
Metrics = dict[str, dict[str, float]]


@dataclass
class Node:
    rtmp_url: str
    http: str
    playback_id: str
    hub: PlaybackHub


@pytest.fixture
async def node(publish_target: PublishTarget) -> AsyncIterator[Node]:
    async with Uploader(BUCKET) as uploader, get_session().create_client("dynamodb") as ddb:
        hub = PlaybackHub(segment_seconds=1.0)
        registry = SessionRegistry(uploader, reconnect_window=0, segment_seconds=1.0, node_id="test", observer=hub)
        server = RtmpServer(registry, StreamKeyChecker(ddb, TABLE), limits=ConnectionLimits(idle_timeout=5))
        http = NodeHttp(hub=hub)
        port = await server.start("127.0.0.1", 0)
        http_port = await http.start("127.0.0.1", 0)
        yield Node(
            f"rtmp://127.0.0.1:{port}/live/{publish_target.key}",
            f"http://127.0.0.1:{http_port}",
            publish_target.channel.playback_id,
            hub,
        )
        await server.close()
        await registry.close()
        await http.close()


async def _publish(url: str, seconds: float) -> asyncio.subprocess.Process:
    """ffmpeg as OBS: real-time 320x240 30 fps H.264 with a keyframe every 2 s + AAC, to the node over RTMP."""
    argv = [FFMPEG, "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"testsrc2=size=320x240:rate={FPS}", "-f", "lavfi", "-i", "sine=sample_rate=48000",
            "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast",
            "-g", str(2 * FPS), "-keyint_min", str(2 * FPS), "-sc_threshold", "0",
            "-c:a", "aac", "-f", "flv", url]  # fmt: skip
    return await asyncio.create_subprocess_exec(*argv)  # type: ignore[arg-type]


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
    await process.wait()


def _probe(data: bytes, folder: Path) -> dict[str, dict]:
    path = folder / "viewer.flv"
    path.write_bytes(data)
    argv = [FFPROBE, "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(path)]
    result = subprocess.run(argv, capture_output=True, text=True, check=True)  # type: ignore[list-item]
    assert result.stderr == "", result.stderr
    return {s["codec_type"]: s for s in json.loads(result.stdout)["streams"]}


def _first_keyframe(tags: list[FileTag]) -> FileTag | None:
    return next((t for t in tags if t.kind == 9 and classify(9, t.body) is Role.KEYFRAME), None)


def _media_seconds(tags: list[FileTag]) -> float:
    video = [t.timestamp for t in tags if t.kind == 9]
    return (max(video) - min(video)) / 1000 if video else 0.0


async def test_http_flv_starts_on_a_keyframe_at_once_and_ends_with_the_broadcast(node: Node, tmp_path: Path) -> None:
    publisher = await _publish(node.rtmp_url, 7)
    try:
        await eventually(lambda: node.hub.flv(node.playback_id), timeout=10)
        await asyncio.sleep(2.7)  # mid-GOP: the last keyframe was ~0.7 s ago, the next is ~1.3 s away
        url = f"{node.http}/live/{node.playback_id}.flv"
        async with aiohttp.ClientSession() as http:
            started = time.monotonic()
            async with http.get(url) as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "video/x-flv"
                assert response.headers["Access-Control-Allow-Origin"] == "*"
                assert "no-cache" in response.headers["Cache-Control"]
                reader, data, tags = FlvReader(), bytearray(), []
                keyframe_after = None
                async for chunk in response.content.iter_any():
                    data += chunk
                    tags += reader.feed(chunk)
                    if keyframe_after is None and _first_keyframe(tags) is not None:
                        keyframe_after = time.monotonic() - started
                ended_after = time.monotonic() - started
        assert keyframe_after is not None and keyframe_after < 1.0, keyframe_after
        print(f"HTTP-FLV: first keyframe {keyframe_after * 1000:.0f} ms after the request (2 s GOP)")
        assert tags[0].kind == 18 and [classify(t.kind, t.body) for t in tags[1:3]] == [Role.SEQUENCE_HEADER] * 2
        assert _first_keyframe(tags) is next(t for t in tags if t.kind == 9 and t.body[1] == 1)  # GOP cache first
        assert await asyncio.wait_for(publisher.wait(), 15) == 0
        assert ended_after < 7 + 3, "the response ends when the broadcast does"
        streams = _probe(bytes(data), tmp_path)
        seconds = _media_seconds(tags)
        assert seconds > 3.5, seconds
        assert int(streams["video"]["nb_read_frames"]) >= int(seconds * FPS) - 2
        assert int(streams["audio"]["nb_read_frames"]) > 0
    finally:
        await _stop(publisher)
    async with aiohttp.ClientSession() as http, http.get(f"{node.http}/live/{node.playback_id}.flv") as gone:
        assert gone.status == 404 and gone.headers["Access-Control-Allow-Origin"] == "*"


async def test_ws_flv_sends_flv_bytes_as_binary_messages(node: Node, tmp_path: Path) -> None:
    publisher = await _publish(node.rtmp_url, 6)
    try:
        await eventually(lambda: node.hub.flv(node.playback_id), timeout=10)
        await asyncio.sleep(1.5)
        url = f"{node.http.replace('http', 'ws')}/live/{node.playback_id}.flv"
        reader, data, tags = FlvReader(), bytearray(), []
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            started = time.monotonic()
            while time.monotonic() - started < 2.5:
                message = await ws.receive(timeout=5)
                assert message.type is aiohttp.WSMsgType.BINARY, message
                data += message.data
                tags += reader.feed(message.data)
        assert data[:3] == b"FLV" and _first_keyframe(tags) is not None
        assert node.hub.flv_viewers == 0 or await eventually(lambda: node.hub.flv_viewers == 0)  # it left
        streams = _probe(bytes(data), tmp_path)
        assert int(streams["video"]["nb_read_frames"]) >= int(_media_seconds(tags) * FPS) - 2 > 40
    finally:
        await _stop(publisher)


async def test_ll_hls_blocking_reload_and_ffmpeg_reads_it(node: Node) -> None:
    publisher = await _publish(node.rtmp_url, 10)
    base = f"{node.http}/live/{node.playback_id}"
    try:
        await eventually(lambda: node.hub.ll_hls(node.playback_id), timeout=10)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/ll.m3u8") as response:
                assert response.status == 200 and response.headers["Access-Control-Allow-Origin"] == "*"
                assert response.headers["Content-Type"].startswith("application/vnd.apple.mpegurl")
                text = await response.text()
            hint = parse_media_playlist(text).preload_hint
            assert hint is not None and "#EXT-X-PART-INF:PART-TARGET=" in text
            msn, part = (int(n) for n in hint.rsplit("_", 1)[1].removesuffix(".m4s").split("."))
            started = time.monotonic()
            async with http.get(f"{base}/ll.m3u8", params={"_HLS_msn": msn, "_HLS_part": part}) as response:
                blocked = await response.text()
            waited = time.monotonic() - started
            assert response.status == 200 and waited < 1.0, waited  # a part is ~0.25 s (one frame more at most)
            assert hint in blocked or f"seg_{msn}.m4s" in blocked
            async with http.get(f"{base}/{hint}") as response:  # complete by now: served from memory
                assert response.status == 200 and (await response.read())[4:8] in (b"styp", b"moof")
            async with http.get(f"{base}/ll.m3u8", params={"_HLS_msn": msn + 5}) as response:
                assert response.status == 400
            async with http.get(f"{base}/ll.m3u8", params={"_HLS_part": 1}) as response:
                assert response.status == 400
            for sequence in range(3):  # ffmpeg reads whole segments only (no EXT-X-PART): let it find some
                async with http.get(f"{base}/ll.m3u8", params={"_HLS_msn": sequence}) as response:
                    assert response.status == 200
        print(f"LL-HLS blocking reload for the hinted part returned after {waited * 1000:.0f} ms")
        argv = [FFMPEG, "-hide_banner", "-v", "warning", "-i", f"{base}/ll.m3u8", "-t", "3", "-f", "null", "-"]
        reading = await asyncio.create_subprocess_exec(*argv, stderr=asyncio.subprocess.PIPE)  # type: ignore[arg-type]
        _, stderr = await asyncio.wait_for(reading.communicate(), 20)
        assert reading.returncode == 0 and stderr.decode().strip() == "", stderr.decode()
    finally:
        await _stop(publisher)


async def test_metrics_and_healthz(node: Node) -> None:
    """``/metrics`` parsed with the Prometheus text parser while a real publisher streams and one viewer of each
    kind watches: active streams, the measured ingest bitrate, FLV viewers by protocol, held LL-HLS reloads; all
    back to 0 once the broadcast ended and the viewers left."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{node.http}/healthz") as response:
            assert response.status == 200
        publisher = await _publish(node.rtmp_url, 6)
        viewers: list[asyncio.Task[None]] = []
        try:
            await eventually(lambda: node.hub.ll_hls(node.playback_id), timeout=10)
            await asyncio.sleep(1.0)  # a second of media: the bitrate window has something to measure
            base = f"{node.http}/live/{node.playback_id}"
            viewers = [
                asyncio.create_task(_read_flv(http, f"{base}.flv")),
                asyncio.create_task(_read_ws_flv(http, f"{base.replace('http', 'ws', 1)}.flv")),
                asyncio.create_task(_hold_ll_hls_reload(http, base)),
            ]
            during = await _scrape_until(
                http,
                node.http,
                lambda seen: (
                    seen["capturestream_ingest_playback_viewers"] == {"http_flv": 1, "ws_flv": 1}
                    and seen["capturestream_ingest_ll_hls_blocking_requests"][""] == 1
                ),
            )
        finally:
            await _stop(publisher)
        assert during["capturestream_ingest_active_streams"]["live"] == 1
        bitrate = during["capturestream_ingest_bitrate_bits_per_second"][""]
        assert 100_000 < bitrate < 10_000_000, bitrate  # 320x240 x264 ultrafast + AAC
        print(f"/metrics ingest bitrate while live: {bitrate / 1000:.0f} kbit/s")
        assert "capturestream_ingest_upload_latency_seconds" in during
        received = during["capturestream_ingest_received_bytes"][""]  # a counter: parsed without its _total
        assert received > bitrate / 8, received  # more than a second of media arrived
        await asyncio.wait_for(asyncio.gather(*viewers, return_exceptions=True), 10)  # they end with the broadcast
        after = await _scrape_until(
            http, node.http, lambda seen: seen["capturestream_ingest_playback_viewers"] == {"http_flv": 0, "ws_flv": 0}
        )
    assert after["capturestream_ingest_bitrate_bits_per_second"][""] == 0
    assert after["capturestream_ingest_ll_hls_blocking_requests"][""] == 0
    assert after["capturestream_ingest_active_streams"]["live"] == 0
    assert after["capturestream_ingest_received_bytes"][""] >= received


async def _scrape(http: aiohttp.ClientSession, origin: str) -> Metrics:
    """``GET /metrics``, parsed with the Prometheus text parser."""
    async with http.get(f"{origin}/metrics") as response:
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {
        family.name: {next(iter(s.labels.values()), ""): s.value for s in family.samples}
        for family in text_string_to_metric_families(text)
    }


async def _scrape_until(
    http: aiohttp.ClientSession, origin: str, done: Callable[[Metrics], bool], timeout: float = 5.0
) -> Metrics:
    """Scrape until ``done(metrics)``; the metrics then."""
    deadline = time.monotonic() + timeout
    while not done(seen := await _scrape(http, origin)):
        assert time.monotonic() < deadline, f"not reached within {timeout} s: {seen}"
        await asyncio.sleep(0.02)
    return seen


async def _read_flv(http: aiohttp.ClientSession, url: str) -> None:
    async with http.get(url) as response:
        assert response.status == 200
        async for _ in response.content.iter_any():
            pass


async def _read_ws_flv(http: aiohttp.ClientSession, url: str) -> None:
    async with http.ws_connect(url) as ws:
        async for _ in ws:
            pass


async def _hold_ll_hls_reload(http: aiohttp.ClientSession, base: str) -> None:
    """One blocking reload for the segment after the one in progress (held until it exists, or 503)."""
    async with http.get(f"{base}/ll.m3u8") as response:
        hint = parse_media_playlist(await response.text()).preload_hint
    assert hint is not None
    msn = int(hint.rsplit("_", 1)[1].split(".")[0])
    async with http.get(f"{base}/ll.m3u8", params={"_HLS_msn": msn + 1}) as response:
        assert response.status in (200, 503)
