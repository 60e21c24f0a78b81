"""What each WebSocket route does: connection items, the token check, and answers to client messages.

Connection items (``CONN#<id>``) carry who is connected (user from an optional token), a *viewer* identity
that de-duplicates viewer counts, the streams the connection watches, and its rate-limit buckets.

Rules:
- ``$connect`` with a token that does not verify, including one whose ``name`` claim is not a display name
  (:mod:`capturestream.tokens`), is refused with 401.
- Every message reads its sender (:mod:`.sender`), then spends a token of its type (:mod:`.limits`), then is
  acted on; a refusal at any step is an ``error`` to the sender and nothing else.
- ``subscribe`` needs the stream's item (it exists from the first go-live on): a made-up id is ``not_found``
  and stores nothing, so it cannot make the notifier tell the lobby a count. ``unsubscribe`` from a stream the
  connection does not watch writes nothing.

Viewer identity (so one person is one viewer, also across a page reload or a network blip that leaves the old
socket half-open for minutes): ``user:<id>`` with a token; else ``anon:<id>`` from the ``?viewer=<id>`` query
parameter the web app keeps in ``localStorage``; else ``conn:<connection id>``. Counting by IP would be wrong
behind NAT and CDNs; counting HLS requests would be wrong behind a CDN cache.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import ValidationError

from capturestream import keys, messages, table, tokens
from capturestream.errors import NotFound, Unauthorized
from capturestream.models import StreamStatus
from capturestream.settings import WsSettings, get_settings
from capturestream.streams import StreamView

from . import chat, clients, limits, sender, subscriptions

log = logging.getLogger(__name__)

#: Most live streams a ``streamList`` answer carries.
STREAM_LIST_LIMIT = 100
CONNECTION_TTL_SECONDS = subscriptions.CONNECTION_TTL_SECONDS


def connect(connection_id: str, event: dict) -> dict:
    """Store the connection; refuse it (401) when a token is given but invalid."""
    settings = get_settings(WsSettings)
    query = event.get("queryStringParameters") or {}
    user = None
    if query.get("token"):
        try:
            user = tokens.verify_token(settings.jwt_secret.get_secret_value(), query["token"])
        except Unauthorized:
            return {"statusCode": 401}
    identity = event["requestContext"].get("identity") or {}
    now = int(time.time())
    item = table.connection_to_item(
        {
            "connection_id": connection_id,
            "user_id": user.id if user else None,
            "user_name": user.name if user else None,
            "viewer": _viewer(connection_id, user.id if user else None, query.get("viewer")),
            "role": "viewer",
            "source_ip": identity.get("sourceIp"),
            "connected_at": now,
            table.TTL_ATTRIBUTE: now + CONNECTION_TTL_SECONDS,
        }
    )
    clients.dynamodb().put_item(TableName=settings.table_name, Item=item)
    return {"statusCode": 200}


def disconnect(connection_id: str) -> None:
    """Forget the connection and its subscriptions (idempotent: a repeated ``$disconnect`` is harmless)."""
    subscriptions.forget(get_settings(WsSettings).table_name, connection_id)


def on_message(connection_id: str, message: Any) -> None:
    """Act on one validated client message, after spending one of the sender's tokens for its type (:mod:`.limits`).

    Raises:
        RateLimited: over the message type's limit; the message is not acted on.
        NotFound: the connection is gone, or the stream does not exist (``subscribe``) or is not live (``chat``).
        Conflict: ``subscribe`` beyond :data:`subscriptions.MAX_SUBSCRIPTIONS`.
    """
    settings = get_settings(WsSettings)
    needs_stream = isinstance(message, messages.SubscribeMessage | messages.SendChatMessage)
    connection, stream = sender.load(settings.table_name, connection_id, message.stream_id if needs_stream else None)
    limits.spend(settings, connection, message.type, fields=_connection_fields(connection_id, message))
    match message:
        case messages.HeartbeatMessage() | messages.RegisterMessage():
            pass  # their fields were written with the token
        case messages.GetStreamsMessage():
            clients.send(connection_id, messages.StreamListMessage(streams=tuple(_on_air(settings))))
        case messages.SubscribeMessage(stream_id=playback_id):
            if stream is None:  # never live: nothing to watch, and no count for a made-up id to change
                raise NotFound(f"stream {playback_id} does not exist")
            subscriptions.subscribe(settings.table_name, connection_id, playback_id)
        case messages.UnsubscribeMessage(stream_id=playback_id):
            if playback_id in (connection.get("subscriptions") or ()):
                subscriptions.unsubscribe(settings.table_name, connection_id, playback_id)
        case messages.SendChatMessage():
            chat.post(settings, connection, stream, message)
        case _:  # pragma: no cover - parse_client_message only returns the types above
            raise TypeError(f"unhandled message {type(message).__name__}")


def _connection_fields(connection_id: str, message: Any) -> dict[str, Any]:
    """What a heartbeat or register stores on the connection (with the token: one write)."""
    if not isinstance(message, messages.HeartbeatMessage | messages.RegisterMessage):
        return {}
    now = int(time.time())
    fields: dict[str, Any] = {"last_seen_at": now, table.TTL_ATTRIBUTE: now + CONNECTION_TTL_SECONDS}
    if isinstance(message, messages.RegisterMessage):
        fields |= {"role": message.role, table.GSI1_PK: table.LOBBY, table.GSI1_SK: connection_id}
    return fields


def _viewer(connection_id: str, user_id: str | None, claimed: str | None) -> str:
    if user_id:
        return f"user:{user_id}"
    if claimed and keys.NAME_PATTERN.fullmatch(claimed):
        return f"anon:{claimed}"
    return f"conn:{connection_id}"


def _on_air(settings: WsSettings) -> list[messages.StreamSummary]:
    """Live streams, then reconnecting ones, newest first (at most :data:`STREAM_LIST_LIMIT`)."""
    summaries: list[messages.StreamSummary] = []
    for status in (StreamStatus.LIVE, StreamStatus.RECONNECTING):
        remaining = STREAM_LIST_LIMIT - len(summaries)
        if remaining <= 0:
            break
        response = clients.dynamodb().query(
            TableName=settings.table_name, **table.streams_by_status_query(status.value, remaining)
        )
        for item in response["Items"]:
            try:
                summaries.append(StreamView.from_item(item).summary(settings.cdn_base_url))
            except ValidationError:  # one corrupt (or, on moto, half-written) item must not hide the others
                log.warning("skipped an unreadable stream item", extra={"pk": item.get(table.PK, {}).get("S")})
    return summaries
