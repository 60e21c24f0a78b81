"""MinIO mode: turns MinIO's bucket-notification webhook into the S3 → EventBridge events of template.yaml.

MinIO cannot deliver bucket events to SQS or EventBridge; it POSTs them, in its own wrapper, to a webhook
(``localstack/compose.minio.yml`` points it at ``POST /_local/minio/events`` on the stack's HTTP port). This
receiver normalises each record with :func:`capturestream.events.parse_objects` (the same parser the functions
use) and re-publishes it to the default EventBridge bus of the AWS endpoint as the ``Object Created`` event S3
itself would send, so the template's rules, queues, DLQs and handlers run unchanged.

Rules:
- Answer 200 only once every record is on the bus; any failure answers 502 so MinIO keeps the event in its
  queue directory and retries (at-least-once, like S3).
- A body that is not a MinIO notification answers 400 and is dropped.
- ``source: aws.s3`` is reserved in real AWS accounts; this path exists only for local emulators (moto,
  LocalStack), which accept it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from capturestream import events
from capturestream.errors import InvalidEvent

log = logging.getLogger(__name__)

PATH = "/_local/minio/events"
_PUT_EVENTS_BATCH = 10  # EventBridge PutEvents limit
#: S3's EventBridge ``detail.reason`` for each object-created event name suffix.
_REASONS = {"Put": "PutObject", "Post": "POST Object", "Copy": "CopyObject"}


def eventbridge_entry(obj: events.ObjectCreated) -> dict[str, Any]:
    """The ``PutEvents`` entry for one object, shaped like S3's own EventBridge notification."""
    detail: dict[str, Any] = {
        "version": "0",
        "bucket": {"name": obj.bucket},
        "object": {"key": obj.key, "size": obj.size, "etag": obj.etag, "sequencer": obj.sequencer},
        "reason": _REASONS.get(suffix := obj.event_name.removeprefix("ObjectCreated:"), suffix),
    }
    detail["object"] = {name: value for name, value in detail["object"].items() if value is not None}
    entry = {
        "Source": "aws.s3",
        "DetailType": "Object Created",
        "Detail": json.dumps(detail),
        "Resources": [f"arn:aws:s3:::{obj.bucket}"],
    }
    if obj.event_time is not None:
        entry["Time"] = obj.event_time
    return entry


class MinioWebhook:
    """The webhook receiver; ``events_client`` is an aiobotocore EventBridge client."""

    def __init__(self, events_client: Any) -> None:
        self._events = events_client
        self.received = 0
        self.published = 0

    async def handle(self, request: web.Request) -> web.Response:
        """Accept one MinIO notification POST."""
        try:
            objects = events.parse_objects(await request.json())
        except (InvalidEvent, ValueError) as error:
            log.warning("refused MinIO webhook body: %s", error)
            return web.json_response({"message": "not a MinIO bucket notification"}, status=400)
        self.received += len(objects)
        entries = [eventbridge_entry(obj) for obj in objects]
        try:
            for start in range(0, len(entries), _PUT_EVENTS_BATCH):
                response = await self._events.put_events(Entries=entries[start : start + _PUT_EVENTS_BATCH])
                if response.get("FailedEntryCount"):
                    raise RuntimeError(f"{response['FailedEntryCount']} events were not accepted")
        except Exception as error:  # any failure: MinIO retries the whole notification later
            log.error("could not publish MinIO events: %s", error)
            return web.json_response({"message": "could not publish events"}, status=502)
        self.published += len(entries)
        return web.json_response({"published": len(entries)})
