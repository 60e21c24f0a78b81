"""Chat: stored messages (item ↔ model, media-time ordering) and the per-connection rate limit (pure; no client).

Rules:
- A chat message belongs to one broadcast (session) and is stored with its **media time**: milliseconds since
  the broadcast started, so the VOD player can ask for "the chat between 00:12:00 and 00:12:30" and replay it
  in sync (:func:`capturestream.table.chat_range_query`). ``ts`` is the wall clock (epoch ms) it arrived.
- Message ids sort by arrival time (``<ts hex>-<random>``), so two messages in the same millisecond still get
  distinct, ordered sort keys.
- The rate limit is a token bucket per connection (``burst`` messages at once, refilled at ``rate`` per
  second). Its state is two numbers on the connection item; :func:`take_token` is the pure step.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from . import table
from .messages import ChatMessage


def new_message_id(ts_ms: int) -> str:
    """A chat message id: arrival time in hex (sortable), then 8 random hex digits."""
    return f"{ts_ms:011x}-{secrets.token_hex(4)}"


class ChatEntry(BaseModel):
    """One stored chat message."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    playback_id: str
    session_id: str
    id: str
    user: str
    text: str
    ts: int
    media_ms: int
    user_id: str | None = None

    def to_item(self) -> table.Item:
        """The chat item (partition per broadcast, sorted by media time)."""
        return table.to_item(
            {
                table.PK: table.chat_partition(self.session_id),
                table.SK: table.chat_sort_key(self.media_ms, self.id),
                "entity": "chat",
                **self.model_dump(),
            }
        )

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ChatEntry:
        """A chat item (wire format) → the entry."""
        return cls.model_validate(table.from_item(item))

    def message(self) -> ChatMessage:
        """The ``chat`` message subscribers receive."""
        return ChatMessage(stream_id=self.playback_id, id=self.id, user=self.user, text=self.text, ts=self.ts)


@dataclass(frozen=True)
class Bucket:
    """A token bucket's state: ``tokens`` left at ``at_ms`` (epoch milliseconds)."""

    tokens: float
    at_ms: int


def take_token(state: Bucket | None, now_ms: int, *, burst: int, rate: float) -> Bucket | None:
    """Spend one token; the new state, or None when the bucket is empty (the message must be refused).

    Args:
        state: the stored state, or None for a connection that never chatted (a full bucket).
        now_ms: the current time in epoch milliseconds.
        burst: bucket size (messages allowed at once).
        rate: tokens added per second.
    """
    if state is None:
        tokens = float(burst)
    else:
        elapsed = max(0, now_ms - state.at_ms) / 1000
        tokens = min(float(burst), state.tokens + elapsed * rate)
    if tokens < 1:
        return None
    return Bucket(tokens=tokens - 1, at_ms=now_ms)
