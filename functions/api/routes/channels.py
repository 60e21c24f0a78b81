"""Channel routes: create a channel, rename it, rotate its stream key, list the caller's channels and a channel's
recordings (its past broadcasts, building and failed ones too, with their stats).

Rules:
- Owner-only: every route needs a bearer JWT (``CurrentUser``) and answers ``Cache-Control: no-store``.
- The clear stream key leaves the function exactly once, in the create/rotate response; only its hash is
  stored (``table.channel_to_item``), and neither the key nor the hash is ever logged.
- A channel that exists but belongs to someone else is reported as **404**, exactly like a missing one, so
  the API is not an oracle for which channel ids exist (GitHub does the same for private repositories).
- Writes are conditional: creation never overwrites (``attribute_not_exists``), and rotation only succeeds if
  the stored hash is still the one we read, so of two concurrent rotations exactly one wins (the other: 409).
  A rename is one conditional write on owner and existence, then the stream item's title if the channel has a
  stream (``table.stream_title_update``); the ingest node reads the channel item at every publish, so the next
  broadcast's manifests carry the new name, and the catalog keeps it over a running broadcast's older title.
  PATCH also sets ``waitOnUnpublish`` (the node reads it at the publish, so it applies from the next one).
- Kicks go through DynamoDB, the only state the API shares with the ingest node: rotate-key changes the stored
  key hash and end-stream sets ``end_requested_at``; the node's key watch (``ingest_node.publishers.key_watch``)
  reads the channel items of its live broadcasts every second and disconnects the publisher within ~1 s, ending
  the broadcast at once (no reconnect window).
- What end-stream means for OBS's automatic reconnect (it retries with the same key for minutes): the node
  refuses the channel's publishes for :data:`capturestream.models.END_STREAM_HOLD` (60 s) after the request
  (onStatus ``NetStream.Publish.Denied``), so the encoder cannot restart the stream at once; after that the same
  key works again. To stop an encoder for good, rotate the key.
- Item shapes and key expressions come from ``capturestream.table``; this module never spells a key.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from capturestream import recordings, table
from capturestream.errors import Conflict, NotFound
from capturestream.keys import NAME_PATTERN
from capturestream.models import Channel, IssuedStreamKey, utc_now
from capturestream.recordings import RecordingStatus
from capturestream.settings import ApiSettings

from ..deps import CurrentUser, DynamoDep, SettingsDep, no_store
from ..errors import LimitExceeded
from ..pagination import GSI1_KEY, CursorParam, query_page
from ..schemas import (
    ChannelCredentials,
    ChannelList,
    ChannelOut,
    ChannelRecordingList,
    ChannelRecordingOut,
    CreateChannelRequest,
    EndStreamResponse,
    ErrorResponse,
    IngestInfo,
    UpdateChannelRequest,
    watch_url,
)
from .recordings import DEFAULT_RECORDING_PAGE, MAX_RECORDING_PAGE, is_owner, recordings_page

logger = logging.getLogger(__name__)

#: Most channels one owner may have (best effort: two racing creates can both pass the count).
MAX_CHANNELS_PER_OWNER = 20
#: Default and maximum page size of ``GET /api/channels/me``.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
_CREATE_ATTEMPTS = 3

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing, invalid or expired bearer token."},
    422: {"model": ErrorResponse, "description": "Invalid input; `error.fields` names each bad field."},
}

router = APIRouter(prefix="/channels", tags=["channels"], dependencies=[Depends(no_store)], responses=_ERRORS)


def _credentials(channel: Channel, issued: IssuedStreamKey, settings: ApiSettings) -> ChannelCredentials:
    key = issued.value.get_secret_value()
    return ChannelCredentials(
        channel=ChannelOut.of(channel),
        stream_key=key,
        ingest=IngestInfo(server=settings.rtmp_ingest_url, stream_key=key),
        watch_url=watch_url(settings.web_base_url, channel.playback_id),
    )


@router.post(
    "",
    status_code=201,
    response_model=ChannelCredentials,
    responses={409: {"model": ErrorResponse, "description": "The owner has reached the channel limit."}},
)
def create_channel(
    body: CreateChannelRequest, user: CurrentUser, settings: SettingsDep, dynamodb: DynamoDep
) -> ChannelCredentials:
    """Create a channel and return its stream key (shown only this once)."""
    owned = dynamodb.query(TableName=settings.table_name, Select="COUNT", **table.owner_channels_query(user.id))
    if owned["Count"] >= MAX_CHANNELS_PER_OWNER:
        raise LimitExceeded(f"an owner can have at most {MAX_CHANNELS_PER_OWNER} channels")
    for _ in range(_CREATE_ATTEMPTS):  # a fresh random id on the (astronomically unlikely) collision
        channel, issued = Channel.create(name=body.name, owner=user.id)
        try:
            dynamodb.put_item(
                TableName=settings.table_name, Item=table.channel_to_item(channel), **table.put_new_condition()
            )
        except dynamodb.exceptions.ConditionalCheckFailedException:
            continue
        logger.info("channel created", extra={"channel_id": channel.channel_id, "owner": user.id})
        return _credentials(channel, issued, settings)
    raise Conflict("could not allocate a channel id; try again")


ChannelId = Annotated[str, Path(alias="channelId")]
_NOT_YOURS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such channel, or not yours."}
}


@router.patch("/{channelId}", response_model=ChannelOut, responses=_NOT_YOURS)
def update_channel(
    channel_id: ChannelId, body: UpdateChannelRequest, user: CurrentUser, settings: SettingsDep, dynamodb: DynamoDep
) -> ChannelOut:
    """Rename a channel and/or set ``waitOnUnpublish``; a new name shows on its stream card at once, and its next
    broadcast carries both."""
    if NAME_PATTERN.fullmatch(channel_id) is None:  # cannot exist; don't send junk keys to DynamoDB
        raise NotFound("channel not found")
    update = table.channel_update(channel_id, user.id, name=body.name, wait_on_unpublish=body.wait_on_unpublish)
    try:
        updated = dynamodb.update_item(TableName=settings.table_name, **update)
    except dynamodb.exceptions.ConditionalCheckFailedException:
        raise NotFound("channel not found") from None
    channel = table.read_channel(updated.get("Attributes"))
    if channel is None:  # half-written: it is being created
        raise NotFound("channel not found")
    if body.name is not None:
        retitle = table.stream_title_update(channel.playback_id, channel.name)
        with contextlib.suppress(dynamodb.exceptions.ConditionalCheckFailedException):  # never live: no stream item
            dynamodb.update_item(TableName=settings.table_name, **retitle)
    logger.info("channel updated", extra={"channel_id": channel_id})
    return ChannelOut.of(channel)


@router.post("/{channelId}/end-stream", status_code=202, response_model=EndStreamResponse, responses=_NOT_YOURS)
def end_stream(
    channel_id: ChannelId, user: CurrentUser, settings: SettingsDep, dynamodb: DynamoDep
) -> EndStreamResponse:
    """End the channel's live broadcast now: the ingest node disconnects the publisher within ~2 s and ends the
    broadcast without a reconnect window. For the next 60 s (``publishHeldUntil``) the node refuses the channel's
    publishes, so OBS's automatic reconnect cannot restart it; then the same key works again. To stop an encoder
    for good, rotate the key. Answers 202 whether or not the channel is live (the request is recorded either way).
    """
    if NAME_PATTERN.fullmatch(channel_id) is None:  # cannot exist; don't send junk keys to DynamoDB
        raise NotFound("channel not found")
    update = table.end_stream_update(channel_id, user.id, utc_now())
    try:
        updated = dynamodb.update_item(TableName=settings.table_name, **update)
    except dynamodb.exceptions.ConditionalCheckFailedException:
        raise NotFound("channel not found") from None
    channel = table.read_channel(updated.get("Attributes"))
    if channel is None or channel.end_requested_at is None:  # half-written: it is being created
        raise NotFound("channel not found")
    held_until = channel.publish_held_until()
    assert held_until is not None
    logger.info("end of stream requested", extra={"channel_id": channel_id})
    return EndStreamResponse(
        channel_id=channel_id, end_requested_at=channel.end_requested_at, publish_held_until=held_until
    )


@router.post(
    "/{channelId}/rotate-key",
    response_model=ChannelCredentials,
    responses={**_NOT_YOURS, 409: {"model": ErrorResponse, "description": "Another rotation won the race; retry."}},
)
def rotate_stream_key(
    channel_id: ChannelId,
    user: CurrentUser,
    settings: SettingsDep,
    dynamodb: DynamoDep,
) -> ChannelCredentials:
    """Replace the channel's stream key; the old key stops working immediately."""
    if NAME_PATTERN.fullmatch(channel_id) is None:  # cannot exist; don't send junk keys to DynamoDB
        raise NotFound("channel not found")
    found = dynamodb.get_item(TableName=settings.table_name, Key=table.channel_key(channel_id), ConsistentRead=True)
    channel = table.read_channel(found.get("Item"))
    if channel is None or channel.owner != user.id:
        raise NotFound("channel not found")
    rotated, issued = channel.with_rotated_key()
    try:
        dynamodb.update_item(TableName=settings.table_name, **table.rotate_key_update(rotated, channel.stream_key_hash))
    except dynamodb.exceptions.ConditionalCheckFailedException:
        raise Conflict("the stream key was changed concurrently; retry") from None
    logger.info("stream key rotated", extra={"channel_id": channel_id})
    return _credentials(rotated, issued, settings)


@router.get("/{channelId}/recordings", response_model=ChannelRecordingList, responses=_NOT_YOURS)
def list_channel_recordings(
    channel_id: ChannelId,
    user: CurrentUser,
    settings: SettingsDep,
    dynamodb: DynamoDep,
    limit: Annotated[int, Query(ge=1, le=MAX_RECORDING_PAGE)] = DEFAULT_RECORDING_PAGE,
    cursor: CursorParam = None,
) -> ChannelRecordingList:
    """List the channel's past broadcasts, newest first: ready, building and failed recordings with their stats."""
    if NAME_PATTERN.fullmatch(channel_id) is None or not is_owner(dynamodb, settings.table_name, channel_id, user):
        raise NotFound("channel not found")
    query = recordings.channel_recordings_query(channel_id, limit=limit)
    found, next_cursor = recordings_page(dynamodb, settings.table_name, query, cursor)
    return ChannelRecordingList(
        items=[
            ChannelRecordingOut.of_recording(recording, cdn_base_url=settings.cdn_base_url)
            for recording in found
            if recording.status is not RecordingStatus.DELETED  # not indexed; a stale index entry at most
        ],
        next_cursor=next_cursor,
    )


@router.get("/me", response_model=ChannelList)
def list_my_channels(
    user: CurrentUser,
    settings: SettingsDep,
    dynamodb: DynamoDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: CursorParam = None,
) -> ChannelList:
    """List the caller's channels, oldest first, without stream keys."""
    query = table.owner_channels_query(user.id)
    values = query["ExpressionAttributeValues"]

    def own_channel(key: Mapping[str, str]) -> bool:
        return (
            key[table.GSI1_PK] == values[":owner"]["S"]
            and key[table.GSI1_SK].startswith(values[":prefix"]["S"])
            and key[table.PK].startswith(table.CHANNEL_PREFIX)
            and key[table.SK] == table.CHANNEL_SK
        )

    items, next_cursor = query_page(
        dynamodb, settings.table_name, {**query, "Limit": limit}, cursor, names=GSI1_KEY, accept=own_channel
    )
    channels = [channel for channel in map(table.read_channel, items) if channel is not None]  # half-written: skip
    return ChannelList(channels=[ChannelOut.of(channel) for channel in channels], next_cursor=next_cursor)
