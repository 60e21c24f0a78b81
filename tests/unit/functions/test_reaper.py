"""Reaper function against moto: lost broadcasts get the ended.json their node never wrote, exactly once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from capturestream import catalog, keys, table
from capturestream.models import MediaInfo, SessionManifestBody, new_playback_id, new_session_id
from capturestream.settings import get_settings
from functions.catalog_media import handler as catalog_handler
from functions.reaper import handler as reaper
from tests.support.aws import create_media_table

BUCKET = "capturestream-media"
TABLE = "capturestream-MediaTable"
SCHEDULE = json.loads((Path(__file__).parents[3] / "events" / "reaper_schedule.json").read_text())


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    for name, value in {
        "TABLE_NAME": TABLE,
        "MEDIA_BUCKET": BUCKET,
        "RECONNECT_WINDOW": "60",
        "REAPER_MARGIN": "30",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    reaper._clients.cache_clear()
    catalog_handler._clients.cache_clear()
    s3, dynamodb = boto3.client("s3"), boto3.client("dynamodb")
    s3.create_bucket(Bucket=BUCKET)
    create_media_table(dynamodb, TABLE)
    yield s3, dynamodb
    get_settings.cache_clear()
    reaper._clients.cache_clear()
    catalog_handler._clients.cache_clear()


def broadcast(
    dynamodb: Any, *, started_ago: float, last_segment_ago: float | None, reconnecting: bool = False
) -> SessionManifestBody:
    """Catalog a broadcast as the catalog would have: started (then reconnecting), with its newest segment."""
    now = datetime.now(UTC)
    started = now - timedelta(seconds=started_ago)
    body = SessionManifestBody(
        channel_id="abcdefghijkl",
        playback_id=new_playback_id(),
        session_id=new_session_id(started),
        started_at=started,
        media=MediaInfo(video_codec="avc1.64001f", audio_codec="mp4a.40.2", width=1280, height=720),
        revision=0,
        title="Speedrun",
        ingest_node="node-1",
    )
    updates = [catalog.session_update(body, keys.ManifestKind.STARTED), catalog.stream_update(body, "started")]
    if reconnecting:
        again = body.model_copy(update={"revision": 1})
        updates += [catalog.session_update(again, "reconnecting"), catalog.stream_update(again, "reconnecting")]
    if last_segment_ago is not None:
        segment = keys.LiveSegment(playback_id=body.playback_id, session_id=body.session_id, sequence=41)
        updates.append(catalog.segment_update(segment, now - timedelta(seconds=last_segment_ago)))
    for update in updates:
        dynamodb.update_item(TableName=TABLE, **update)
    return body


def ended_key(body: SessionManifestBody) -> str:
    return keys.SessionManifest(playback_id=body.playback_id, session_id=body.session_id, kind="ended").key


def exists(s3: Any, key: str) -> bool:
    return s3.list_objects_v2(Bucket=BUCKET, Prefix=key)["KeyCount"] == 1


def test_ends_lost_sessions_and_only_those(aws: Any) -> None:
    s3, dynamodb = aws
    lost = broadcast(dynamodb, started_ago=600, last_segment_ago=300)
    fresh = broadcast(dynamodb, started_ago=600, last_segment_ago=2)
    waiting = broadcast(dynamodb, started_ago=600, last_segment_ago=30, reconnecting=True)
    gone = broadcast(dynamodb, started_ago=900, last_segment_ago=200, reconnecting=True)

    assert sorted(reaper.handler(SCHEDULE, None)["ended"]) == sorted([lost.session_id, gone.session_id])
    assert not exists(s3, ended_key(fresh)) and not exists(s3, ended_key(waiting))

    stored = s3.get_object(Bucket=BUCKET, Key=ended_key(lost))
    assert (stored["ContentType"], stored["CacheControl"]) == ("application/json", "no-cache")
    manifest = json.loads(stored["Body"].read())
    session = table.from_item(dynamodb.get_item(TableName=TABLE, Key=table.session_key(lost.session_id))["Item"])
    assert manifest == {
        "channel_id": "abcdefghijkl",
        "playback_id": lost.playback_id,
        "session_id": lost.session_id,
        "started_at": lost.started_at.isoformat().replace("+00:00", "Z"),
        "ended_at": session["last_segment_at"].replace("+00:00", "Z"),
        "duration": pytest.approx(300, abs=0.01),
        "media": {"video_codec": "avc1.64001f", "audio_codec": "mp4a.40.2", "width": 1280, "height": 720},
        "revision": 1,
        "title": "Speedrun",
        "ingest_node": "reaper",
        "reason": "node_lost",
    }
    assert json.loads(s3.get_object(Bucket=BUCKET, Key=ended_key(gone))["Body"].read())["revision"] == 2


def test_running_twice_writes_once(aws: Any) -> None:
    s3, dynamodb = aws
    lost = broadcast(dynamodb, started_ago=600, last_segment_ago=300)
    assert reaper.handler(SCHEDULE, None) == {"ended": [lost.session_id]}
    first = s3.head_object(Bucket=BUCKET, Key=ended_key(lost))
    assert reaper.handler(SCHEDULE, None) == {"ended": []}  # the catalog has not caught up yet: HEAD says done
    again = s3.head_object(Bucket=BUCKET, Key=ended_key(lost))
    assert (again["ETag"], again["LastModified"]) == (first["ETag"], first["LastModified"])


def test_never_replaces_the_nodes_own_ended_manifest(aws: Any) -> None:
    s3, dynamodb = aws
    lost = broadcast(dynamodb, started_ago=600, last_segment_ago=300)
    s3.put_object(Bucket=BUCKET, Key=ended_key(lost), Body=b'{"from": "the node"}')
    assert reaper.handler(SCHEDULE, None) == {"ended": []}
    assert s3.get_object(Bucket=BUCKET, Key=ended_key(lost))["Body"].read() == b'{"from": "the node"}'


def test_the_manifest_ends_the_stream_through_the_catalog(aws: Any) -> None:
    """ended.json from the reaper is an ordinary manifest: the catalog ends the session and the stream."""
    s3, dynamodb = aws
    lost = broadcast(dynamodb, started_ago=600, last_segment_ago=300)
    reaper.handler(SCHEDULE, None)
    detail = {"bucket": {"name": BUCKET}, "object": {"key": ended_key(lost), "size": 1}, "reason": "PutObject"}
    body = {"version": "0", "detail-type": "Object Created", "source": "aws.s3", "detail": detail}
    record = {"messageId": "m1", "body": json.dumps(body), "eventSource": "aws:sqs"}
    assert catalog_handler.handler({"Records": [record]}, None) == {"batchItemFailures": []}
    for key in (table.session_key(lost.session_id), table.stream_key(lost.playback_id)):
        item = table.from_item(dynamodb.get_item(TableName=TABLE, Key=key)["Item"])
        assert (item["status"], item["end_reason"]) == ("ended", "node_lost")
        assert item["duration"] == pytest.approx(300, abs=0.01)
    assert reaper.handler(SCHEDULE, None) == {"ended": []}  # nothing live any more


def test_nothing_live_is_a_quiet_run(aws: Any) -> None:
    assert reaper.handler(SCHEDULE, None) == {"ended": []}


def test_paginates_over_many_live_streams(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    s3, dynamodb = aws
    bodies = [broadcast(dynamodb, started_ago=600, last_segment_ago=300) for _ in range(5)]
    query = table.streams_by_status_query
    monkeypatch.setattr(table, "streams_by_status_query", lambda status: query(status, limit=2))
    assert sorted(reaper.handler(SCHEDULE, None)["ended"]) == sorted(b.session_id for b in bodies)
