"""Per-connection message rate limits: one token bucket per message type, kept on the sender's connection item.

Every message costs DynamoDB work, and some make the notifier post to many connections (a subscription change
is a ``viewerCount`` for the whole lobby). API Gateway throttles a stage, not a connection, so one socket could
spend the stage's whole budget; these limits keep each connection to what a real page sends.

Limits (bucket size, then refill), chosen so a page never meets them:

============  =======  ==============  ====================================================================
type          burst    refill          what a page sends
============  =======  ==============  ====================================================================
heartbeat     5        1 every 10 s    one every ~30 s (``web/js/ws-client.js``)
register      5        1 every 10 s    one per connection
getStreams    10       1 every 5 s     one per (re)connect
subscribe     20       1 every 2 s     a handful per page (a connection holds at most 10 streams)
unsubscribe   20       1 every 2 s     as many as it subscribed
chat          5        1 per second    a person typing (``CHAT_BURST``/``CHAT_RATE`` settings)
============  =======  ==============  ====================================================================

Rules:
- A bucket is two attributes on the connection item, ``<type>_tokens`` and ``<type>_at`` (epoch ms); chat's
  are the ``chat_tokens``/``chat_at`` it always had. :func:`capturestream.chat.take_token` is the pure step.
- The token is spent before the message is acted on, and every message of the type spends one, also one that
  is then refused (a flood of subscriptions to made-up streams is limited like any other).
- The write is conditioned on the bucket read, so two concurrent messages of one connection (API Gateway runs
  them in parallel) never both spend the last token. The loser gets the item back with its condition failure
  and tries again with it, so a legitimate burst sent at once is not refused for arriving together.
- Over the limit: :class:`~capturestream.errors.RateLimited` saying when to retry; nothing is written.
- A route's own connection fields (a heartbeat's ``last_seen_at``) ride in the same write (``fields``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from capturestream import table
from capturestream.chat import Bucket, take_token
from capturestream.errors import NotFound, RateLimited
from capturestream.settings import WsSettings

from . import clients, sender


@dataclass(frozen=True)
class Limit:
    """A token bucket's shape: ``burst`` messages at once, then ``rate`` per second."""

    burst: int
    rate: float

    def __str__(self) -> str:
        every = 1 / self.rate
        refill = f"{self.rate:g} per second" if every < 1 else f"one every {every:g} s"
        return f"at most {self.burst} at once, then {refill}"


#: The limits of every message type but chat (whose limit is the ``CHAT_BURST``/``CHAT_RATE`` settings).
LIMITS: Mapping[str, Limit] = {
    "heartbeat": Limit(burst=5, rate=0.1),
    "register": Limit(burst=5, rate=0.1),
    "getStreams": Limit(burst=10, rate=0.2),
    "subscribe": Limit(burst=20, rate=0.5),
    "unsubscribe": Limit(burst=20, rate=0.5),
}
#: Writes one message tries before it counts as a flood (each lost to another message of the same connection).
SPEND_ATTEMPTS = 4


def limit_of(kind: str, settings: WsSettings) -> Limit:
    """The limit of one message type."""
    return Limit(settings.chat_burst, settings.chat_rate) if kind == "chat" else LIMITS[kind]


def spend(
    settings: WsSettings, connection: Mapping[str, Any], kind: str, *, fields: Mapping[str, Any] | None = None
) -> None:
    """Spend one of the connection's ``kind`` tokens, storing ``fields`` on it in the same write.

    Args:
        settings: the function's settings (table, chat limits).
        connection: the sender's connection item (attributes), read consistently.
        kind: the message ``type``.
        fields: connection attributes to set along with the token.

    Raises:
        RateLimited: the bucket is empty (the text says when to retry); nothing is written.
        NotFound: the connection item is gone.
    """
    limit = limit_of(kind, settings)
    for _ in range(SPEND_ATTEMPTS):
        now_ms = int(time.time() * 1000)
        stored = connection.get(f"{kind}_at")
        state = Bucket(tokens=connection[f"{kind}_tokens"], at_ms=stored) if stored is not None else None
        spent = take_token(state, now_ms, burst=limit.burst, rate=limit.rate)
        if spent is None:
            wait = _seconds_to_next_token(state, now_ms, limit)
            raise RateLimited(f"too many {kind!r} messages: {limit}; retry in {wait:.1f} s")
        current = _store(settings.table_name, connection["connection_id"], kind, stored, spent, fields or {})
        if current is None:
            return
        connection = current  # another message of this connection wrote first: decide again on what it left
    raise RateLimited(f"too many {kind!r} messages at the same time: {limit}; retry in 1 s")


def _seconds_to_next_token(state: Bucket | None, now_ms: int, limit: Limit) -> float:
    tokens = state.tokens + max(0, now_ms - state.at_ms) / 1000 * limit.rate if state else limit.burst
    return math.ceil(max(0.0, 1 - tokens) / limit.rate * 10) / 10


def _store(
    table_name: str, connection_id: str, kind: str, stored: int | None, spent: Bucket, fields: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Write the bucket (and ``fields``) if it is still as read; else the connection as it is now.

    Raises:
        NotFound: the connection item is gone.
    """
    values = {f"{kind}_tokens": round(spent.tokens, 3), f"{kind}_at": spent.at_ms, **fields}
    names = {f"#a{i}": name for i, name in enumerate(values)}
    condition = "attribute_not_exists(#a1)" if stored is None else "#a1 = :prev"
    dynamodb = clients.dynamodb()
    try:
        dynamodb.update_item(
            TableName=table_name,
            Key=table.connection_key(connection_id),
            UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values))),
            ConditionExpression=f"attribute_exists(#pk) AND {condition}",
            ExpressionAttributeNames={**names, "#pk": table.PK},
            ExpressionAttributeValues={
                **{f":v{i}": table.serialize(v) for i, v in enumerate(values.values())},
                **({":prev": {"N": str(stored)}} if stored is not None else {}),
            },
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except dynamodb.exceptions.ConditionalCheckFailedException as exc:
        current = exc.response.get("Item")
        if not current:
            raise NotFound(sender.NO_CONNECTION) from None
        return table.from_item(current)
    return None
