"""Public stream routes (list, detail, chat) through the real Mangum handler, against moto.

Stream, session and chat items are written with the core builders the functions use (``catalog``,
``ChatEntry``), so these tests read exactly what the catalog writes.
"""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from capturestream import catalog, keys, table
from capturestream.chat import ChatEntry, new_message_id
from capturestream.models import (
    HealthManifestBody,
    HealthSample,
    MediaInfo,
    SessionManifestBody,
    hash_stream_key,
    new_playback_id,
    new_session_id,
)
from capturestream.settings import get_settings
from functions.api import handler as api_handler
from tests.support.api import TABLE, WEB, call, create, event

CDN = "https://cdn.test"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MEDIA = MediaInfo(video_codec="avc1.64001f", audio_codec="mp4a.40.2", width=1280, height=720, frame_rate=30.0)
#: :data:`MEDIA` as the API shows it.
MEDIA_JSON = {
    "videoCodec": "avc1.64001f",
    "audioCodec": "mp4a.40.2",
    "width": 1280,
    "height": 720,
    "frameRate": 30.0,
    "bitrateKbps": None,
    "keyframeInterval": None,
}
LIVE, ENDED = keys.ManifestKind.STARTED, keys.ManifestKind.ENDED


@pytest.fixture
def db(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The table, with the API configured to build media URLs under :data:`CDN`."""
    monkeypatch.setenv("CDN_BASE_URL", CDN + "/")
    get_settings.cache_clear()
    return dynamodb


def _apply(db: Any, update: dict[str, Any]) -> None:
    with contextlib.suppress(db.exceptions.ConditionalCheckFailedException):  # a newer state is already stored
        db.update_item(TableName=TABLE, **update)


def broadcast(
    db: Any, playback_id: str | None = None, *, minute: int = 0, kind: keys.ManifestKind = LIVE, revision: int = 0
) -> SessionManifestBody:
    """Catalog a broadcast that started ``minute`` minutes after T0 (``kind``: its latest manifest)."""
    started = T0 + timedelta(minutes=minute)
    body = SessionManifestBody(
        channel_id="chan00000001",
        playback_id=playback_id or new_playback_id(),
        session_id=new_session_id(started),
        started_at=started,
        ended_at=started + timedelta(seconds=90) if kind is ENDED else None,
        media=MEDIA,
        revision=revision,
        title=f"Broadcast at {minute}",
    )
    _apply(db, catalog.session_update(body, kind))
    _apply(db, catalog.stream_update(body, kind))
    return body


def end(db: Any, body: SessionManifestBody) -> None:
    ended = body.model_copy(update={"ended_at": body.started_at + timedelta(seconds=90), "revision": body.revision + 1})
    _apply(db, catalog.session_update(ended, ENDED))
    _apply(db, catalog.stream_update(ended, ENDED))


def raw_get(path: str, query: str = "") -> tuple[int, str]:
    """GET through the handler; the undecoded response body."""
    response = api_handler.handler(event("GET", path, query=query), None)
    return response["statusCode"], response["body"]


def ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


def pages(path: str, query: str) -> list[dict[str, Any]]:
    """Every page of a list, following ``nextCursor``."""
    result, cursor = [], None
    while True:
        status, _, body = call("GET", path, query=query + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200, body
        result.append(body)
        cursor = body["nextCursor"]
        if cursor is None:
            return result


def forge(key: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps({k: {"S": v} for k, v in key.items()}).encode()).decode()


# ------------------------------------------------------------------------------------------------ list


def test_lists_live_streams_newest_first_with_public_fields(db: Any) -> None:
    older, newest, middle = broadcast(db, minute=0), broadcast(db, minute=2), broadcast(db, minute=1)
    end(db, broadcast(db, minute=3))
    status, headers, body = call("GET", "/api/streams")
    assert status == 200
    assert headers["cache-control"] == "public, max-age=2"
    assert ids(body) == [newest.playback_id, middle.playback_id, older.playback_id]
    assert body["nextCursor"] is None
    card = body["items"][0]
    playlist = keys.LivePlaylist(playback_id=newest.playback_id, session_id=newest.session_id).key
    assert card == {
        "id": newest.playback_id,
        "title": "Broadcast at 2",
        "status": "live",
        "playbackUrl": f"{CDN}/{playlist}",
        "thumbnailUrl": None,
        "watchUrl": f"{WEB}/watch.html?v={newest.playback_id}",
        "viewerCount": 0,
        "startedAt": "2026-03-01T12:02:00Z",
        "endedAt": None,
        "duration": None,
        "sessionId": newest.session_id,
        "media": MEDIA_JSON,
    }


def test_status_filter(db: Any) -> None:
    live = broadcast(db, minute=0)
    ended = broadcast(db, minute=1)
    end(db, ended)
    reconnecting = broadcast(db, minute=2, kind=keys.ManifestKind.RECONNECTING, revision=1)
    assert ids(call("GET", "/api/streams")[2]) == [live.playback_id]
    _, _, body = call("GET", "/api/streams", query="status=ended")
    assert ids(body) == [ended.playback_id]
    assert body["items"][0]["endedAt"] == "2026-03-01T12:02:30Z"
    assert body["items"][0]["duration"] == 90.0
    assert ids(call("GET", "/api/streams", query="status=reconnecting")[2]) == [reconnecting.playback_id]


@pytest.mark.parametrize(
    ("query", "field"), [("status=gone", "query.status"), ("limit=0", "query.limit"), ("limit=101", "query.limit")]
)
def test_bad_list_params_are_422(db: Any, query: str, field: str) -> None:
    status, headers, body = call("GET", "/api/streams", query=query)
    assert status == 422
    assert headers["cache-control"] == "no-store"
    assert [f["field"] for f in body["error"]["fields"]] == [field]


def test_paginates_across_three_pages(db: Any) -> None:
    started = [broadcast(db, minute=m) for m in range(5)]
    listed = pages("/api/streams", "limit=2")
    assert [len(page["items"]) for page in listed] == [2, 2, 1]
    assert [i for page in listed for i in ids(page)] == [b.playback_id for b in reversed(started)]


def test_tampered_stream_cursors_are_422(db: Any) -> None:
    for minute in range(3):
        broadcast(db, minute=minute)
    end(db, broadcast(db, minute=5))
    cursor = call("GET", "/api/streams", query="limit=1")[2]["nextCursor"]
    assert cursor
    live_key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    channel_like = {k: v["S"] for k, v in live_key.items()} | {"pk": "CHANNEL#abcdefghijkl", "sk": "CHANNEL"}
    for query in (
        "status=ended&cursor=" + cursor,  # a live-list cursor replayed on the ended list
        "cursor=" + forge(channel_like),  # a key of another entity in the same index partition
        "cursor=" + forge({"pk": "CHAT#x", "sk": "000000000000#a"}),
        "cursor=not-base64!!",
    ):
        status, _, body = call("GET", "/api/streams", query=query)
        assert status == 422, query
        assert body["error"]["fields"][0]["field"] == "query.cursor"


def test_no_secret_or_internal_attribute_in_any_response(db: Any) -> None:
    created = create()
    body = broadcast(db, created["channel"]["playbackId"], minute=1)
    broadcast(db, minute=0)  # so that the one-item page carries a cursor
    db.put_item(TableName=TABLE, Item=_chat(body, 500, "hello").to_item())
    responses = [
        raw_get("/api/streams"),
        raw_get(f"/api/stream/{body.playback_id}"),
        raw_get(f"/api/streams/{body.playback_id}/chat"),
        raw_get("/api/streams", "limit=1&status=live"),
    ]
    assert [status for status, _ in responses] == [200] * 4
    stored_hash = hash_stream_key(created["streamKey"])
    assert json.loads(responses[3][1])["nextCursor"]
    for _, text in responses:
        assert body.session_id in text
        for leak in ("stream_key_hash", "streamKeyHash", '"pk"', '"gsi1pk"', '"sk"', "STREAM#", "revision"):
            assert leak not in text
        assert stored_hash not in text and created["streamKey"] not in text


# ------------------------------------------------------------------------------------------------ detail


def test_stream_detail_reports_the_current_broadcasts_segments(db: Any) -> None:
    body = broadcast(db, minute=0)
    stored = T0 + timedelta(seconds=3)
    for sequence in (0, 2, 1):  # out of order, as S3 events may arrive
        segment = keys.LiveSegment(playback_id=body.playback_id, session_id=body.session_id, sequence=sequence)
        _apply(db, catalog.segment_update(segment, stored + timedelta(seconds=sequence)))
    thumbnail = keys.LiveThumbnail(playback_id=body.playback_id, session_id=body.session_id, sequence=2).key
    db.update_item(  # the notifier's and thumbnail function's attributes (no core builder yet)
        TableName=TABLE,
        Key=table.stream_key(body.playback_id),
        UpdateExpression="SET viewer_count = :n, thumbnail_path = :t",
        ExpressionAttributeValues={":n": {"N": "7"}, ":t": {"S": thumbnail}},
    )
    status, headers, detail = call("GET", f"/api/stream/{body.playback_id}")
    assert status == 200
    assert headers["cache-control"] == "public, max-age=2"
    assert (detail["segmentCount"], detail["lastSegmentAt"]) == (3, "2026-03-01T12:00:05Z")
    assert (detail["viewerCount"], detail["thumbnailUrl"]) == (7, f"{CDN}/{thumbnail}")
    assert detail["sessionId"] == body.session_id

    newer = broadcast(db, body.playback_id, minute=10)  # the channel goes live again: a new broadcast
    _, _, detail = call("GET", f"/api/stream/{body.playback_id}")
    assert (detail["sessionId"], detail["segmentCount"], detail["lastSegmentAt"]) == (newer.session_id, 0, None)


@pytest.mark.parametrize("stream_id", ["zzzzzzzzzzzzzzzz", "x" * 200, "bad.id", "-leading-dash"])
def test_unknown_or_invalid_stream_is_404(db: Any, stream_id: str) -> None:
    broadcast(db)
    status, headers, body = call("GET", f"/api/stream/{stream_id}")
    assert status == 404
    assert headers["cache-control"] == "no-store"
    assert body["error"]["code"] == "not_found"
    assert stream_id not in json.dumps(body)


def test_a_half_written_stream_is_404_and_left_out_of_the_grid(db: Any) -> None:
    """moto shows the bare keys while the catalog creates a stream item: that reads as no stream, never a 500."""
    shown = broadcast(db)
    starting = new_playback_id()
    db.put_item(TableName=TABLE, Item=table.stream_key(starting))  # what a poll saw once in 918
    db.put_item(  # a stream item some other writer created before the catalog did (no session yet)
        TableName=TABLE, Item={**table.stream_key("viewersfirst"), "viewer_count": {"N": "3"}}
    )
    for stream_id in (starting, "viewersfirst"):
        status, _, body = call("GET", f"/api/stream/{stream_id}")
        assert (status, body["error"]["code"]) == (404, "not_found")
    session = shown.model_copy(update={"playback_id": starting, "session_id": new_session_id(T0)})
    _apply(db, catalog.stream_update(session, LIVE))  # the update lands: the stream exists now
    db.put_item(TableName=TABLE, Item=table.session_key(session.session_id))  # ... but its session is keys only
    status, _, detail = call("GET", f"/api/stream/{starting}")
    assert status == 200 and (detail["segmentCount"], detail["lastSegmentAt"]) == (0, None)
    db.put_item(  # listed under "live" but half-written
        TableName=TABLE,
        Item={**table.stream_key("halfinlist"), table.GSI1_PK: {"S": "STREAMS#live"}, table.GSI1_SK: {"S": "z"}},
    )
    status, _, listing = call("GET", "/api/streams")
    assert status == 200 and sorted(ids(listing)) == sorted([shown.playback_id, starting])


# ------------------------------------------------------------------------------------------------ health


def report_health(db: Any, body: SessionManifestBody, *seconds: int) -> None:
    """Merge a health.json with samples ``seconds`` after the broadcast started, as the catalog does."""
    samples = [
        HealthSample(t=body.started_at + timedelta(seconds=s), bitrate_kbps=2500.0 - s, frame_rate=30.0)
        for s in seconds
    ]
    media = MEDIA.model_copy(update={"bitrate_kbps": samples[-1].bitrate_kbps, "keyframe_interval": 2.0})
    health = HealthManifestBody(
        channel_id=body.channel_id,
        playback_id=body.playback_id,
        session_id=body.session_id,
        media=media,
        samples=samples,
    )
    item = db.get_item(TableName=TABLE, Key=table.session_key(body.session_id), ConsistentRead=True).get("Item")
    _apply(db, catalog.health_update(health, table.from_item(item) if item else None))


def test_health_of_the_latest_broadcast(db: Any) -> None:
    body = broadcast(db)
    report_health(db, body, 10, 5)
    report_health(db, body, 10, 15)
    status, headers, health = call("GET", f"/api/streams/{body.playback_id}/health")
    assert status == 200
    assert headers["cache-control"] == "public, max-age=2"
    assert health == {
        "sessionId": body.session_id,
        "status": "live",
        "samples": [
            {"t": f"2026-03-01T12:00:{s:02d}Z", "bitrateKbps": 2500.0 - s, "frameRate": 30.0, "keyframeInterval": None}
            for s in (5, 10, 15)
        ],
        "media": {**MEDIA_JSON, "bitrateKbps": 2485.0, "keyframeInterval": 2.0},
    }


def test_health_of_an_older_broadcast_and_of_none(db: Any) -> None:
    older = broadcast(db, minute=0, kind=ENDED)
    report_health(db, older, 5)
    newer = broadcast(db, older.playback_id, minute=10)  # live, its first health.json not there yet
    _, _, latest = call("GET", f"/api/streams/{older.playback_id}/health")
    assert (latest["sessionId"], latest["status"], latest["samples"]) == (newer.session_id, "live", [])
    _, _, past = call("GET", f"/api/streams/{older.playback_id}/health", query=f"session={older.session_id}")
    assert (past["sessionId"], past["status"], len(past["samples"])) == (older.session_id, "ended", 1)


def test_health_of_a_stream_whose_session_is_not_catalogued_yet_is_empty(db: Any) -> None:
    body = broadcast(db)
    db.put_item(TableName=TABLE, Item=table.session_key(body.session_id))  # keys only, mid-update
    status, _, health = call("GET", f"/api/streams/{body.playback_id}/health")
    assert status == 200 and (health["sessionId"], health["status"], health["samples"]) == (body.session_id, "live", [])
    assert health["media"]["videoCodec"] == "avc1.64001f"  # the stream's media meanwhile


def test_health_of_a_foreign_or_missing_broadcast_or_stream_is_404(db: Any) -> None:
    mine, theirs = broadcast(db), broadcast(db)
    for path, query in (
        (f"/api/streams/{mine.playback_id}/health", f"session={theirs.session_id}"),
        (f"/api/streams/{mine.playback_id}/health", "session=20260301T120000Z-nope00"),
        ("/api/streams/zzzzzzzzzzzzzzzz/health", ""),
        ("/api/streams/bad.id/health", ""),
    ):
        status, headers, body = call("GET", path, query=query)
        assert (status, body["error"]["code"]) == (404, "not_found"), path
        assert headers["cache-control"] == "no-store"
    status, _, body = call("GET", f"/api/streams/{mine.playback_id}/health", query="session=../x")
    assert status == 422 and body["error"]["fields"][0]["field"] == "query.session"


# ------------------------------------------------------------------------------------------------ chat


def _chat(body: SessionManifestBody, media_ms: int, text: str) -> ChatEntry:
    ts = int((body.started_at.timestamp()) * 1000) + media_ms
    return ChatEntry(
        playback_id=body.playback_id,
        session_id=body.session_id,
        id=new_message_id(ts),
        user="viewer",
        text=text,
        ts=ts,
        media_ms=media_ms,
        user_id="user-1",
    )


def say(db: Any, body: SessionManifestBody, *media_ms: int) -> None:
    for ms in media_ms:
        db.put_item(TableName=TABLE, Item=_chat(body, ms, f"at {ms}").to_item())


def texts(page: dict[str, Any]) -> list[str]:
    return [item["text"] for item in page["items"]]


def test_chat_range_is_media_seconds_from_inclusive_to_exclusive(db: Any) -> None:
    body = broadcast(db)
    say(db, body, 5000, 0, 999, 1000, 1500, 1999, 2000, 2001)
    path = f"/api/streams/{body.playback_id}/chat"
    status, headers, page = call("GET", path, query="from=1&to=2")
    assert status == 200
    assert headers["cache-control"] == "public, max-age=2"
    assert page["sessionId"] == body.session_id
    assert texts(page) == ["at 1000", "at 1500", "at 1999"]
    assert [m["mediaTime"] for m in page["items"]] == [1.0, 1.5, 1.999]
    assert set(page["items"][0]) == {"id", "user", "text", "ts", "mediaTime"}
    assert page["items"][0]["ts"] == int(T0.timestamp() * 1000) + 1000
    assert texts(call("GET", path, query="from=0.9995&to=1.1")[2]) == ["at 1000"]
    assert texts(call("GET", path, query="from=2")[2]) == ["at 2000", "at 2001", "at 5000"]
    assert len(call("GET", path)[2]["items"]) == 8
    assert call("GET", path, query="from=1&to=1")[2]["items"] == []


def test_chat_defaults_to_the_latest_broadcast_and_can_replay_an_older_one(db: Any) -> None:
    older = broadcast(db, minute=0)
    end(db, older)
    newer = broadcast(db, older.playback_id, minute=30)
    say(db, older, 100)
    say(db, newer, 200)
    path = f"/api/streams/{older.playback_id}/chat"
    page = call("GET", path)[2]
    assert (page["sessionId"], texts(page)) == (newer.session_id, ["at 200"])
    page = call("GET", path, query=f"session={older.session_id}")[2]
    assert (page["sessionId"], texts(page)) == (older.session_id, ["at 100"])


def test_chat_of_a_foreign_or_missing_broadcast_or_stream_is_404(db: Any) -> None:
    mine, theirs = broadcast(db, minute=0), broadcast(db, minute=1)
    say(db, theirs, 100)
    for path, query in (
        (f"/api/streams/{mine.playback_id}/chat", f"session={theirs.session_id}"),
        (f"/api/streams/{mine.playback_id}/chat", "session=20260101T000000Z-nope00"),
        ("/api/streams/zzzzzzzzzzzzzzzz/chat", ""),
        (f"/api/streams/{'x' * 200}/chat", ""),
    ):
        status, _, body = call("GET", path, query=query)
        assert (status, body["error"]["code"]) == (404, "not_found"), (path, query)
        assert "at 100" not in json.dumps(body)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2&to=1", "query.to"),
        ("from=-1", "query.from"),
        ("to=nan", "query.to"),
        ("from=inf", "query.from"),
        ("limit=501", "query.limit"),
        ("limit=0", "query.limit"),
        ("session=../etc", "query.session"),
    ],
)
def test_bad_chat_params_are_422_naming_the_field(db: Any, query: str, field: str) -> None:
    body = broadcast(db)
    status, _, error = call("GET", f"/api/streams/{body.playback_id}/chat", query=query)
    assert status == 422, error
    assert [f["field"] for f in error["error"]["fields"]] == [field]


def test_chat_paginates_and_rejects_cursors_of_another_range(db: Any) -> None:
    body, other = broadcast(db, minute=0), broadcast(db, minute=1)
    say(db, body, *range(0, 5000, 1000))
    say(db, other, 0, 1000, 2000)
    path = f"/api/streams/{body.playback_id}/chat"
    listed = pages(path, "limit=2")
    assert [texts(page) for page in listed] == [["at 0", "at 1000"], ["at 2000", "at 3000"], ["at 4000"]]
    cursor = listed[0]["nextCursor"]
    other_cursor = call("GET", f"/api/streams/{other.playback_id}/chat", query="limit=1")[2]["nextCursor"]
    for query in (f"from=3&cursor={cursor}", f"cursor={other_cursor}", f"to=0.5&cursor={cursor}"):
        status, _, error = call("GET", path, query=query)
        assert status == 422, query
        assert error["error"]["fields"][0]["field"] == "query.cursor"


def test_openapi_documents_the_stream_routes(api_env: Any) -> None:
    spec = call("GET", "/openapi.json")[2]
    for path, method, errors in (
        ("/api/streams", "get", {"422"}),
        ("/api/stream/{id}", "get", {"404", "422"}),
        ("/api/streams/{id}/chat", "get", {"404", "422"}),
        ("/api/streams/{id}/health", "get", {"404", "422"}),
    ):
        operation = spec["paths"][path][method]
        assert operation["summary"] and operation["description"]
        assert set(operation["responses"]) >= {"200"} | errors
    chat_params = {p["name"] for p in spec["paths"]["/api/streams/{id}/chat"]["get"]["parameters"]}
    assert chat_params == {"id", "from", "to", "session", "limit", "cursor"}
    health_params = {p["name"] for p in spec["paths"]["/api/streams/{id}/health"]["get"]["parameters"]}
    assert health_params == {"id", "session"}
    sample = spec["components"]["schemas"]["HealthSampleOut"]["properties"]
    assert set(sample) == {"t", "bitrateKbps", "frameRate", "keyframeInterval"}
    assert set(spec["components"]["schemas"]["StreamHealth"]["properties"]) == {
        "sessionId",
        "status",
        "samples",
        "media",
    }
