"""Notifier function: DynamoDB Streams → API Gateway ``@connections`` fan-out to viewers.

Each batch is planned by :func:`capturestream.notifications.plan` (what changed, who must hear it), addressed
from DynamoDB (:mod:`.audience`), and posted concurrently by a keep-alive SigV4 client (:mod:`.connections`,
~64 in flight, capped at ``FANOUT_MAX_RPS``) on a background event loop that survives warm invocations.
Connections that answer Gone are deleted — exactly those. Delivery failures are logged, not retried by failing
the batch: a retry would post every other message of the batch twice.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3

from capturestream import notifications
from capturestream.settings import NotifierSettings, get_settings

from . import audience, background_loop
from .connections import deliver_in_order, shared_poster


@cache
def _dynamodb() -> Any:
    return boto3.client("dynamodb")


def handler(event: dict, context: Any) -> dict:
    """Notify the audiences of one batch of table changes."""
    settings = get_settings(NotifierSettings)
    posts = audience.addressed(notifications.plan(event, settings.cdn_base_url), _dynamodb(), settings.table_name)
    gone = background_loop.run(_deliver(settings, posts), timeout=_seconds_left(context)) if posts else set()
    for connection_id in gone:
        audience.forget(_dynamodb(), settings.table_name, connection_id)
    return {"batchItemFailures": []}


async def _deliver(settings: NotifierSettings, posts: list[tuple[bytes, list[str]]]) -> set[str]:
    poster = await shared_poster(
        settings.ws_endpoint, in_flight=settings.fanout_concurrency, max_rps=settings.fanout_max_rps
    )
    return await deliver_in_order(poster, posts)


def _seconds_left(context: Any) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return max(1.0, remaining() / 1000 - 1.0) if remaining else None
