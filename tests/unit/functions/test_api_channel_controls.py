"""Owner controls of a live channel through the REST function: ``POST /api/channels/{id}/end-stream`` and
``PATCH``'s ``waitOnUnpublish``. The ingest node's side (the kick) is tested in tests/integration/test_key_rotation.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from capturestream.models import END_STREAM_HOLD
from tests.support.api import TABLE, call, create, stored_channel, token_for


def test_owner_ends_the_stream_and_the_channel_item_records_it(dynamodb: Any) -> None:
    channel_id = create("Live show")["channel"]["channelId"]
    before = datetime.now(UTC)
    status, headers, body = call("POST", f"/api/channels/{channel_id}/end-stream", token=token_for())
    assert status == 202, body
    assert headers["cache-control"] == "no-store"
    requested = datetime.fromisoformat(body["endRequestedAt"])
    assert before - timedelta(seconds=1) <= requested <= datetime.now(UTC)
    assert datetime.fromisoformat(body["publishHeldUntil"]) == requested + END_STREAM_HOLD
    assert body["channelId"] == channel_id
    stored = stored_channel(dynamodb, channel_id)[1]
    assert stored.end_requested_at == requested
    assert stored.publish_held_until() == requested + END_STREAM_HOLD
    again = call("POST", f"/api/channels/{channel_id}/end-stream", token=token_for())[2]
    assert datetime.fromisoformat(again["endRequestedAt"]) >= requested  # each request moves it forward


@pytest.mark.parametrize("channel_id", ["OTHER", "zzzzzzzzzzzz", "bad id with spaces", "x" * 300])
def test_end_stream_of_someone_elses_or_unknown_channel_is_404(dynamodb: Any, channel_id: str) -> None:
    theirs = create("Theirs", subject="user-2")["channel"]["channelId"]
    target = theirs if channel_id == "OTHER" else channel_id
    status, _, body = call("POST", f"/api/channels/{target}/end-stream", token=token_for("user-1"))
    assert (status, body["error"]["code"]) == (404, "not_found")
    assert stored_channel(dynamodb, theirs)[1].end_requested_at is None
    assert dynamodb.scan(TableName=TABLE)["Count"] == 1  # no item was created for an unknown id


def test_end_stream_needs_a_token(dynamodb: Any) -> None:
    channel_id = create()["channel"]["channelId"]
    status, _, body = call("POST", f"/api/channels/{channel_id}/end-stream")
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert stored_channel(dynamodb, channel_id)[1].end_requested_at is None


def test_patch_sets_wait_on_unpublish_alone_or_with_a_name(dynamodb: Any) -> None:
    created = create("Scenes")["channel"]
    channel_id = created["channelId"]
    assert created["waitOnUnpublish"] is False
    status, _, body = call("PATCH", f"/api/channels/{channel_id}", body={"waitOnUnpublish": True}, token=token_for())
    assert status == 200, body
    assert body == {**created, "waitOnUnpublish": True}
    assert stored_channel(dynamodb, channel_id)[1].wait_on_unpublish is True
    both = {"name": "Scene switcher", "waitOnUnpublish": False}
    status, _, body = call("PATCH", f"/api/channels/{channel_id}", body=both, token=token_for())
    assert (status, body["name"], body["waitOnUnpublish"]) == (200, "Scene switcher", False)
    stored = stored_channel(dynamodb, channel_id)[1]
    assert (stored.name, stored.wait_on_unpublish) == ("Scene switcher", False)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "body"),
        ({"waitOnUnpublish": "yes"}, "body.waitOnUnpublish"),
        ({"waitOnUnpublish": 1}, "body.waitOnUnpublish"),
        ({"wait_on_unpublish": True}, "body.wait_on_unpublish"),  # camelCase only
    ],
)
def test_patch_refuses_nothing_to_change_and_non_booleans(dynamodb: Any, payload: dict, field: str) -> None:
    channel_id = create()["channel"]["channelId"]
    status, _, body = call("PATCH", f"/api/channels/{channel_id}", body=payload, token=token_for())
    assert status == 422, body
    assert field in [f["field"] for f in body["error"]["fields"]]
    assert stored_channel(dynamodb, channel_id)[1].wait_on_unpublish is False


def test_patch_of_someone_elses_channel_is_404(dynamodb: Any) -> None:
    theirs = create("Theirs", subject="user-2")["channel"]["channelId"]
    status, _, _ = call("PATCH", f"/api/channels/{theirs}", body={"waitOnUnpublish": True}, token=token_for("user-1"))
    assert status == 404
    assert stored_channel(dynamodb, theirs)[1].wait_on_unpublish is False
