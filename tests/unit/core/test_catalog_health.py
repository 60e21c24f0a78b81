"""Health samples on the session item: a bounded union keyed by sample time, written under optimistic locking."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from capturestream import catalog, table
from capturestream.models import HealthManifestBody, HealthSample, MediaInfo

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
IDS = {"channel_id": "chan00000001", "playback_id": "pb1", "session_id": "20260301T120000Z-aaaaaa"}


def sample(n: int, kbps: float = 2500.0) -> HealthSample:
    return HealthSample(t=T0 + timedelta(seconds=5 * n), bitrate_kbps=kbps, frame_rate=30.0, keyframe_interval=2.0)


def manifest(*numbers: int, kbps: float = 2500.0) -> HealthManifestBody:
    media = MediaInfo(video_codec="avc1.64001f", bitrate_kbps=kbps, frame_rate=30.0)
    return HealthManifestBody(**IDS, media=media, samples=[sample(n, kbps) for n in numbers])


def apply(session: dict[str, Any], update: dict[str, Any] | None) -> dict[str, Any]:
    """What the update would leave on the session attributes (the test's stand-in for DynamoDB)."""
    if update is None:
        return session
    names, values = update["ExpressionAttributeNames"], update["ExpressionAttributeValues"]
    assignments = update["UpdateExpression"].removeprefix("SET ").split(", ")
    written = {names[name]: table.deserialize(values[value]) for name, value in (a.split(" = ") for a in assignments)}
    return {**session, **written}


def test_merge_is_a_union_keyed_by_time_oldest_first() -> None:
    rows = catalog.merge_health([], [sample(2), sample(1)])
    assert [row[0] for row in rows] == sorted(row[0] for row in rows)
    assert catalog.merge_health(rows, [sample(1), sample(2)]) == rows  # the same samples again: nothing new
    merged = catalog.merge_health(rows, [sample(2), sample(3)])
    assert len(merged) == 3 and merged[-1] == table.health_row(sample(3))


def test_merge_keeps_the_newest_samples_only() -> None:
    rows = catalog.merge_health([], [sample(n) for n in range(catalog.HEALTH_KEPT + 10)])
    assert len(rows) == catalog.HEALTH_KEPT and rows[0] == table.health_row(sample(10))
    assert catalog.merge_health(rows, [sample(0), sample(5)]) == rows  # late old samples fall off again


def test_rows_round_trip_through_the_item_format() -> None:
    row = table.health_row(sample(3))
    stored = table.deserialize(table.serialize(row))
    assert table.health_sample(stored) == sample(3)
    empty = HealthSample(t=T0)
    assert table.health_sample(table.deserialize(table.serialize(table.health_row(empty)))) == empty


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_overlapping_versions_in_any_order_and_twice_end_in_the_same_rows(order: tuple[int, ...]) -> None:
    """Each version repeats the last few samples (as the node writes them); any delivery order converges."""
    versions = [manifest(*range(max(0, v * 2 - 3), v * 2 + 2)) for v in range(4)]
    session: dict[str, Any] = {"status": "live"}
    for index in [*order, *order]:
        session = apply(session, catalog.health_update(versions[index], session))
    assert [row[0] for row in session[table.HEALTH]] == [table.health_row(sample(n))[0] for n in range(8)]
    assert session[table.HEALTH_VERSION] <= 4  # duplicates wrote nothing


def test_nothing_to_write_before_the_session_is_catalogued_or_for_a_duplicate() -> None:
    body = manifest(1, 2)
    assert catalog.health_update(body, None) is None
    assert catalog.health_update(body, {"segment_count": 3}) is None  # known from segments only: no status yet
    session = apply({"status": "live"}, catalog.health_update(body, {"status": "live"}))
    assert catalog.health_update(body, session) is None


def test_the_write_is_conditional_on_the_version_read() -> None:
    first = catalog.health_update(manifest(1), {"status": "live"})
    assert first is not None
    assert first["ConditionExpression"] == "attribute_exists(#status) AND attribute_not_exists(#hv)"
    session = apply({"status": "live"}, first)
    second = catalog.health_update(manifest(2), session)
    assert second is not None
    assert second["ConditionExpression"] == "attribute_exists(#status) AND #hv = :version"
    assert second["ExpressionAttributeValues"][":version"] == {"N": "1"}


def test_media_follows_the_newest_samples_of_a_broadcast_not_over() -> None:
    session = apply({"status": "live"}, catalog.health_update(manifest(5, kbps=2500), {"status": "live"}))
    assert session["media"]["bitrate_kbps"] == 2500
    session = apply(session, catalog.health_update(manifest(3, kbps=900), session))  # older samples: media stays
    assert session["media"]["bitrate_kbps"] == 2500 and len(session[table.HEALTH]) == 2
    ended = {**session, "status": "ended", "media": {"bitrate_kbps": 2400}}
    assert "media" not in str(catalog.health_update(manifest(9, kbps=100), ended)["ExpressionAttributeNames"])


def test_the_stream_media_refresh_is_rate_limited_by_sample_time() -> None:
    update = catalog.stream_media_update(manifest(1, 2))
    assert update is not None
    values = update["ExpressionAttributeValues"]
    newest = table.health_row(sample(2))[0]
    assert values[":due"] == {"N": str(newest - catalog.STREAM_MEDIA_REFRESH_MS)}
    assert values[":sid"] == {"S": IDS["session_id"]}
    assert "#sid = :sid AND #status <> :ended" in update["ConditionExpression"]
    assert catalog.stream_media_update(manifest()) is None
