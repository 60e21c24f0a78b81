"""MinIO notifications become S3-shaped EventBridge entries that our own parser reads back unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from capturestream import events
from devstack.minio_webhook import eventbridge_entry


@pytest.mark.parametrize(
    ("event_name", "reason"),
    [
        ("ObjectCreated:Put", "PutObject"),
        ("ObjectCreated:Copy", "CopyObject"),
        ("ObjectCreated:CompleteMultipartUpload", "CompleteMultipartUpload"),
    ],
)
def test_entry_round_trips_through_the_eventbridge_parser(event_name: str, reason: str) -> None:
    obj = events.ObjectCreated(
        bucket="media",
        key="sessions/pb1/s1/started.json",
        size=12,
        etag="abc",
        event_name=event_name,
        event_time=datetime(2026, 11, 25, 15, 0, tzinfo=UTC),
    )
    entry = eventbridge_entry(obj)
    assert entry["Source"] == "aws.s3" and entry["DetailType"] == "Object Created"
    detail = json.loads(entry["Detail"])
    assert detail["reason"] == reason and "sequencer" not in detail["object"]
    delivered = {
        "version": "0",
        "id": "1",
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": "123456789012",
        "time": "2026-11-25T15:00:00Z",
        "region": "us-east-1",
        "resources": entry["Resources"],
        "detail": detail,
    }
    (parsed,) = events.parse_objects(delivered)
    assert (parsed.bucket, parsed.key, parsed.size, parsed.etag, parsed.event_name) == (
        obj.bucket,
        obj.key,
        obj.size,
        obj.etag,
        obj.event_name,
    )
