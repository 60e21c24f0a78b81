"""capturestream.audience_stats: the viewer integral on a session item, and the optimistic update around it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from capturestream import audience_stats, recordings, table
from capturestream.audience_stats import ViewerTally

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
SID = "20261125T150000Z-aaaaaa"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def session_item(**attributes: object) -> table.Item:
    keys = {name: value["S"] for name, value in table.session_key(SID).items()}
    return table.to_item({**keys, "session_id": SID, "started_at": T0.isoformat(), **attributes})


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # (seconds, count) steps from an empty tally → (peak, now, changed_at seconds, viewer_seconds)
        ([(10, 3)], (3, 3, 10, 0.0)),
        ([(10, 3), (20, 5)], (5, 5, 20, 30.0)),
        ([(10, 3), (20, 5), (50, 1)], (5, 1, 50, 180.0)),
        ([(10, 3), (20, 0), (80, 2)], (3, 2, 80, 30.0)),
        ([(0, 2), (0.5, 4)], (4, 4, 0.5, 1.0)),
        # a notifier whose clock is behind: no negative time, the timestamp never goes back
        ([(30, 4), (20, 6)], (6, 6, 30, 0.0)),
    ],
)
def test_tally_integrates_the_count_over_time(steps: list[tuple[float, int]], expected: tuple) -> None:
    tally = ViewerTally()
    for seconds, count in steps:
        tally = tally.changed(count, at(seconds))
    peak, now, changed, integral = expected
    assert (tally.peak, tally.now, tally.changed_at, tally.seconds) == (peak, now, at(changed), integral)


def test_tally_refuses_naive_times_and_negative_counts() -> None:
    with pytest.raises(ValueError):
        ViewerTally().changed(1, datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        ViewerTally().changed(-1, T0)


def test_tally_round_trips_through_item_attributes() -> None:
    tally = ViewerTally().changed(3, at(10)).changed(7, at(12.25))
    attributes = table.from_item(table.to_item(tally.attributes()))
    assert attributes[audience_stats.CHANGED_AT] == "2026-11-25T15:00:12.250000+00:00"
    assert ViewerTally.of(attributes) == tally


def test_recording_viewer_stats_read_back_what_is_written() -> None:
    """recordings.viewer_stats (used by the recording builder) agrees with the tally: peak and the mean."""
    tally = ViewerTally()
    for seconds, count in [(0, 2), (60, 6), (90, 4)]:
        tally = tally.changed(count, at(seconds))
    stored = table.from_item(table.to_item(tally.attributes()))
    # 2×60 + 6×30 + 4×(120−90) = 420 viewer-seconds over 120 s
    assert recordings.viewer_stats(stored, started_at=T0, ended_at=at(120)) == (6, 3.5)
    assert recordings.viewer_stats({}, started_at=T0, ended_at=at(120)) == (0, 0.0)


def test_update_conditions_on_the_values_read() -> None:
    stored = session_item(
        status="live", peak_viewers=5, viewers_now=2, viewers_changed_at=at(10).isoformat(), viewer_seconds=40.5
    )
    update = audience_stats.session_viewers_update(SID, stored, 4, at(20))
    assert update["Key"] == table.session_key(SID)
    names, values = update["ExpressionAttributeNames"], update["ExpressionAttributeValues"]
    after = {names[p]: values[v] for p, v in (c.split(" = ") for c in update["UpdateExpression"][4:].split(", "))}
    assert table.from_item(after) == {
        "peak_viewers": 5,
        "viewers_now": 4,
        "viewers_changed_at": at(20).isoformat(),
        "viewer_seconds": 60.5,
    }
    condition = update["ConditionExpression"]
    assert "attribute_exists(#pk)" in condition and "#status <> :ended" in condition
    for name in audience_stats.FIELDS:  # each previous value, verbatim
        placeholder = next(p for p, n in names.items() if n == name)
        (old,) = [v for v in values if f"{placeholder} = {v}" in condition]
        assert values[old] == stored[name]


def test_first_count_requires_the_fields_to_be_absent() -> None:
    update = audience_stats.session_viewers_update(SID, session_item(status="live"), 3, at(5))
    for placeholder in ("#peak", "#now", "#at", "#secs"):
        assert f"attribute_not_exists({placeholder})" in update["ConditionExpression"]


@pytest.mark.parametrize(
    ("stored", "count"),
    [
        (None, 3),  # no session item
        ({}, 3),
        (session_item(status="ended"), 3),  # over: the integral must not run past the end
        (session_item(status="live", viewers_now=3), 3),  # unchanged
        (session_item(status="live"), 0),  # nobody watched and nobody watches
    ],
)
def test_nothing_to_write(stored: table.Item | None, count: int) -> None:
    assert audience_stats.session_viewers_update(SID, stored, count, at(1)) is None


def test_read_projects_only_what_the_update_needs() -> None:
    read = audience_stats.session_viewers_read(SID)
    assert read["ConsistentRead"] is True and read["Key"] == table.session_key(SID)
    projected = {read["ExpressionAttributeNames"][p.strip()] for p in read["ProjectionExpression"].split(",")}
    assert projected == {table.PK, "status", *audience_stats.FIELDS}
