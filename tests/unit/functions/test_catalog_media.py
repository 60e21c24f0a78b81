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


def _session(dynamodb, session_id: str = SID) -> dict:
    item = dynamodb.get_item(TableName="capturestream-MediaTable", Key=table.session_key(session_id))["Item"]
    return table.from_item(item)


def _stream(dynamodb) -> dict:
    item = dynamodb.get_item(TableName="capturestream-MediaTable", Key=table.stream_key(PB))["Item"]
    return table.from_item(item)


#: One broadcast's manifests in the order the node writes them: live, dropped, back, over.
LIFE = {
    "started0": ("started", {**STARTED, "revision": 0}),
    "reconnecting1": ("reconnecting", {**STARTED, "revision": 1}),
    "started2": ("started", {**STARTED, "revision": 2}),
    "ended": ("ended", {**ENDED, "revision": 2}),
}


def _deliver(s3, name: str, session_id: str = SID) -> dict:
    """Store a manifest and deliver its event (the object holds this body when the function reads it)."""
    kind, body = LIFE[name]
    return catalog_handler.handler(_sqs_event(_put(s3, kind, {**body, "session_id": session_id}, session_id)), None)


@pytest.mark.parametrize("order", sorted(set(itertools.permutations(list(LIFE) + ["ended"]))))
def test_any_order_and_duplicates_end_in_the_same_state(aws, order: tuple[str, ...]) -> None:
    """Duplicates and reordering (both happen with S3 events) converge on one final session and stream."""
    s3, dynamodb = aws
    for name in order:
        assert _deliver(s3, name) == {"batchItemFailures": []}
    session, stream = _session(dynamodb), _stream(dynamodb)
    for item in (session, stream):
        assert item["status"] == "ended"
        assert item["duration"] == 600
        assert item["started_at"] == "2026-11-25T15:00:00+00:00"
        assert item["media"]["width"] == 1280
        assert item["playlist_path"] == keys.LivePlaylist(playback_id=PB, session_id=SID).key
    assert session["gsi1pk"] == f"BROADCASTS#{PB}" and stream["gsi1pk"] == "STREAMS#ended"
    assert stream["session_id"] == SID and stream["end_reason"] == "publisher_stopped"


@pytest.mark.parametrize("order", sorted(set(itertools.permutations(["started0", "reconnecting1", "started2"]))))
def test_the_newest_revision_wins_while_live(aws, order: tuple[str, ...]) -> None:
    """A late ``reconnecting`` manifest never hides a stream that came back (revision 2 beats revision 1)."""
    s3, dynamodb = aws
    for name in order:
        _deliver(s3, name)
    for item in (_session(dynamodb), _stream(dynamodb)):
        assert (item["status"], item["revision"]) == ("live", 2)
    assert _stream(dynamodb)["gsi1pk"] == "STREAMS#live"


def test_reconnecting_then_back(aws) -> None:
    s3, dynamodb = aws
    _deliver(s3, "started0")
    _deliver(s3, "reconnecting1")
    assert _stream(dynamodb)["status"] == "reconnecting" and _stream(dynamodb)["gsi1pk"] == "STREAMS#reconnecting"
    _deliver(s3, "started2")
    assert _stream(dynamodb)["status"] == "live"


def test_started_makes_a_live_session_and_stream(aws) -> None:
    s3, dynamodb = aws
    catalog_handler.handler(_sqs_event(_put(s3, "started", {**STARTED, "title": "Speedrun"})), None)
    session, stream = _session(dynamodb), _stream(dynamodb)
    assert session["status"] == "live" and session["gsi1sk"] == f"2026-11-25T15:00:00+00:00#{SID}"
    assert stream["status"] == "live" and stream["gsi1sk"] == f"2026-11-25T15:00:00+00:00#{PB}"
    assert stream["title"] == "Speedrun" and stream["entity"] == "stream"
    assert "stream_key_hash" not in stream


def test_stream_follows_the_newest_broadcast(aws) -> None:
    """A new broadcast replaces the ended one on the stream; a late manifest of the old one changes nothing."""
    s3, dynamodb = aws
    newer = "20261125T160000Z-bbbbbb"
    _deliver(s3, "ended")
    _deliver(s3, "started0", session_id=newer)
    stream = _stream(dynamodb)
    assert (stream["session_id"], stream["status"]) == (newer, "live")
    assert "ended_at" not in stream and "duration" not in stream  # the old broadcast's end is gone
    _deliver(s3, "ended")  # a redelivered end of the older broadcast
    _deliver(s3, "reconnecting1")
    assert (_stream(dynamodb)["session_id"], _stream(dynamodb)["status"]) == (newer, "live")
    assert _session(dynamodb)["status"] == "ended"


def test_viewer_count_and_thumbnail_are_not_the_catalogs(aws) -> None:
    s3, dynamodb = aws
    _deliver(s3, "started0")
    dynamodb.update_item(
        TableName="capturestream-MediaTable",
        Key=table.stream_key(PB),
        UpdateExpression="SET viewer_count = :n, thumbnail_path = :t",
        ExpressionAttributeValues={":n": {"N": "7"}, ":t": {"S": "thumbs/x.jpg"}},
    )
    _deliver(s3, "ended")
    assert _stream(dynamodb)["viewer_count"] == 7 and _stream(dynamodb)["thumbnail_path"] == "thumbs/x.jpg"


def _segment_event(sequence: int) -> dict:
    return _sqs_event(keys.LiveSegment(playback_id=PB, session_id=SID, sequence=sequence).key)


def test_segments_count_up_in_any_order(aws) -> None:
    """Segment events raise the count to the newest sequence; late and duplicate ones change nothing."""
    s3, dynamodb = aws
    for sequence in (0, 2, 1, 2, 0):
        assert catalog_handler.handler(_segment_event(sequence), None) == {"batchItemFailures": []}
    session = _session(dynamodb)
    assert (session["last_sequence"], session["segment_count"]) == (2, 3)
    assert session["last_segment_at"] == "2026-11-25T15:00:01+00:00"
    _deliver(s3, "started0")  # the manifest arriving after segments keeps the count
    session = _session(dynamodb)
    assert session["segment_count"] == 3 and session["status"] == "live"


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


def test_a_segment_batch_is_one_update_per_session_and_fails_only_that_sessions_messages(aws, monkeypatch) -> None:
    """Segments arrive in batches of up to 100: the newest per session is applied (one UpdateItem each); a failing
    session reports exactly its own messages."""
    s3, dynamodb = aws
    other, broken = "20261125T160000Z-bbbbbb", "20261125T170000Z-cccccc"
    batch = [(SID, 3), (SID, 1), (other, 5), (broken, 7), (SID, 2), (broken, 8)]
    event = _sqs_event(*(keys.LiveSegment(playback_id=PB, session_id=sid, sequence=n).key for sid, n in batch))
    updates = []
    real_update = catalog_handler.catalog.segment_update

    def segment_update(segment, stored_at):  # noqa: ANN001, ANN202
        updates.append((segment.session_id, segment.sequence))
        if segment.session_id == broken:
            raise RuntimeError("DynamoDB is down for this one")
        return real_update(segment, stored_at)

    monkeypatch.setattr(catalog_handler.catalog, "segment_update", segment_update)
    result = catalog_handler.handler(event, None)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m3"}, {"itemIdentifier": "m5"}]}
    assert sorted(updates) == [(SID, 3), (other, 5), (broken, 8)]
    assert _session(dynamodb)["segment_count"] == 4 and _session(dynamodb, other)["segment_count"] == 6


def test_foreign_and_untracked_keys_are_skipped(aws) -> None:
    s3, dynamodb = aws
    playlist = keys.LivePlaylist(playback_id=PB, session_id=SID).key
    result = catalog_handler.handler(_sqs_event("sessions/notes.txt", playlist), None)
    assert result == {"batchItemFailures": []}
    assert "Item" not in dynamodb.get_item(TableName="capturestream-MediaTable", Key=table.session_key(SID))


def test_ended_without_duration_derives_it() -> None:
    from capturestream.catalog import session_update
    from capturestream.models import SessionManifestBody

    body = SessionManifestBody.model_validate({**ENDED, "duration": None})
    values = session_update(body, keys.ManifestKind.ENDED)["ExpressionAttributeValues"]
    assert {"N": "600.0"} in values.values()
    assert datetime.fromisoformat(ENDED["ended_at"]).tzinfo == UTC


# ---------------------------------------------------------------------------------------------- health


def _health(*seconds: int, session_id: str = SID) -> dict:
    """A health.json body with one sample at each of ``seconds`` after the broadcast started (``100 * s`` kbps:
    a sample is the same in every version that repeats it); its media has the newest sample's bitrate."""
    return {
        "channel_id": STARTED["channel_id"],
        "playback_id": PB,
        "session_id": session_id,
        "media": {**STARTED["media"], "bitrate_kbps": 100.0 * max(seconds, default=0)},
        "samples": [
            {"t": f"2026-11-25T15:{s // 60:02d}:{s % 60:02d}+00:00", "bitrate_kbps": 100.0 * s, "frame_rate": 30.0}
            for s in seconds
        ],
    }


def _put_health(s3, body: dict, session_id: str = SID) -> str:
    key = keys.HealthManifest(playback_id=PB, session_id=session_id).key
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(body).encode())
    return key


def _rows(dynamodb) -> list[int]:
    return [row[0] for row in _session(dynamodb).get(table.HEALTH, [])]


def test_health_versions_in_any_order_and_twice_merge_into_one_series(aws) -> None:
    """Each version of health.json repeats recent samples; the session keeps their union, keyed by time."""
    s3, dynamodb = aws
    _deliver(s3, "started0")
    versions = [_health(5, 10), _health(5, 10, 15, 20), _health(15, 20, 25, 30)]
    for index in (2, 0, 1, 1, 2, 0):  # S3 may hand an older version to a slower invocation
        key = _put_health(s3, versions[index])
        assert catalog_handler.handler(_sqs_event(key), None) == {"batchItemFailures": []}
    session, stream = _session(dynamodb), _stream(dynamodb)
    assert [row[1] for row in session[table.HEALTH]] == [500, 1000, 1500, 2000, 2500, 3000]
    assert _rows(dynamodb) == sorted(_rows(dynamodb))
    assert session[table.HEALTH_VERSION] == 2  # writes: the newest version, then the oldest; nothing else was new
    assert session["media"]["bitrate_kbps"] == 3000 and stream["media"]["bitrate_kbps"] == 3000
    assert stream["media"]["width"] == 1280  # the whole media description, not only the rates
    assert session["status"] == stream["status"] == "live"


def test_health_before_the_session_is_catalogued_is_skipped_and_repeated_later(aws) -> None:
    s3, dynamodb = aws
    key = _put_health(s3, _health(5))
    assert catalog_handler.handler(_sqs_event(key), None) == {"batchItemFailures": []}
    item = dynamodb.get_item(TableName="capturestream-MediaTable", Key=table.session_key(SID))
    assert "Item" not in item  # no half-written session item
    _deliver(s3, "started0")
    catalog_handler.handler(_sqs_event(_put_health(s3, _health(5, 10))), None)
    assert len(_rows(dynamodb)) == 2


def test_a_deleted_health_manifest_is_skipped(aws) -> None:
    s3, dynamodb = aws
    _deliver(s3, "started0")
    key = keys.HealthManifest(playback_id=PB, session_id=SID).key  # never stored (or deleted with its recording)
    assert catalog_handler.handler(_sqs_event(key), None) == {"batchItemFailures": []}
    assert table.HEALTH not in _session(dynamodb)


def test_health_of_an_ended_broadcast_keeps_its_final_media(aws) -> None:
    s3, dynamodb = aws
    _deliver(s3, "started0")
    _deliver(s3, "ended")
    catalog_handler.handler(_sqs_event(_put_health(s3, _health(595))), None)
    session, stream = _session(dynamodb), _stream(dynamodb)
    assert len(_rows(dynamodb)) == 1  # the last samples still count
    assert "bitrate_kbps" not in session["media"] and "bitrate_kbps" not in stream["media"]
    assert session["status"] == stream["status"] == "ended"


def test_the_stream_media_is_refreshed_at_most_every_30_s_of_samples(aws) -> None:
    s3, dynamodb = aws
    _deliver(s3, "started0")
    for last in (10, 20, 30, 40):
        catalog_handler.handler(_sqs_event(_put_health(s3, _health(last - 5, last))), None)
        assert _session(dynamodb)["media"]["bitrate_kbps"] == 100 * last
    assert _stream(dynamodb)["media"]["bitrate_kbps"] == 4000  # 10 s, then 40 s: 30 s apart
    catalog_handler.handler(_sqs_event(_put_health(s3, _health(50))), None)
    assert _stream(dynamodb)["media"]["bitrate_kbps"] == 4000


def test_a_concurrent_health_write_is_merged_not_lost(aws, monkeypatch) -> None:
    """Another invocation writes between this one's read and write: the condition fails, it reads again."""
    s3, dynamodb = aws
    _deliver(s3, "started0")
    real_update = catalog_handler.catalog.health_update
    raced = []

    def health_update(body, session):  # noqa: ANN001, ANN202
        update = real_update(body, session)
        if not raced:  # the other invocation lands its version first
            raced.append(True)
            dynamodb.update_item(TableName="capturestream-MediaTable", **real_update(other, session))
        return update

    from capturestream.models import HealthManifestBody

    other = HealthManifestBody.model_validate(_health(100, 105))
    monkeypatch.setattr(catalog_handler.catalog, "health_update", health_update)
    key = _put_health(s3, _health(5, 10))
    assert catalog_handler.handler(_sqs_event(key, key), None) == {"batchItemFailures": []}
    assert len(_rows(dynamodb)) == 4 and _session(dynamodb)[table.HEALTH_VERSION] == 2
