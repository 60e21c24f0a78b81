"""Live thumbnails: which segment of a batch to cut one from, and how it lands on the stream item (pure; no client).

An EventBridge rule samples the live segments (``seg_*0.m4s`` and ``seg_*5.m4s``: one in five, ~every 5 s with
1 s segments) into the thumbnail queue; the thumbnail function cuts a JPEG and a WebP of the same frame from one
segment per session and points the stream item at them. The notifier turns a changed ``thumbnail_path`` into a
``thumbnail`` WebSocket message, and the stream card's ``thumbnailUrl`` follows it.

Rules (S3 and EventBridge deliver at least once and in any order — STYLE rule 10):
- Per batch and session only the newest segment is worth an ffmpeg run (:func:`plan_batch`); older ones in the
  same batch are superseded, their messages done. When the newest cannot be decoded, the function falls back to
  the next newest (:attr:`SessionBatch.candidates` is newest first), so a corrupt segment fails only its own
  message.
- Thumbnail keys are new for every segment (``keys.LiveThumbnail``), so the objects are immutable and a CDN
  never serves a stale picture; the stream item is what moves.
- :func:`thumbnail_update` applies only while the stream's current broadcast is this segment's session, and only
  when the stored thumbnail is from another session or an older segment: a late or redelivered segment never
  replaces a newer picture, and a thumbnail of an old broadcast never shows on the next one.
  ``ConditionalCheckFailed`` means exactly that, never an error.
- The thumbnail attributes belong to the thumbnail function; the catalog never writes them (and this never
  writes the catalog's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import events, keys, table

THUMBNAIL_PATH = "thumbnail_path"
THUMBNAIL_WEBP_PATH = "thumbnail_webp_path"
THUMBNAIL_SEQUENCE = "thumbnail_sequence"
THUMBNAIL_SESSION = "thumbnail_session_id"
#: Thumbnail objects never change (a new key per segment): cache them for a year, without revalidation.
CACHE_CONTROL = "public, max-age=31536000, immutable"
CONTENT_TYPES = {keys.ImageFormat.JPEG: "image/jpeg", keys.ImageFormat.WEBP: "image/webp"}


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One distinct segment of a batch, with every SQS message that carried it (a redelivery adds one)."""

    segment: keys.LiveSegment
    bucket: str
    message_ids: frozenset[str]
    #: When S3 stored it (the latest event time reported), for the freshness log; None when no event said.
    stored_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class SessionBatch:
    """The segments of one session in a batch, newest first, and every message that carried any of them."""

    playback_id: str
    session_id: str
    candidates: tuple[Candidate, ...]

    @property
    def message_ids(self) -> frozenset[str]:
        """Every message of this session in the batch."""
        return frozenset().union(*(candidate.message_ids for candidate in self.candidates))


def plan_batch(items: Sequence[events.SqsItem]) -> list[SessionBatch]:
    """Group a batch's live segments by session, newest segment first; other objects are ignored.

    Args:
        items: ``events.parse_sqs(event)``.

    Returns:
        One :class:`SessionBatch` per session, in order of first appearance.
    """
    found: dict[tuple[str, str], dict[tuple[str, int], Candidate]] = {}
    for item in items:
        for media in item.events:
            segment = media.media_key
            if not isinstance(segment, keys.LiveSegment):
                continue
            session = found.setdefault((segment.playback_id, segment.session_id), {})
            seen = session.get((media.object.bucket, segment.sequence))
            times = [t for t in (seen and seen.stored_at, media.object.event_time) if t is not None]
            session[(media.object.bucket, segment.sequence)] = Candidate(
                segment=segment,
                bucket=media.object.bucket,
                message_ids=(seen.message_ids if seen else frozenset()) | {item.message_id},
                stored_at=max(times, default=None),
            )
    batches = []
    for (playback_id, session_id), segments in found.items():
        ordered = sorted(segments.items(), key=lambda entry: (-entry[0][1], entry[0][0]))
        candidates = tuple(candidate for _, candidate in ordered)
        batches.append(SessionBatch(playback_id=playback_id, session_id=session_id, candidates=candidates))
    return batches


def thumbnail_keys(segment: keys.LiveSegment) -> dict[keys.ImageFormat, keys.LiveThumbnail]:
    """The JPEG and WebP keys of the thumbnail cut from ``segment``."""
    return {
        image_format: keys.LiveThumbnail(
            playback_id=segment.playback_id,
            session_id=segment.session_id,
            sequence=segment.sequence,
            image_format=image_format,
        )
        for image_format in keys.ImageFormat
    }


def thumbnail_update(segment: keys.LiveSegment) -> dict[str, Any]:
    """``UpdateItem`` arguments pointing the stream item at the thumbnail of ``segment``, if it is the newest.

    Applies when the stream's current session is the segment's and the stored thumbnail is missing, from
    another session, or from an older segment. ``ConditionalCheckFailed`` means a newer thumbnail (or another
    broadcast) is there: nothing to do.
    """
    images = thumbnail_keys(segment)
    return {
        "Key": table.stream_key(segment.playback_id),
        "UpdateExpression": "SET #path = :path, #webp = :webp, #seq = :seq, #tsid = :sid",
        "ConditionExpression": "#sid = :sid AND (attribute_not_exists(#seq) OR attribute_not_exists(#tsid) "
        "OR #tsid <> :sid OR #seq < :seq)",
        "ExpressionAttributeNames": {
            "#sid": "session_id",
            "#path": THUMBNAIL_PATH,
            "#webp": THUMBNAIL_WEBP_PATH,
            "#seq": THUMBNAIL_SEQUENCE,
            "#tsid": THUMBNAIL_SESSION,
        },
        "ExpressionAttributeValues": {
            ":sid": table.serialize(segment.session_id),
            ":path": table.serialize(images[keys.ImageFormat.JPEG].key),
            ":webp": table.serialize(images[keys.ImageFormat.WEBP].key),
            ":seq": table.serialize(segment.sequence),
        },
    }
