"""The ingest node's uploader: headers, order, bounded retries with backoff, latency accounting."""

from __future__ import annotations

import socket
import time

import boto3
import pytest

from ingest_node.storage.uploader import MEDIA, PLAYLIST, Outcome, StreamUploadQueue, Upload, Uploader


@pytest.fixture
def bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    boto3.client("s3").create_bucket(Bucket="media")
    return "media"


async def test_objects_are_stored_in_order_with_their_headers(bucket: str) -> None:
    s3 = boto3.client("s3")
    async with Uploader(bucket) as uploader:
        stored: list[str] = []
        real_store = uploader.store

        async def recording_store(upload: Upload, **kwargs: object) -> tuple[Outcome, object]:
            result = await real_store(upload, **kwargs)  # type: ignore[arg-type]
            stored.append(upload.key)
            return result

        uploader.store = recording_store  # type: ignore[method-assign]
        queue = StreamUploadQueue(uploader, "t")
        for n in range(20):
            await queue.put(f"obj/{n:03d}", bytes([n]) * 1000, MEDIA, metadata={"init-epoch": str(n % 3)})
        await queue.put("obj/list", b"#EXTM3U\n", PLAYLIST)
        await queue.close()
    assert uploader.stats.uploaded == 21 and uploader.stats.failed == 0 and len(uploader.stats.latencies) == 21
    head = s3.head_object(Bucket=bucket, Key="obj/list")
    assert head["ContentType"] == "application/vnd.apple.mpegurl" and head["CacheControl"] == "no-cache"
    head = s3.head_object(Bucket=bucket, Key="obj/007")
    assert head["ContentType"] == "video/mp4" and "immutable" in head["CacheControl"]
    assert head["Metadata"] == {"init-epoch": "1"}  # signed x-amz-meta-* headers reach S3
    assert stored == [f"obj/{n:03d}" for n in range(20)] + ["obj/list"]  # stored one by one, in queue order


async def test_unreachable_endpoint_gives_up_after_bounded_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    async with Uploader("media", max_attempts=4, base_delay=0.05, max_delay=0.2) as uploader:
        started = time.monotonic()
        stored = await uploader.put(Upload("k", b"x", *MEDIA))
        elapsed = time.monotonic() - started
    assert stored is False
    assert uploader.stats.failed == 1 and uploader.stats.retries == 3
    assert 0.05 < elapsed < 5  # backed off between attempts, but bounded


async def test_client_errors_are_not_retried(bucket: str) -> None:
    async with Uploader("no-such-bucket", max_attempts=5, base_delay=0.05) as uploader:
        assert await uploader.put(Upload("k", b"x", *MEDIA)) is False
    assert uploader.stats.retries == 0 and uploader.stats.failed == 1
