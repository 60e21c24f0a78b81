"""Recording function: ``sessions/<pb>/<session>/ended.json`` (EventBridge → SQS, one at a time) → the broadcast's VOD.

Parse → build (:mod:`.build`) → report. A message whose build fails (broken inputs: the item says ``failed``
and why; or an infrastructure error) is reported as a batch item failure, so SQS retries it and then parks it in
``RecordingDLQ``. A manifest that is not an ``ended.json`` or names another session is skipped. A build that
runs out of the invocation's time (:mod:`.budget`) stops and fails its message the same way, to be built again.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from capturestream import events, keys
from capturestream.models import SessionManifestBody
from capturestream.settings import RecordingSettings, get_settings

from . import budget
from .build import build_recording
from .mp4_upload import PARTS_IN_FLIGHT

log = logging.getLogger(__name__)


@cache
def _clients() -> tuple[Any, Any]:
    settings = get_settings(RecordingSettings)
    # Every segment read and part upload in flight holds a connection (botocore's default pool is 10).
    pool = Config(max_pool_connections=2 * settings.read_concurrency + PARTS_IN_FLIGHT)
    return boto3.client("s3", config=pool), boto3.client("dynamodb")


def handler(event: dict, context: Any) -> dict:
    """Build the recording of every ended session in the batch; report the messages that failed."""
    s3, dynamodb = _clients()
    settings = get_settings(RecordingSettings)
    time_left = budget.of_context(context)
    failed: list[str] = []
    for item in events.parse_sqs(event):
        for media in item.events:
            key = media.media_key
            if not isinstance(key, keys.SessionManifest) or key.kind is not keys.ManifestKind.ENDED:
                continue
            try:
                raw = s3.get_object(Bucket=media.object.bucket, Key=key.key)["Body"].read()
                body = SessionManifestBody.model_validate_json(raw)
                if (body.playback_id, body.session_id) != (key.playback_id, key.session_id):
                    raise ValueError(f"manifest ids do not match its key {key.key}")
                build_recording(s3=s3, dynamodb=dynamodb, settings=settings, body=body, time_left=time_left)
            except budget.OutOfTime as error:
                log.warning(
                    "recording build stopped, out of time; its message is retried: %s",
                    error,
                    extra={"message_id": item.message_id, "key": key.key},
                )
                failed.append(item.message_id)
            except Exception:
                log.exception("recording build failed", extra={"message_id": item.message_id, "key": key.key})
                failed.append(item.message_id)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in dict.fromkeys(failed)]}
