"""What viewers must be told about a batch of table changes (pure; no client): the notifier's decisions.

Input: a DynamoDB Streams Lambda event (``NEW_AND_OLD_IMAGES``). Output: a :class:`Plan` — messages in record
order, each addressed to a stream's subscribers or to everyone watching the site, plus the streams whose viewer
count must be recounted.

Rules:
- A message is sent only for a real change between the old and new image. Redelivered records, no-op writes
  (moto and some SDK paths emit records for unchanged items) and retries therefore notify nobody twice for
  the same state.
- ``streamLive`` when a stream becomes live or reconnecting (new status or new session); ``streamEnded`` when
  it ends; ``thumbnail`` when its thumbnail path changes. These go to :attr:`Audience.EVERYONE` (the lobby of
  registered connections and the stream's subscribers): the live grid shows every stream.
- ``chat`` for every new chat item, to the stream's subscribers only. A chat item that makes no valid
  ``chat`` message (say a display name stored before names were checked) is logged and skipped: retrying the
  batch cannot fix it, and failing it would hold back every record behind it.
- Subscription inserts and removals only mark the stream for a recount; the notifier counts distinct viewers
  once per stream per batch. template.yaml delivers subscription records through their own event source
  mapping with a 2 s batching window, so a crowd joining is one ``viewerCount`` per stream every 2 s. A stream
  going live is recounted too: watch pages stay subscribed to an offline stream between broadcasts, and the
  new broadcast's viewer stats start from their count (the notifier posts ``viewerCount`` only if it changed).
- A change of ``viewer_count`` alone is the notifier's own write: it triggers nothing (no feedback loop).
- Records of other items (channels, sessions, connections) are ignored.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from . import messages, table
from .chat import ChatEntry
from .models import StreamStatus
from .streams import StreamView

log = logging.getLogger(__name__)


class Audience(enum.Enum):
    """Who receives a notification about one stream."""

    #: Connections subscribed to the stream (its watch pages).
    SUBSCRIBERS = "subscribers"
    #: Registered connections (the lobby: live grids, sidebars) and the stream's subscribers.
    EVERYONE = "everyone"


@dataclass(frozen=True)
class Notification:
    """One message for the audience of one stream."""

    playback_id: str
    audience: Audience
    message: BaseModel


@dataclass
class Plan:
    """What one batch of records asks the notifier to do."""

    notifications: list[Notification] = field(default_factory=list)
    #: Streams whose subscriptions changed: recount distinct viewers and send ``viewerCount``.
    recount: set[str] = field(default_factory=set)


def plan(event: Mapping[str, Any], cdn_base_url: str) -> Plan:
    """Decide the notifications for a DynamoDB Streams event.

    Args:
        event: the Lambda event, ``{"Records": [{"eventName": ..., "dynamodb": {"Keys", "NewImage", ...}}]}``.
        cdn_base_url: base URL for playlist and thumbnail URLs in messages.
    """
    result = Plan()
    for record in event.get("Records") or []:
        change = record.get("dynamodb") or {}
        keys = change.get("Keys") or {}
        pk, sk = keys.get(table.PK, {}).get("S", ""), keys.get(table.SK, {}).get("S", "")
        old, new = change.get("OldImage"), change.get("NewImage")
        if pk.startswith(table.STREAM_PREFIX) and sk == table.STREAM_SK:
            found = _stream_changes(old, new, cdn_base_url)
            result.notifications += found
            if any(isinstance(n.message, messages.StreamLiveMessage) for n in found):
                # Watch pages of the offline stream are still subscribed: the new broadcast starts from their count.
                result.recount.add(pk.removeprefix(table.STREAM_PREFIX))
        elif pk.startswith(table.STREAM_PREFIX) and sk.startswith(table.SUBSCRIPTION_PREFIX):
            if (old is None) != (new is None):  # a join or a leave, not a TTL refresh
                result.recount.add(pk.removeprefix(table.STREAM_PREFIX))
        elif pk.startswith(table.CHAT_PREFIX) and new is not None and old is None:
            result.notifications += _chat(new)
    return result


def _chat(item: Mapping[str, Any]) -> list[Notification]:
    try:
        entry = ChatEntry.from_item(item)
        return [Notification(entry.playback_id, Audience.SUBSCRIBERS, entry.message())]
    except ValidationError:
        log.warning("skipped a chat item that makes no valid message", extra={"pk": item.get(table.PK, {}).get("S")})
        return []


def _complete(image: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The image, or None when it is not a whole stream item yet (moto emits a keys-only INSERT first)."""
    return image if image is not None and "session_id" in image else None


def _stream_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, cdn: str) -> list[Notification]:
    old, new = _complete(old), _complete(new)
    if new is None:
        return []
    after = StreamView.from_item(new)
    before = StreamView.from_item(old) if old is not None else None
    same_broadcast = before is not None and before.session_id == after.session_id
    state_changed = not same_broadcast or before is None or before.status is not after.status
    found: list[Notification] = []
    if state_changed and after.status is StreamStatus.ENDED:
        found.append(_everyone(after, messages.StreamEndedMessage(stream_id=after.playback_id)))
    elif state_changed:
        found.append(_everyone(after, messages.StreamLiveMessage(stream=after.summary(cdn))))
    previous_thumbnail = before.thumbnail_path if before is not None else None
    if after.thumbnail_path and after.thumbnail_path != previous_thumbnail:
        url = after.summary(cdn).thumbnail_url or ""
        found.append(_everyone(after, messages.ThumbnailMessage(stream_id=after.playback_id, url=url)))
    return found


def _everyone(stream: StreamView, message: BaseModel) -> Notification:
    return Notification(stream.playback_id, Audience.EVERYONE, message)


def viewer_count(subscriptions: list[Mapping[str, Any]]) -> int:
    """Distinct viewers among a stream's subscription items (one person on two tabs counts once)."""
    return len({item.get("viewer", {}).get("S") or item.get("connection_id", {}).get("S") for item in subscriptions})
