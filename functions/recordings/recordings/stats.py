"""Broadcast stats for the recording item: viewers (from what the notifier kept on the session item), chat volume,
reconnects (from the media itself: the discontinuities the node flagged) and duration."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from capturestream import recordings, table
from mediakit.stored import StoredSegment


def broadcast_stats(
    dynamodb: Any,
    table_name: str,
    *,
    session_id: str,
    started_at: datetime,
    ended_at: datetime,
    duration: float,
    segments: Sequence[StoredSegment],
) -> recordings.BroadcastStats:
    """The stats of one broadcast (consistent reads: the notifier's last viewer update is in)."""
    item = dynamodb.get_item(TableName=table_name, Key=table.session_key(session_id), ConsistentRead=True)
    session = table.from_item(item.get("Item") or {})
    peak, average = recordings.viewer_stats(session, started_at=started_at, ended_at=ended_at)
    return recordings.BroadcastStats(
        duration=round(duration, 3),
        peak_viewers=peak,
        average_viewers=average,
        chat_messages=_count_chat(dynamodb, table_name, session_id),
        reconnects=sum(1 for segment in segments if segment.discontinuity and segment.sequence > 0),
    )


def _count_chat(dynamodb: Any, table_name: str, session_id: str) -> int:
    count, start = 0, None
    while True:
        query = {
            "TableName": table_name,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": table.PK},
            "ExpressionAttributeValues": {":pk": {"S": table.chat_partition(session_id)}},
            "Select": "COUNT",
        }
        if start:
            query["ExclusiveStartKey"] = start
        page = dynamodb.query(**query)
        count += int(page.get("Count", 0))
        start = page.get("LastEvaluatedKey")
        if not start:
            return count
