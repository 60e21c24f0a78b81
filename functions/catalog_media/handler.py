"""Catalog function: session manifests and segments in S3 (via EventBridge → SQS) → stream and session items.

Two queues feed it (template.yaml): manifests (started/reconnecting/ended and the live ``health.json``) one batch
at a time, at once; segments in batches gathered for a few seconds, coalesced here to one update per session (its
newest segment). A manifest key is read once per batch: reading it gives its newest version, so a duplicate event
in the same batch has nothing left to add. Partial batch failures are reported per SQS message, so one bad
manifest goes back to the queue (and after ``maxReceiveCount`` to the DLQ) without failing its neighbours; a failed
session update fails exactly the messages of that session's segments. Skipped bodies (TestEvent, foreign keys,
objects the catalog does not track) count as done. The update rules live in :mod:`capturestream.catalog`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

import boto3

from capturestream import catalog, events, keys, table
from capturestream.errors import Conflict, InvalidManifest
from capturestream.models import HealthManifestBody, SessionManifestBody
from capturestream.settings import FunctionSettings, get_settings

log = logging.getLogger(__name__)

Body = TypeVar("Body", SessionManifestBody, HealthManifestBody)

#: Read-merge-write rounds of one health manifest before its message is retried by the queue.
HEALTH_ATTEMPTS = 5


@cache
def _clients() -> tuple[Any, Any]:
    return boto3.client("s3"), boto3.client("dynamodb")


def handler(event: dict, context: Any) -> dict:
    """Apply every manifest and the newest segment of each session in the batch; report the failed messages."""
    s3, dynamodb = _clients()
    table_name = get_settings(FunctionSettings).table_name
    failed: set[str] = set()
    applied: set[str] = set()  # manifest keys read in this batch
    newest: dict[str, tuple[events.MediaObjectCreated, set[str]]] = {}  # session id → newest segment, message ids
    for item in events.parse_sqs(event):
        for media in item.events:
            key = media.media_key
            if isinstance(key, keys.LiveSegment):
                best, ids = newest.get(key.session_id, (media, set()))
                newest[key.session_id] = (max(best, media, key=lambda m: m.media_key.sequence), ids | {item.message_id})
            elif isinstance(key, keys.SessionManifest | keys.HealthManifest) and key.key not in applied:
                apply = apply_manifest if isinstance(key, keys.SessionManifest) else apply_health
                try:
                    apply(media, s3=s3, dynamodb=dynamodb, table_name=table_name)
                except Exception:
                    log.exception("manifest update failed", extra={"message_id": item.message_id, "key": key.key})
                    failed.add(item.message_id)
                else:
                    applied.add(key.key)
    for session_id, (media, ids) in newest.items():
        try:
            stored_at = media.object.event_time or datetime.now(UTC)
            _conditional(dynamodb, table_name, catalog.segment_update(media.media_key, stored_at))
        except Exception:
            log.exception("segment count update failed", extra={"session_id": session_id})
            failed |= ids
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in sorted(failed)]}


def apply_manifest(media: events.MediaObjectCreated, *, s3: Any, dynamodb: Any, table_name: str) -> None:
    """Read one manifest object and apply it to its stream and session items."""
    key = media.media_key
    raw = s3.get_object(Bucket=media.object.bucket, Key=key.key)["Body"].read()
    body = _of_key(SessionManifestBody.model_validate_json(raw), key)
    _conditional(dynamodb, table_name, catalog.stream_update(body, key.kind))  # first: viewers are waiting on it
    if not _conditional(dynamodb, table_name, catalog.session_update(body, key.kind)):
        dynamodb.update_item(TableName=table_name, **catalog.session_fields_update(body))


def apply_health(media: events.MediaObjectCreated, *, s3: Any, dynamodb: Any, table_name: str) -> None:
    """Read one health manifest, merge its samples into the session item, refresh the stream's media if due.

    Raises:
        Conflict: when concurrent deliveries kept changing the samples under it (the queue retries the message).
    """
    key = media.media_key
    try:
        raw = s3.get_object(Bucket=media.object.bucket, Key=key.key)["Body"].read()
    except s3.exceptions.NoSuchKey:  # deleted with its recording: nothing left to show
        log.info("health manifest is gone", extra={"key": key.key})
        return
    body = _of_key(HealthManifestBody.model_validate_json(raw), key)
    read = {
        "TableName": table_name,
        "Key": table.session_key(body.session_id),
        "ConsistentRead": True,
        "ProjectionExpression": "#status, #health, #version",
        "ExpressionAttributeNames": {"#status": "status", "#health": table.HEALTH, "#version": table.HEALTH_VERSION},
    }
    for _ in range(HEALTH_ATTEMPTS):
        found = dynamodb.get_item(**read)
        update = catalog.health_update(body, table.from_item(found["Item"]) if "Item" in found else None)
        if update is None or _conditional(dynamodb, table_name, update):
            break
    else:
        raise Conflict(f"health samples of {key.key} kept changing under the update")
    refresh = catalog.stream_media_update(body)
    if refresh is not None:
        _conditional(dynamodb, table_name, refresh)


def _of_key(body: Body, key: keys.MediaKey) -> Body:
    """``body``, checked to be about the session its key names."""
    if (body.playback_id, body.session_id) != (key.playback_id, key.session_id):
        raise InvalidManifest(f"manifest ids do not match its key {key.key}")
    return body


def _conditional(dynamodb: Any, table_name: str, update: dict[str, Any]) -> bool:
    """Apply a conditional update; False when its condition says a newer state is already stored."""
    try:
        dynamodb.update_item(TableName=table_name, **update)
    except dynamodb.exceptions.ConditionalCheckFailedException:
        return False
    return True
