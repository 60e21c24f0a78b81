"""Subscriptions: which connections watch which stream (the audience the notifier posts to and counts).

A subscription is an item in the stream's partition (``STREAM#<playback_id>`` / ``SUB#<connection_id>``) carrying
the connection's *viewer* identity; the connection item keeps the set of streams it watches so ``$disconnect``
(and the notifier, on ``GoneException``) can remove exactly its subscriptions. Viewer counts are the number of
distinct viewers among a stream's subscriptions, counted by the notifier when they change.

Rules:
- Subscribing twice is harmless (same item); unsubscribing from a stream never subscribed is harmless.
- A connection watches at most :data:`MAX_SUBSCRIPTIONS` streams, so one socket cannot inflate many counts.
- The connection's set is updated before the subscription is written: a ``$disconnect`` racing a ``subscribe``
  then finds the stream in the set. The subscription's TTL is a backstop (API Gateway's 2-hour limit + margin).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from capturestream import table
from capturestream.errors import Conflict, NotFound

from . import clients, sender

#: Most streams one connection may watch at once.
MAX_SUBSCRIPTIONS = 10
#: API Gateway closes every WebSocket after 2 hours; items outlive that by a margin, then TTL removes them.
CONNECTION_TTL_SECONDS = 2 * 3600 + 10 * 60


def subscribe(table_name: str, connection_id: str, playback_id: str) -> None:
    """Count ``connection_id`` as a viewer of ``playback_id`` and deliver that stream's notifications to it.

    The caller has checked that the stream exists (a subscription to a made-up id must never be stored).

    Raises:
        NotFound: the connection is unknown (expired or already disconnected).
        Conflict: the connection already watches :data:`MAX_SUBSCRIPTIONS` other streams.
    """
    dynamodb = clients.dynamodb()
    try:
        connection = dynamodb.update_item(
            TableName=table_name,
            Key=table.connection_key(connection_id),
            UpdateExpression="ADD #subs :stream",
            ConditionExpression="attribute_exists(#pk) AND (attribute_not_exists(#subs) OR size(#subs) < :max "
            "OR contains(#subs, :id))",
            ExpressionAttributeNames={"#pk": table.PK, "#subs": "subscriptions"},
            ExpressionAttributeValues={
                ":stream": table.string_set(playback_id),
                ":max": {"N": str(MAX_SUBSCRIPTIONS)},
                ":id": {"S": playback_id},
            },
            ReturnValues="ALL_NEW",
        )["Attributes"]
    except dynamodb.exceptions.ConditionalCheckFailedException:
        if "Item" not in dynamodb.get_item(TableName=table_name, Key=table.connection_key(connection_id)):
            raise NotFound(sender.NO_CONNECTION) from None
        raise Conflict(f"a connection can watch at most {MAX_SUBSCRIPTIONS} streams at once") from None
    viewer = table.from_item(connection).get("viewer") or f"conn:{connection_id}"
    expires_at = int(time.time()) + CONNECTION_TTL_SECONDS
    item = table.subscription_to_item(playback_id, connection_id, viewer, expires_at)
    dynamodb.put_item(TableName=table_name, Item=item)


def unsubscribe(table_name: str, connection_id: str, playback_id: str) -> None:
    """Stop counting and notifying ``connection_id`` for ``playback_id``."""
    dynamodb = clients.dynamodb()
    dynamodb.delete_item(TableName=table_name, Key=table.subscription_key(playback_id, connection_id))
    # The connection may already be gone (its subscription is deleted above either way).
    with contextlib.suppress(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.update_item(
            TableName=table_name,
            Key=table.connection_key(connection_id),
            UpdateExpression="DELETE #subs :stream",
            ConditionExpression="attribute_exists(#pk)",
            ExpressionAttributeNames={"#pk": table.PK, "#subs": "subscriptions"},
            ExpressionAttributeValues={":stream": table.string_set(playback_id)},
        )


def forget(table_name: str, connection_id: str) -> None:
    """Delete a connection and every subscription it holds (idempotent)."""
    dynamodb = clients.dynamodb()
    item = dynamodb.get_item(TableName=table_name, Key=table.connection_key(connection_id), ConsistentRead=True)
    keys: list[dict[str, Any]] = (
        table.connection_forget_keys(item["Item"]) if "Item" in item else [table.connection_key(connection_id)]
    )
    for key in keys:
        dynamodb.delete_item(TableName=table_name, Key=key)
