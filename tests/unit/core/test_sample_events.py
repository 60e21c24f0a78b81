"""The ``events/*.json`` samples for ``sam local invoke`` stay realistic and parse with the real parsers."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from capturestream import events, keys, messages, notifications
from capturestream.errors import InvalidEvent

SAMPLES = Path(__file__).parents[3] / "events"


def load(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


# sample → (kind, details)
SAMPLE_KINDS = {
    "catalog_sqs_eventbridge.json": "sqs",
    "thumbnail_sqs_eventbridge.json": "sqs",
    "recording_sqs_eventbridge.json": "sqs",
    "ws_connect.json": "ws",
    "ws_disconnect.json": "ws",
    "ws_default_chat.json": "ws",
    "ws_default_subscribe.json": "ws",
    "notifier_dynamodb_stream.json": "dynamodb",
    "api_get_status.json": "http",
    "api_post_channels.json": "http",
    "reaper_schedule.json": "schedule",
}


def test_every_sample_is_checked() -> None:
    assert sorted(p.name for p in SAMPLES.glob("*.json")) == sorted(SAMPLE_KINDS)


def test_catalog_sample_is_an_sqs_wrapped_eventbridge_started_manifest() -> None:
    event = load("catalog_sqs_eventbridge.json")
    (item,) = events.parse_sqs(event)
    assert item.message_id == event["Records"][0]["messageId"]
    (media,) = item.events
    assert media.media_key == keys.SessionManifest(
        playback_id="pb1", session_id="20261125T150000Z-a1", kind=keys.ManifestKind.STARTED
    )
    assert media.object.event_name == "ObjectCreated:Put"
    assert events.parse(event) == [media]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "thumbnail_sqs_eventbridge.json",
            keys.LiveSegment(playback_id="pb1", session_id="20261125T150000Z-a1", sequence=5),
        ),
        (
            "recording_sqs_eventbridge.json",
            keys.SessionManifest(playback_id="pb1", session_id="20261125T150000Z-a1", kind=keys.ManifestKind.ENDED),
        ),
    ],
)
def test_media_function_samples_are_what_their_rules_deliver(name: str, expected: keys.MediaKey) -> None:
    """ThumbnailFunction gets a sampled segment (sequence ending in 0 or 5), RecordingFunction an ended.json."""
    (item,) = events.parse_sqs(load(name))
    (media,) = item.events
    assert media.media_key == expected


@pytest.mark.parametrize(
    ("name", "route", "event_type"),
    [
        ("ws_connect.json", "$connect", "CONNECT"),
        ("ws_disconnect.json", "$disconnect", "DISCONNECT"),
        ("ws_default_chat.json", "$default", "MESSAGE"),
        ("ws_default_subscribe.json", "$default", "MESSAGE"),
    ],
)
def test_websocket_samples_have_the_api_gateway_shape(name: str, route: str, event_type: str) -> None:
    context = load(name)["requestContext"]
    assert (context["routeKey"], context["eventType"]) == (route, event_type)
    for field in ("connectionId", "domainName", "stage", "apiId", "requestTimeEpoch", "connectedAt"):
        assert context[field], field
    assert context["domainName"].startswith(context["apiId"] + ".execute-api.")


def test_chat_sample_body_is_a_valid_client_message() -> None:
    message = messages.parse_client_message(load("ws_default_chat.json")["body"])
    assert message == messages.SendChatMessage(stream_id="pb1", text="Hello from the chat!")
    subscribe = messages.parse_client_message(load("ws_default_subscribe.json")["body"])
    assert subscribe == messages.SubscribeMessage(stream_id="pb1")


def test_notifier_sample_is_a_dynamodb_streams_batch_with_something_to_say() -> None:
    event = load("notifier_dynamodb_stream.json")
    assert {r["eventSource"] for r in event["Records"]} == {"aws:dynamodb"}
    assert all(r["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES" for r in event["Records"])
    plan = notifications.plan(event, "https://cdn.example.com")
    assert [n.message.type for n in plan.notifications] == ["chat", "streamEnded"] and plan.recount == {"pb1"}


@pytest.mark.parametrize(
    ("name", "method", "path", "bearer"),
    [("api_get_status.json", "GET", "/api/status", False), ("api_post_channels.json", "POST", "/api/channels", True)],
)
def test_http_samples_are_payload_v2(name: str, method: str, path: str, bearer: bool) -> None:
    event = load(name)
    assert event["version"] == "2.0"
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == path
    assert event["requestContext"]["http"]["method"] == method
    assert all(header == header.lower() for header in event["headers"])  # HTTP API lower-cases headers
    assert event["headers"].get("authorization", "").startswith("Bearer ") is bearer
    if "body" in event:
        assert isinstance(json.loads(event["body"]), dict)


def test_reaper_sample_is_an_eventbridge_scheduled_event() -> None:
    event = load("reaper_schedule.json")
    assert (event["source"], event["detail-type"], event["detail"]) == ("aws.events", "Scheduled Event", {})
    assert event["version"] == "0" and event["account"].isdigit() and event["region"]
    assert datetime.fromisoformat(event["time"]).tzinfo is not None
    (rule,) = event["resources"]
    assert rule.startswith(f"arn:aws:events:{event['region']}:{event['account']}:rule/")


@pytest.mark.parametrize("name", [n for n, kind in SAMPLE_KINDS.items() if kind != "sqs"])
def test_non_s3_samples_are_rejected_by_the_event_parser(name: str) -> None:
    """A handler wired to the wrong source fails loudly instead of silently doing nothing."""
    with pytest.raises(InvalidEvent):
        events.parse(load(name))
