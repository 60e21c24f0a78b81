"""Notifier function: DynamoDB Streams → API Gateway ``@connections`` fan-out to viewers.

Each batch is planned by :func:`capturestream.notifications.plan` (what changed, who must hear it), audiences
are read from DynamoDB (:mod:`.audience`), and messages are posted concurrently by a keep-alive SigV4 client
(:mod:`.connections`, ~64 in flight) on a background event loop that survives warm invocations. Connections
that answer Gone are deleted — exactly those. Delivery failures are logged, not retried by failing the batch:
a retry would post every other message of the batch twice.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

import boto3

from capturestream import messages, notifications
from capturestream.settings import NotifierSettings, get_settings

from . import audience, background_loop
from .connections import shared_poster

log = logging.getLogger(__name__)


@cache
def _dynamodb() -> Any:
    return boto3.client("dynamodb")


def handler(event: dict, context: Any) -> dict:
    """Notify the audiences of one batch of table changes."""
    settings = get_settings(NotifierSettings)
    plan = notifications.plan(event, settings.cdn_base_url)
    dynamodb, table_name = _dynamodb(), settings.table_name
    subscribers: dict[str, list[dict[str, Any]]] = {}
    for playback_id in {n.playback_id for n in plan.notifications} | plan.recount:
        subscribers[playback_id] = audience.subscriptions(dynamodb, table_name, playback_id)
    everyone = {n.playback_id for n in plan.notifications if n.audience is notifications.Audience.EVERYONE}
    lobby = audience.lobby(dynamodb, table_name) if everyone or plan.recount else []
    posts: list[tuple[bytes, list[str]]] = []
    for note in plan.notifications:
        ids = audience.connection_ids(subscribers[note.playback_id])
        if note.audience is notifications.Audience.EVERYONE:
            ids = list(dict.fromkeys([*lobby, *ids]))
        posts.append((messages.encode(note.message).encode(), ids))
    for playback_id in sorted(plan.recount):
        count = audience.store_viewer_count(dynamodb, table_name, playback_id, subscribers[playback_id])
        message = messages.ViewerCountMessage(stream_id=playback_id, count=count)
        ids = list(dict.fromkeys([*lobby, *audience.connection_ids(subscribers[playback_id])]))
        posts.append((messages.encode(message).encode(), ids))
    gone = background_loop.run(_deliver(settings, posts), timeout=_seconds_left(context))
    for connection_id in gone:
        audience.forget(dynamodb, table_name, connection_id)
    return {"batchItemFailures": []}


async def _deliver(settings: NotifierSettings, posts: list[tuple[bytes, list[str]]]) -> set[str]:
    """Post each message to its connections, in order; return the ids that are gone."""
    poster = await shared_poster(
        settings.ws_endpoint, in_flight=settings.fanout_concurrency, max_rps=settings.fanout_max_rps
    )
    gone: set[str] = set()
    for data, ids in posts:
        result = await poster.post_many([i for i in ids if i not in gone], data)
        gone.update(result.gone)
        if result.failed:
            log.warning("posts failed", extra={"failed": len(result.failed), "example": next(iter(result.failed))})
    return gone


def _seconds_left(context: Any) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return max(1.0, remaining() / 1000 - 1.0) if remaining else None
