"""The ``chat`` route: store the message; the notifier delivers it to the room.

Writing the chat item is all this route does with the message: DynamoDB Streams hands it to the notifier,
which posts it to every subscriber (the sender included, so everyone sees the same order). The sender's rate
limit (:mod:`.limits`) is spent before this runs.

Rules:
- Chat goes to the stream's current broadcast while it is live or reconnecting; an ended or unknown stream
  refuses it (``not_found``).
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

from capturestream.chat import ChatEntry, new_message_id
from capturestream.errors import NotFound
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


def post(
    settings: WsSettings, connection: dict[str, Any], stream: StreamView | None, message: SendChatMessage
) -> ChatEntry:
    """Store one chat message from ``connection`` to ``stream``.

    Raises:
        NotFound: the stream is not live.
    """
    if stream is None or stream.status is StreamStatus.ENDED:
        raise NotFound(f"stream {message.stream_id} is not live")
    now_ms = int(time.time() * 1000)
    viewer = connection.get("viewer") or connection["connection_id"]
    entry = ChatEntry(
        playback_id=stream.playback_id,
        session_id=stream.session_id,
        id=new_message_id(now_ms),
        user=connection.get("user_name") or guest_name(settings, viewer),
        user_id=connection.get("user_id"),
        text=message.text,
        ts=now_ms,
        media_ms=max(0, now_ms - int(stream.started_at.timestamp() * 1000)) if stream.started_at else 0,
    )
    clients.dynamodb().put_item(TableName=settings.table_name, Item=entry.to_item())
    return entry


def guest_name(settings: WsSettings, viewer: str) -> str:
    """The chat name of a viewer without a token's name (module rules): ``guest-`` + 13 base32 characters."""
    key = hmac.new(settings.jwt_secret.get_secret_value().encode(), _GUEST_KEY_LABEL, hashlib.sha256).digest()
    digest = hmac.new(key, viewer.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
    return GUEST_PREFIX + base64.b32encode(digest[:10]).decode().lower()[:GUEST_NAME_CHARS]
