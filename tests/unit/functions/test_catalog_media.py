"""Catalog function: manifests → session items, idempotent and order-tolerant, partial batch failures."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

import boto3
import pytest

from capturestream import keys, table
from capturestream.settings import get_settings
from functions.catalog_media import handler as catalog_handler
from tests.support.aws import create_media_table

BUCKET = "capturestream-media"
PB, SID = "pb1", "20261125T150000Z-aaaaaa"
STARTED = {
    "channel_id": "abcdefghijkl",
    "playback_id": PB,
    "session_id": SID,
    "started_at": "2026-11-25T15:00:00+00:00",
    "media": {"video_codec": "avc1.64001f", "width": 1280, "height": 720, "frame_rate": 30.0},
}
ENDED = {**STARTED, "ended_at": "2026-11-25T15:10:00+00:00", "duration": 600.0, "reason": "publisher_stopped"}


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("TABLE_NAME", "capturestream-MediaTable")
    monkeypatch.setenv("MEDIA_BUCKET", BUCKET)
    get_settings.cache_clear()
    catalog_handler._clients.cache_clear()
    s3, dynamodb = boto3.client("s3"), boto3.client("dynamodb")
    s3.create_bucket(Bucket=BUCKET)
    create_media_table(dynamodb)
    yield s3, dynamodb
    get_settings.cache_clear()
    catalog_handler._clients.cache_clear()


def _put(s3, kind: str, body: dict | bytes, session_id: str = SID) -> str:
    key = keys.SessionManifest(playback_id=PB, session_id=session_id, kind=kind).key
    s3.put_object(Bucket=BUCKET, Key=key, Body=body if isinstance(body, bytes) else json.dumps(body).encode())
    return key


def _sqs_event(*object_keys: str) -> dict:
    records = []
    for index, key in enumerate(object_keys):
        body = {
            "version": "0",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": "123456789012",
            "time": "2026-11-25T15:00:01Z",
            "region": "us-east-1",
            "resources": [f"arn:aws:s3:::{BUCKET}"],
            "detail": {
                "version": "0",
                "bucket": {"name": BUCKET},
                "object": {"key": key, "size": 10},
                "reason": "PutObject",
            },
        }
        records.append(
            {
                "messageId": f"m{index}",
                "receiptHandle": "r",
                "body": json.dumps(body),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


def _session(dynamodb) -> dict:
    item = dynamodb.get_item(TableName="capturestream-MediaTable", Key=table.session_key(SID))["Item"]
    return table.from_item(item)


@pytest.mark.parametrize(
    "order",
    sorted(set(itertools.permutations(["started", "ended", "started", "ended"]))),
)
def test_any_order_and_duplicates_end_in_the_same_state(aws, order: list[str]) -> None:
    """Duplicates and reordering (both happen with S3 events) converge on one final item."""
    s3, dynamodb = aws
    started_key, ended_key = _put(s3, "started", STARTED), _put(s3, "ended", ENDED)
    for kind in order:
        result = catalog_handler.handler(_sqs_event(started_key if kind == "started" else ended_key), None)
        assert result == {"batchItemFailures": []}
    session = _session(dynamodb)
    assert session["status"] == "ended"
    assert session["duration"] == 600
    assert session["gsi1pk"] == "STREAMS#ended"
    assert session["started_at"] == "2026-11-25T15:00:00+00:00"
    assert session["media"]["width"] == 1280
    assert session["playlist_path"] == keys.LivePlaylist(playback_id=PB, session_id=SID).key


def test_started_makes_a_live_session(aws) -> None:
    s3, dynamodb = aws
    catalog_handler.handler(_sqs_event(_put(s3, "started", STARTED)), None)
    session = _session(dynamodb)
    assert session["status"] == "live" and session["gsi1pk"] == "STREAMS#live"
    assert session["gsi1sk"] == f"2026-11-25T15:00:00+00:00#{SID}"


def test_bad_manifest_fails_only_its_message(aws) -> None:
    """A corrupt manifest is reported as a batch item failure; the good one in the same batch is applied."""
    s3, dynamodb = aws
    other = "20261125T160000Z-bbbbbb"
    bad = _put(s3, "started", b"{not json", session_id=other)
    mismatched = _put(s3, "ended", {**ENDED, "session_id": SID}, session_id="20261125T170000Z-cccccc")
    good = _put(s3, "started", STARTED)
    result = catalog_handler.handler(_sqs_event(bad, good, mismatched), None)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m2"}]}
    assert _session(dynamodb)["status"] == "live"


def test_foreign_and_non_manifest_keys_are_skipped(aws) -> None:
    s3, dynamodb = aws
    segment = keys.LiveSegment(playback_id=PB, session_id=SID, sequence=1).key
    result = catalog_handler.handler(_sqs_event("sessions/notes.txt", segment), None)
    assert result == {"batchItemFailures": []}
    assert "Item" not in dynamodb.get_item(TableName="capturestream-MediaTable", Key=table.session_key(SID))


def test_ended_without_duration_derives_it() -> None:
    from capturestream.catalog import ended_update
    from capturestream.models import SessionManifestBody

    body = SessionManifestBody.model_validate({**ENDED, "duration": None})
    values = ended_update(body)["ExpressionAttributeValues"]
    assert {"N": "600.0"} in values.values()
    assert datetime.fromisoformat(ENDED["ended_at"]).tzinfo == UTC
