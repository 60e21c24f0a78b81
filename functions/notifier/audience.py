"""The notifier's DynamoDB side: who watches a stream, how many distinct viewers that is, and stale cleanup.

Runs in the handler's thread with a boto3 client (blocking calls stay off the fan-out's event loop).

Rules:
- Audiences are read with paginated queries (subscriptions in the stream's partition, the lobby on ``gsi1``),
  once per stream per batch.
- The stored ``viewer_count`` is written only when it differs, with a condition that the stream item exists:
  a count never creates a stream item for a stream that was never live. A missing count is 0 (what a stream
  card shows).
- ``viewerCount`` is posted only when that write happened: the count changed. A re-subscription of the same
  viewer (a reload, a second tab), a redelivered go-live record, or a notifier that lost the race to store
  the same count posts nothing; neither does a stream without an item (nobody can subscribe to one).
- The same count goes to the stream's current broadcast (its session item) for the recording's viewer stats
  (:mod:`capturestream.audience_stats`): read, then a write conditioned on what was read, retried a few times
  when another notifier wins the race. It is checked on every recount of a stream that has not ended, also
  when the stream's count is unchanged: a new broadcast inherits the stream's count from the previous one.
- A stale connection (``GoneException``) is forgotten exactly: its subscriptions, then its item. The sender of
  a message is never touched unless its own post came back Gone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from capturestream import audience_stats, messages, notifications, table
from capturestream.models import StreamStatus, utc_now

log = logging.getLogger(__name__)

#: Read-and-write rounds :func:`store_session_viewers` tries before giving up on one count.
SESSION_STATS_ATTEMPTS = 4


def _pages(dynamodb: Any, table_name: str, query: dict[str, Any]) -> Iterator[dict[str, Any]]:
    start: dict[str, Any] | None = None
    while True:
        response = dynamodb.query(TableName=table_name, **query, **({"ExclusiveStartKey": start} if start else {}))
        yield from response.get("Items", [])
        start = response.get("LastEvaluatedKey")
        if not start:
            return


def subscriptions(dynamodb: Any, table_name: str, playback_id: str) -> list[dict[str, Any]]:
    """Every subscription item (``connection_id``, ``viewer``) of a stream."""
    return list(_pages(dynamodb, table_name, table.subscriptions_query(playback_id)))


def lobby(dynamodb: Any, table_name: str) -> list[str]:
    """Connection ids of every registered connection."""
    return [item["connection_id"]["S"] for item in _pages(dynamodb, table_name, table.lobby_query())]


def connection_ids(subscription_items: list[dict[str, Any]]) -> list[str]:
    """The connection ids of subscription items."""
    return [item["connection_id"]["S"] for item in subscription_items]


def store_viewer_count(dynamodb: Any, table_name: str, playback_id: str, items: list[dict[str, Any]]) -> int | None:
    """Count distinct viewers, store the count on the stream item when it changed and on its current broadcast's
    session item (:func:`store_session_viewers`); return the count if it changed, else None."""
    count = notifications.viewer_count(items)
    # A missing count reads as 0, so storing 0 there changes nothing.
    changed = (
        "attribute_not_exists(#count) OR #count <> :count" if count else "attribute_exists(#count) AND #count <> :count"
    )
    try:
        stream = dynamodb.update_item(
            TableName=table_name,
            Key=table.stream_key(playback_id),
            UpdateExpression="SET #count = :count",
            ConditionExpression=f"attribute_exists(#pk) AND ({changed})",
            ExpressionAttributeNames={"#pk": table.PK, "#count": "viewer_count"},
            ExpressionAttributeValues={":count": {"N": str(count)}},
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ).get("Attributes")
    except dynamodb.exceptions.ConditionalCheckFailedException as exc:
        # Unchanged (the stored item comes back), or a stream that never went live (nothing comes back).
        stream, count_changed = exc.response.get("Item"), False
    else:
        count_changed = True
    if stream and "session_id" in stream and stream.get("status", {}).get("S") != StreamStatus.ENDED.value:
        store_session_viewers(dynamodb, table_name, stream["session_id"]["S"], count)
    return count if count_changed else None


def store_session_viewers(
    dynamodb: Any, table_name: str, session_id: str, count: int, *, attempts: int = SESSION_STATS_ATTEMPTS
) -> bool:
    """Move a live broadcast's viewer stats to ``count`` now; False when there was nothing to write.

    Optimistic: read, write conditioned on the values read, and on ``ConditionalCheckFailed`` read again (up to
    ``attempts`` times). Losing every attempt is logged, not raised: the stats are approximate by nature and a
    failed batch would repost every message in it.
    """
    for _ in range(attempts):
        stored = dynamodb.get_item(TableName=table_name, **audience_stats.session_viewers_read(session_id))
        update = audience_stats.session_viewers_update(session_id, stored.get("Item"), count, utc_now())
        if update is None:
            return False
        try:
            dynamodb.update_item(TableName=table_name, **update)
        except dynamodb.exceptions.ConditionalCheckFailedException:
            continue
        return True
    log.warning("viewer stats not stored after %d attempts", attempts, extra={"session_id": session_id})
    return False


def forget(dynamodb: Any, table_name: str, connection_id: str) -> None:
    """Delete a stale connection's subscriptions and its item (idempotent)."""
    found = dynamodb.get_item(TableName=table_name, Key=table.connection_key(connection_id), ConsistentRead=True)
    keys = table.connection_forget_keys(found["Item"]) if "Item" in found else [table.connection_key(connection_id)]
    for key in keys:
        dynamodb.delete_item(TableName=table_name, Key=key)


def addressed(plan: notifications.Plan, dynamodb: Any, table_name: str) -> list[tuple[bytes, list[str]]]:
    """Every message of ``plan`` (encoded) with the connection ids it goes to, in plan order; viewer counts
    are recounted (and stored) here, one per stream, after the batch's other messages."""
    subscribers = {
        playback_id: subscriptions(dynamodb, table_name, playback_id)
        for playback_id in {n.playback_id for n in plan.notifications} | plan.recount
    }
    wide = plan.recount or any(n.audience is notifications.Audience.EVERYONE for n in plan.notifications)
    everyone = lobby(dynamodb, table_name) if wide else []
    posts: list[tuple[bytes, list[str]]] = []
    for note in plan.notifications:
        ids = connection_ids(subscribers[note.playback_id])
        if note.audience is notifications.Audience.EVERYONE:
            ids = list(dict.fromkeys([*everyone, *ids]))
        posts.append((messages.encode(note.message).encode(), ids))
    for playback_id in sorted(plan.recount):
        count = store_viewer_count(dynamodb, table_name, playback_id, subscribers[playback_id])
        if count is None:
            continue
        message = messages.ViewerCountMessage(stream_id=playback_id, count=count)
        posts.append(
            (
                messages.encode(message).encode(),
                list(dict.fromkeys([*everyone, *connection_ids(subscribers[playback_id])])),
            )
        )
    return posts
