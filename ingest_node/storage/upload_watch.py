"""Per-broadcast upload health for a publisher that asks (the browser studio's ``capture_stats``).

:class:`~ingest_node.storage.uploader.Uploader` stores every object of every broadcast and keeps only process-wide
counters. :class:`WatchedUploader` is the same uploader that also tells a watcher how the uploads of *its*
broadcast go: live segments stored, and how long the newest object took or the current one has been waiting.

Rules:
- Only sessions someone watches cost anything: an upload outside them is one dictionary check.
- A watch is per watcher (one per capture connection), so a takeover's new connection and the old one never share
  or drop each other's counts.
- Keys are read through :mod:`capturestream.keys` (the session's listing prefix, :func:`~capturestream.keys.decode`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from capturestream import keys

from .s3_put import S3PutError
from .uploader import Outcome, Upload, Uploader


@dataclass(eq=False)
class UploadWatch:
    """What one watcher sees of one broadcast's uploads."""

    prefix: str
    segments: int = 0
    #: Queued → stored seconds of the newest stored object.
    last_latency: float | None = None
    #: When the object now being stored was queued (monotonic), while one is.
    in_flight_since: float | None = field(default=None, repr=False)

    @property
    def lag(self) -> float | None:
        """How far uploads trail: the wait of the object being stored, else the newest object's latency."""
        if self.in_flight_since is not None:
            return round(max(time.monotonic() - self.in_flight_since, self.last_latency or 0.0), 3)
        return None if self.last_latency is None else round(self.last_latency, 3)


class WatchedUploader(Uploader):
    """An :class:`~ingest_node.storage.uploader.Uploader` that reports per-broadcast progress to its watchers."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._watches: set[UploadWatch] = set()

    def watch(self, playback_id: str, session_id: str) -> UploadWatch:
        """Start counting the uploads of one broadcast for one watcher; :meth:`unwatch` it when done."""
        watch = UploadWatch(keys.session_prefix(keys.LIVE_PREFIX, playback_id, session_id))
        self._watches.add(watch)
        return watch

    def unwatch(self, watch: UploadWatch) -> None:
        """Stop counting for this watcher (idempotent)."""
        self._watches.discard(watch)

    async def store(self, upload: Upload, *, attempts: int | None = None) -> tuple[Outcome, S3PutError | None]:
        """Store one object (:meth:`Uploader.store`), telling the watchers of its broadcast."""
        watches = [watch for watch in self._watches if upload.key.startswith(watch.prefix)]
        if not watches:
            return await super().store(upload, attempts=attempts)
        for watch in watches:
            watch.in_flight_since = upload.queued_at
        try:
            outcome, error = await super().store(upload, attempts=attempts)
        finally:
            for watch in watches:
                watch.in_flight_since = None
        if outcome is Outcome.STORED:
            segment = isinstance(keys.decode(upload.key), keys.LiveSegment)
            for watch in watches:
                watch.last_latency = time.monotonic() - upload.queued_at
                watch.segments += segment
        return outcome, error
