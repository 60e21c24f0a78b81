"""The notifier's recount against moto: the count on the stream item, and the broadcast's viewer stats beside it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from capturestream import recordings, table
from functions.notifier import audience
from tests.support.aws import create_media_table

TABLE = "capturestream-MediaTable"
PB, SID = "pb1", "20261125T150000Z-aaaaaa"
T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


@pytest.fixture
def dynamodb(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    client = boto3.client("dynamodb")
    create_media_table(client, TABLE)
    return client


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The notifier's clock: ``clock[0]`` is now."""
    now = [T0]
    monkeypatch.setattr(audience, "utc_now", lambda: now[0])
    return now


def put(dynamodb: Any, key: table.Item, **attributes: Any) -> None:
    dynamodb.put_item(TableName=TABLE, Item=table.to_item({**{k: v["S"] for k, v in key.items()}, **attributes}))


def live(dynamodb: Any, session_id: str = SID, status: str = "live") -> None:
    put(dynamodb, table.stream_key(PB), playback_id=PB, session_id=session_id, status=status)
    put(dynamodb, table.session_key(session_id), session_id=session_id, status=status, started_at=T0.isoformat())


def viewers(count: int) -> list[dict[str, Any]]:
    return [{"connection_id": {"S": f"c{n}"}, "viewer": {"S": f"anon:{n}"}} for n in range(count)]


def read(dynamodb: Any, key: table.Item) -> dict[str, Any]:
    return table.from_item(dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"])


def recount(dynamodb: Any, clock: list[datetime], seconds: float, count: int) -> int | None:
    """Recount ``count`` viewers at ``seconds``; what :func:`audience.store_viewer_count` returns (None: unchanged)."""
    clock[0] = T0 + timedelta(seconds=seconds)
    return audience.store_viewer_count(dynamodb, TABLE, PB, viewers(count))


def test_only_a_changed_count_is_reported(dynamodb: Any, clock: list[datetime]) -> None:
    """What the notifier posts as viewerCount: a count that changed, never a repeat, never for a stream without item."""
    assert recount(dynamodb, clock, 0, 3) is None  # never live: no item to store it on, nobody to tell
    live(dynamodb)
    assert recount(dynamodb, clock, 1, 0) is None  # a missing count is 0
    steps = [(2, 2), (3, 2), (4, 0), (5, 0), (6, 1)]
    assert [recount(dynamodb, clock, t, n) for t, n in steps] == [2, None, 0, None, 1]


def test_counts_build_the_broadcasts_viewer_stats(dynamodb: Any, clock: list[datetime]) -> None:
    live(dynamodb)
    assert [recount(dynamodb, clock, t, n) for t, n in [(0, 2), (60, 6), (90, 4), (95, 4)]] == [2, 6, 4, None]
    assert read(dynamodb, table.stream_key(PB))["viewer_count"] == 4
    session = read(dynamodb, table.session_key(SID))
    assert {k: session[k] for k in ("peak_viewers", "viewers_now", "viewer_seconds")} == {
        "peak_viewers": 6,
        "viewers_now": 4,
        "viewer_seconds": 300,  # 2×60 + 6×30
    }
    assert session["viewers_changed_at"] == (T0 + timedelta(seconds=90)).isoformat()  # 95: unchanged, no write
    assert recordings.viewer_stats(session, started_at=T0, ended_at=T0 + timedelta(seconds=120)) == (6, 3.5)


def test_a_new_broadcast_takes_the_count_the_stream_already_shows(dynamodb: Any, clock: list[datetime]) -> None:
    live(dynamodb, "20261125T140000Z-old000")
    recount(dynamodb, clock, 0, 3)
    live(dynamodb)  # the channel goes live again; the stream item keeps viewer_count 3
    recount(dynamodb, clock, 10, 3)
    assert read(dynamodb, table.session_key(SID))["viewers_now"] == 3


def test_ended_broadcasts_and_never_live_streams_are_left_alone(dynamodb: Any, clock: list[datetime]) -> None:
    live(dynamodb, status="ended")
    recount(dynamodb, clock, 0, 5)
    assert "viewers_now" not in read(dynamodb, table.session_key(SID))
    put(dynamodb, table.stream_key(PB), playback_id=PB, session_id=SID, status="live")  # session item says ended
    recount(dynamodb, clock, 1, 6)
    assert "viewers_now" not in read(dynamodb, table.session_key(SID))
    dynamodb.delete_item(TableName=TABLE, Key=table.stream_key(PB))
    recount(dynamodb, clock, 2, 7)
    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key=table.stream_key(PB))


class Racing:
    """A client whose first session update loses the race to another notifier's write."""

    def __init__(self, client: Any, rival: dict[str, Any]) -> None:
        self._client, self._rival, self.lost = client, rival, 0
        self.exceptions = client.exceptions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_item(self, **kwargs: Any) -> Any:
        if kwargs["Key"] == table.session_key(SID) and not self.lost:
            self.lost += 1
            self._client.update_item(TableName=TABLE, Key=table.session_key(SID), **self._rival)
        return self._client.update_item(**kwargs)


def test_a_lost_race_is_read_again_and_retried(dynamodb: Any, clock: list[datetime]) -> None:
    live(dynamodb)
    recount(dynamodb, clock, 0, 2)
    rival = {  # another notifier stored 5 viewers at t=10 (2 viewers × 10 s before it)
        "UpdateExpression": "SET viewers_now = :n, peak_viewers = :n, viewers_changed_at = :t, viewer_seconds = :s",
        "ExpressionAttributeValues": {
            ":n": {"N": "5"},
            ":t": {"S": (T0 + timedelta(seconds=10)).isoformat()},
            ":s": {"N": "20"},
        },
    }
    racing = Racing(dynamodb, rival)
    recount(racing, clock, 30, 1)
    assert racing.lost == 1
    session = read(dynamodb, table.session_key(SID))
    assert (session["viewers_now"], session["peak_viewers"], session["viewer_seconds"]) == (1, 5, 120)  # 20 + 5×20
