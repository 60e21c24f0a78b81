"""Recording routes: the VOD library, one recording, and deleting one (its channel's owner only).

Rules:
- Reads are public and cacheable for two seconds like the stream routes; responses are built field by field from
  :class:`~capturestream.recordings.Recording` (``schemas.RecordingOut``), never from raw items, and object
  paths leave only as CDN URLs (``streams.media_url``).
- Only ``ready`` recordings are listed here: everyone's on ``gsi1`` (which holds nothing else), one channel's on
  ``gsi2`` filtered to ``ready`` (it also holds the channel's building and failed ones, which its owner lists
  with ``GET /api/channels/{channelId}/recordings``), newest first, paged with the shared opaque cursors.
  ``GET`` by id also answers ``building`` and ``failed`` (with its error); ``deleted`` reads as absent: 404,
  like an unknown id, and so does a half-written item (``Recording.read``). An id that cannot be a name is a
  404 without a DynamoDB call, and no 404 echoes the id.
- ``DELETE`` needs a bearer JWT (401 without) of the owner of the recording's channel (403 for anyone else; a
  deleted recording is a 404 to them). A recording still building is a 409: its builder would write new objects
  behind the delete. The steps, each safe to repeat:

  1. the recording item becomes its tombstone (``recordings.tombstone_item``, conditioned on the status read):
     the recording leaves the library at once, ``GET`` says 404, and a late duplicate build skips it;
  2. every object under the session's ``live/``, ``vod/``, ``thumbs/`` and ``sessions/`` prefixes is deleted
     (ListObjectsV2 pages of ≤ 1000 keys, one DeleteObjects each);
  3. the broadcast's chat items (BatchWriteItem, 25 a call) and its session item are deleted.

  A repeated ``DELETE`` by the owner finds the tombstone, runs steps 2–3 again (which find less or nothing left)
  and answers **204** again, so a delete that failed half-way (500) or ran out of its time budget (**202**: the
  rest is left for the next call) is completed by repeating it. Once the tombstone expires (a week) it is a 404.
- Item shapes and key expressions come from ``capturestream.table``/``recordings``, S3 prefixes from
  ``capturestream.keys``; this module spells neither.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import ValidationError

from capturestream import keys, recordings, table
from capturestream.errors import Conflict, Forbidden, NotFound
from capturestream.keys import NAME_PATTERN
from capturestream.models import utc_now
from capturestream.recordings import Recording, RecordingStatus
from capturestream.tokens import User

from ..deps import CurrentUser, DynamoDBClient, DynamoDep, S3Client, S3Dep, SettingsDep, no_store
from ..pagination import GSI1_KEY, CursorParam, query_page
from ..schemas import ErrorResponse, RecordingDetail, RecordingList, RecordingOut
from .streams import public_cache

logger = logging.getLogger(__name__)

DEFAULT_RECORDING_PAGE = 24
MAX_RECORDING_PAGE = 100
#: Attributes of a ``LastEvaluatedKey`` from a ``gsi2`` query.
GSI2_KEY = frozenset({table.PK, table.SK, recordings.GSI2_PK, recordings.GSI2_SK})
#: Session prefixes a deleted recording's objects live under.
SESSION_PREFIXES = (keys.LIVE_PREFIX, keys.VOD_PREFIX, keys.THUMBS_PREFIX, keys.SESSIONS_PREFIX)
#: Keys per ListObjectsV2 page, deleted with one DeleteObjects call (both cap at 1000).
LIST_PAGE = 1000
#: Seconds one DELETE works before answering 202 (API Gateway gives up on the request at 30 s).
DELETE_BUDGET_SECONDS = 20.0
#: Items per BatchWriteItem (the DynamoDB limit) and rounds of retrying its unprocessed items.
_BATCH_WRITE = 25
_BATCH_ROUNDS = 5

_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "Invalid input; `error.fields` names each bad field."},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "No such recording."}}

router = APIRouter(prefix="/recordings", tags=["recordings"], responses=_ERRORS)

RecordingId = Annotated[str, Path(alias="id", description="The recording id (the broadcast's session id).")]


@router.get("", response_model=RecordingList, dependencies=[Depends(public_cache)])
def list_recordings(
    settings: SettingsDep,
    dynamodb: DynamoDep,
    channel: Annotated[
        str | None, Query(pattern=f"^{NAME_PATTERN.pattern}$", description="Only this channel's recordings.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RECORDING_PAGE)] = DEFAULT_RECORDING_PAGE,
    cursor: CursorParam = None,
) -> RecordingList:
    """List ready recordings, newest broadcast first."""
    query = recordings.recordings_query(channel_id=channel, limit=limit)
    found, next_cursor = recordings_page(dynamodb, settings.table_name, query, cursor)
    ready = [r for r in found if r.status is RecordingStatus.READY]
    return RecordingList(
        items=[RecordingOut.of(r, cdn_base_url=settings.cdn_base_url) for r in ready], next_cursor=next_cursor
    )


def recordings_page(
    dynamodb: DynamoDBClient, table_name: str, query: dict[str, Any], cursor: str | None
) -> tuple[list[Recording], str | None]:
    """One page of a ``recordings`` listing query (gsi1 or gsi2), its cursor pinned to that listing.

    Returns:
        The page's recordings (half-written and corrupt items skipped) and the next page's cursor.
    """
    index_pk = table.GSI1_PK if query["IndexName"] == table.GSI1 else recordings.GSI2_PK
    listed = query["ExpressionAttributeValues"][":value"]["S"]

    def same_listing(key: Mapping[str, str]) -> bool:
        return (
            key[index_pk] == listed
            and key[table.PK].startswith(recordings.RECORDING_PREFIX)
            and key[table.SK] == recordings.RECORDING_SK
        )

    names = GSI1_KEY if index_pk == table.GSI1_PK else GSI2_KEY
    items, next_cursor = query_page(dynamodb, table_name, query, cursor, names=names, accept=same_listing)
    return _recordings(items), next_cursor


@router.get("/{id}", response_model=RecordingDetail, responses=_NOT_FOUND, dependencies=[Depends(public_cache)])
def get_recording(recording_id: RecordingId, settings: SettingsDep, dynamodb: DynamoDep) -> RecordingDetail:
    """Get one recording: its status, media URLs, storyboard, broadcast stats and chat replay range."""
    recording = _get_recording(dynamodb, settings.table_name, recording_id)
    if recording is None or recording.status is RecordingStatus.DELETED:
        raise NotFound("recording not found")
    return RecordingDetail.of_recording(recording, cdn_base_url=settings.cdn_base_url)


@router.delete(
    "/{id}",
    status_code=204,
    response_class=Response,
    dependencies=[Depends(no_store)],
    responses={
        202: {"description": "Partly deleted (time budget used up): repeat the DELETE to finish."},
        401: {"model": ErrorResponse, "description": "Missing, invalid or expired bearer token."},
        403: {"model": ErrorResponse, "description": "The recording's channel is not yours."},
        409: {"model": ErrorResponse, "description": "The recording is still being built, or changed meanwhile."},
        **_NOT_FOUND,
    },
)
def delete_recording(
    recording_id: RecordingId,
    user: CurrentUser,
    settings: SettingsDep,
    dynamodb: DynamoDep,
    s3: S3Dep,
    response: Response,
) -> None:
    """Delete a recording with its media, images, chat and broadcast record (the channel owner only)."""
    recording = _get_recording(dynamodb, settings.table_name, recording_id, consistent=True)
    if recording is None:
        raise NotFound("recording not found")
    owner = is_owner(dynamodb, settings.table_name, recording.channel_id, user)
    if recording.status is RecordingStatus.DELETED and not owner:
        raise NotFound("recording not found")
    if not owner:
        raise Forbidden("only the channel's owner can delete its recordings")
    if recording.status is RecordingStatus.BUILDING:
        raise Conflict("the recording is still being built; try again when it is ready or failed")
    if recording.status is not RecordingStatus.DELETED:
        _bury(dynamodb, settings.table_name, recording)
    deadline = time.monotonic() + DELETE_BUDGET_SECONDS
    finished = _delete_objects(s3, settings.media_bucket, recording, deadline) and _delete_items(
        dynamodb, settings.table_name, recording.recording_id, deadline
    )
    logger.info("recording deleted" if finished else "recording partly deleted", extra={"recording_id": recording_id})
    if not finished:
        response.status_code = 202


def _recordings(items: list[table.Item]) -> list[Recording]:
    """Recording items → models, skipping half-written items and (logged) corrupt ones, not failing the page."""
    found = []
    for item in items:
        try:
            recording = Recording.read(item)
        except ValidationError:
            logger.warning("skipping a corrupt recording item", extra={"pk": item.get(table.PK, {}).get("S")})
            continue
        if recording is not None:
            found.append(recording)
    return found


def _get_recording(
    dynamodb: DynamoDBClient, table_name: str, recording_id: str, *, consistent: bool = False
) -> Recording | None:
    """The recording item of ``recording_id`` (any status), or None (also for ids that cannot be names)."""
    if NAME_PATTERN.fullmatch(recording_id) is None:  # cannot exist; don't send junk keys to DynamoDB
        return None
    key = recordings.recording_key(recording_id)
    return Recording.read(dynamodb.get_item(TableName=table_name, Key=key, ConsistentRead=consistent).get("Item"))


def is_owner(dynamodb: DynamoDBClient, table_name: str, channel_id: str, user: User) -> bool:
    """True when ``user`` owns channel ``channel_id`` (only its ``owner`` attribute is read)."""
    item = dynamodb.get_item(
        TableName=table_name,
        Key=table.channel_key(channel_id),
        ProjectionExpression="#owner",
        ExpressionAttributeNames={"#owner": "owner"},
    ).get("Item")
    return bool(item) and item.get("owner", {}).get("S") == user.id


def _bury(dynamodb: DynamoDBClient, table_name: str, recording: Recording) -> None:
    """Replace the recording item with its tombstone, if it still has the status we read.

    Raises:
        Conflict: when the item changed in between (e.g. a rebuild finished); the client may retry.
    """
    try:
        dynamodb.put_item(
            TableName=table_name,
            Item=recordings.tombstone_item(recording, utc_now()),
            ConditionExpression="#status = :status",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":status": {"S": recording.status.value}},
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        raise Conflict("the recording changed while it was being deleted; try again") from None


def _delete_objects(s3: S3Client, bucket: str, recording: Recording, deadline: float) -> bool:
    """Delete every object of the recording's session; False when the deadline came first."""
    for prefix in SESSION_PREFIXES:
        listing = keys.session_prefix(prefix, recording.playback_id, recording.recording_id)
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=listing, PaginationConfig={"PageSize": LIST_PAGE}
        )
        for page in pages:
            objects = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if not objects:
                continue
            if time.monotonic() > deadline:
                return False
            result = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
            if result.get("Errors"):
                raise RuntimeError(f"{len(result['Errors'])} object(s) under {listing} could not be deleted")
    return True


def _delete_items(dynamodb: DynamoDBClient, table_name: str, session_id: str, deadline: float) -> bool:
    """Delete the broadcast's chat items, then its session item; False when the deadline came first."""
    batch: list[table.Item] = []
    for key in _chat_keys(dynamodb, table_name, session_id):
        batch.append(key)
        if len(batch) == _BATCH_WRITE:
            if time.monotonic() > deadline:
                return False
            _delete_batch(dynamodb, table_name, batch)
            batch = []
    if batch:
        _delete_batch(dynamodb, table_name, batch)
    dynamodb.delete_item(TableName=table_name, Key=table.session_key(session_id))
    return True


def _chat_keys(dynamodb: DynamoDBClient, table_name: str, session_id: str) -> Iterator[table.Item]:
    """Primary keys of every chat item of one broadcast (paginated)."""
    query = table.chat_range_query(session_id, 0, table.MAX_MEDIA_MS + 1, 1000) | {"ProjectionExpression": "#pk, #sk"}
    start: dict[str, Any] | None = None
    while True:
        page = dynamodb.query(TableName=table_name, **query, **({"ExclusiveStartKey": start} if start else {}))
        yield from ({table.PK: item[table.PK], table.SK: item[table.SK]} for item in page.get("Items", []))
        start = page.get("LastEvaluatedKey")
        if not start:
            return


def _delete_batch(dynamodb: DynamoDBClient, table_name: str, batch: list[table.Item]) -> None:
    """One BatchWriteItem of deletes, retrying unprocessed items with a short backoff.

    Raises:
        RuntimeError: when DynamoDB keeps refusing some of them (the DELETE can be repeated).
    """
    requests = {table_name: [{"DeleteRequest": {"Key": key}} for key in batch]}
    for attempt in range(_BATCH_ROUNDS):
        requests = dynamodb.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
        if not requests:
            return
        time.sleep(0.05 * 2**attempt)
    raise RuntimeError("chat items could not be deleted (throttled)")
