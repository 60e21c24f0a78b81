"""Catalog function: session manifests in S3 (via EventBridge → SQS) → session items in DynamoDB.

Partial batch failures are reported per SQS message, so one bad manifest goes back to the queue (and after
``maxReceiveCount`` to the DLQ) without failing its neighbours. Skipped bodies (TestEvent, foreign keys) count
as done.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

import boto3

from capturestream import catalog, events, keys
from capturestream.errors import InvalidManifest
from capturestream.models import SessionManifestBody
from capturestream.settings import FunctionSettings, get_settings

log = logging.getLogger(__name__)


@cache
def _clients() -> tuple[Any, Any]:
    return boto3.client("s3"), boto3.client("dynamodb")


def handler(event: dict, context: Any) -> dict:
    """Apply every manifest in the batch; report the messages that failed."""
    items = events.parse_sqs(event)
    s3, dynamodb = _clients()
    table_name = get_settings(FunctionSettings).table_name
    failures = []
    for item in items:
        try:
            for media in item.events:
                if isinstance(media.media_key, keys.SessionManifest):
                    apply_manifest(media, s3=s3, dynamodb=dynamodb, table_name=table_name)
        except Exception:
            log.exception("catalog update failed", extra={"message_id": item.message_id})
            failures.append({"itemIdentifier": item.message_id})
    return {"batchItemFailures": failures}


def apply_manifest(media: events.MediaObjectCreated, *, s3: Any, dynamodb: Any, table_name: str) -> None:
    """Read one manifest object and apply it to its session item."""
    key = media.media_key
    raw = s3.get_object(Bucket=media.object.bucket, Key=key.key)["Body"].read()
    body = SessionManifestBody.model_validate_json(raw)
    if (body.playback_id, body.session_id) != (key.playback_id, key.session_id):
        raise InvalidManifest(f"manifest ids do not match its key {key.key}")
    if key.kind is keys.ManifestKind.ENDED:
        dynamodb.update_item(TableName=table_name, **catalog.ended_update(body))
        return
    try:
        dynamodb.update_item(TableName=table_name, **catalog.started_update(body))
    except dynamodb.exceptions.ConditionalCheckFailedException:
        dynamodb.update_item(TableName=table_name, **catalog.started_fields_update(body))
