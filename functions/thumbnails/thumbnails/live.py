"""One session of a batch: newest segment → ffmpeg → two immutable image objects → the stream item points at them.

Rules:
- Candidates are tried newest first (:class:`capturestream.thumbnails.SessionBatch`), at most
  :data:`MAX_ATTEMPTS` of them. A segment ffmpeg cannot decode fails its own messages (they return to the queue
  and reach the DLQ after ``maxReceiveCount``) and the next newest is tried; the first success, or running out
  of attempts, makes every older (untried) candidate's messages done: a stale picture is not worth a retry.
- A segment that no longer exists (deleted with its recording), or that holds no video keyframe (an audio-only
  stream, a force-cut segment), is skipped, not retried: there is nothing to picture.
- Any other error (S3, DynamoDB, a missing init) fails every message of the session: the retry redoes it.
- Images are stored before the stream item names them. The item update is conditional
  (:func:`capturestream.thumbnails.thumbnail_update`); ``ConditionalCheckFailed`` means a newer thumbnail won.
- Init segments are small and never change: a module-level LRU (:data:`INITS`) keeps them across warm
  invocations, so a thumbnail costs one GetObject.
- The work fits the invocation: a session is not started with less than :data:`MIN_TIME_LEFT` seconds left, and
  ffmpeg is killed when the time runs out (:class:`.render.OutOfTime`). Either way the session's messages are
  done, not failed: a thumbnail cut after a retry (the queue's visibility timeout, a minute) is long stale, and the
  stream's next sampled segment comes within ~5 s. So a busy moment costs a thumbnail, never a timed-out batch
  whose every message is cut again a minute later, twice the work when there is least to spare.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from capturestream import keys, thumbnails

from .render import DecodeError, OutOfTime, has_picture, live_thumbnail, unlimited

log = logging.getLogger(__name__)


class InitCache:
    """A small thread-safe LRU of init segment bytes keyed by ``(bucket, playback id, session id, epoch)``."""

    def __init__(self, maxsize: int = 64) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[tuple[str, str, str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str, int], load: Callable[[], bytes]) -> bytes:
        """The cached bytes of ``key``, or ``load()`` (stored, evicting the least recently used)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        data = load()
        with self._lock:
            self._items[key] = data
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return data

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._items.clear()


#: Init segments of the sessions this warm container has seen.
INITS = InitCache()
#: Segments of one session tried per batch (each ffmpeg run is bounded by :func:`.render.live_thumbnail`'s timeout).
MAX_ATTEMPTS = 3
#: Seconds an invocation must have left to start a session: a GetObject, ffmpeg (~0.05 s of CPU for a 720p
#: keyframe) and two PutObjects take ~0.2 s; the rest is room for a busy moment (locally, with 30 streams on two
#: cores, a niced ffmpeg waits ~0.3 s for its CPU and moto answers late).
MIN_TIME_LEFT = 2.0
#: Seconds of the time left kept back from ffmpeg for the PutObjects and the item update after it.
STORE_RESERVE = 1.0


def process_session(
    batch: thumbnails.SessionBatch,
    *,
    s3: Any,
    dynamodb: Any,
    table_name: str,
    ffmpeg: str,
    time_left: Callable[[], float] = unlimited,
) -> set[str]:
    """Make the session's thumbnail from its newest decodable segment; return the message ids that failed.

    ``time_left`` gives the invocation's remaining seconds (the Lambda context's); see the module rules.
    """
    failed: set[str] = set()
    fields = {"playback_id": batch.playback_id, "session_id": batch.session_id}
    for candidate in batch.candidates[:MAX_ATTEMPTS]:
        key = candidate.segment.key
        try:
            if time_left() < MIN_TIME_LEFT:
                raise OutOfTime(f"{time_left():.2f} s left, {MIN_TIME_LEFT:g} s needed")
            if cut_and_store(
                candidate, s3=s3, dynamodb=dynamodb, table_name=table_name, ffmpeg=ffmpeg, time_left=time_left
            ):
                return failed
        except OutOfTime as error:
            log.warning(
                "live thumbnail: out of time, %s skipped (the stream's next sampled segment will do): %s",
                key,
                error,
                extra={**fields, "key": key},
            )
            return failed
        except DecodeError as error:
            log.error(
                "live thumbnail: segment %s cannot be decoded, its message fails (DLQ after retries): %s",
                key,
                str(error).replace("\n", " | "),  # one log line, whatever ffmpeg printed
                extra={**fields, "key": key, "message_ids": sorted(candidate.message_ids)},
            )
            failed |= candidate.message_ids
        except Exception:
            log.exception("live thumbnail failed; the session's messages will be retried", extra={**fields, "key": key})
            return failed | batch.message_ids
    return failed


def cut_and_store(
    candidate: thumbnails.Candidate,
    *,
    s3: Any,
    dynamodb: Any,
    table_name: str,
    ffmpeg: str,
    time_left: Callable[[], float] = unlimited,
) -> bool:
    """Cut, store and publish the thumbnail of one segment.

    Returns:
        True when done (stored, a newer thumbnail is already on the stream item, or nothing to picture); False
        when the segment no longer exists.

    Raises:
        DecodeError: the segment does not parse, or ffmpeg cannot make a picture of it.
        OutOfTime: ``time_left()`` (less :data:`STORE_RESERVE`) ran out before ffmpeg was done.
    """
    segment, bucket = candidate.segment, candidate.bucket
    try:
        obj = s3.get_object(Bucket=bucket, Key=segment.key)
    except s3.exceptions.NoSuchKey:
        log.warning("live thumbnail: segment %s is gone, skipped", segment.key, extra={"key": segment.key})
        return False
    data = obj["Body"].read()
    meta = keys.SegmentMetadata.parse(obj.get("Metadata") or {})
    epoch = meta.epoch if meta is not None else 0
    init_key = keys.LiveInit(playback_id=segment.playback_id, session_id=segment.session_id, epoch=epoch)
    init = INITS.get(
        (bucket, segment.playback_id, segment.session_id, epoch),
        lambda: s3.get_object(Bucket=bucket, Key=init_key.key)["Body"].read(),
    )
    if not has_picture(init, data):
        log.info(
            "live thumbnail: %s has no video keyframe, nothing to picture", segment.key, extra={"key": segment.key}
        )
        return True
    images = live_thumbnail(init, data, ffmpeg=ffmpeg, time_left=lambda: time_left() - STORE_RESERVE)
    bodies = {keys.ImageFormat.JPEG: images.jpeg, keys.ImageFormat.WEBP: images.webp}
    for image_format, image in thumbnails.thumbnail_keys(segment).items():
        s3.put_object(
            Bucket=bucket,
            Key=image.key,
            Body=bodies[image_format],
            ContentType=thumbnails.CONTENT_TYPES[image_format],
            CacheControl=thumbnails.CACHE_CONTROL,
        )
    try:
        dynamodb.update_item(TableName=table_name, **thumbnails.thumbnail_update(segment))
        outcome = "published"
    except dynamodb.exceptions.ConditionalCheckFailedException:
        outcome = "superseded"  # a newer thumbnail, or another broadcast, is on the stream item
    lag = (datetime.now(UTC) - candidate.stored_at).total_seconds() if candidate.stored_at else None
    log.info(
        "live thumbnail %s for %s (ffmpeg %.0f ms)",
        outcome,
        segment.key,
        images.elapsed * 1000,
        extra={"key": segment.key, "ffmpeg_ms": round(images.elapsed * 1000), "lag_s": lag, "outcome": outcome},
    )
    return True
