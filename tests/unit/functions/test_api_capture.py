"""``POST /api/capture/config`` through the real Mangum handler: pure validation, no table needed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.api import call

PATH = "/api/capture/config"
DEFAULTS = {
    "source": "screen",
    "width": 1280,
    "height": 720,
    "frameRate": 30,
    "videoBitrateKbps": 2500,
    "audioBitrateKbps": 128,
    "audio": True,
    "keyframeIntervalSeconds": 1,
}
WITH_AUDIO = ["video/webm;codecs=h264,opus", "video/x-matroska;codecs=avc1,opus", "video/webm;codecs=vp8,opus"]


@pytest.mark.parametrize("raw_body", [None, "{}"])
def test_defaults(api_env: Any, raw_body: str | None) -> None:
    """api_env has no table: the route must not touch DynamoDB."""
    status, headers, body = call("POST", PATH, raw_body=raw_body)
    assert status == 200, body
    assert headers["cache-control"] == "no-store"
    assert body == {**DEFAULTS, "recommendedMimeTypes": [*WITH_AUDIO, "video/webm"], "timesliceMs": 250}


def test_custom_config_is_echoed_normalised(api_env: Any) -> None:
    sent = {"source": "screen+camera", "width": 1920, "height": 1080, "frameRate": 60, "audio": False}
    status, _, body = call("POST", PATH, body=sent)
    assert status == 200, body
    assert {k: body[k] for k in DEFAULTS} == {**DEFAULTS, **sent}
    assert body["recommendedMimeTypes"] == [
        "video/webm;codecs=h264",
        "video/x-matroska;codecs=avc1",
        "video/webm;codecs=vp8",
        "video/webm",
    ]
    assert "ingestUrl" not in body  # no setting for it yet


def test_boundaries_are_accepted(api_env: Any) -> None:
    low = {"width": 320, "height": 180, "frameRate": 15, "videoBitrateKbps": 300, "audioBitrateKbps": 32}
    high = {"width": 3840, "height": 2160, "frameRate": 60, "videoBitrateKbps": 8000, "audioBitrateKbps": 320}
    for sent in (low | {"keyframeIntervalSeconds": 1}, high | {"keyframeIntervalSeconds": 4, "source": "camera"}):
        status, _, body = call("POST", PATH, body=sent)
        assert status == 200, body
        assert {k: body[k] for k in sent} == sent


@pytest.mark.parametrize(
    ("sent", "field"),
    [
        ({"width": 318}, "body.width"),
        ({"width": 3842}, "body.width"),
        ({"width": 1281}, "body.width"),
        ({"height": 178}, "body.height"),
        ({"height": 2162}, "body.height"),
        ({"height": 721}, "body.height"),
        ({"frameRate": 14}, "body.frameRate"),
        ({"frameRate": 61}, "body.frameRate"),
        ({"videoBitrateKbps": 299}, "body.videoBitrateKbps"),
        ({"videoBitrateKbps": 8001}, "body.videoBitrateKbps"),
        ({"audioBitrateKbps": 31}, "body.audioBitrateKbps"),
        ({"audioBitrateKbps": 321}, "body.audioBitrateKbps"),
        ({"keyframeIntervalSeconds": 0}, "body.keyframeIntervalSeconds"),
        ({"keyframeIntervalSeconds": 5}, "body.keyframeIntervalSeconds"),
        ({"source": "window"}, "body.source"),
        ({"width": "1280"}, "body.width"),  # no silent coercion of strings
        ({"width": 1280.5}, "body.width"),
        ({"audio": "yes"}, "body.audio"),
        ({"bogus": 1}, "body.bogus"),
        ({"frame_rate": 30}, "body.frame_rate"),  # the wire is camelCase only
        ({"timesliceMs": 100}, "body.timesliceMs"),  # response-only fields cannot be sent
    ],
)
def test_out_of_range_or_unknown_is_422_naming_the_field(api_env: Any, sent: dict[str, Any], field: str) -> None:
    status, headers, body = call("POST", PATH, body=sent)
    assert status == 422, body
    assert headers["cache-control"] == "no-store"
    assert body["error"]["code"] == "validation_error"
    assert [f["field"] for f in body["error"]["fields"]] == [field]


@pytest.mark.parametrize("raw_body", ["not json", "[]", '{"width": 1280'])
def test_malformed_body_is_422(api_env: Any, raw_body: str) -> None:
    status, _, body = call("POST", PATH, raw_body=raw_body)
    assert status == 422
    assert body["error"]["fields"][0]["field"] == "body"


def test_openapi_documents_capture_config(api_env: Any) -> None:
    spec = call("GET", "/openapi.json")[2]
    operation = spec["paths"][PATH]["post"]
    assert operation["operationId"] == "capture-capture_config"
    assert operation["summary"] and operation["description"]
    assert {"200", "422"} <= set(operation["responses"])
    schemas = spec["components"]["schemas"]
    assert set(schemas["CaptureConfig"]["properties"]) == {*DEFAULTS, "recommendedMimeTypes", "timesliceMs"}
    assert json.dumps(schemas["CaptureConfigRequest"]).count('"additionalProperties": false') == 1
