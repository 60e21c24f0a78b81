"""Recording items: which index lists which status (the public library vs. the channel owner's list)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from capturestream import recordings, table
from capturestream.recordings import Recording, RecordingStatus

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _recording(status: RecordingStatus) -> Recording:
    return Recording(
        recording_id="20260301T120000Z-aaaaaa",
        playback_id="pb1",
        channel_id="chan00000001",
        started_at=T0,
        status=status,
    )


@pytest.mark.parametrize(
    ("status", "library", "channel_list"),
    [
        (RecordingStatus.READY, True, True),
        (RecordingStatus.BUILDING, False, True),
        (RecordingStatus.FAILED, False, True),
        (RecordingStatus.DELETED, False, False),
    ],
)
def test_ready_recordings_are_public_and_every_live_one_is_in_its_channels_list(
    status: RecordingStatus, library: bool, channel_list: bool
) -> None:
    item = _recording(status).to_item()
    assert (table.GSI1_PK in item) is library
    assert (recordings.GSI2_PK in item) is channel_list
    if channel_list:
        assert item[recordings.GSI2_PK] == {"S": recordings.channel_recordings("chan00000001")}
        assert item[recordings.GSI2_SK] == {"S": f"{T0.isoformat()}#20260301T120000Z-aaaaaa"}


def test_a_tombstone_is_in_no_list() -> None:
    item = recordings.tombstone_item(_recording(RecordingStatus.READY), T0)
    assert table.GSI1_PK not in item and recordings.GSI2_PK not in item


def test_the_public_channel_listing_filters_to_ready_and_the_owners_does_not() -> None:
    public = recordings.recordings_query(channel_id="chan00000001", limit=5)
    owner = recordings.channel_recordings_query("chan00000001", limit=5)
    assert public["IndexName"] == owner["IndexName"] == recordings.GSI2
    assert public["FilterExpression"] == "#status = :ready"
    assert public["ExpressionAttributeValues"][":ready"] == {"S": "ready"}
    assert "FilterExpression" not in owner and owner["ScanIndexForward"] is False and owner["Limit"] == 5
    assert "FilterExpression" not in recordings.recordings_query(limit=5)  # gsi1 holds only ready ones
