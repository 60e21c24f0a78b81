"""Recordings: the VOD a broadcast leaves behind, as a DynamoDB item (pure; no client).

The recording function builds one per ended session (MP4, VOD playlist, poster, storyboard) and stores it here;
the REST API lists, shows and deletes them. Layout (beside :mod:`capturestream.table`'s)::

    entity     pk                  sk         gsi1pk      gsi1sk           gsi2pk                   gsi2sk
    recording  RECORDING#<sess>    RECORDING  RECORDINGS  <started>#<sess>  RECORDINGS#<channel id>  <started>#<sess>
                                              (ready only)                  (all but deleted)

Rules:
- The recording id *is* the session id (one recording per broadcast; session ids are time-sortable and public,
  like playback ids; they never carry a stream key).
- gsi1 (everyone's, newest first) indexes only ``ready`` recordings: the public library. gsi2 (one channel's,
  newest first) indexes every recording but a deleted one, so the channel's owner sees builds in progress and
  failed builds beside the ready ones (:func:`channel_recordings_query`); the public per-channel listing
  filters it to ``ready`` (:func:`recordings_query`). ``GET`` by id tells what happened to any of them
  (``failed`` carries the error) — except ``deleted``, which reads as absent.
- A deleted recording leaves a tombstone (status ``deleted``, TTL) so a late duplicate ``ended.json`` does not
  rebuild it from objects that are being removed.
- Items are deterministic functions of the inputs (no build timestamps), so building twice stores the same item.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from . import table
from .keys import validate_name

RECORDING_PREFIX = "RECORDING#"
RECORDING_SK = "RECORDING"
RECORDINGS = "RECORDINGS"
GSI2 = "gsi2"
GSI2_PK = "gsi2pk"
GSI2_SK = "gsi2sk"
#: How long a deleted recording's tombstone stays (a duplicate ended.json arrives within minutes, not weeks).
TOMBSTONE_SECONDS = 7 * 24 * 3600


class RecordingStatus(enum.StrEnum):
    """Where a recording is."""

    #: The builder is working on it (a failed attempt is retried by the queue).
    BUILDING = "building"
    #: MP4, VOD playlist, poster and storyboard are stored.
    READY = "ready"
    #: The inputs are broken (a missing or corrupt segment): ``error`` says what; the event went to the DLQ.
    FAILED = "failed"
    #: Its owner deleted it; objects and items are (being) removed.
    DELETED = "deleted"


class BroadcastStats(BaseModel):
    """How the broadcast went."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    duration: float = Field(ge=0)
    peak_viewers: int = Field(default=0, ge=0)
    #: Time-weighted mean of the concurrent viewer count over the broadcast.
    average_viewers: float = Field(default=0.0, ge=0)
    chat_messages: int = Field(default=0, ge=0)
    #: Times the publisher came back inside the reconnect window (discontinuities in the media).
    reconnects: int = Field(default=0, ge=0)


class Storyboard(BaseModel):
    """Seek-preview images: sprite sheets of ``columns × rows`` tiles, one tile every ``interval`` seconds."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    vtt_path: str
    sprite_paths: list[str]
    interval: float = Field(gt=0)
    tile_width: int = Field(gt=0)
    tile_height: int = Field(gt=0)
    columns: int = Field(gt=0)
    rows: int = Field(gt=0)
    tiles: int = Field(ge=0)


class Recording(BaseModel):
    """One broadcast's recording."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    recording_id: str
    playback_id: str
    channel_id: str
    title: str = ""
    started_at: datetime
    ended_at: datetime | None = None
    status: RecordingStatus
    error: str | None = None
    #: Seconds of media in the MP4 (the longest track).
    duration: float | None = None
    #: Bytes of the MP4.
    size: int | None = None
    codecs: str | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None
    segment_count: int | None = None
    mp4_path: str | None = None
    playlist_path: str | None = None
    poster_path: str | None = None
    storyboard: Storyboard | None = None
    stats: BroadcastStats | None = None
    #: Fingerprint of the objects it was built from (keys + ETags): a duplicate event over the same inputs
    #: finds its recording already built.
    source: str | None = None

    def to_item(self) -> table.Item:
        """The DynamoDB item (in the public library when ready, in its channel's list unless deleted)."""
        attributes: dict[str, Any] = {
            **{name: value["S"] for name, value in recording_key(self.recording_id).items()},
            "entity": "recording",
            **self.model_dump(mode="json", exclude_none=True),
        }
        order = f"{self.started_at.isoformat()}#{self.recording_id}"
        if self.status is RecordingStatus.READY:
            attributes |= {table.GSI1_PK: RECORDINGS, table.GSI1_SK: order}
        if self.status is not RecordingStatus.DELETED:
            attributes |= {GSI2_PK: channel_recordings(self.channel_id), GSI2_SK: order}
        return table.to_item(attributes)

    @classmethod
    def from_item(cls, item: Mapping[str, table.AttributeValue]) -> Recording:
        """An item → the model (raises pydantic's ValidationError on a corrupt or half-written item)."""
        return cls.model_validate(table.from_item(item))

    @classmethod
    def read(cls, item: Mapping[str, table.AttributeValue] | None) -> Recording | None:
        """An item → the model, or None when there is none or it is half-written (``table.read_model``)."""
        return table.read_model(cls, item)


def recording_key(recording_id: str) -> table.Item:
    """Primary key of a recording item."""
    validate_name(recording_id, "recording id")
    return {table.PK: {"S": f"{RECORDING_PREFIX}{recording_id}"}, table.SK: {"S": RECORDING_SK}}


def channel_recordings(channel_id: str) -> str:
    """``gsi2pk`` under which one channel's recordings (all but deleted ones) are listed, newest first."""
    return f"{RECORDINGS}#{channel_id}"


def recordings_query(*, channel_id: str | None = None, limit: int = 20) -> dict[str, Any]:
    """Keyword arguments for ``Query`` listing ready recordings newest first (one channel's with ``channel_id``).

    The channel's index also holds its building and failed recordings: they are filtered out, after ``Limit``
    (DynamoDB's order), so such a page can be short; builds are brief and failures rare.
    """
    if not channel_id:
        return _newest_first(table.GSI1, table.GSI1_PK, RECORDINGS, limit)
    query = channel_recordings_query(channel_id, limit=limit)
    query["FilterExpression"] = "#status = :ready"
    query["ExpressionAttributeNames"]["#status"] = "status"
    query["ExpressionAttributeValues"][":ready"] = {"S": RecordingStatus.READY.value}
    return query


def channel_recordings_query(channel_id: str, *, limit: int = 20) -> dict[str, Any]:
    """Keyword arguments for ``Query`` listing one channel's recordings of any status but deleted, newest first."""
    return _newest_first(GSI2, GSI2_PK, channel_recordings(channel_id), limit)


def _newest_first(index: str, pk: str, value: str, limit: int) -> dict[str, Any]:
    return {
        "IndexName": index,
        "KeyConditionExpression": "#gpk = :value",
        "ExpressionAttributeNames": {"#gpk": pk},
        "ExpressionAttributeValues": {":value": {"S": value}},
        "ScanIndexForward": False,
        "Limit": limit,
    }


def tombstone_item(recording: Recording, now: datetime) -> table.Item:
    """What stays of a deleted recording: ids and status only, unindexed, expiring after a week."""
    attributes = {
        **{name: value["S"] for name, value in recording_key(recording.recording_id).items()},
        "entity": "recording",
        "recording_id": recording.recording_id,
        "playback_id": recording.playback_id,
        "channel_id": recording.channel_id,
        "started_at": recording.started_at.isoformat(),
        "status": RecordingStatus.DELETED.value,
        table.TTL_ATTRIBUTE: int(now.timestamp()) + TOMBSTONE_SECONDS,
    }
    return table.to_item(attributes)


def viewer_stats(session: Mapping[str, Any], *, started_at: datetime, ended_at: datetime) -> tuple[int, float]:
    """``(peak, time-weighted average)`` concurrent viewers of a session item's viewer fields.

    The notifier keeps, on the session item, ``peak_viewers``, ``viewer_seconds`` (the integral of the count over
    time up to ``viewers_changed_at``) and ``viewers_now`` (the count since then); the tail up to ``ended_at``
    is added here.
    """
    peak = int(session.get("peak_viewers") or 0)
    integral = float(session.get("viewer_seconds") or 0.0)
    changed = session.get("viewers_changed_at")
    now_count = int(session.get("viewers_now") or 0)
    if changed:
        tail = (ended_at - datetime.fromisoformat(str(changed))).total_seconds()
        integral += now_count * max(tail, 0.0)
    duration = (ended_at - started_at).total_seconds()
    return peak, round(integral / duration, 2) if duration > 0 else 0.0
