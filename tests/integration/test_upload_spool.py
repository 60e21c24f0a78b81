"""The upload queue with its disk spool against moto behind a breakable proxy: nothing lost, order kept.

Objects are a stream's as a broadcast queues them: ``seg_N`` then a playlist naming every segment so far. The
proxy records the order S3 stored them in; :func:`assert_ordered` checks that each stored playlist version names
only segments stored before it and that segments were stored in sequence.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import boto3
import pytest

from ingest_node.storage.spool import Spool
from ingest_node.storage.uploader import MEDIA, PLAYLIST, StreamUploadQueue, Uploader
from tests.support.s3_proxy import S3Proxy

BUCKET = "media"


@pytest.fixture
async def proxy(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[S3Proxy]:
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=BUCKET)
    async with S3Proxy(moto_endpoint, BUCKET) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        yield proxy


def _uploader(spool_dir: Path | None, **kwargs: object) -> Uploader:
    spool = Spool(spool_dir, max_bytes=kwargs.pop("spool_bytes", 64 << 20), max_age=3600) if spool_dir else None  # type: ignore[arg-type]
    options: dict = {"base_delay": 0.02, "max_delay": 0.2, "max_attempts": 3, "spool": spool, **kwargs}
    return Uploader(BUCKET, **options)


async def _publish(queue: StreamUploadQueue, stream: str, first: int, count: int, size: int = 2000) -> float:
    """Queue ``count`` segments, each followed by the playlist; returns the longest ``put`` wait (seconds)."""
    longest = 0.0
    for n in range(first, first + count):
        started = time.monotonic()
        await queue.put(f"{stream}/seg_{n:03d}", bytes([n % 256]) * size, MEDIA)
        playlist = "\n".join(f"seg_{m:03d}" for m in range(n + 1)).encode()
        await queue.put(f"{stream}/index.m3u8", playlist, PLAYLIST)
        longest = max(longest, time.monotonic() - started)
    return longest


def assert_ordered(proxy: S3Proxy, stream: str, segments: int) -> None:
    """Every segment stored once, in order, and no stored playlist version named a segment not stored before it."""
    stored: list[str] = []
    versions = 0
    for put in proxy.puts:
        if put.status != 200 or not put.key.startswith(stream + "/"):
            continue
        name = put.key.rsplit("/", 1)[1]
        if name == "index.m3u8":
            assert put.body is not None
            named = put.body.decode().split("\n")
            assert set(named) <= set(stored), f"named before stored: {sorted(set(named) - set(stored))}"
            versions += 1
        else:
            stored.append(name)
    assert stored == [f"seg_{n:03d}" for n in range(segments)] and versions > 0
    s3 = boto3.client("s3", endpoint_url=proxy.upstream)  # not via the proxy: it runs on this (blocked) loop
    final = s3.get_object(Bucket=BUCKET, Key=f"{stream}/index.m3u8")["Body"].read().decode().split("\n")
    assert final == [f"seg_{n:03d}" for n in range(segments)]


async def test_an_outage_spools_without_pausing_the_publisher_and_drains_in_order(
    proxy: S3Proxy, tmp_path: Path
) -> None:
    async with _uploader(tmp_path) as uploader:
        queue = StreamUploadQueue(uploader, "a")
        other = StreamUploadQueue(uploader, "b")
        await _publish(queue, "a", 0, 5)
        await _publish(other, "b", 0, 5)
        proxy.down()
        waits = await asyncio.gather(_publish(queue, "a", 5, 40), _publish(other, "b", 5, 40))
        assert max(waits) < 0.5 and not queue.backpressure  # never waited on S3
        await asyncio.sleep(0.5)
        assert uploader.spool is not None and uploader.spool.count("a") > 0 and proxy.refused > 0
        assert queue.pending >= 40  # playlists superseded on disk: only the newest version of each waits
        proxy.up()
        await asyncio.wait_for(asyncio.gather(queue.close(), other.close()), 20)
        while uploader.spool.count("a") or uploader.spool.count("b"):
            await asyncio.sleep(0.05)
    assert_ordered(proxy, "a", 45)
    assert_ordered(proxy, "b", 45)
    assert queue.failed == [] and not any(tmp_path.rglob("*.obj"))


async def test_over_the_memory_budget_objects_go_to_the_spool_not_to_a_waiting_publisher(
    proxy: S3Proxy, tmp_path: Path
) -> None:
    async with _uploader(tmp_path, stream_memory_bytes=10_000, max_attempts=50) as uploader:
        queue = StreamUploadQueue(uploader, "a")
        proxy.down()  # the first object now retries in memory for a while (50 attempts), S3 is "slow"
        longest = await _publish(queue, "a", 0, 30)
        assert longest < 0.5 and not queue.backpressure
        assert uploader.memory_bytes <= 10_000 + 2000 and uploader.spool is not None and len(uploader.spool) > 10
        proxy.up()
        await asyncio.wait_for(queue.close(), 20)
        while uploader.spool.count("a"):
            await asyncio.sleep(0.05)
    assert_ordered(proxy, "a", 30)


async def test_without_a_spool_the_publisher_waits_and_nothing_is_dropped(proxy: S3Proxy) -> None:
    async with _uploader(None, stream_memory_bytes=10_000) as uploader:
        queue = StreamUploadQueue(uploader, "a")
        proxy.down()
        publishing = asyncio.create_task(_publish(queue, "a", 0, 20))
        await asyncio.sleep(1.0)
        assert queue.backpressure and not publishing.done()  # the only bound left is the publisher's
        assert uploader.memory_bytes <= 10_000 + 2000
        proxy.up()
        await asyncio.wait_for(publishing, 20)
        await asyncio.wait_for(queue.close(), 20)
    assert_ordered(proxy, "a", 20)


async def test_shutdown_during_an_outage_leaves_the_rest_for_the_next_node_in_order(
    proxy: S3Proxy, tmp_path: Path
) -> None:
    async with _uploader(tmp_path, close_timeout=1.0) as uploader:
        queue = StreamUploadQueue(uploader, "a")
        await _publish(queue, "a", 0, 3)
        proxy.down()
        await _publish(queue, "a", 3, 10)
        started = time.monotonic()
        await queue.close()
    assert time.monotonic() - started < 5  # the deadline, not the outage, bounds shutdown
    assert uploader.spool is not None and uploader.spool.count("a") >= 10
    proxy.up()
    async with _uploader(tmp_path) as successor:
        assert successor.spool is not None
        while successor.spool.count("a"):
            await asyncio.sleep(0.05)
    assert_ordered(proxy, "a", 13)


async def test_a_missing_bucket_is_spooled_until_fixed_and_a_refused_object_is_skipped(
    proxy: S3Proxy, tmp_path: Path, moto_endpoint: str
) -> None:
    boto3.client("s3", endpoint_url=moto_endpoint).delete_bucket(Bucket=BUCKET)
    proxy.reject("a/seg_002", 400, "EntityTooLarge")
    async with _uploader(tmp_path) as uploader:
        queue = StreamUploadQueue(uploader, "a")
        await _publish(queue, "a", 0, 5)
        await asyncio.sleep(0.5)
        assert uploader.spool is not None and uploader.spool.count("a") > 0  # NoSuchBucket: kept, not dropped
        boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=BUCKET)  # the operator fixes it
        await asyncio.wait_for(queue.close(), 20)
        while uploader.spool.count("a"):
            await asyncio.sleep(0.05)
    assert queue.failed == ["a/seg_002"]
    stored = [key for key in proxy.stored() if "seg_" in key]
    assert stored == ["a/seg_000", "a/seg_001", "a/seg_003", "a/seg_004"]
