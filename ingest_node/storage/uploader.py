"""S3 uploads of the ingest node: one keep-alive client, ordered per stream, headed, bounded in memory, spooled.

Rules (STYLE rule 11; owncast ``s3Storage.go``; issue 11 "Nothing lost"):
- One keep-alive HTTP client for the whole process (:class:`~ingest_node.storage.s3_put.S3Putter`, SigV4 signed in
  process): aiobotocore costs 1.4–2 ms of CPU per PUT here, the largest item of the per-stream budget.
- Objects of one stream get a sequence number when queued and are stored **in that order** by one worker per
  stream, whether they waited in memory or in the disk spool (:mod:`ingest_node.storage.spool`): a segment is
  always stored before the playlist that names it, so a stored playlist never names a missing segment, and a
  playlist never goes backwards. Different streams upload concurrently.
- Playlists: ``Cache-Control: no-cache`` and ``application/vnd.apple.mpegurl``; init segments and media segments:
  immutable (a key is never rewritten) and ``video/mp4``; manifests: ``no-cache`` JSON.
- Retries in memory are bounded with exponential backoff and jitter. What is still not stored then is **not
  dropped**: the stream turns *failing*, its queued objects move to the spool, new ones go straight there, and
  the worker probes S3 with the oldest one (one attempt, backing off to ``max_delay``) until it answers.
- Errors: no answer, 5xx, 429/SlowDown: retried. 403 AccessDenied, 404 NoSuchBucket, wrong region: not retried in
  memory (a config error does not heal in a second) but spooled like an outage and logged as an error when the
  stream turns failing, so an operator who fixes the bucket or the role loses nothing. Only a 400 about the object
  itself (:attr:`~ingest_node.storage.s3_put.S3PutError.rejects_object`: too large, bad argument) is given up on
  (logged, ``spool_dropped_total{reason="rejected"}``): it can never be stored and would block its stream forever.
- Memory is bounded in **bytes**: per stream (``stream_memory_bytes``, default 8 MiB: ~10 s of a 6 Mb/s stream)
  and per node (``node_memory_bytes``, default 256 MiB). Over either budget an object goes to the spool instead
  of waiting, so a slow S3 never pauses a publisher. Only when the spool is full or disabled does
  :attr:`StreamUploadQueue.backpressure` turn True and ``put`` wait (one object per stream is always admitted).
- Shutdown: :meth:`StreamUploadQueue.close` stores what is queued within ``close_timeout``, then moves what is
  left in memory to the spool; spooled leftovers drain in the background; leaving the :class:`Uploader` context
  gives them ``close_timeout`` more and leaves the rest on disk, which the next node uploads first thing
  (:meth:`Uploader.__aenter__`). Without a spool, what S3 never took by then is lost, and logged as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field, replace

from capturestream import keys
from capturestream.errors import CaptureStreamError

from .. import metrics
from .s3_put import S3PutError, S3Putter, Upload
from .spool import Spool, SpooledObject

__all__ = ["MANIFEST", "MEDIA", "PLAYLIST", "Outcome", "StreamUploadQueue", "Upload", "UploadStats", "Uploader"]

log = logging.getLogger(__name__)

PLAYLIST = ("application/vnd.apple.mpegurl", "no-cache")
MEDIA = ("video/mp4", "public, max-age=31536000, immutable")
MANIFEST = ("application/json", "no-cache")

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


class Outcome(enum.Enum):
    """What became of one object handed to :meth:`Uploader.store`."""

    #: S3 has it.
    STORED = "stored"
    #: S3 did not take it (unreachable, failing, throttling, misconfigured): keep it and try again later.
    RETRY_LATER = "retry_later"
    #: S3 refuses this object for good (a 400 about the object): no retry can ever store it.
    REJECTED = "rejected"


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
        self._client = await self._exit.enter_async_context(S3Putter(self.bucket, region_name=self._region))
        if self.spool is not None:
            for name in await asyncio.to_thread(self.spool.open):  # a predecessor's leftovers, oldest stream first
                StreamUploadQueue(self, name).closing()
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
    try:
        return _KINDS.get(type(keys.decode(key)), "other")
    except CaptureStreamError:
        return "other"


@dataclass(eq=False)
class _Item:
    seq: int
    upload: Upload
    supersedes: bool


class StreamUploadQueue:
    """The ordered upload queue of one stream: a single worker stores objects in queue order."""

    def __init__(self, uploader: Uploader, name: str) -> None:
        if name in uploader._queues:
            raise ValueError(f"an upload queue named {name!r} is already running")
        self.name = name
        self._uploader = uploader
        self._spool = uploader.spool
        self._memory: deque[_Item] = deque()
        self._memory_bytes = 0
        self._seq = self._spool.next_seq(name) if self._spool else 0
        self._lock = asyncio.Lock()  # puts are admitted one at a time, in call order
        self._admitting: int | None = None  # seq of the object being admitted (the worker must not pass it)
        self._changed = asyncio.Event()
        self._blocked = 0
        self._closing = False
        self._failing = False
        self._probe_delay = uploader.base_delay
        #: Keys S3 refused for good, or lost at shutdown without spool room.
        self.failed: list[str] = []
        uploader._queues[name] = self
        self.worker = asyncio.create_task(self._run(), name=f"upload-{name}")

    @property
    def pending(self) -> int:
        """Objects queued and not yet stored (in memory and in the spool)."""
        return len(self._memory) + (self._spool.count(self.name) if self._spool else 0)

    @property
    def backpressure(self) -> bool:
        """True only when the publisher must wait: the memory budget is spent and the spool cannot take more."""
        if self._blocked:
            return True
        up = self._uploader
        over = self._memory_bytes >= up.stream_memory_bytes or up.memory_bytes >= up.node_memory_bytes
        return over and not (self._spool is not None and self._spool.has_room(0))

    async def put(
        self, key: str, body: bytes, kind: tuple[str, str], *, metadata: dict[str, str] | None = None
    ) -> None:
        """Queue one object: in memory, or in the spool; waits only while :attr:`backpressure` holds."""
        content_type, cache_control = kind
        upload = Upload(key, body, content_type, cache_control, metadata=metadata)
        async with self._lock:
            item = _Item(self._seq, upload, kind == PLAYLIST)
            self._seq += 1
            self._admitting = item.seq
            try:
                await self._admit(item)
            finally:
                self._admitting = None
                self._changed.set()

    async def _admit(self, item: _Item) -> None:
        up, size = self._uploader, len(item.upload.body)
        while True:
            fits = not self._memory or (
                self._memory_bytes + size <= up.stream_memory_bytes and up.memory_bytes + size <= up.node_memory_bytes
            )
            if fits and not self._failing:  # a failing stream spools at once: it survives a restart there
                self._hold(item)
                return
            if self._spool is not None and await self._spool.write(
                self.name, item.seq, item.upload, supersedes=item.supersedes
            ):
                return
            if fits:
                self._hold(item)
                return
            self._blocked += 1
            try:
                await up.wait_progress()
            finally:
                self._blocked -= 1

    def closing(self) -> None:
        """Stop taking new work once everything queued is stored (the worker then ends by itself)."""
        self._closing = True
        self._changed.set()

    async def close(self) -> None:
        """Store everything queued, at most ``close_timeout`` seconds; what is left in memory then moves to the
        spool. Spooled objects keep draining in the background after this returns."""
        self.closing()
        try:
            await asyncio.wait_for(self._flushed(), self._uploader.close_timeout)
        except TimeoutError:
            await self.abandon(restart=True)

    async def _flushed(self) -> None:
        while self._memory or self._admitting is not None:
            await self._uploader.wait_progress()

    async def abandon(self, *, restart: bool) -> None:
        """Stop storing now: memory moves to the spool (what does not fit is lost, logged and counted); with
        ``restart`` a new worker drains the spool in the background."""
        self.worker.cancel()
        await asyncio.gather(self.worker, return_exceptions=True)
        await self._spill()
        if self._memory:
            reason = "disabled" if self._spool is None else "full"
            log.error(
                "upload queue closed with objects S3 never took and no spool to keep them: lost",
                extra={"stream": self.name, "objects": len(self._memory), "spool": reason},
            )
            metrics.SPOOL_DROPPED.labels(reason=reason).inc(len(self._memory))
            while self._memory:
                self.failed.append(self._release().upload.key)
        if restart and self.pending:
            self.worker = asyncio.create_task(self._run(), name=f"upload-{self.name}")
        else:
            self._uploader._queues.pop(self.name, None)

    # -- worker ------------------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            item = self._next()
            if item is None:
                if self._closing and self._admitting is None and not self.pending:
                    self._uploader._queues.pop(self.name, None)
                    return
                self._changed.clear()
                await self._changed.wait()
            elif isinstance(item, _Item):
                await self._send_memory(item)
            else:
                await self._send_spooled(item)

    def _next(self) -> _Item | SpooledObject | None:
        """The lowest-numbered object, unless one before it is still being admitted."""
        first: _Item | SpooledObject | None = self._memory[0] if self._memory else None
        spooled = self._spool.head(self.name) if self._spool else None
        if spooled is not None and (first is None or spooled.seq < first.seq):
            first = spooled
        if first is None or (self._admitting is not None and self._admitting < first.seq):
            return None
        return first

    async def _send_memory(self, item: _Item) -> None:
        outcome, error = await self._uploader.store(item.upload, attempts=1 if self._failing else None)
        if outcome is Outcome.RETRY_LATER:
            self._fail(error)
            await self._spill()
            if self._memory and self._memory[0] is item:  # no spool room: keep it, never drop it
                await self._backoff()
            return
        self._release()
        self._done(item.upload.key, outcome)

    async def _send_spooled(self, spooled: SpooledObject) -> None:
        assert self._spool is not None
        spooled.held = True
        try:
            body = await self._spool.read(spooled)
            if body is None:
                return  # corrupt: set aside and logged by the spool
            age = max(0.0, time.time() - spooled.created)
            upload = replace(spooled.request, body=body, queued_at=time.monotonic() - age)
            outcome, error = await self._uploader.store(upload, attempts=1 if self._failing else None)
        finally:
            spooled.held = False
        if outcome is Outcome.RETRY_LATER:
            self._fail(error)
            await self._backoff()
            return
        await self._spool.remove(spooled)
        self._uploader.progressed()
        self._done(spooled.request.key, outcome)

    def _done(self, key: str, outcome: Outcome) -> None:
        if outcome is Outcome.REJECTED:
            log.error("S3 refused an object for good; skipping it", extra={"stream": self.name, "key": key})
            metrics.SPOOL_DROPPED.labels(reason="rejected").inc()
            self.failed.append(key)
        elif self._failing:
            log.warning("S3 takes uploads again", extra={"stream": self.name, "spooled": self.pending})
            self._failing = False
            self._probe_delay = self._uploader.base_delay

    def _fail(self, error: S3PutError | None) -> None:
        if self._failing:
            return
        self._failing = True
        fields = {"stream": self.name, "error": str(error), "spool": self._spool is not None}
        if error is not None and not error.retryable:
            log.error("S3 refuses uploads (check MEDIA_BUCKET and the node's role); keeping objects", extra=fields)
        else:
            log.warning("S3 unreachable or failing; keeping objects until it answers", extra=fields)

    async def _backoff(self) -> None:
        await asyncio.sleep(self._probe_delay * (0.5 + random.random()))
        self._probe_delay = min(self._probe_delay * 2, self._uploader.max_delay)

    async def _spill(self) -> None:
        """Move memory to the spool, oldest first, as far as it has room."""
        while self._memory and self._spool is not None:
            item = self._memory[0]
            if not await self._spool.write(self.name, item.seq, item.upload, supersedes=item.supersedes):
                return
            self._release()

    def _hold(self, item: _Item) -> None:
        size = len(item.upload.body)
        self._memory.append(item)
        self._memory_bytes += size
        self._uploader.memory_bytes += size
        metrics.BUFFERED_BYTES.inc(size)

    def _release(self) -> _Item:
        item = self._memory.popleft()
        size = len(item.upload.body)
        self._memory_bytes -= size
        self._uploader.memory_bytes -= size
        metrics.BUFFERED_BYTES.dec(size)
        self._uploader.progressed()
        return item
