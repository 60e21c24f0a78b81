"""One recording build: an ended session's live segments → MP4, VOD playlist, poster, storyboard, recording item.

Rules:
- Idempotent: every output is a deterministic function of the stored segments (no timestamps of the build), so
  a second run over the same inputs writes the same objects and the same item; when the stored item is
  ``ready`` with the same input fingerprint the build is skipped altogether (a duplicate ``ended.json``, or the
  reaper and a late node both ending the session).
- A deleted recording (tombstone) is never rebuilt.
- Broken inputs (a missing or corrupt segment, an unknown init epoch) mark the item ``failed`` with the reason
  and raise, so the SQS message is retried and then parked in the DLQ (its alarm fires): never a silently short
  recording.
- Order: MP4 first (the big one), then the playlist, the images, and last the item that makes it visible.
- Each step starts only with time for it (:func:`.budget.check`); running out is neither broken input nor a
  ``failed`` item: :class:`.budget.OutOfTime` goes up to the handler, which has the message retried.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from capturestream import keys, recordings, table
from capturestream.models import SessionManifestBody
from capturestream.recordings import Recording, RecordingStatus
from capturestream.settings import RecordingSettings
from mediakit import bmff
from mediakit.cmaf import MediaError, describe_init
from mediakit.progressive import ProgressiveMp4, RecordingError
from mediakit.vod import vod_playlist

from . import budget
from .images import NoVideo, build_images
from .mp4_upload import MIB, upload_mp4
from .sources import SessionMedia, SourceError, read_session_media
from .stats import broadcast_stats

log = logging.getLogger(__name__)

#: What a build refuses as input; anything else is an infrastructure failure (retried the same way).
INPUT_ERRORS = (SourceError, RecordingError, bmff.MalformedBox, MediaError)
PLAYLIST_CACHE = "public, max-age=86400"


def build_recording(
    *,
    s3: Any,
    dynamodb: Any,
    settings: RecordingSettings,
    body: SessionManifestBody,
    time_left: budget.TimeLeft = budget.unlimited,
) -> Recording | None:
    """Build (or find already built) the recording of the ended session ``body`` describes.

    Returns:
        The stored recording, or None when it was deleted meanwhile.

    Raises:
        SourceError, RecordingError, ...: broken inputs (after storing a ``failed`` item).
        budget.OutOfTime: ``time_left`` ran short (nothing stored about it; the build is redone).
    """
    existing = _load(dynamodb, settings.table_name, body.session_id)
    if existing is not None and existing.status is RecordingStatus.DELETED:
        log.info("recording was deleted; not rebuilding", extra={"session_id": body.session_id})
        return None
    base = Recording(
        recording_id=body.session_id,
        playback_id=body.playback_id,
        channel_id=body.channel_id,
        title=body.title or "",
        started_at=body.started_at,
        ended_at=body.ended_at,
        status=RecordingStatus.BUILDING,
    )
    try:
        media = read_session_media(
            s3,
            settings.media_bucket,
            body.playback_id,
            body.session_id,
            concurrency=settings.read_concurrency,
            time_left=time_left,
        )
        source = _fingerprint(media)
        if existing is not None and existing.status is RecordingStatus.READY and existing.source == source:
            log.info("recording already built from these segments", extra={"session_id": body.session_id})
            return existing
        if existing is None or existing.status is not RecordingStatus.READY:
            _store(dynamodb, settings.table_name, base)
        recording = _build(s3, dynamodb, settings, body, base, media, source, time_left)
    except INPUT_ERRORS as error:
        failed = base.model_copy(update={"status": RecordingStatus.FAILED, "error": str(error)[:500]})
        _store(dynamodb, settings.table_name, failed)
        log.error("recording failed: %s", error, extra={"session_id": body.session_id})
        raise
    if not _store(dynamodb, settings.table_name, recording):
        log.warning("recording deleted while it was built; left deleted", extra={"session_id": body.session_id})
        return None
    return recording


def _build(
    s3: Any,
    dynamodb: Any,
    settings: RecordingSettings,
    body: SessionManifestBody,
    base: Recording,
    media: SessionMedia,
    source: str,
    time_left: budget.TimeLeft,
) -> Recording:
    pb, sid, bucket = body.playback_id, body.session_id, settings.media_bucket
    plan = ProgressiveMp4(media.inits, media.segments)
    mp4_key = keys.VodRecording(playback_id=pb, session_id=sid).key
    budget.check(time_left, "the MP4")
    upload_mp4(
        s3,
        bucket,
        mp4_key,
        plan,
        lambda sequence: keys.LiveSegment(playback_id=pb, session_id=sid, sequence=sequence).key,
        part_size=settings.part_size_mib * MIB,
        prefetch=settings.read_concurrency,
        time_left=time_left,
    )
    playlist_key = keys.VodPlaylist(playback_id=pb, session_id=sid).key
    up = "../" * playlist_key.count("/")  # from vod/<pb>/<session>/ back to the bucket root
    timescales = {epoch: {tid: t.timescale for tid, t in per.items()} for epoch, per in media.tracks.items()}
    text = vod_playlist(
        media.segments,
        timescales,
        started_at=body.started_at,
        target_duration=1.0,
        segment_uri=lambda s: up + keys.LiveSegment(playback_id=pb, session_id=sid, sequence=s.sequence).key,
        init_uri=lambda epoch: up + keys.LiveInit(playback_id=pb, session_id=sid, epoch=epoch).key,
    )
    s3.put_object(
        Bucket=bucket,
        Key=playlist_key,
        Body=text.encode(),
        ContentType="application/vnd.apple.mpegurl",
        CacheControl=PLAYLIST_CACHE,
    )
    budget.check(time_left, "the poster and storyboard")
    try:
        poster, storyboard = build_images(
            s3=s3,
            bucket=bucket,
            playback_id=pb,
            session_id=sid,
            inits=media.inits,
            segments=media.segments,
            duration=plan.duration,
            ffmpeg=settings.ffmpeg_binary,
            time_left=time_left,
        )
    except NoVideo:  # an audio-only broadcast: a recording without pictures
        poster, storyboard = None, None
    ended_at = body.ended_at or body.started_at
    stats = broadcast_stats(
        dynamodb,
        settings.table_name,
        session_id=sid,
        started_at=body.started_at,
        ended_at=ended_at,
        duration=plan.duration,
        segments=media.segments,
    )
    first_epoch = media.segments[0].epoch
    described = describe_init(first_epoch, media.inits[first_epoch])
    return base.model_copy(
        update={
            "status": RecordingStatus.READY,
            "duration": round(plan.duration, 3),
            "size": plan.size,
            "codecs": described.codecs or None,
            "video_codec": described.video_codec,
            "audio_codec": described.audio_codec,
            "width": described.width,
            "height": described.height,
            "segment_count": len(media.segments),
            "mp4_path": mp4_key,
            "playlist_path": playlist_key,
            "poster_path": poster,
            "storyboard": storyboard,
            "stats": stats,
            "source": source,
        }
    )


def _fingerprint(media: SessionMedia) -> str:
    digest = hashlib.sha256()
    for key in sorted(media.etags):
        digest.update(f"{key}\0{media.etags[key]}\n".encode())
    return digest.hexdigest()


def _load(dynamodb: Any, table_name: str, session_id: str) -> Recording | None:
    """The stored recording (a tombstone reads as status ``deleted``), or None."""
    item = dynamodb.get_item(TableName=table_name, Key=recordings.recording_key(session_id), ConsistentRead=True).get(
        "Item"
    )
    return Recording.from_item(item) if item else None


def _store(dynamodb: Any, table_name: str, recording: Recording) -> bool:
    """Store the item unless its owner deleted the recording meanwhile (the tombstone wins); False then."""
    try:
        dynamodb.put_item(
            TableName=table_name,
            Item=recording.to_item(),
            ConditionExpression="attribute_not_exists(#pk) OR #status <> :deleted",
            ExpressionAttributeNames={"#pk": table.PK, "#status": "status"},
            ExpressionAttributeValues={":deleted": {"S": RecordingStatus.DELETED.value}},
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        return False
    return True
