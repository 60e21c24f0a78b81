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
import os
import re
import shutil
import signal
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.node_support import BUCKET, TABLE, PublishTarget
from tests.support.s3_proxy import S3Proxy

pytestmark = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs ffmpeg")

OUTAGE = 30.0
_SEGMENT = re.compile(r"seg_(\d+)\.m4s")


class Node:
    """``python -m ingest_node`` as a child process."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> int:
        with open(self.log, "ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ingest_node", env=self.env, stdout=asyncio.subprocess.PIPE, stderr=log
            )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 20)
        return int(json.loads(line)["port"])

    async def stop(self) -> int:
        """SIGTERM (a graceful stop); its exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), 30)
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()


async def _publish(port: int, key: str, seconds: float) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *("ffmpeg", "-hide_banner", "-loglevel", "error", "-re"),
        *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=48000"),
        *("-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac"),
        *("-f", "flv", f"rtmp://127.0.0.1:{port}/live/{key}"),
        stdin=asyncio.subprocess.DEVNULL,
    )


async def _kill(process: asyncio.subprocess.Process | None) -> None:
    if process is not None and process.returncode is None:
        process.kill()
        await process.wait()


def _sessions(proxy: S3Proxy) -> dict[str, list[tuple[str, bytes | None]]]:
    """Stored PUTs under ``live/`` per session prefix, in storage order: (file name, playlist body)."""
    sessions: dict[str, list[tuple[str, bytes | None]]] = defaultdict(list)
    for put in proxy.puts:
        if put.status == 200 and put.key.startswith("live/"):
            prefix, name = put.key.rsplit("/", 1)
            sessions[prefix].append((name, put.body))
    return sessions


def check_nothing_lost(proxy: S3Proxy) -> dict[str, int]:
    """Every broadcast: final playlist with ENDLIST, all its segments stored in order, no playlist ahead of its
    segments. Returns the segment count per session."""
    counts = {}
    for prefix, puts in _sessions(proxy).items():
        stored: list[int] = []
        final = b""
        for name, body in puts:
            if name.endswith(".m3u8"):
                assert body is not None
                named = [int(n) for n in _SEGMENT.findall(body.decode())]
                missing = sorted(set(named) - set(stored))
                assert not missing, f"{prefix}: a playlist named segments not stored: {missing}"
                final = body
            elif match := _SEGMENT.fullmatch(name):
                stored.append(int(match.group(1)))
        assert b"#EXT-X-ENDLIST" in final, f"{prefix}: no final playlist stored"
        last = max(int(n) for n in _SEGMENT.findall(final.decode()))
        assert stored == sorted(stored), f"{prefix}: segments stored out of order"
        missing = sorted(set(range(stored[0], last + 1)) - set(stored))
        assert not missing, f"{prefix}: segments lost: {missing}"
        counts[prefix] = len(stored)
    return counts


@pytest.fixture
async def proxy(publish_target: PublishTarget, moto_endpoint: str) -> AsyncIterator[S3Proxy]:
    async with S3Proxy(moto_endpoint, BUCKET) as proxy:
        yield proxy


@pytest.mark.timeout(150)
@pytest.mark.parametrize("spool", [True, False], ids=["spool", "spool-disabled"])
async def test_s3_down_30s_and_a_node_restart_lose_nothing(
    spool: bool, proxy: S3Proxy, publish_target: PublishTarget, moto_endpoint: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "TABLE_NAME": TABLE,
        "MEDIA_BUCKET": BUCKET,
        "RTMP_HOST": "127.0.0.1",
        "RTMP_PORT": "0",
        "CAPTURE_ENABLED": "false",
        "SEGMENT_SECONDS": "1",
        "RECONNECT_WINDOW": "0",
        "AWS_ENDPOINT_URL": moto_endpoint,  # DynamoDB (stream keys): never down
        "AWS_ENDPOINT_URL_S3": proxy.url,
        "SPOOL_DIR": str(tmp_path / "spool"),
        "SPOOL_ENABLED": str(spool).lower(),
        "UPLOAD_CLOSE_TIMEOUT": "2",
        "LOG_LEVEL": "INFO",
    }
    first, second = Node(env, tmp_path / "node-a.log"), Node(env, tmp_path / "node-b.log")
    publishers: list[asyncio.subprocess.Process] = []
    try:
        port = await first.start()
        publishers.append(await _publish(port, publish_target.key, 60))
        while sum(".m4s" in key for key in proxy.stored()) < 3:  # live and storing
            await asyncio.sleep(0.1)
        proxy.down()
        down_at = time.monotonic()
        await asyncio.sleep(8)  # node A keeps taking media while S3 is away
        assert await first.stop() == 0
        await _kill(publishers[0])
        port = await second.start()  # same spool directory
        publishers.append(await _publish(port, publish_target.key, 12))
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
            await _kill(publisher)
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
