"""The ordered upload queue of one stream (a broadcast's session): what it may hold in memory, when it spools,
and the one worker that stores its objects in order through the node's :class:`~.uploader.Uploader`.

Rules (STYLE rule 11; issue 11 "Nothing lost"; the uploader's rules in :mod:`ingest_node.storage.uploader`):
- Objects get a sequence number when queued and are stored **in that order** by the stream's one worker, whether
  they waited in memory or in the disk spool (:mod:`ingest_node.storage.spool`): a segment is always stored before
  the playlist that names it, so a stored playlist never names a missing segment, and a playlist never goes
  backwards.
- Kinds: playlists (:data:`PLAYLIST`) ``Cache-Control: no-cache`` and ``application/vnd.apple.mpegurl``; init and
  media segments (:data:`MEDIA`) immutable ``video/mp4`` (a key is never rewritten); manifests (:data:`MANIFEST`)
  ``no-cache`` JSON. A playlist supersedes its older spooled versions.
- When the uploader's bounded retries give up (:attr:`Outcome.RETRY_LATER`) nothing is dropped: the stream turns
  *failing*, its queued objects move to the spool, new ones go straight there, and the worker probes S3 with the
  oldest one (one attempt, backing off to ``max_delay``) until it answers. Only :attr:`Outcome.REJECTED` objects
  are given up on (logged, ``spool_dropped_total{reason="rejected"}``).
- Memory is bounded in **bytes**, per stream and per node (the uploader's budgets). Over either an object goes to
  the spool instead of waiting; only when the spool is full or disabled does :attr:`StreamUploadQueue.backpressure`
  turn True and ``put`` wait (one object per stream is always admitted).
- :meth:`StreamUploadQueue.close` stores what is queued within the uploader's ``close_timeout``, then moves what is
  left in memory to the spool, whose objects keep draining in the background.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .. import metrics
from .s3_put import S3PutError, Upload
from .spool import SpooledObject

if TYPE_CHECKING:
    from .uploader import Uploader

__all__ = ["MANIFEST", "MEDIA", "PLAYLIST", "Outcome", "StreamUploadQueue"]

log = logging.getLogger(__name__)

PLAYLIST = ("application/vnd.apple.mpegurl", "no-cache")
MEDIA = ("video/mp4", "public, max-age=31536000, immutable")
MANIFEST = ("application/json", "no-cache")


class Outcome(enum.Enum):
    """What became of one object handed to :meth:`~.uploader.Uploader.store`."""

    #: S3 has it.
    STORED = "stored"
    #: S3 did not take it (unreachable, failing, throttling, misconfigured): keep it and try again later.
    RETRY_LATER = "retry_later"
    #: S3 refuses this object for good (a 400 about the object): no retry can ever store it.
    REJECTED = "rejected"


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
