"""S3 uploads of the ingest node: one aiobotocore client, ordered per stream, headed, bounded retries.

Rules (STYLE rule 11; owncast ``s3Storage.go``):
- One keep-alive HTTP client for the whole process (:class:`~ingest_node.storage.s3_put.S3Putter`, SigV4 signed in
  process): aiobotocore costs 1.4–2 ms of CPU per PUT here, the largest item of the per-stream budget.
- Objects of one stream are uploaded **in the order they were queued** by one worker per stream, so a segment is
  always stored before the playlist that names it, and a playlist never goes backwards.
- Playlists: ``Cache-Control: no-cache`` and ``application/vnd.apple.mpegurl``; init segments and media segments:
  immutable (a key is never rewritten) and ``video/mp4``; manifests: ``no-cache`` JSON.
- Retries are bounded with exponential backoff and jitter; a permanently failed object is reported, not retried
  forever (the disk spool of part 2 takes over there). Latency per object is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field

from .s3_put import S3PutError, S3Putter

log = logging.getLogger(__name__)

PLAYLIST = ("application/vnd.apple.mpegurl", "no-cache")
MEDIA = ("video/mp4", "public, max-age=31536000, immutable")
MANIFEST = ("application/json", "no-cache")


@dataclass(frozen=True)
class Upload:
    """One object to store."""

    key: str
    body: bytes
    content_type: str
    cache_control: str
    queued_at: float = field(default_factory=time.monotonic)
    #: User metadata (``x-amz-meta-*``), e.g. a live segment's :class:`capturestream.keys.SegmentMetadata`.
    metadata: dict[str, str] | None = None


@dataclass
class UploadStats:
    """Counters and latency samples (seconds from queued to stored) for metrics and benchmarks."""

    uploaded: int = 0
    failed: int = 0
    retries: int = 0
    bytes: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=4096))


class Uploader:
    """Stores objects in the media bucket; ``async with Uploader(bucket) as up`` opens the shared client."""

    def __init__(
        self,
        bucket: str,
        *,
        max_attempts: int = 6,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        region_name: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.stats = UploadStats()
        self._region = region_name
        self._client: S3Putter | None = None
        self._exit = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Uploader:
        self._client = await self._exit.enter_async_context(S3Putter(self.bucket, region_name=self._region))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._exit.aclose()
        self._client = None

    async def put(self, upload: Upload) -> bool:
        """Store one object, retrying transient failures; True when stored."""
        delay = self.base_delay
        for attempt in range(1, self.max_attempts + 1):
            assert self._client is not None, "use Uploader as an async context manager"
            try:
                await self._client.put(
                    upload.key,
                    upload.body,
                    content_type=upload.content_type,
                    cache_control=upload.cache_control,
                    metadata=upload.metadata,
                )
            except S3PutError as error:
                if attempt == self.max_attempts or not error.retryable:
                    self.stats.failed += 1
                    log.error("upload failed for good", extra={"key": upload.key, "error": str(error)})
                    return False
                self.stats.retries += 1
                log.warning("upload failed, retrying", extra={"key": upload.key, "attempt": attempt})
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.max_delay)
                continue
            self.stats.uploaded += 1
            self.stats.bytes += len(upload.body)
            self.stats.latencies.append(time.monotonic() - upload.queued_at)
            return True
        return False


class StreamUploadQueue:
    """The ordered upload queue of one stream: a single worker stores objects in queue order."""

    def __init__(self, uploader: Uploader, name: str, *, max_pending: int = 256) -> None:
        self._uploader = uploader
        self._queue: asyncio.Queue[Upload | None] = asyncio.Queue(maxsize=max_pending)
        self._worker = asyncio.create_task(self._run(), name=f"upload-{name}")
        self.failed: list[str] = []

    @property
    def pending(self) -> int:
        """Objects queued and not yet stored."""
        return self._queue.qsize()

    async def put(
        self, key: str, body: bytes, kind: tuple[str, str], *, metadata: dict[str, str] | None = None
    ) -> None:
        """Queue one object (waits when the queue is full: backpressure towards the publisher)."""
        content_type, cache_control = kind
        await self._queue.put(Upload(key, body, content_type, cache_control, metadata=metadata))

    async def close(self) -> None:
        """Store everything queued, then stop the worker."""
        await self._queue.put(None)
        await self._worker

    async def _run(self) -> None:
        while (upload := await self._queue.get()) is not None:
            if not await self._uploader.put(upload):
                self.failed.append(upload.key)
