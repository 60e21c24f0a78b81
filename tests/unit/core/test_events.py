"""capturestream.events: every captured payload shape → the expected domain events (tests/events/README.md)."""

from __future__ import annotations

import ast
import copy
import dataclasses
import json
import logging
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capturestream import events, keys
from capturestream.errors import InvalidEvent

FIXTURES = Path(__file__).parents[2] / "events"
S = "pb1/20261125T150000Z-a1"
SEG1, STARTED, REC = f"live/{S}/seg_00000001.m4s", f"sessions/{S}/started.json", f"vod/{S}/recording.mp4"
SEG2 = f"live/{S}/seg_00000002.m4s"
MOTO_MULTIPART_ETAG = "1283f641fc7b141100c20558ae395d2b-2"
AWS_REC_ETAG = "d8e8fca2dc0f896fd7cb4cb0031ba249-14"
PUT, MULTIPART = "ObjectCreated:Put", "ObjectCreated:CompleteMultipartUpload"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# fixture → [(key, event_name, media key type, etag, size, sequencer)] in delivery order
EXPECTED: dict[str, list[tuple[str, str, type, str | None, int | None, str | None]]] = {
    "moto_s3_testevent_body.json": [],
    "moto_s3_put_segment.json": [(SEG1, PUT, keys.LiveSegment, "851391bde17495c9734f659b722c8d10", 45, None)],
    "moto_s3_put_space_plus.json": [],  # outside the layout: see test_keys_are_decoded_exactly_once
    "moto_eventbridge_started.json": [
        (STARTED, PUT, keys.SessionManifest, "d437127b3a2416866ac9938c43bae216", 45, "617f08299329d189")
    ],
    "moto_sqs_s3.json": [
        (SEG1, PUT, keys.LiveSegment, "851391bde17495c9734f659b722c8d10", 45, None),
        (STARTED, PUT, keys.SessionManifest, "d437127b3a2416866ac9938c43bae216", 45, None),
        (REC, PUT, keys.VodRecording, MOTO_MULTIPART_ETAG, 5242884, None),  # moto: multipart notified twice
        (REC, MULTIPART, keys.VodRecording, MOTO_MULTIPART_ETAG, 5242884, None),
    ],
    "moto_sqs_eventbridge.json": [
        (SEG1, PUT, keys.LiveSegment, "851391bde17495c9734f659b722c8d10", 45, "617f08299329d189"),
        (STARTED, PUT, keys.SessionManifest, "d437127b3a2416866ac9938c43bae216", 45, "617f08299329d189"),
        (REC, PUT, keys.VodRecording, MOTO_MULTIPART_ETAG, 5242884, "617f08299329d189"),
        (REC, PUT, keys.VodRecording, MOTO_MULTIPART_ETAG, 5242884, "617f08299329d189"),
    ],
    "aws_s3_testevent.json": [],
    "aws_s3_put_segment.json": [
        (SEG2, PUT, keys.LiveSegment, "0d1b08c34858921bc7c662b228acb7ba", 412345, "0067443A70B0A2F1C3")
    ],
    "aws_s3_put_space_plus.json": [],
    "aws_sqs_s3.json": [
        (STARTED, PUT, keys.SessionManifest, "5d41402abc4b2a76b9719d911017c592", 388, "0067443A6F00000001"),
        (SEG2, PUT, keys.LiveSegment, "0d1b08c34858921bc7c662b228acb7ba", 412345, "0067443A70B0A2F1C3"),
        (REC, MULTIPART, keys.VodRecording, AWS_REC_ETAG, 73400320, "0067443B10000000F0"),
    ],
    "aws_eventbridge_started.json": [
        (STARTED, PUT, keys.SessionManifest, "5d41402abc4b2a76b9719d911017c592", 388, "0067443A6F00000001")
    ],
    "aws_sqs_eventbridge.json": [
        (SEG2, PUT, keys.LiveSegment, "0d1b08c34858921bc7c662b228acb7ba", 412345, "0067443A70B0A2F1C3"),
        (REC, MULTIPART, keys.VodRecording, AWS_REC_ETAG, 73400320, "0067443B10000000F0"),
    ],
    "aws_sns_s3.json": [
        (f"live/{S}/index.m3u8", PUT, keys.LivePlaylist, "6f5902ac237024bdd0c176cb93063dc4", 612, "0067443A70B0A2F1D0")
    ],
    "aws_sqs_sns_s3.json": [
        (f"live/{S}/index.m3u8", PUT, keys.LivePlaylist, "6f5902ac237024bdd0c176cb93063dc4", 612, "0067443A70B0A2F1D0")
    ],
    "localstack_sqs_s3.json": [
        (
            f"live/{S}/seg_00000003.m4s",
            PUT,
            keys.LiveSegment,
            "3858f62230ac3c915f300c664312c63f",
            409600,
            "0062E99A88DC407460",
        ),
        (REC, MULTIPART, keys.VodRecording, MOTO_MULTIPART_ETAG, 5242884, "0062E99A88DC407460"),
    ],
    "localstack_sqs_eventbridge.json": [
        (
            f"sessions/{S}/ended.json",
            PUT,
            keys.SessionManifest,
            "7215ee9c7d9dc229d2921a40e899ec5f",
            402,
            "0062E99A88DC407460",
        )
    ],
    "minio_webhook.json": [
        (
            f"live/{S}/seg_00000004.m4s",
            PUT,
            keys.LiveSegment,
            "e4d909c290d0fb1ca068ffaddf22cbd0",
            401234,
            "187A7F5C0B6F1A2E",
        )
    ],
    "sqs_malformed.json": [
        (
            f"live/{S}/seg_00000005.m4s",
            PUT,
            keys.LiveSegment,
            "c4ca4238a0b923820dcc509a6f75849b",
            400000,
            "0067443A70B0A2F1E0",
        )
    ],
}


def summary(parsed: list[events.MediaObjectCreated]) -> list[tuple[Any, ...]]:
    return [
        (m.object.key, m.object.event_name, type(m.media_key), m.object.etag, m.object.size, m.object.sequencer)
        for m in parsed
    ]


def test_every_fixture_has_expectations() -> None:
    """A new captured payload cannot sit in tests/events untested."""
    assert sorted(p.name for p in FIXTURES.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_expected_media_events(name: str) -> None:
    """Keys decoded once, event names normalised, media key types right, duplicates preserved."""
    parsed = events.parse(load(name))
    assert summary(parsed) == EXPECTED[name]
    for media in parsed:
        assert media.media_key == keys.decode(media.object.key)
        assert media.object.bucket
        assert media.object.event_time is None or media.object.event_time.tzinfo is UTC


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if load(n).get("Records", [{}])[0].get("messageId")))
def test_parse_sqs_keeps_one_item_per_message(name: str) -> None:
    """parse_sqs groups events by messageId (for batchItemFailures) and flattens to the same list as parse."""
    event = load(name)
    items = events.parse_sqs(event)
    assert [item.message_id for item in items] == [r["messageId"] for r in event["Records"]]
    assert [m for item in items for m in item.events] == events.parse(event)


def test_event_times_are_parsed_to_utc() -> None:
    (media,) = events.parse(load("aws_s3_put_segment.json"))
    assert media.object.event_time == datetime(2026, 11, 25, 15, 0, 1, 123000, tzinfo=UTC)
    (media,) = events.parse(load("aws_eventbridge_started.json"))
    assert media.object.event_time == datetime(2026, 11, 25, 15, 0, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-25T15:00:01.123Z", datetime(2026, 11, 25, 15, 0, 1, 123000, tzinfo=UTC)),
        ("2026-11-25T16:00:01+01:00", datetime(2026, 11, 25, 15, 0, 1, tzinfo=UTC)),
        (1795618800.5, datetime(2026, 11, 25, 15, 0, 0, 500000, tzinfo=UTC)),  # moto-internal epoch float
        ("", None),
        ("yesterday", None),
        (None, None),
        (True, None),
        (1e300, None),
    ],
)
def test_eventbridge_time_shapes(value: Any, expected: datetime | None) -> None:
    event = load("aws_eventbridge_started.json")
    event["time"] = value
    (media,) = events.parse(event)
    assert media.object.event_time == expected


# --- keys are decoded exactly once --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("moto_s3_put_space_plus.json", "live/pb1/odd dir/a+b c.m4s"),  # moto: quote_plus, '/' → %2F
        ("aws_s3_put_space_plus.json", "uploads/c++ notes (2).txt"),  # AWS: form encoding, '/' kept
        ("localstack_sqs_s3.json", "live/pb1/odd dir/a+b c.m4s"),  # LocalStack: quote(), space → %20
        ("aws_sqs_eventbridge.json", "uploads/c++ notes (2).txt"),  # AWS EventBridge: raw key
        ("moto_sqs_eventbridge.json", "live/pb1/odd dir/a+b c.m4s"),  # moto EventBridge: raw key
    ],
)
def test_keys_are_decoded_exactly_once(name: str, key: str) -> None:
    """A literal '+' survives; spaces come back; keys outside the layout reach parse_objects but not parse."""
    assert key in [obj.key for obj in events.parse_objects(load(name))]
    assert key not in [m.object.key for m in events.parse(load(name))]


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [("a%252B.txt", "a%2B.txt"), ("a%2B+b.txt", "a+ b.txt"), ("c%2B%2B+notes.txt", "c++ notes.txt")],
)
def test_notification_key_with_percent_after_decoding_survives(raw: str, decoded: str) -> None:
    """Decoding twice would turn a stored '%2B' into '+': notification keys are decoded once."""
    event = load("aws_s3_put_segment.json")
    event["Records"][0]["s3"]["object"]["key"] = raw
    assert [obj.key for obj in events.parse_objects(event)] == [decoded]


@pytest.mark.parametrize("raw", ["a%2B.txt", "c++ notes.txt", "100% done.txt", "x%20y"])
def test_eventbridge_keys_are_never_decoded(raw: str) -> None:
    event = load("aws_eventbridge_started.json")
    event["detail"]["object"]["key"] = raw
    assert [obj.key for obj in events.parse_objects(event)] == [raw]


def test_localstack_eventbridge_keys_stay_percent_encoded() -> None:
    """Documented emulator difference: LocalStack quote()s EventBridge keys, AWS does not; layout keys are
    URL-safe, so only foreign keys are affected (they are skipped anyway)."""
    event = json.loads(load("localstack_sqs_eventbridge.json")["Records"][0]["body"])
    event["detail"]["object"]["key"] = "live/pb1/odd%20dir/a%2Bb%20c.m4s"
    assert [obj.key for obj in events.parse_objects(event)] == ["live/pb1/odd%20dir/a%2Bb%20c.m4s"]


def test_unquote_plus_appears_exactly_once_in_the_module() -> None:
    """House rule 7: one decoding point; no other URL decoder sneaks in."""
    source = Path(events.__file__).read_text()
    assert source.count("unquote_plus") == 1
    names = {
        node.attr if isinstance(node, ast.Attribute) else node.id
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute | ast.Name)
    }
    assert not names & {"unquote", "unquote_to_bytes", "parse_qs", "parse_qsl"}


# --- skipping: one log line each, never raised ------------------------------------------------------------


def records_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "capturestream.events"]


@pytest.mark.parametrize("name", ["aws_s3_testevent.json", "moto_s3_testevent_body.json"])
def test_test_event_is_skipped_with_one_log_line(name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="capturestream.events")
    assert events.parse(load(name)) == []
    (record,) = records_of(caplog)
    assert "TestEvent" in record.getMessage()


def test_sqs_test_event_body_gives_an_empty_item(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="capturestream.events")
    first = events.parse_sqs(load("aws_sqs_s3.json"))[0]
    assert first.events == ()
    assert any("TestEvent" in r.getMessage() for r in records_of(caplog))


@pytest.mark.parametrize(
    ("name", "skipped_keys"),
    [
        ("moto_sqs_s3.json", ["live/pb1/odd dir/a+b c.m4s", "uploads/readme.txt"]),
        ("moto_sqs_eventbridge.json", ["live/pb1/odd dir/a+b c.m4s", "uploads/readme.txt"]),
        ("aws_sqs_s3.json", [f"thumbs/{S}/live_00000002.jpg"]),  # derived: keys.decode accepts it, we don't
        ("aws_sqs_eventbridge.json", ["uploads/c++ notes (2).txt"]),
        ("localstack_sqs_s3.json", ["live/pb1/odd dir/a+b c.m4s"]),
    ],
)
def test_foreign_and_derived_keys_are_skipped_with_one_log_line_each(
    name: str, skipped_keys: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="capturestream.events")
    events.parse(load(name))
    skipped = [r for r in records_of(caplog) if "TestEvent" not in r.getMessage()]
    assert [r.key for r in skipped] == skipped_keys  # type: ignore[attr-defined]
    assert all(r.levelno == logging.INFO for r in skipped)


def test_malformed_sqs_bodies_are_skipped_not_failed(caplog: pytest.LogCaptureFixture) -> None:
    """Not JSON, unknown shape, not an object, a record without a key: logged warnings, empty items."""
    caplog.set_level(logging.INFO, logger="capturestream.events")
    event = load("sqs_malformed.json")
    items = events.parse_sqs(event)
    assert [len(item.events) for item in items] == [0, 0, 0, 0, 1]
    warnings = [r for r in records_of(caplog) if r.levelno == logging.WARNING]
    assert [r.getMessage().split(":")[0] for r in warnings] == [
        f"skipping SQS message {r['messageId']}" for r in event["Records"][:4]
    ]


def test_deeply_nested_sqs_body_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    event = load("sqs_malformed.json")
    event["Records"][0]["body"] = "[" * 100_000
    assert events.parse_sqs(event)[0].events == ()


@pytest.mark.parametrize(
    ("mutate", "what"),
    [
        (lambda e: e["Records"][0].__setitem__("eventName", "ObjectRemoved:Delete"), "ObjectRemoved:Delete"),
        (lambda e: e["Records"][0].__setitem__("eventName", "s3:ObjectRestore:Completed"), "ObjectRestore"),
    ],
)
def test_other_s3_event_types_are_skipped(mutate: Any, what: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="capturestream.events")
    event = load("aws_s3_put_segment.json")
    mutate(event)
    assert events.parse(event) == []
    (record,) = records_of(caplog)
    assert what in record.getMessage()


def test_other_eventbridge_detail_types_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="capturestream.events")
    event = load("aws_eventbridge_started.json")
    event["detail-type"] = "Object Deleted"
    event["detail"]["reason"] = "DeleteObject"
    assert events.parse(event) == []
    assert len(records_of(caplog)) == 1


# --- normalisation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "event_name"),
    [
        ("PutObject", "ObjectCreated:Put"),  # AWS, LocalStack
        ("POST Object", "ObjectCreated:Post"),  # AWS docs spelling
        ("CopyObject", "ObjectCreated:Copy"),
        ("CompleteMultipartUpload", "ObjectCreated:CompleteMultipartUpload"),
        ("ObjectCreated", "ObjectCreated:Put"),  # moto
        (None, "ObjectCreated:Put"),
        ("RestoreObjectCopy", "ObjectCreated:RestoreObjectCopy"),  # future reasons keep their name
    ],
)
def test_eventbridge_reason_maps_to_notification_event_name(reason: str | None, event_name: str) -> None:
    event = load("aws_eventbridge_started.json")
    event["detail"]["reason"] = reason
    assert [obj.event_name for obj in events.parse_objects(event)] == [event_name]


def test_minio_prefix_is_stripped_and_wrapper_ignored() -> None:
    (obj,) = events.parse_objects(load("minio_webhook.json"))
    assert obj.event_name == "ObjectCreated:Put"
    assert obj.bucket == "media"  # from the record, not the wrapper's "Key" ("media/live/...")


def test_moto_notifications_omit_optional_fields() -> None:
    (obj,) = events.parse_objects(load("moto_s3_put_segment.json"))
    assert obj.sequencer is None
    assert obj.etag == "851391bde17495c9734f659b722c8d10"


def test_quoted_etags_are_unquoted() -> None:
    event = load("aws_s3_put_segment.json")
    event["Records"][0]["s3"]["object"]["eTag"] = '"abc"'
    assert events.parse_objects(event)[0].etag == "abc"


def test_multipart_duplicates_carry_the_same_identity() -> None:
    """moto's double multipart notification: same (key, etag, size), so idempotent consumers see one object."""
    recs = [m.object for m in events.parse(load("moto_sqs_s3.json")) if m.object.key == REC]
    assert len(recs) == 2
    assert len({(o.bucket, o.key, o.etag, o.size) for o in recs}) == 1


# --- wiring bugs raise ------------------------------------------------------------------------------------


NOT_EVENTS: list[Any] = [
    None,
    "Records",
    [],
    {},
    {"Records": []},
    {"foo": "bar"},
    {"Records": [{"eventSource": "aws:dynamodb", "dynamodb": {}}]},
    {"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": "{}"}, {"eventSource": "aws:s3"}]},
    {"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {}},
    {"version": "2.0", "routeKey": "$default", "rawPath": "/api/status", "requestContext": {}},
    {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}}}]},
    {"Records": [{"eventSource": "aws:sns", "Sns": {"Message": "not json"}}]},
]


@pytest.mark.parametrize("payload", NOT_EVENTS)
def test_payloads_that_are_no_accepted_event_raise(payload: Any) -> None:
    with pytest.raises(InvalidEvent):
        events.parse(payload)


@pytest.mark.parametrize(
    "payload",
    [
        load("aws_s3_put_segment.json"),
        {"Records": [{"eventSource": "aws:sqs", "body": "{}"}]},  # no messageId: cannot report a failure
        {"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": {"Records": []}}]},  # body not a str
    ],
)
def test_parse_sqs_rejects_non_sqs_envelopes(payload: Any) -> None:
    with pytest.raises(InvalidEvent):
        events.parse_sqs(payload)


@pytest.mark.parametrize(
    ("size", "ok"), [(0, True), (10, True), (None, True), (-1, False), (True, False), ("12", False), (1.5, False)]
)
def test_direct_record_size_is_validated(size: Any, ok: bool) -> None:
    event = load("aws_s3_put_segment.json")
    event["Records"][0]["s3"]["object"]["size"] = size
    if ok:
        assert events.parse_objects(event)[0].size == size
    else:
        with pytest.raises(InvalidEvent):
            events.parse(event)


def test_events_are_frozen_and_validated() -> None:
    (media,) = events.parse(load("aws_s3_put_segment.json"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        media.object.key = "other"  # type: ignore[misc]
    with pytest.raises(InvalidEvent):
        events.MediaObjectCreated(object=media.object, media_key=keys.decode(SEG1))
    with pytest.raises(InvalidEvent):
        events.ObjectCreated(bucket="b", key="", event_name=PUT)
    with pytest.raises(InvalidEvent):
        events.ObjectCreated(bucket="b", key="k", event_name="ObjectRemoved:Delete")
    with pytest.raises(TypeError):
        events.ObjectCreated("b", "k")  # type: ignore[misc]  # keyword-only


# --- property: every emitter's encoding round-trips ----------------------------------------------------------


def _notification(encoded_key: str, source: str = "aws:s3", name: str = PUT) -> dict[str, Any]:
    event = copy.deepcopy(load("aws_s3_put_segment.json"))
    record = event["Records"][0]
    record["eventSource"], record["eventName"] = source, name
    record["s3"]["object"]["key"] = encoded_key
    return event


def _eventbridge(raw_or_encoded_key: str) -> dict[str, Any]:
    event = copy.deepcopy(load("aws_eventbridge_started.json"))
    event["detail"]["object"]["key"] = raw_or_encoded_key
    return event


def _sqs(body: dict[str, Any]) -> dict[str, Any]:
    return {"Records": [{"eventSource": "aws:sqs", "messageId": "m-1", "body": json.dumps(body)}]}


#: How each emitter spells a key (see the module docstring of capturestream.events and LOCAL_AWS.md).
EMITTERS = {
    "aws-notification": lambda k: _notification(urllib.parse.quote_plus(k, safe="/")),
    "moto-notification": lambda k: _notification(urllib.parse.quote_plus(k)),
    "localstack-notification": lambda k: _notification(urllib.parse.quote(k)),
    "minio-webhook": lambda k: {
        "EventName": "s3:ObjectCreated:Put",
        "Key": f"media/{k}",
        **_notification(urllib.parse.quote_plus(k), source="minio:s3", name="s3:ObjectCreated:Put"),
    },
    "aws-eventbridge": _eventbridge,
    "moto-eventbridge": _eventbridge,
    "sqs-aws-notification": lambda k: _sqs(_notification(urllib.parse.quote_plus(k, safe="/"))),
    "sqs-aws-eventbridge": lambda k: _sqs(_eventbridge(k)),
}
NAMES = st.from_regex(keys.NAME_PATTERN, fullmatch=True)
SESSION_KEYS = st.one_of(
    st.builds(keys.LiveSegment, playback_id=NAMES, session_id=NAMES, sequence=st.integers(0, 99_999_999)),
    st.builds(keys.LiveInit, playback_id=NAMES, session_id=NAMES, epoch=st.integers(0, 99)),
    st.builds(keys.LivePlaylist, playback_id=NAMES, session_id=NAMES),
    st.builds(keys.SessionManifest, playback_id=NAMES, session_id=NAMES, kind=st.sampled_from(keys.ManifestKind)),
    st.builds(keys.VodRecording, playback_id=NAMES, session_id=NAMES),
    st.builds(keys.VodPlaylist, playback_id=NAMES, session_id=NAMES),
)


@given(media_key=SESSION_KEYS, emitter=st.sampled_from(sorted(EMITTERS)))
def test_any_session_key_round_trips_through_every_emitter(media_key: Any, emitter: str) -> None:
    (media,) = events.parse(EMITTERS[emitter](media_key.key))
    assert media.object.key == media_key.key
    assert media.media_key == media_key


@given(key=st.text(min_size=1, max_size=200), emitter=st.sampled_from(sorted(EMITTERS)))
def test_any_key_text_round_trips_through_every_emitter(key: str, emitter: str) -> None:
    """Arbitrary keys (spaces, '+', '%2B', unicode) come back unchanged from every AWS/moto/MinIO shape."""
    assert [obj.key for obj in events.parse_objects(EMITTERS[emitter](key))] == [key]


@given(media_key=SESSION_KEYS)
def test_session_keys_round_trip_through_localstack_eventbridge(media_key: Any) -> None:
    """LocalStack quote()s EventBridge keys; for layout keys that is the identity, so parsing still works."""
    (media,) = events.parse(_eventbridge(urllib.parse.quote(media_key.key)))
    assert media.media_key == media_key
