"""Graceful shutdown (issue 11 item 7): SIGTERM to a real ``python -m ingest_node`` in the middle of a real ffmpeg
publisher's broadcast.

Segments are 4 s (keyframes every second) and the signal comes ~2 s into one, so the segment in progress is easy
to tell: it is stored, named last by the final playlist, and shorter than a full segment. The reconnect window is
30 s, so a node that treated its own closing of the publisher as a drop would wait it out (or store
``reconnecting.json``) instead of ending the broadcast at once.

- S3 up: the node exits 0 within seconds; the last segment, a final playlist (``EXT-X-ENDLIST``) that never named
  a segment before it was stored, and ``ended.json`` are in S3; the log has one line per step with its duration.
- S3 unreachable at the signal: the node still exits 0 within its bound (``UPLOAD_CLOSE_TIMEOUT`` twice, plus
  margin); what S3 did not take is in the spool, and the next node started on it stores it all, in order.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import boto3
import pytest

from mediakit.hls import parse_media_playlist
from tests.integration.node_process import SEGMENT, Node, check_nothing_lost, kill, node_env, publish
from tests.integration.node_support import BUCKET, PublishTarget
from tests.support.s3_proxy import S3Proxy

pytestmark = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs ffmpeg")

SEGMENT_SECONDS = 4
CLOSE_TIMEOUT = 2
STEPS = ("shutdown: stopped accepting", "shutdown: broadcasts ended", "shutdown: HTTP closed")


@pytest.fixture
async def proxy(publish_target: PublishTarget, moto_endpoint: str) -> AsyncIterator[S3Proxy]:
    async with S3Proxy(moto_endpoint, BUCKET) as proxy:
        yield proxy


def _env(moto_endpoint: str, proxy: S3Proxy, tmp_path: Path) -> dict[str, str]:
    return node_env(
        moto_endpoint,
        proxy.url,
        tmp_path / "spool",
        SEGMENT_SECONDS=str(SEGMENT_SECONDS),
        RECONNECT_WINDOW="30",
        UPLOAD_CLOSE_TIMEOUT=str(CLOSE_TIMEOUT),
    )


async def _mid_segment(proxy: S3Proxy) -> int:
    """Wait until two segments are stored, then ~2 s into the next one; the highest segment stored then."""
    while len(segments := [int(m[1]) for k in proxy.stored() if (m := SEGMENT.search(k))]) < 2:
        await asyncio.sleep(0.05)
    await asyncio.sleep(SEGMENT_SECONDS / 2)
    return max(segments)


def _check_final_segment(proxy: S3Proxy, stored_before: int) -> None:
    """The final playlist names last the segment that was in progress at the signal: stored, and cut short."""
    keys = [put.key for put in proxy.puts if put.status == 200]
    playlist_key = next(key for key in reversed(keys) if key.endswith("/index.m3u8"))
    final = next(put.body for put in reversed(proxy.puts) if put.status == 200 and put.key == playlist_key)
    assert final is not None
    playlist = parse_media_playlist(final.decode())
    last = playlist.segments[-1]
    assert playlist.ended
    assert last.sequence == stored_before + 1, (last.sequence, stored_before)
    assert playlist_key.rsplit("/", 1)[0] + "/" + last.uri in keys
    assert 1.0 <= last.duration < SEGMENT_SECONDS - 0.1, last.duration  # cut by the shutdown, not by its length
    ended = [key for key in keys if key.endswith("/ended.json")]
    assert len(ended) == 1 and not any(key.endswith("/reconnecting.json") for key in keys)
    body = boto3.client("s3", endpoint_url=proxy.upstream).get_object(Bucket=BUCKET, Key=ended[0])["Body"].read()
    assert json.loads(body)["reason"] == "node_shutdown"


def _step_lines(log: Path) -> list[str]:
    lines = log.read_text().splitlines()
    return [line for line in lines if any(step in line for step in (*STEPS, "uploads flushed", "shut down"))]


@pytest.mark.timeout(90)
async def test_sigterm_mid_stream_stores_the_last_segment_and_exits(
    proxy: S3Proxy, publish_target: PublishTarget, moto_endpoint: str, tmp_path: Path
) -> None:
    node = Node(_env(moto_endpoint, proxy, tmp_path), tmp_path / "node.log")
    publisher = None
    try:
        publisher = await publish(await node.start(), publish_target.key, 60)
        stored_before = await _mid_segment(proxy)
        assert await node.stop() == 0
    finally:
        await kill(publisher)
        if node.process is not None:
            await kill(node.process)
    assert node.stop_seconds is not None and node.stop_seconds < 5, node.stop_seconds
    print(f"SIGTERM → exit in {node.stop_seconds:.2f} s")
    check_nothing_lost(proxy)
    _check_final_segment(proxy, stored_before)
    lines = _step_lines(node.log)
    for step in STEPS:
        assert sum(step in line for line in lines) == 1, (step, lines)
    assert all("seconds=" in line for line in lines), lines
    assert not any((tmp_path / "spool").rglob("*.obj"))


@pytest.mark.timeout(120)
async def test_sigterm_with_s3_unreachable_exits_in_bounds_and_the_spool_keeps_the_end(
    proxy: S3Proxy, publish_target: PublishTarget, moto_endpoint: str, tmp_path: Path
) -> None:
    env = _env(moto_endpoint, proxy, tmp_path)
    first, second = Node(env, tmp_path / "node-a.log"), Node(env, tmp_path / "node-b.log")
    publisher = None
    try:
        publisher = await publish(await first.start(), publish_target.key, 60)
        stored_before = await _mid_segment(proxy)
        proxy.down()
        assert await first.stop() == 0
        await kill(publisher)
        assert first.stop_seconds is not None and first.stop_seconds < 2 * CLOSE_TIMEOUT + 5, first.stop_seconds
        print(f"SIGTERM with S3 unreachable → exit in {first.stop_seconds:.2f} s")
        spooled = sorted(path.name for path in (tmp_path / "spool").rglob("*.obj"))
        assert len(spooled) >= 3, spooled  # at least the last segment, the final playlist and ended.json
        assert "uploads flushed" in "".join(_step_lines(first.log))
        proxy.up()
        await second.start()  # same spool: stores what the first node left, then idles
        while not any(key.endswith("/ended.json") for key in proxy.stored()) or any(
            (tmp_path / "spool").rglob("*.obj")
        ):
            await asyncio.sleep(0.1)
        assert await second.stop() == 0
    finally:
        await kill(publisher)
        for node in (first, second):
            if node.process is not None:
                await kill(node.process)
    check_nothing_lost(proxy)
    _check_final_segment(proxy, stored_before)
