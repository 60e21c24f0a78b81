"""The ``chat`` route: rate-limit the sender, then store the message; the notifier delivers it to the room.

Writing the chat item is all this route does with the message: DynamoDB Streams hands it to the notifier,
which posts it to every subscriber (the sender included, so everyone sees the same order).

Rules:
- Chat goes to the stream's current broadcast while it is live or reconnecting; an ended or unknown stream
  refuses it (``not_found``).
- Each connection has a token bucket (:func:`capturestream.chat.take_token`; ``CHAT_BURST`` messages at once,
  ``CHAT_RATE`` per second after that). Its state is stored on the connection item with a conditional write,
  so two concurrent invocations for one connection cannot both spend the last token.
- A signed-in user chats under the token's ``name`` (checked at ``$connect``). Anyone else is
  ``guest-`` + 13 base32 characters: the first 65 bits of HMAC-SHA256 over their viewer identity
  (``anon:<id>`` from the page's ``localStorage``, so a reload keeps the name), keyed by a key derived from
  ``JWT_SECRET`` (HMAC of a fixed label: the JWT key itself never signs anything but tokens). Without the
  server's key nobody can compute another guest's name, and finding a viewer id that yields it online takes
  ~2^64 connections, each rate-limited (a plain hash of the viewer id, as before, took ~2^24 tries offline).
  Rotating ``JWT_SECRET`` renames every guest once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from capturestream import table
from capturestream.chat import Bucket, ChatEntry, new_message_id, take_token
from capturestream.errors import NotFound, RateLimited
from capturestream.messages import SendChatMessage
from capturestream.models import StreamStatus
from capturestream.settings import WsSettings
from capturestream.streams import StreamView

from . import clients

#: Prefix of every guest name.
GUEST_PREFIX = "guest-"
#: Base32 characters after the prefix: 13 × 5 = 65 bits of the HMAC.
GUEST_NAME_CHARS = 13
_GUEST_KEY_LABEL = b"capturestream guest names v1"


def post(settings: WsSettings, connection_id: str, message: SendChatMessage) -> ChatEntry:
    """Store one chat message from ``connection_id``.

    Raises:
        NotFound: the stream is not live (or the connection is gone).
        RateLimited: the connection's bucket is empty.
    """
    connection, stream = _load(settings.table_name, connection_id, message.stream_id)
    if stream is None or stream.status is StreamStatus.ENDED:
        raise NotFound(f"stream {message.stream_id} is not live")
    now_ms = int(time.time() * 1000)
    _spend_token(settings, connection, now_ms)
    entry = ChatEntry(
        playback_id=stream.playback_id,
        session_id=stream.session_id,
        id=new_message_id(now_ms),
        user=connection.get("user_name") or guest_name(settings, connection.get("viewer") or connection_id),
        user_id=connection.get("user_id"),
        text=message.text,
        ts=now_ms,
        media_ms=max(0, now_ms - int(stream.started_at.timestamp() * 1000)) if stream.started_at else 0,
    )
    clients.dynamodb().put_item(TableName=settings.table_name, Item=entry.to_item())
    return entry


def _load(table_name: str, connection_id: str, playback_id: str) -> tuple[dict[str, Any], StreamView | None]:
    """The connection (consistent: it holds the bucket) and the stream, in one round trip."""
    response = clients.dynamodb().batch_get_item(
        RequestItems={
            table_name: {
                "Keys": [table.connection_key(connection_id), table.stream_key(playback_id)],
                "ConsistentRead": True,
            }
        }
    )
    connection, stream = None, None
    for item in response["Responses"].get(table_name, []):
        if item[table.PK]["S"].startswith(table.CONNECTION_PREFIX):
            connection = table.from_item(item)
        elif "session_id" in item:  # not a whole stream item yet (moto writes new items in two steps)
            stream = StreamView.from_item(item)
    if connection is None:
        raise NotFound("this connection is no longer registered; reconnect")
    return connection, stream


def _spend_token(settings: WsSettings, connection: dict[str, Any], now_ms: int) -> None:
    stored = connection.get("chat_at")
    state = Bucket(tokens=connection["chat_tokens"], at_ms=stored) if stored is not None else None
    spent = take_token(state, now_ms, burst=settings.chat_burst, rate=settings.chat_rate)
    if spent is None:
        raise RateLimited(f"slow down: at most {settings.chat_burst} messages at once, then {settings.chat_rate:g}/s")
    dynamodb = clients.dynamodb()
    values = {":tokens": {"N": f"{spent.tokens:.3f}"}, ":at": {"N": str(spent.at_ms)}}
    if stored is not None:
        values[":prev"] = {"N": str(stored)}
    try:
        dynamodb.update_item(
            TableName=settings.table_name,
            Key=table.connection_key(connection["connection_id"]),
            UpdateExpression="SET #tokens = :tokens, #at = :at",
            ConditionExpression="attribute_not_exists(#at)" if stored is None else "#at = :prev",
            ExpressionAttributeNames={"#tokens": "chat_tokens", "#at": "chat_at"},
            ExpressionAttributeValues=values,
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:  # a concurrent message took the token first
        raise RateLimited("slow down: another message from this connection was being sent") from None


def guest_name(settings: WsSettings, viewer: str) -> str:
    """The chat name of a viewer without a token's name (module rules): ``guest-`` + 13 base32 characters."""
    key = hmac.new(settings.jwt_secret.get_secret_value().encode(), _GUEST_KEY_LABEL, hashlib.sha256).digest()
    digest = hmac.new(key, viewer.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
    return GUEST_PREFIX + base64.b32encode(digest[:10]).decode().lower()[:GUEST_NAME_CHARS]
