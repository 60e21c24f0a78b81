"""Read-model parsers: a half-written item (keys only, or missing a required attribute) reads as absent.

moto shows an item with only its keys while an ``UpdateItem`` creates it; a reader polling at that moment must
see "no such item" (404, or skipped in a list), never a validation error (500). A complete item with an invalid
value is still an error: that is corruption, not a moment to wait out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from capturestream import catalog, keys, table
from capturestream.models import Channel, SessionManifestBody
from capturestream.recordings import Recording, RecordingStatus
from capturestream.streams import SessionView, StreamView

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BODY = SessionManifestBody(
    channel_id="chan00000001", playback_id="pb1", session_id="20260301T120000Z-aaaaaa", started_at=T0, title="Show"
)


def _written(update: dict[str, Any]) -> table.Item:
    """The item an ``UpdateItem`` built by the catalog would leave (its SET values plus the key)."""
    names, values = update["ExpressionAttributeNames"], update["ExpressionAttributeValues"]
    assignments = re.findall(r"(#f\d+) = (?:if_not_exists\(#\w+, )?(:v\d+)", update["UpdateExpression"])
    return {**update["Key"], **{names[name]: values[value] for name, value in assignments}}


def _channel_item() -> table.Item:
    return table.channel_to_item(Channel.create(name="Show", owner="user-1")[0])


def _recording_item() -> table.Item:
    recording = Recording(
        recording_id=BODY.session_id,
        playback_id=BODY.playback_id,
        channel_id=BODY.channel_id,
        started_at=T0,
        status=RecordingStatus.READY,
    )
    return recording.to_item()


def _stream_item() -> table.Item:
    return _written(catalog.stream_update(BODY, keys.ManifestKind.STARTED))


def _session_item() -> table.Item:
    return _written(catalog.session_update(BODY, keys.ManifestKind.STARTED))


#: (name, parser, a complete item, a required attribute, an attribute whose bad value makes the item corrupt)
PARSERS: list[tuple[str, Callable[[Any], Any], Callable[[], table.Item], str, str]] = [
    ("stream", StreamView.read, _stream_item, "session_id", "status"),
    ("session", SessionView.read, _session_item, "playback_id", "started_at"),
    ("channel", table.read_channel, _channel_item, "owner", "playback_id"),
    ("recording", Recording.read, _recording_item, "started_at", "status"),
]
IDS = [name for name, *_ in PARSERS]


@pytest.mark.parametrize(("name", "read", "complete", "required", "corruptible"), PARSERS, ids=IDS)
def test_a_complete_item_parses(name: str, read: Callable, complete: Callable, required: str, corruptible: str) -> None:
    """The item the writer stores reads back as its model."""
    assert read(complete()) is not None


@pytest.mark.parametrize(("name", "read", "complete", "required", "corruptible"), PARSERS, ids=IDS)
def test_no_item_and_a_key_only_item_are_absent(
    name: str, read: Callable, complete: Callable, required: str, corruptible: str
) -> None:
    """What moto shows mid-update (the bare keys) reads like a missing item."""
    item = complete()
    assert read(None) is None
    assert read({}) is None
    assert read({table.PK: item[table.PK], table.SK: item[table.SK]}) is None


@pytest.mark.parametrize(("name", "read", "complete", "required", "corruptible"), PARSERS, ids=IDS)
def test_an_item_missing_or_nulling_a_required_attribute_is_absent(
    name: str, read: Callable, complete: Callable, required: str, corruptible: str
) -> None:
    """Any one required attribute missing (or NULL) makes the item half-written."""
    item = complete()
    assert read({k: v for k, v in item.items() if k != required}) is None
    assert read({**item, required: {"NULL": True}}) is None


@pytest.mark.parametrize(("name", "read", "complete", "required", "corruptible"), PARSERS, ids=IDS)
def test_a_complete_item_with_a_corrupt_value_still_raises(
    name: str, read: Callable, complete: Callable, required: str, corruptible: str
) -> None:
    """Corruption is not absence: it raises, so the route's 500 and log line show the bug."""
    with pytest.raises(ValidationError):
        read({**complete(), corruptible: {"S": "not valid ../"}})


def test_a_session_known_only_from_its_segments_is_not_half_written() -> None:
    """The segment update writes the ids first; such a session is real (the manifest is still on its way)."""
    segment = keys.LiveSegment(playback_id=BODY.playback_id, session_id=BODY.session_id, sequence=4)
    view = SessionView.read(_written(catalog.segment_update(segment, T0)))
    assert view is not None and view.segment_count == 5
