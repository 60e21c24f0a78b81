"""Recording routes (list, detail, delete) through the real Mangum handler, against moto (DynamoDB and S3).

Recording items are written with the core model the recording builder uses (``Recording.to_item``), chat items
with ``ChatEntry`` and session items with the catalog's builders, so these tests read what the functions write.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from capturestream import catalog, keys, recordings, table
from capturestream.chat import ChatEntry, new_message_id
from capturestream.models import MediaInfo, SessionManifestBody, hash_stream_key, new_session_id
from capturestream.recordings import BroadcastStats, Recording, RecordingStatus, Storyboard
from capturestream.settings import get_settings
from functions.api import deps
from functions.api import handler as api_handler
from functions.api.routes import recordings as recording_routes
from tests.support.api import TABLE, call, create, event, token_for

CDN = "https://cdn.test"
BUCKET = "capturestream-media"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OTHER_CHANNEL = "otherchan001"


@pytest.fixture
def db(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The table, the media bucket, and the API building media URLs under :data:`CDN`."""
    monkeypatch.setenv("CDN_BASE_URL", CDN + "/")
    get_settings.cache_clear()
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return dynamodb


@pytest.fixture
def s3(db: Any) -> Any:
    return boto3.client("s3")


@pytest.fixture
def channel(db: Any) -> dict[str, Any]:
    """A channel owned by ``user-1`` (its id and playback id)."""
    return create("Speedruns")["channel"]


def store(db: Any, recording: Recording) -> Recording:
    db.put_item(TableName=TABLE, Item=recording.to_item())
    return recording


def make(
    channel_id: str, playback_id: str, *, minute: int = 0, status: RecordingStatus = RecordingStatus.READY, **extra: Any
) -> Recording:
    """A recording of a broadcast that started ``minute`` minutes after T0 (ready ones have every output)."""
    started = T0 + timedelta(minutes=minute)
    ids = {"playback_id": playback_id, "session_id": new_session_id(started)}
    fields: dict[str, Any] = {
        "recording_id": ids["session_id"],
        "playback_id": playback_id,
        "channel_id": channel_id,
        "title": f"Broadcast at {minute}",
        "started_at": started,
        "ended_at": started + timedelta(seconds=90),
        "status": status,
    }
    if status is RecordingStatus.READY:
        fields |= {
            "duration": 90.5,
            "size": 12_345_678,
            "codecs": "avc1.64001f,mp4a.40.2",
            "video_codec": "avc1.64001f",
            "audio_codec": "mp4a.40.2",
            "width": 1280,
            "height": 720,
            "segment_count": 91,
            "mp4_path": keys.VodRecording(**ids).key,
            "playlist_path": keys.VodPlaylist(**ids).key,
            "poster_path": keys.SessionImage(**ids, kind=keys.ImageKind.POSTER).key,
            "storyboard": Storyboard(
                vtt_path=keys.SessionImage(**ids, kind=keys.ImageKind.STORYBOARD_VTT).key,
                sprite_paths=[keys.StoryboardSprite(**ids, index=n).key for n in range(2)],
                interval=2.0,
                tile_width=160,
                tile_height=90,
                columns=5,
                rows=5,
                tiles=46,
            ),
            "stats": BroadcastStats(duration=90.5, peak_viewers=6, average_viewers=3.5, chat_messages=31, reconnects=1),
        }
    return Recording(**(fields | extra))


def delete(recording_id: str, token: str | None = None) -> tuple[int, dict[str, str], Any]:
    """DELETE through the handler: (status, lower-cased headers, decoded JSON body or None when empty).

    Mangum labels every payload-2.0 response JSON (as API Gateway would), an empty 204 too, so ``call`` cannot
    decode these.
    """
    response = api_handler.handler(event("DELETE", f"/api/recordings/{recording_id}", token=token), None)
    headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
    return response["statusCode"], headers, json.loads(response["body"]) if response["body"] else None


def ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


def pages(query: str) -> list[dict[str, Any]]:
    result, cursor = [], None
    while True:
        status, _, body = call("GET", "/api/recordings", query=query + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200, body
        result.append(body)
        cursor = body["nextCursor"]
        if cursor is None:
            return result


def forge(key: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps({k: {"S": v} for k, v in key.items()}).encode()).decode()


# ------------------------------------------------------------------------------------------------ list


def test_lists_ready_recordings_newest_first_with_public_fields(db: Any, channel: dict[str, Any]) -> None:
    pb = channel["playbackId"]
    older, newest = store(db, make(channel["channelId"], pb, minute=0)), store(db, make(OTHER_CHANNEL, "pb2", minute=9))
    middle = store(db, make(channel["channelId"], pb, minute=5))
    for status in (RecordingStatus.BUILDING, RecordingStatus.FAILED):
        store(db, make(channel["channelId"], pb, minute=20, status=status, error="missing segment 3"))
    store(db, make(channel["channelId"], pb, minute=30, status=RecordingStatus.DELETED))

    status, headers, body = call("GET", "/api/recordings")
    assert status == 200
    assert headers["cache-control"] == "public, max-age=2"
    assert ids(body) == [newest.recording_id, middle.recording_id, older.recording_id]
    assert body["nextCursor"] is None
    assert body["items"][1] == {
        "id": middle.recording_id,
        "title": "Broadcast at 5",
        "channelId": channel["channelId"],
        "playbackId": pb,
        "startedAt": "2026-03-01T12:05:00Z",
        "endedAt": "2026-03-01T12:06:30Z",
        "duration": 90.5,
        "size": 12_345_678,
        "posterUrl": f"{CDN}/{middle.poster_path}",
        "codecs": "avc1.64001f,mp4a.40.2",
        "videoCodec": "avc1.64001f",
        "audioCodec": "mp4a.40.2",
        "width": 1280,
        "height": 720,
    }


def test_channel_filter(db: Any, channel: dict[str, Any]) -> None:
    mine = [store(db, make(channel["channelId"], channel["playbackId"], minute=m)) for m in (0, 2)]
    store(db, make(OTHER_CHANNEL, "pb2", minute=1))
    for status in (RecordingStatus.BUILDING, RecordingStatus.FAILED):  # in the channel's index, not in the library
        store(db, make(channel["channelId"], channel["playbackId"], minute=3, status=status))
    _, _, body = call("GET", "/api/recordings", query=f"channel={channel['channelId']}")
    assert ids(body) == [mine[1].recording_id, mine[0].recording_id]
    assert call("GET", "/api/recordings", query="channel=nobody000000")[2]["items"] == []


@pytest.mark.parametrize("channel_filter", [None, OTHER_CHANNEL])
def test_paginates_across_three_pages(db: Any, channel_filter: str | None) -> None:
    made = [store(db, make(OTHER_CHANNEL, "pb2", minute=m)) for m in range(5)]
    query = "limit=2" + (f"&channel={channel_filter}" if channel_filter else "")
    listed = pages(query)
    assert [len(page["items"]) for page in listed] == [2, 2, 1]
    assert [i for page in listed for i in ids(page)] == [r.recording_id for r in reversed(made)]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "query.limit"),
        ("limit=101", "query.limit"),
        ("limit=ten", "query.limit"),
        ("channel=../etc", "query.channel"),
        ("channel=" + "x" * 65, "query.channel"),
        ("cursor=not-base64!!", "query.cursor"),
    ],
)
def test_bad_list_params_are_422(db: Any, query: str, field: str) -> None:
    status, headers, body = call("GET", "/api/recordings", query=query)
    assert status == 422
    assert headers["cache-control"] == "no-store"
    assert [f["field"] for f in body["error"]["fields"]] == [field]


def test_cursors_are_pinned_to_their_listing(db: Any, channel: dict[str, Any]) -> None:
    for minute in range(3):
        store(db, make(channel["channelId"], channel["playbackId"], minute=minute))
        store(db, make(OTHER_CHANNEL, "pb2", minute=minute))
    everyone = call("GET", "/api/recordings", query="limit=1")[2]["nextCursor"]
    one_channel = call("GET", "/api/recordings", query=f"limit=1&channel={OTHER_CHANNEL}")[2]["nextCursor"]
    assert everyone and one_channel
    stream_like = {"pk": "STREAM#pb2", "sk": "STREAM", "gsi1pk": "RECORDINGS", "gsi1sk": "2026#x"}
    for query in (
        f"channel={OTHER_CHANNEL}&cursor={everyone}",  # a gsi1 cursor on a gsi2 listing
        f"cursor={one_channel}",  # and the other way round
        f"channel={channel['channelId']}&cursor={one_channel}",  # another channel's listing
        f"cursor={forge(stream_like)}",  # another entity's key
    ):
        status, _, body = call("GET", "/api/recordings", query=query)
        assert status == 422, query
        assert body["error"]["fields"][0]["field"] == "query.cursor"


# ------------------------------------------------------------------------------------------------ detail


def test_detail_of_a_ready_recording(db: Any, channel: dict[str, Any]) -> None:
    recording = store(db, make(channel["channelId"], channel["playbackId"], minute=3))
    status, headers, body = call("GET", f"/api/recordings/{recording.recording_id}")
    assert status == 200
    assert headers["cache-control"] == "public, max-age=2"
    sid, pb = recording.recording_id, recording.playback_id
    assert body == {
        "id": sid,
        "title": "Broadcast at 3",
        "channelId": channel["channelId"],
        "playbackId": pb,
        "startedAt": "2026-03-01T12:03:00Z",
        "endedAt": "2026-03-01T12:04:30Z",
        "duration": 90.5,
        "size": 12_345_678,
        "posterUrl": f"{CDN}/{keys.SessionImage(playback_id=pb, session_id=sid, kind=keys.ImageKind.POSTER).key}",
        "codecs": "avc1.64001f,mp4a.40.2",
        "videoCodec": "avc1.64001f",
        "audioCodec": "mp4a.40.2",
        "width": 1280,
        "height": 720,
        "status": "ready",
        "error": None,
        "mp4Url": f"{CDN}/{keys.VodRecording(playback_id=pb, session_id=sid).key}",
        "playlistUrl": f"{CDN}/{keys.VodPlaylist(playback_id=pb, session_id=sid).key}",
        "storyboard": {
            "vttUrl": f"{CDN}/{recording.storyboard.vtt_path}",
            "spriteUrls": [f"{CDN}/{path}" for path in recording.storyboard.sprite_paths],
            "interval": 2.0,
            "tileWidth": 160,
            "tileHeight": 90,
            "columns": 5,
            "rows": 5,
            "tiles": 46,
        },
        "stats": {"duration": 90.5, "peakViewers": 6, "averageViewers": 3.5, "chatMessages": 31, "reconnects": 1},
        "chat": {"session": sid, "from": 0.0, "to": 90.5},
        "chatUrl": f"/api/streams/{pb}/chat?session={sid}&from=0&to=90.5",
    }


def test_chat_url_replays_the_broadcasts_chat(db: Any, s3: Any, channel: dict[str, Any]) -> None:
    """``chatUrl`` is a working query of the chat route: the recording's broadcast, its whole timeline."""
    recording = store(db, make(channel["channelId"], channel["playbackId"], minute=3))
    broadcast_of(db, s3, recording)
    say(db, recording, 0, 45_000, 90_499, 95_000)
    body = SessionManifestBody(
        channel_id=channel["channelId"],
        playback_id=recording.playback_id,
        session_id=new_session_id(T0 + timedelta(hours=1)),  # the channel is live again: a newer broadcast
        started_at=T0 + timedelta(hours=1),
        media=MediaInfo(),
    )
    db.update_item(TableName=TABLE, **catalog.stream_update(body, keys.ManifestKind.STARTED))
    chat_url = call("GET", f"/api/recordings/{recording.recording_id}")[2]["chatUrl"]
    path, query = chat_url.split("?")
    status, _, page = call("GET", path, query=query)
    assert status == 200, page
    assert page["sessionId"] == recording.recording_id
    assert [m["mediaTime"] for m in page["items"]] == [0.0, 45.0, 90.499]


@pytest.mark.parametrize(
    ("status", "error"), [(RecordingStatus.BUILDING, None), (RecordingStatus.FAILED, "segment 7 is missing")]
)
def test_detail_of_a_recording_not_ready(db: Any, status: RecordingStatus, error: str | None) -> None:
    recording = store(db, make(OTHER_CHANNEL, "pb2", status=status, error=error))
    code, _, body = call("GET", f"/api/recordings/{recording.recording_id}")
    assert code == 200
    assert (body["status"], body["error"]) == (status.value, error)
    assert body["mp4Url"] is body["playlistUrl"] is body["posterUrl"] is body["storyboard"] is body["stats"] is None
    assert body["chat"] == {"session": recording.recording_id, "from": 0.0, "to": None}
    assert body["chatUrl"] == f"/api/streams/pb2/chat?session={recording.recording_id}&from=0"


@pytest.mark.parametrize(
    "recording_id", ["20260301T120000Z-nope00", "x" * 200, "bad.id", "-leading-dash", "deleted", "half-written"]
)
def test_unknown_invalid_or_deleted_recording_is_404(db: Any, recording_id: str) -> None:
    if recording_id == "deleted":
        recording = make(OTHER_CHANNEL, "pb2", status=RecordingStatus.DELETED)
        db.put_item(TableName=TABLE, Item=recordings.tombstone_item(recording, T0))
        recording_id = recording.recording_id
    elif recording_id == "half-written":  # the bare keys, as moto shows an item while an update creates it
        recording_id = make(OTHER_CHANNEL, "pb2").recording_id
        db.put_item(TableName=TABLE, Item=recordings.recording_key(recording_id))
    status, headers, body = call("GET", f"/api/recordings/{recording_id}")
    assert status == 404
    assert headers["cache-control"] == "no-store"
    assert body["error"]["code"] == "not_found"
    assert recording_id not in json.dumps(body)


# ------------------------------------------------------------------------------------------------ owner's list


def owner_pages(channel_id: str, query: str, token: str | None = None) -> list[dict[str, Any]]:
    result, cursor = [], None
    while True:
        status, headers, body = call(
            "GET",
            f"/api/channels/{channel_id}/recordings",
            query=query + (f"&cursor={cursor}" if cursor else ""),
            token=token or token_for(),
        )
        assert status == 200, body
        assert headers["cache-control"] == "no-store"
        result.append(body)
        cursor = body["nextCursor"]
        if cursor is None:
            return result


def test_owner_lists_every_past_broadcast_with_status_and_stats(db: Any, channel: dict[str, Any]) -> None:
    """Ready, building and failed recordings, newest first; deleted ones and other channels' are not there."""
    cid, pb = channel["channelId"], channel["playbackId"]
    ready = store(db, make(cid, pb, minute=0))
    failed = store(db, make(cid, pb, minute=5, status=RecordingStatus.FAILED, error="segment 7 is missing"))
    building = store(db, make(cid, pb, minute=9, status=RecordingStatus.BUILDING))
    gone = store(db, make(cid, pb, minute=12))
    db.put_item(TableName=TABLE, Item=recordings.tombstone_item(gone, T0))
    store(db, make(OTHER_CHANNEL, "pb2", minute=7))

    (page,) = owner_pages(cid, "")
    assert ids(page) == [building.recording_id, failed.recording_id, ready.recording_id]
    first, second, third = page["items"]
    assert (first["status"], first["error"], first["stats"]) == ("building", None, None)
    assert (second["status"], second["error"], second["stats"]) == ("failed", "segment 7 is missing", None)
    assert third["status"] == "ready" and third["error"] is None
    assert third["stats"] == {
        "duration": 90.5,
        "peakViewers": 6,
        "averageViewers": 3.5,
        "chatMessages": 31,
        "reconnects": 1,
    }
    public = call("GET", f"/api/recordings/{ready.recording_id}")[2]
    assert {k: v for k, v in third.items() if k not in ("status", "error", "stats")} == {
        k: v for k, v in public.items() if k in third and k not in ("status", "error", "stats")
    }


def test_owner_list_paginates(db: Any, channel: dict[str, Any]) -> None:
    made = [
        store(db, make(channel["channelId"], channel["playbackId"], minute=m, status=status))
        for m, status in enumerate([RecordingStatus.READY, RecordingStatus.FAILED] * 2 + [RecordingStatus.BUILDING])
    ]
    listed = owner_pages(channel["channelId"], "limit=2")
    assert [len(page["items"]) for page in listed] == [2, 2, 1]
    assert [i for page in listed for i in ids(page)] == [r.recording_id for r in reversed(made)]


@pytest.mark.parametrize("channel_id", ["OTHER", "zzzzzzzzzzzz", "bad.id", "x" * 300])
def test_owner_list_of_someone_elses_or_unknown_channel_is_404(db: Any, channel_id: str) -> None:
    theirs = create("Theirs", subject="user-2")["channel"]
    store(db, make(theirs["channelId"], theirs["playbackId"]))
    target = theirs["channelId"] if channel_id == "OTHER" else channel_id
    status, _, body = call("GET", f"/api/channels/{target}/recordings", token=token_for("user-1"))
    assert (status, body["error"]["code"]) == (404, "not_found")


def test_owner_list_cursor_is_pinned_to_the_channel(db: Any, channel: dict[str, Any]) -> None:
    theirs = create("Theirs", subject="user-2")["channel"]
    store(db, make(theirs["channelId"], theirs["playbackId"]))
    foreign = make(theirs["channelId"], theirs["playbackId"], minute=1)
    key = {
        table.PK: f"{recordings.RECORDING_PREFIX}{foreign.recording_id}",
        table.SK: recordings.RECORDING_SK,
        recordings.GSI2_PK: recordings.channel_recordings(theirs["channelId"]),
        recordings.GSI2_SK: f"{foreign.started_at.isoformat()}#{foreign.recording_id}",
    }
    query = f"cursor={forge(key)}"
    status, _, body = call("GET", f"/api/channels/{channel['channelId']}/recordings", query=query, token=token_for())
    assert status == 422 and body["error"]["fields"][0]["field"] == "query.cursor"


# ------------------------------------------------------------------------------------------------ delete


def say(db: Any, recording: Recording, *media_ms: int) -> None:
    for ms in media_ms:
        ts = int(recording.started_at.timestamp() * 1000) + ms
        entry = ChatEntry(
            playback_id=recording.playback_id,
            session_id=recording.recording_id,
            id=new_message_id(ts),
            user="viewer",
            text=f"at {ms}",
            ts=ts,
            media_ms=ms,
        )
        db.put_item(TableName=TABLE, Item=entry.to_item())


def session_keys(recording: Recording) -> list[str]:
    """One object of each kind under each of the session's prefixes."""
    ids = {"playback_id": recording.playback_id, "session_id": recording.recording_id}
    return [
        keys.LiveInit(**ids).key,
        *(keys.LiveSegment(**ids, sequence=n).key for n in range(3)),
        keys.LivePlaylist(**ids).key,
        keys.SessionManifest(**ids, kind="started").key,
        keys.SessionManifest(**ids, kind="ended").key,
        keys.VodRecording(**ids).key,
        keys.VodPlaylist(**ids).key,
        keys.LiveThumbnail(**ids, sequence=2).key,
        keys.SessionImage(**ids, kind=keys.ImageKind.POSTER).key,
        keys.StoryboardSprite(**ids, index=0).key,
    ]


def broadcast_of(db: Any, s3: Any, recording: Recording, chat: int = 0) -> list[str]:
    """What a finished broadcast leaves: its objects, its session item and ``chat`` chat messages."""
    body = SessionManifestBody(
        channel_id=recording.channel_id,
        playback_id=recording.playback_id,
        session_id=recording.recording_id,
        started_at=recording.started_at,
        ended_at=recording.ended_at,
        media=MediaInfo(),
    )
    db.update_item(TableName=TABLE, **catalog.session_update(body, keys.ManifestKind.ENDED))
    objects = session_keys(recording)
    for key in objects:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    say(db, recording, *range(0, chat * 1000, 1000))
    return objects


def listed(s3: Any) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


def chat_count(db: Any, session_id: str) -> int:
    return db.query(TableName=TABLE, **table.chat_range_query(session_id, 0, table.MAX_MEDIA_MS + 1, 1000))["Count"]


@pytest.fixture
def two(db: Any, s3: Any, channel: dict[str, Any]) -> tuple[Recording, Recording]:
    """Two ready recordings of the caller's channel, each with objects, a session item and chat (30 and 2)."""
    doomed = store(db, make(channel["channelId"], channel["playbackId"], minute=0))
    kept = store(db, make(channel["channelId"], channel["playbackId"], minute=10))
    broadcast_of(db, s3, doomed, chat=30)
    broadcast_of(db, s3, kept, chat=2)
    return doomed, kept


def assert_deleted(db: Any, s3: Any, doomed: Recording, kept: Recording) -> None:
    assert listed(s3) == set(session_keys(kept))
    assert (chat_count(db, doomed.recording_id), chat_count(db, kept.recording_id)) == (0, 2)
    assert "Item" not in db.get_item(TableName=TABLE, Key=table.session_key(doomed.recording_id))
    assert "Item" in db.get_item(TableName=TABLE, Key=table.session_key(kept.recording_id))
    tombstone = table.from_item(db.get_item(TableName=TABLE, Key=recordings.recording_key(doomed.recording_id))["Item"])
    assert tombstone["status"] == "deleted" and tombstone[table.TTL_ATTRIBUTE] > datetime.now(UTC).timestamp()
    assert not {table.GSI1_PK, recordings.GSI2_PK, "mp4_path"} & set(tombstone)
    assert call("GET", f"/api/recordings/{doomed.recording_id}")[0] == 404
    assert ids(call("GET", "/api/recordings")[2]) == [kept.recording_id]


def test_owner_deletes_objects_items_and_leaves_a_tombstone(db: Any, s3: Any, two: tuple[Recording, Recording]) -> None:
    doomed, kept = two
    status, headers, body = delete(doomed.recording_id, token_for("user-1"))
    assert (status, body) == (204, None)
    assert headers["cache-control"] == "no-store"
    assert_deleted(db, s3, doomed, kept)


def test_repeating_a_delete_is_204_and_finishes_a_half_failed_one(
    db: Any, s3: Any, two: tuple[Recording, Recording]
) -> None:
    doomed, kept = two
    path, token = f"/api/recordings/{doomed.recording_id}", token_for("user-1")

    class Failing:
        """S3 that fails the second DeleteObjects call (the first prefix is gone by then)."""

        def __init__(self) -> None:
            self.calls = 0

        def __getattr__(self, name: str) -> Any:
            return getattr(s3, name)

        def delete_objects(self, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("S3 is having a bad day")
            return s3.delete_objects(**kwargs)

    api_handler.app.dependency_overrides[deps.get_s3] = Failing
    assert delete(doomed.recording_id, token)[0] == 500
    del api_handler.app.dependency_overrides[deps.get_s3]
    assert call("GET", path)[0] == 404  # the tombstone went first: gone for viewers already
    assert listed(s3) != set(session_keys(kept))  # but not everything is deleted yet

    assert delete(doomed.recording_id, token)[0] == 204
    assert_deleted(db, s3, doomed, kept)
    assert delete(doomed.recording_id, token)[0] == 204  # and again: nothing left to do


def test_a_delete_over_its_time_budget_answers_202_and_continues(
    db: Any, s3: Any, two: tuple[Recording, Recording], monkeypatch: pytest.MonkeyPatch
) -> None:
    doomed, kept = two
    path, token = f"/api/recordings/{doomed.recording_id}", token_for("user-1")
    monkeypatch.setattr(recording_routes, "DELETE_BUDGET_SECONDS", -1.0)
    assert delete(doomed.recording_id, token)[0] == 202
    assert call("GET", path)[0] == 404
    monkeypatch.undo()
    assert delete(doomed.recording_id, token)[0] == 204
    assert_deleted(db, s3, doomed, kept)


def test_deletes_page_by_page(
    db: Any, s3: Any, two: tuple[Recording, Recording], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One DeleteObjects per listing page (1000 keys in AWS; 2 here, so every prefix takes several pages)."""
    doomed, kept = two
    batches: list[int] = []
    original = s3.delete_objects

    def counting(**kwargs: Any) -> Any:
        batches.append(len(kwargs["Delete"]["Objects"]))
        return original(**kwargs)

    monkeypatch.setattr(recording_routes, "LIST_PAGE", 2)
    monkeypatch.setattr(s3, "delete_objects", counting)
    api_handler.app.dependency_overrides[deps.get_s3] = lambda: s3
    assert delete(doomed.recording_id, token_for("user-1"))[0] == 204
    assert max(batches) == 2 and sum(batches) == len(session_keys(doomed))
    assert_deleted(db, s3, doomed, kept)


@pytest.mark.parametrize("token", [None, "not-a-jwt"])
def test_delete_without_a_valid_token_is_401(db: Any, s3: Any, two: tuple[Recording, Recording], token) -> None:
    doomed, _ = two
    status, headers, body = delete(doomed.recording_id, token)
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert headers["www-authenticate"].startswith("Bearer")
    assert len(listed(s3)) == 2 * len(session_keys(doomed))


def test_only_the_channels_owner_may_delete(db: Any, s3: Any, two: tuple[Recording, Recording]) -> None:
    doomed, kept = two
    status, _, body = delete(doomed.recording_id, token_for("user-2"))
    assert (status, body["error"]["code"]) == (403, "forbidden")
    orphan = store(db, make("nochannel000", "pb3"))  # no channel item: nobody can prove ownership
    assert delete(orphan.recording_id, token_for("user-1"))[0] == 403
    assert len(listed(s3)) == 2 * len(session_keys(doomed))
    assert call("GET", f"/api/recordings/{doomed.recording_id}")[0] == 200

    assert delete(doomed.recording_id, token_for("user-1"))[0] == 204
    status, _, body = delete(doomed.recording_id, token_for("user-2"))
    assert (status, body["error"]["code"]) == (404, "not_found")  # deleted: absent to everyone but its owner


def test_delete_of_unknown_or_building_recordings(db: Any, channel: dict[str, Any]) -> None:
    token = token_for("user-1")
    for recording_id in ("20260301T120000Z-nope00", "bad.id"):
        status, _, body = delete(recording_id, token)
        assert (status, body["error"]["code"]) == (404, "not_found")
    building = store(db, make(channel["channelId"], channel["playbackId"], status=RecordingStatus.BUILDING))
    status, _, body = delete(building.recording_id, token)
    assert (status, body["error"]["code"]) == (409, "conflict")
    failed = store(db, make(channel["channelId"], channel["playbackId"], minute=1, status=RecordingStatus.FAILED))
    assert delete(failed.recording_id, token)[0] == 204


def test_list_and_detail_never_build_an_s3_client(db: Any, channel: dict[str, Any]) -> None:
    recording = store(db, make(channel["channelId"], channel["playbackId"]))
    call("GET", "/api/recordings")
    call("GET", f"/api/recordings/{recording.recording_id}")
    assert deps._s3 is None


# ------------------------------------------------------------------------------------------------ contract


def test_no_secret_or_internal_attribute_in_any_response(db: Any, channel: dict[str, Any]) -> None:
    created = create("Another")  # a fresh key we know in the clear
    store(db, make(created["channel"]["channelId"], created["channel"]["playbackId"], minute=0))
    recording = store(db, make(created["channel"]["channelId"], created["channel"]["playbackId"], minute=1))
    failed = store(db, make(channel["channelId"], channel["playbackId"], minute=2, status=RecordingStatus.FAILED))
    responses = [
        api_handler.handler(event("GET", path, query=query), None)
        for path, query in (
            ("/api/recordings", ""),
            ("/api/recordings", "limit=1"),
            ("/api/recordings", f"channel={created['channel']['channelId']}&limit=1"),
            (f"/api/recordings/{recording.recording_id}", ""),
            (f"/api/recordings/{failed.recording_id}", ""),
        )
    ]
    assert [r["statusCode"] for r in responses] == [200] * 5
    stored_hash = hash_stream_key(created["streamKey"])
    for text in (r["body"] for r in responses):
        for leak in ("stream_key_hash", "streamKeyHash", '"pk"', '"sk"', '"gsi1pk"', '"gsi2pk"', "RECORDING#", "owner"):
            assert leak not in text
        assert stored_hash not in text and created["streamKey"] not in text


def test_openapi_documents_the_recording_routes(api_env: Any) -> None:
    spec = call("GET", "/openapi.json")[2]
    for path, method, codes in (
        ("/api/recordings", "get", {"200", "422"}),
        ("/api/recordings/{id}", "get", {"200", "404", "422"}),
        ("/api/recordings/{id}", "delete", {"202", "204", "401", "403", "404", "409", "422"}),
        ("/api/channels/{channelId}/recordings", "get", {"200", "401", "404", "422"}),
    ):
        operation = spec["paths"][path][method]
        assert operation["summary"] and operation["description"]
        assert set(operation["responses"]) >= codes, (path, method)
    params = {p["name"] for p in spec["paths"]["/api/recordings"]["get"]["parameters"]}
    assert params == {"channel", "limit", "cursor"}
    detail = spec["components"]["schemas"]["RecordingDetail"]["properties"]
    assert {"mp4Url", "playlistUrl", "storyboard", "stats", "chat", "chatUrl", "status", "error"} <= set(detail)
    owned = spec["components"]["schemas"]["ChannelRecordingOut"]["properties"]
    assert {"status", "error", "stats", "duration", "posterUrl"} <= set(owned)
    assert owned["status"]["enum"] == ["building", "ready", "failed"]
