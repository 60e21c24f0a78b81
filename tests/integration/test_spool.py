"""Nothing lost (issue 11 item 1): S3 down for 30 s mid-stream and the node restarted once while spooling.

A real ``python -m ingest_node`` (a child process, so it can be stopped and started again on the same spool
directory) takes a real ffmpeg publisher. S3 is moto behind :class:`~tests.support.s3_proxy.S3Proxy`, which cuts
every S3 connection while "down" (DynamoDB goes to moto directly: the restarted node must still check the second
publisher's key) and records every PUT in the order S3 stored it, with each playlist version's body.

Timeline: publisher 1 streams to node A → S3 goes down → A keeps taking media for ~8 s, then gets SIGTERM and
stops (graceful: what S3 did not take stays in the spool) → node B starts on the same spool and publisher 2
streams to it → S3 comes back 30 s after it went down → everything drains. Then, for both broadcasts: every
segment the final playlist accounts for is stored, in sequence order, and no stored playlist version ever named a
segment that was not stored before it.

With ``SPOOL_ENABLED=false`` the same run loses media (what node A held in memory when it stopped): the test
asserts that loss, so it proves the spool is what keeps the segments.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.node_process import Node, check_nothing_lost, kill, node_env, publish
from tests.integration.node_support import BUCKET, PublishTarget
from tests.support.s3_proxy import S3Proxy

pytestmark = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs ffmpeg")

OUTAGE = 30.0


@pytest.fixture
async def proxy(publish_target: PublishTarget, moto_endpoint: str) -> AsyncIterator[S3Proxy]:
    async with S3Proxy(moto_endpoint, BUCKET) as proxy:
        yield proxy


@pytest.mark.timeout(150)
@pytest.mark.parametrize("spool", [True, False], ids=["spool", "spool-disabled"])
async def test_s3_down_30s_and_a_node_restart_lose_nothing(
    spool: bool, proxy: S3Proxy, publish_target: PublishTarget, moto_endpoint: str, tmp_path: Path
) -> None:
    env = node_env(
        moto_endpoint,  # DynamoDB (stream keys): never down
        proxy.url,
        tmp_path / "spool",
        SPOOL_ENABLED=str(spool).lower(),
        UPLOAD_CLOSE_TIMEOUT="2",
    )
    first, second = Node(env, tmp_path / "node-a.log"), Node(env, tmp_path / "node-b.log")
    publishers: list[asyncio.subprocess.Process] = []
    try:
        port = await first.start()
        publishers.append(await publish(port, publish_target.key, 60))
        while sum(".m4s" in key for key in proxy.stored()) < 3:  # live and storing
            await asyncio.sleep(0.1)
        proxy.down()
        down_at = time.monotonic()
        await asyncio.sleep(8)  # node A keeps taking media while S3 is away
        assert await first.stop() == 0
        await kill(publishers[0])
        port = await second.start()  # same spool directory
        publishers.append(await publish(port, publish_target.key, 12))
        await asyncio.sleep(OUTAGE - (time.monotonic() - down_at))
        assert proxy.refused > 0
        proxy.up()
        assert await asyncio.wait_for(publishers[1].wait(), 30) == 0
        deadline = time.monotonic() + 25
        ended = 2 if spool else 1  # without a spool, node A's ended.json was lost at the restart
        while time.monotonic() < deadline and (
            sum(key.endswith("/ended.json") for key in proxy.stored()) < ended
            or any((tmp_path / "spool").rglob("*.obj"))
        ):
            await asyncio.sleep(0.2)
        assert await second.stop() == 0
    finally:
        for publisher in publishers:
            await kill(publisher)
        for node in (first, second):
            if node.process is not None and node.process.returncode is None:
                await node.stop()
    if spool:
        counts = check_nothing_lost(proxy)
        assert len(counts) == 2 and min(counts.values()) >= 8, counts  # both broadcasts, media on each side
        assert not any((tmp_path / "spool").rglob("*.obj"))  # drained
    else:
        with pytest.raises(AssertionError, match="lost|no final playlist"):
            check_nothing_lost(proxy)  # node A's memory at the restart is gone


@pytest.mark.timeout(60)
async def test_a_second_node_on_the_same_spool_refuses_to_start(
    proxy: S3Proxy, moto_endpoint: str, tmp_path: Path
) -> None:
    """Two nodes sharing a spool would store, supersede and delete each other's objects: the second one exits 1 at
    start with an error naming the directory, and the first one keeps running."""
    env = node_env(moto_endpoint, proxy.url, tmp_path / "spool")
    first, second = Node(env, tmp_path / "node-a.log"), Node(env, tmp_path / "node-b.log")
    try:
        await first.start()
        with pytest.raises(json.JSONDecodeError):  # no ready line
            await second.start()
        assert second.process is not None and await asyncio.wait_for(second.process.wait(), 20) == 1
        assert f"cannot start: spool directory {tmp_path / 'spool'} is in use" in second.log.read_text()
        assert first.process is not None and first.process.returncode is None
        assert await first.stop() == 0
    finally:
        for node in (first, second):
            if node.process is not None:
                await kill(node.process)
