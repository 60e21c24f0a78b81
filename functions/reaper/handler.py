"""Reaper function: ends broadcasts whose ingest node died (an EventBridge schedule invokes it every minute).

The scheduled event carries nothing it needs. Every stream listed as live or reconnecting is checked against its
session item (:mod:`capturestream.reaping` decides); a lost session gets the ``ended.json`` the node would have
written, and the catalog and recording functions take it from there. Writing it is idempotent: a HEAD first, then
a PUT with ``If-None-Match: *``, so a manifest already there (the node's own, or an earlier run's) is never
replaced. One failing session does not stop the others; the run fails afterwards so the error is counted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import cache
from typing import Any

import boto3

from capturestream import keys, reaping, table
from capturestream.models import SessionManifestBody, utc_now
from capturestream.settings import ReaperSettings, get_settings

log = logging.getLogger(__name__)

#: Headers of a session manifest, as the ingest node's uploader stores them.
MANIFEST_HEADERS = {"ContentType": "application/json", "CacheControl": "no-cache"}


@cache
def _clients() -> tuple[Any, Any]:
    return boto3.client("s3"), boto3.client("dynamodb")


def handler(event: dict, context: Any) -> dict:
    """End every lost broadcast; returns the session ids it ended."""
    settings, (s3, dynamodb), now = get_settings(ReaperSettings), _clients(), utc_now()
    grace = reaping.grace(settings.reconnect_window, settings.reaper_margin)
    ended, failed = [], []
    for session_id in watched_sessions(dynamodb, settings.table_name):
        try:
            item = dynamodb.get_item(TableName=settings.table_name, Key=table.session_key(session_id)).get("Item")
            session = table.from_item(item) if item else {}
            lost = reaping.is_lost(session, now=now, grace=grace)
            if lost and write_ended(s3, settings.media_bucket, reaping.ended_manifest(session)):
                log.info("ended a lost session", extra={"session_id": session_id})
                ended.append(session_id)
        except Exception:
            log.exception("could not reap a session", extra={"session_id": session_id})
            failed.append(session_id)
    if failed:
        raise RuntimeError(f"{len(failed)} session(s) could not be checked: {', '.join(failed)}")
    return {"ended": ended}


def watched_sessions(dynamodb: Any, table_name: str) -> Iterator[str]:
    """The current session id of every live or reconnecting stream (paginated ``gsi1`` queries)."""
    for status in reaping.WATCHED:
        start: dict[str, Any] | None = None
        while True:
            query = table.streams_by_status_query(status.value) | ({"ExclusiveStartKey": start} if start else {})
            page = dynamodb.query(TableName=table_name, **query)
            yield from (item["session_id"]["S"] for item in page.get("Items", []) if "session_id" in item)
            if not (start := page.get("LastEvaluatedKey")):
                break


def write_ended(s3: Any, bucket: str, body: SessionManifestBody) -> bool:
    """Store ``ended.json`` as the ingest node does, unless one exists; False when it did."""
    ended = keys.SessionManifest(playback_id=body.playback_id, session_id=body.session_id, kind="ended")
    try:
        s3.head_object(Bucket=bucket, Key=ended.key)
        return False
    except s3.exceptions.ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
            raise
    data = body.model_dump_json(exclude_none=True).encode()
    try:
        s3.put_object(Bucket=bucket, Key=ended.key, Body=data, **MANIFEST_HEADERS, IfNoneMatch="*")
    except s3.exceptions.ClientError as exc:  # 412: it appeared since the HEAD; 409: a concurrent conditional PUT
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") not in (409, 412):
            raise
        return False
    return True
