"""Public stream routes: the live grid, one stream, a broadcast's live health and its chat replay.

Rules:
- Public and read-only: no auth, nothing about owners, never a stream key or its hash. Responses are built
  field by field from the core read models (``StreamView``, ``SessionView``, ``ChatEntry``), never from raw items.
- Cacheable by a CDN for a short time (``Cache-Control: public, max-age=2``): the grid and viewer counts may lag
  by two seconds, which is what live cards can afford; errors are never cached (``errors.py``).
- An id that cannot be a name (:data:`capturestream.keys.NAME_PATTERN`) is a 404 without a DynamoDB call, and
  the 404 message never echoes the id.
- Chat is addressed by **media time** (seconds since the broadcast started), half-open ``[from, to)``, the same
  clock as the VOD player's ``currentTime``. ``session`` picks an older broadcast of the same stream; a session
  of another stream is a 404 like a missing one.
- Health (``/streams/{id}/health``) is the session item's sample series (the catalog merges the node's
  ``health.json`` into it): the latest broadcast's by default, ``session`` picks another of the same stream like
  chat does. The latest broadcast before its session item exists has no samples yet (200, empty), not a 404.
- The detail costs two ``GetItem`` calls: the session item's key is only known from the stream item, so one
  ``BatchGetItem`` cannot fetch both. Reads are eventually consistent (cheaper; the CDN caches them anyway).
- A half-written item (moto shows the bare keys while the catalog creates a stream) is absent: 404 for one
  stream, skipped in a list, never 500 (``StreamView.read``).
- Item shapes and key expressions come from ``capturestream.table``; this module never spells a key.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from capturestream import table
from capturestream.chat import ChatEntry
from capturestream.errors import NotFound
from capturestream.keys import NAME_PATTERN
from capturestream.models import StreamStatus
from capturestream.streams import SessionView, StreamView

from ..deps import DynamoDBClient, DynamoDep, SettingsDep
from ..pagination import GSI1_KEY, TABLE_KEY, CursorParam, query_page
from ..schemas import (
    ChatMessageOut,
    ChatPage,
    ErrorResponse,
    MediaOut,
    StreamDetail,
    StreamHealth,
    StreamList,
    StreamOut,
)

logger = logging.getLogger(__name__)

#: ``Cache-Control`` of every successful response here.
PUBLIC_CACHE = "public, max-age=2"
DEFAULT_STREAM_PAGE = 24
MAX_STREAM_PAGE = 100
DEFAULT_CHAT_PAGE = 100
MAX_CHAT_PAGE = 500
#: Largest media time a chat sort key can hold, used when ``to`` is absent.
_END_OF_MEDIA_MS = table.MAX_MEDIA_MS
_MAX_SECONDS = _END_OF_MEDIA_MS / 1000


def public_cache(response: Response) -> None:
    """Let browsers and the CDN keep the response for two seconds."""
    response.headers["Cache-Control"] = PUBLIC_CACHE


_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "Invalid input; `error.fields` names each bad field."},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "No such stream."}}
_NO_BROADCAST: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such stream, or no such broadcast of it."}
}

router = APIRouter(tags=["streams"], dependencies=[Depends(public_cache)], responses=_ERRORS)

StreamId = Annotated[str, Path(alias="id", description="The stream's playback id.")]
SessionParam = Annotated[
    str | None,
    Query(pattern=f"^{NAME_PATTERN.pattern}$", description="A broadcast id; default: the latest broadcast."),
]


@router.get("/streams", response_model=StreamList)
def list_streams(
    settings: SettingsDep,
    dynamodb: DynamoDep,
    status: Annotated[StreamStatus, Query(description="Which streams to list.")] = StreamStatus.LIVE,
    limit: Annotated[int, Query(ge=1, le=MAX_STREAM_PAGE)] = DEFAULT_STREAM_PAGE,
    cursor: CursorParam = None,
) -> StreamList:
    """List streams of one status, newest broadcast first."""
    listed = table.streams_by_status(status)

    def same_listing(key: Mapping[str, str]) -> bool:
        return (
            key[table.GSI1_PK] == listed
            and key[table.PK].startswith(table.STREAM_PREFIX)
            and key[table.SK] == table.STREAM_SK
        )

    query = table.streams_by_status_query(status, limit)
    items, next_cursor = query_page(dynamodb, settings.table_name, query, cursor, names=GSI1_KEY, accept=same_listing)
    urls = {"cdn_base_url": settings.cdn_base_url, "web_base_url": settings.web_base_url}
    return StreamList(items=[StreamOut.of(view, **urls) for view in _stream_views(items)], next_cursor=next_cursor)


@router.get("/stream/{id}", response_model=StreamDetail, responses=_NOT_FOUND)
def get_stream(stream_id: StreamId, settings: SettingsDep, dynamodb: DynamoDep) -> StreamDetail:
    """Get one stream with the progress of its latest broadcast."""
    stream = _get_stream(dynamodb, settings.table_name, stream_id)
    session = _get_session(dynamodb, settings.table_name, stream.session_id, stream_id)
    return StreamDetail.of_session(
        stream, session, cdn_base_url=settings.cdn_base_url, web_base_url=settings.web_base_url
    )


@router.get("/streams/{id}/chat", response_model=ChatPage, responses=_NO_BROADCAST)
def get_chat(
    stream_id: StreamId,
    settings: SettingsDep,
    dynamodb: DynamoDep,
    start: Annotated[
        float, Query(alias="from", ge=0, le=_MAX_SECONDS, allow_inf_nan=False, description="Media seconds, inclusive.")
    ] = 0.0,
    end: Annotated[
        float | None,
        Query(alias="to", ge=0, le=_MAX_SECONDS, allow_inf_nan=False, description="Media seconds, exclusive."),
    ] = None,
    session: SessionParam = None,
    limit: Annotated[int, Query(ge=1, le=MAX_CHAT_PAGE)] = DEFAULT_CHAT_PAGE,
    cursor: CursorParam = None,
) -> ChatPage:
    """List a broadcast's chat between two media times, in media-time order."""
    if end is not None and end < start:
        raise RequestValidationError([{"type": "value_error", "loc": ("query", "to"), "msg": "must be >= from"}])
    session_id = _chat_session(dynamodb, settings.table_name, stream_id, session)
    from_ms, to_ms = _media_ms(start), _END_OF_MEDIA_MS if end is None else _media_ms(end)
    query = table.chat_range_query(session_id, from_ms, to_ms, limit)
    bounds = query["ExpressionAttributeValues"]

    def same_range(key: Mapping[str, str]) -> bool:
        return key[table.PK] == bounds[":pk"]["S"] and bounds[":lo"]["S"] < key[table.SK] < bounds[":hi"]["S"]

    items, next_cursor = query_page(dynamodb, settings.table_name, query, cursor, names=TABLE_KEY, accept=same_range)
    messages = [ChatMessageOut.of(ChatEntry.from_item(item)) for item in items]
    return ChatPage(session_id=session_id, items=messages, next_cursor=next_cursor)


@router.get("/streams/{id}/health", response_model=StreamHealth, responses=_NO_BROADCAST)
def get_health(
    stream_id: StreamId, settings: SettingsDep, dynamodb: DynamoDep, session: SessionParam = None
) -> StreamHealth:
    """Get a broadcast's live health: bitrate, frame rate and keyframe interval over time, oldest first."""
    stream = _get_stream(dynamodb, settings.table_name, stream_id)
    found = _get_session(dynamodb, settings.table_name, session or stream.session_id, stream_id)
    if found is not None:
        return StreamHealth.of_session(found)
    if session is not None and session != stream.session_id:
        raise NotFound("broadcast not found")
    return StreamHealth(  # the latest broadcast, its session item not written yet: no samples so far
        session_id=stream.session_id, status=stream.status.value, samples=[], media=MediaOut.of(stream.media)
    )


def _media_ms(seconds: float) -> int:
    """Media seconds → the first whole millisecond at or after them (``1.1`` → 1100, not 1101)."""
    return math.ceil(round(seconds * 1000, 3))


def _stream_views(items: list[table.Item]) -> list[StreamView]:
    """Stream items → views, skipping half-written items and (logged) corrupt ones rather than failing the grid."""
    views = []
    for item in items:
        try:
            view = StreamView.read(item)
        except ValidationError:
            logger.warning("skipping a corrupt stream item", extra={"pk": item.get(table.PK, {}).get("S")})
            continue
        if view is not None:
            views.append(view)
    return views


def _get_stream(dynamodb: DynamoDBClient, table_name: str, stream_id: str) -> StreamView:
    """The stream item of ``stream_id``.

    Raises:
        NotFound: when the id is not a valid name or there is no such stream.
    """
    if NAME_PATTERN.fullmatch(stream_id) is None:  # cannot exist; don't send junk keys to DynamoDB
        raise NotFound("stream not found")
    stream = StreamView.read(dynamodb.get_item(TableName=table_name, Key=table.stream_key(stream_id)).get("Item"))
    if stream is None:  # absent, or half-written while the catalog creates it
        raise NotFound("stream not found")
    return stream


def _get_session(dynamodb: DynamoDBClient, table_name: str, session_id: str, stream_id: str) -> SessionView | None:
    """The session item of ``session_id`` if it exists and is a broadcast of ``stream_id``."""
    session = SessionView.read(dynamodb.get_item(TableName=table_name, Key=table.session_key(session_id)).get("Item"))
    return session if session is not None and session.playback_id == stream_id else None


def _chat_session(dynamodb: DynamoDBClient, table_name: str, stream_id: str, session_id: str | None) -> str:
    """The broadcast whose chat is asked for: ``session_id`` if it is one of the stream's, else its latest.

    Raises:
        NotFound: when there is no such stream, or ``session_id`` is not one of its broadcasts.
    """
    stream = _get_stream(dynamodb, table_name, stream_id)
    if session_id is None or session_id == stream.session_id:
        return stream.session_id
    if _get_session(dynamodb, table_name, session_id, stream_id) is None:
        raise NotFound("broadcast not found")
    return session_id
