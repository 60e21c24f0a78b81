"""S3 uploads of the ingest node: one keep-alive client, bounded retries, the spool's housekeeping, shutdown.

Each stream's objects go through its :class:`~ingest_node.storage.stream_queue.StreamUploadQueue` (ordered,
headed, bounded in memory, spooled: the rules are there); this module stores one object at a time for them.

Rules (STYLE rule 11; owncast ``s3Storage.go``; issue 11 "Nothing lost"):
- One keep-alive HTTP client for the whole process (:class:`~ingest_node.storage.s3_put.S3Putter`, SigV4 signed in
  process): aiobotocore costs 1.4–2 ms of CPU per PUT here, the largest item of the per-stream budget. Different
  streams upload concurrently.
- Retries are bounded with exponential backoff and jitter; what is still not stored then is the queue's to keep
  (:attr:`Outcome.RETRY_LATER`: never dropped).
- Errors: no answer, 5xx, 429/SlowDown: retried. 403 AccessDenied, 404 NoSuchBucket, wrong region: not retried in
  memory (a config error does not heal in a second) but spooled like an outage and logged as an error when the
  stream turns failing, so an operator who fixes the bucket or the role loses nothing. Only a 400 about the object
  itself (:attr:`~ingest_node.storage.s3_put.S3PutError.rejects_object`: too large, bad argument) is given up on
  (:attr:`Outcome.REJECTED`): it can never be stored and would block its stream forever.
- Memory budgets in **bytes**: per stream (``stream_memory_bytes``, default 8 MiB: ~10 s of a 6 Mb/s stream) and
  per node (``node_memory_bytes``, default 256 MiB), which the queues enforce; a slow S3 never pauses a publisher.
- The spool directory is this process's alone (:meth:`~ingest_node.storage.spool.Spool.open` locks it).
- Shutdown: a closing queue stores what it holds within ``close_timeout``, then moves what is left in memory to
  the spool; spooled leftovers drain in the background; leaving the :class:`Uploader` context gives them
  ``close_timeout`` more and leaves the rest on disk, which the next node uploads first thing
  (:meth:`Uploader.__aenter__`). Without a spool, what S3 never took by then is lost, and logged as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field

from capturestream import keys

from .. import metrics
from .s3_put import S3PutError, S3Putter, Upload
from .spool import Spool
from .stream_queue import MANIFEST, MEDIA, PLAYLIST, Outcome, StreamUploadQueue

__all__ = ["MANIFEST", "MEDIA", "PLAYLIST", "Outcome", "StreamUploadQueue", "Upload", "UploadStats", "Uploader"]

log = logging.getLogger(__name__)

MIB = 1024 * 1024
#: Default in-memory budget of one stream's queue (bytes).
STREAM_MEMORY_BYTES = 8 * MIB
#: Default in-memory budget of all upload queues of a node (bytes).
NODE_MEMORY_BYTES = 256 * MIB
_KINDS = {
    keys.LiveSegment: "segment",
    keys.LiveInit: "init",
    keys.LivePlaylist: "playlist",
    keys.SessionManifest: "manifest",
    keys.HealthManifest: "manifest",
}


@dataclass
class UploadStats:
    """Counters and latency samples (seconds from queued to stored) for metrics and benchmarks."""

    uploaded: int = 0
    #: :meth:`Uploader.store` calls that did not store (each failing probe counts; nothing is dropped for it).
    failed: int = 0
    retries: int = 0
    bytes: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=4096))


class Uploader:
    """Stores objects in the media bucket; ``async with Uploader(bucket) as up`` opens the shared client.

    Args:
        spool: where objects wait when S3 cannot take them (None: no spool; see the module rules).
        stream_memory_bytes: in-memory budget of one stream's queue.
        node_memory_bytes: in-memory budget of every queue together.
        close_timeout: seconds a closing queue (and then the node's shutdown) may spend storing what is left.
    """

    def __init__(
        self,
        bucket: str,
        *,
        max_attempts: int = 6,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        region_name: str | None = None,
        spool: Spool | None = None,
        stream_memory_bytes: int = STREAM_MEMORY_BYTES,
        node_memory_bytes: int = NODE_MEMORY_BYTES,
        close_timeout: float = 10.0,
    ) -> None:
        self.bucket = bucket
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.spool = spool
        self.stream_memory_bytes = stream_memory_bytes
        self.node_memory_bytes = node_memory_bytes
        self.close_timeout = close_timeout
        self.stats = UploadStats()
        #: Bytes held in memory by every queue of this uploader.
        self.memory_bytes = 0
        self._queues: dict[str, StreamUploadQueue] = {}
        self._progress = asyncio.Event()
        self._region = region_name
        self._client: S3Putter | None = None
        self._exit = contextlib.AsyncExitStack()
        self._housekeeping: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Uploader:
        """Lock and scan the spool, open the client, then upload what a predecessor left.

        Raises:
            SpoolInUse: another process holds the spool directory.
        """
        try:
            leftovers: list[str] = []
            if self.spool is not None:
                leftovers = await asyncio.to_thread(self.spool.open)  # a predecessor's, oldest stream first
                self._exit.callback(self.spool.close)
            self._client = await self._exit.enter_async_context(S3Putter(self.bucket, region_name=self._region))
        except BaseException:
            await self._exit.aclose()
            raise
        for name in leftovers:
            StreamUploadQueue(self, name).closing()
        if self.spool is not None:
            self._housekeeping = asyncio.create_task(self._expire_spool(), name="spool-expiry")
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Give every queue ``close_timeout`` to finish, then leave what is left in the spool for the next start."""
        queues = list(self._queues.values())
        for queue in queues:
            queue.closing()
        workers = [queue.worker for queue in queues if not queue.worker.done()]
        if workers:
            await asyncio.wait(workers, timeout=self.close_timeout)
        for queue in queues:
            await queue.abandon(restart=False)
        if self.spool is not None and len(self.spool):
            log.warning("objects left in the spool for the next start", extra={"objects": len(self.spool)})
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            await asyncio.gather(self._housekeeping, return_exceptions=True)
        await self._exit.aclose()
        self._client = None

    async def put(self, upload: Upload) -> bool:
        """Store one object, retrying transient failures; True when stored."""
        outcome, _ = await self.store(upload)
        return outcome is Outcome.STORED

    async def store(self, upload: Upload, *, attempts: int | None = None) -> tuple[Outcome, S3PutError | None]:
        """Store one object with up to ``attempts`` (default ``max_attempts``) tries; the outcome and last error.

        Only retryable errors are retried here; configuration errors return :attr:`Outcome.RETRY_LATER` at once.
        """
        delay = self.base_delay
        attempts = attempts or self.max_attempts
        for attempt in range(1, attempts + 1):
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
                metrics.UPLOAD_FAILURES.inc()
                if attempt == attempts or not error.retryable:
                    self.stats.failed += 1
                    return (Outcome.REJECTED if error.rejects_object else Outcome.RETRY_LATER), error
                self.stats.retries += 1
                log.debug("upload failed, retrying", extra={"key": upload.key, "attempt": attempt})
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.max_delay)
                continue
            self._stored(upload)
            return Outcome.STORED, None
        raise AssertionError("unreachable")

    def _stored(self, upload: Upload) -> None:
        latency = time.monotonic() - upload.queued_at
        self.stats.uploaded += 1
        self.stats.bytes += len(upload.body)
        self.stats.latencies.append(latency)
        metrics.UPLOAD_SECONDS.observe(latency)
        kind = _kind(upload.key)
        metrics.OBJECTS_UPLOADED.labels(kind=kind).inc()
        if kind == "segment":
            metrics.SEGMENTS_UPLOADED.inc()

    def progressed(self) -> None:
        """Memory or spool room was freed: wake every ``put`` waiting for room."""
        self._progress.set()
        self._progress = asyncio.Event()

    async def wait_progress(self, timeout: float = 1.0) -> None:
        """Until some queue frees room (or ``timeout``: room can also appear without a signal)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._progress.wait(), timeout)

    async def _expire_spool(self) -> None:
        assert self.spool is not None
        while True:
            await asyncio.sleep(min(30.0, max(self.spool.max_age / 10, 0.05)))
            if self.spool.expire():
                self.progressed()


def _kind(key: str) -> str:
    return _KINDS.get(keys.classify(key), "other")
