"""The moto child's GetRecords filter (devstack.moto_tuning) decides every record as the stream consumer's own
FilterCriteria matcher does on the whole Lambda-shaped record, although it shapes and matches only what each
pattern names."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from devstack.event_sources.filters import RecordFilter
from devstack.event_sources.stream_records import stream_record
from devstack.moto_tuning import _record_filter

ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/media/stream/2026-12-04T00:00:00.000"

PATTERNS = [
    # template.yaml's NotifierFunction patterns
    '{"dynamodb": {"Keys": {"sk": {"S": ["STREAM"]}}}}',
    '{"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "CHAT#"}]}}}}',
    '{"dynamodb": {"Keys": {"sk": {"S": [{"prefix": "SUB#"}]}}}}',
    # other shapes a template may use
    '{"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"status": {"S": ["live"]}}}}',
    '{"dynamodb": {"OldImage": {"status": {"S": [{"anything-but": ["ended"]}]}}}}',
    '{"dynamodb": {"NewImage": {"thumbnail_path": [{"exists": false}]}}}',
    '{"dynamodb": {"NewImage": [{"exists": true}]}}',
    '{"eventName": ["REMOVE"]}',
    '{"eventSourceARN": [{"prefix": "arn:aws:dynamodb:eu-west-1:"}], "awsRegion": ["eu-west-1"]}',
]


def record(event: str, pk: str, sk: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    """A GetRecords record in wire form, as the child answers it."""
    stream: dict[str, Any] = {
        "ApproximateCreationDateTime": 1796358161.379,
        "Keys": {"pk": {"S": pk}, "sk": {"S": sk}},
        "SequenceNumber": "1100000000017454423009",
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    key = {"pk": {"S": pk}, "sk": {"S": sk}}
    if new is not None:
        stream["NewImage"] = {**key, **new}
    if old is not None:
        stream["OldImage"] = {**key, **old}
    return {"eventID": "e1", "eventName": event, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "dynamodb": stream}  # fmt: skip


LIVE = {"status": {"S": "live"}, "media": {"M": {"width": {"N": "1280"}, "codec": {"B": "AAE="}}}}
ENDED = {"status": {"S": "ended"}, "thumbnail_path": {"S": "thumbs/x.jpg"}}
RECORDS = [
    record("INSERT", "STREAM#pb", "STREAM", None, LIVE),
    record("MODIFY", "STREAM#pb", "STREAM", LIVE, ENDED),
    record("MODIFY", "SESSION#s", "SESSION", ENDED, LIVE),
    record("REMOVE", "CHAT#s", "0001#c", {"text": {"S": "hi"}}, None),
    record("INSERT", "CONN#c", "SUB#pb", None, {"ttl": {"N": "1"}}),
    record("MODIFY", "CONN#c", "CONNECTION", {"status": {"S": "ended"}}, {"status": {"S": "live"}}),
]


@pytest.mark.parametrize("patterns", [list(c) for n in (1, 2) for c in itertools.combinations(PATTERNS, n)])
def test_the_child_keeps_exactly_what_the_consumer_would(patterns: list[str]) -> None:
    keep = _record_filter(json.dumps(patterns))
    assert keep is not None
    whole = RecordFilter(tuple(patterns))
    for wire in RECORDS:
        assert keep(wire, ARN) == whole(stream_record(wire, ARN, "eu-west-1")), (patterns, wire["dynamodb"]["Keys"])


def test_no_patterns_keep_everything_and_a_bad_header_filters_nothing() -> None:
    keep = _record_filter("[]")
    assert keep is not None and all(keep(wire, ARN) for wire in RECORDS)
    assert _record_filter("not json") is None
    assert _record_filter('{"a": 1}') is None
    assert _record_filter('["{not a pattern"]') is None
