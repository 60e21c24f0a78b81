"""Parity: what devstack provisions in moto equals what template.yaml declares.

The expectations come from the raw template (samtranslator's ``yaml_parse`` plus a tiny resolver in this file),
never from ``devstack.template_spec``, so a bug in the spec parser cannot hide itself. Reads go through boto3
describe/get calls against a real moto server (``moto_endpoint``).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from samtranslator.yaml_helper import yaml_parse

from devstack.provision import ProvisionedStack, _provision_bucket, provision
from devstack.template_spec import BucketSpec, TemplateSpecError, Unresolved, load_stack_spec

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
RAW = yaml_parse(TEMPLATE.read_text(encoding="utf-8"))
RESOURCES: dict[str, Any] = RAW["Resources"]
STACK, ACCOUNT, REGION = "capturestream", "123456789012", "us-east-1"  # moto's account
PSEUDO = {"AWS::StackName": STACK, "AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws"}
#: Local provisioning budget; `capturestream up` must be ready in 5 s in total.
PROVISION_BUDGET_SECONDS = 3.0


def _of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {k: v.get("Properties", {}) for k, v in RESOURCES.items() if v["Type"] == kind}


def _local_name(logical_id: str) -> str:
    """The naming convention: the resource's own name property, else ``<stack>-<LogicalId>``."""
    props = RESOURCES[logical_id].get("Properties", {})
    for key in ("BucketName", "TableName", "QueueName", "Name"):
        if key in props:
            return _expect(props[key])
    return f"{STACK}-{logical_id}"


def _expect(value: Any) -> Any:
    """Resolve the few intrinsics the expectations need; anything else fails loudly."""
    if isinstance(value, list):
        return [_expect(v) for v in value]
    if isinstance(value, dict) and list(value) == ["Fn::Sub"] and isinstance(value["Fn::Sub"], str):
        text = value["Fn::Sub"]
        for name, replacement in PSEUDO.items():
            text = text.replace("${" + name + "}", replacement)
        assert "${" not in text, f"teach the parity test to resolve {value}"
        return text
    if isinstance(value, dict) and list(value) == ["Ref"]:
        assert RESOURCES[value["Ref"]]["Type"] == "AWS::S3::Bucket", f"teach the parity test to resolve {value}"
        return _local_name(value["Ref"])
    if isinstance(value, dict):
        return {k: _expect(v) for k, v in value.items()}
    return value


def _logical_id(get_att: Any) -> str:
    arg = get_att["Fn::GetAtt"]
    return arg.split(".")[0] if isinstance(arg, str) else arg[0]


@pytest.fixture
def clients(moto_endpoint: str) -> dict[str, Any]:
    return {s: boto3.client(s, endpoint_url=moto_endpoint) for s in ("s3", "sqs", "dynamodb", "events")}


@pytest.fixture
def stack(moto_endpoint: str) -> ProvisionedStack:
    provisioned = provision(load_stack_spec(), moto_endpoint)
    print(f"\nprovisioning against moto took {provisioned.seconds * 1000:.0f} ms")
    assert provisioned.seconds < PROVISION_BUDGET_SECONDS
    return provisioned


def _queue_attributes(sqs: Any, logical_id: str) -> dict[str, str]:
    url = sqs.get_queue_url(QueueName=_local_name(logical_id))["QueueUrl"]
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def test_queues_match_the_template(stack: ProvisionedStack, clients: dict[str, Any]) -> None:
    queues = _of_type("AWS::SQS::Queue")
    assert queues
    for logical_id, props in queues.items():
        attributes = _queue_attributes(clients["sqs"], logical_id)
        assert int(attributes["VisibilityTimeout"]) == props.get("VisibilityTimeout", 30), logical_id
        assert int(attributes["MessageRetentionPeriod"]) == props.get("MessageRetentionPeriod", 345600), logical_id
        assert int(attributes["DelaySeconds"]) == props.get("DelaySeconds", 0), logical_id
        if "RedrivePolicy" not in props:
            assert not attributes.get("RedrivePolicy"), logical_id
            continue
        redrive = json.loads(attributes["RedrivePolicy"])
        dlq = _queue_attributes(clients["sqs"], _logical_id(props["RedrivePolicy"]["deadLetterTargetArn"]))
        assert redrive["deadLetterTargetArn"] == dlq["QueueArn"], logical_id
        assert int(redrive["maxReceiveCount"]) == props["RedrivePolicy"]["maxReceiveCount"], logical_id


def test_table_matches_the_template(stack: ProvisionedStack, clients: dict[str, Any]) -> None:
    for logical_id, props in _of_type("AWS::DynamoDB::Table").items():
        table = clients["dynamodb"].describe_table(TableName=_local_name(logical_id))["Table"]
        assert table["KeySchema"] == props["KeySchema"]
        assert sorted(table["AttributeDefinitions"], key=str) == sorted(props["AttributeDefinitions"], key=str)
        indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", [])}
        assert set(indexes) == {g["IndexName"] for g in props.get("GlobalSecondaryIndexes", [])}
        for gsi in props.get("GlobalSecondaryIndexes", []):
            assert indexes[gsi["IndexName"]]["KeySchema"] == gsi["KeySchema"]
            assert indexes[gsi["IndexName"]]["Projection"]["ProjectionType"] == gsi["Projection"]["ProjectionType"]
        assert table["StreamSpecification"] == {
            "StreamEnabled": True,
            "StreamViewType": props["StreamSpecification"]["StreamViewType"],
        }
        assert table["LatestStreamArn"] == stack.tables[logical_id].stream_arn
        ttl = clients["dynamodb"].describe_time_to_live(TableName=_local_name(logical_id))["TimeToLiveDescription"]
        assert (ttl["AttributeName"], ttl["TimeToLiveStatus"]) == (
            props["TimeToLiveSpecification"]["AttributeName"],
            "ENABLED",
        )


def test_rules_match_the_template(stack: ProvisionedStack, clients: dict[str, Any]) -> None:
    rules = _of_type("AWS::Events::Rule")
    assert rules
    for logical_id, props in rules.items():
        name = _local_name(logical_id)
        described = clients["events"].describe_rule(Name=name)
        assert json.loads(described["EventPattern"]) == _expect(props["EventPattern"]), logical_id
        assert described["State"] == props.get("State", "ENABLED")
        targets = clients["events"].list_targets_by_rule(Rule=name)["Targets"]
        expected = {
            t["Id"]: _queue_attributes(clients["sqs"], _logical_id(t["Arn"]))["QueueArn"] for t in props["Targets"]
        }
        assert {t["Id"]: t["Arn"] for t in targets} == expected, logical_id


def test_bucket_cors_matches_the_template(stack: ProvisionedStack, clients: dict[str, Any]) -> None:
    props = RESOURCES["MediaBucket"]["Properties"]
    rules = clients["s3"].get_bucket_cors(Bucket=_local_name("MediaBucket"))["CORSRules"]
    renamed = {"Id": "ID", "ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds"}
    assert rules == [
        {renamed.get(k, k): v for k, v in rule.items()} for rule in props["CorsConfiguration"]["CorsRules"]
    ]


def _drain(sqs: Any, url: str) -> Iterator[dict[str, Any]]:
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages"):
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            yield json.loads(message["Body"])


def test_bucket_events_reach_exactly_the_queues_the_rules_name(
    stack: ProvisionedStack, clients: dict[str, Any]
) -> None:
    """moto does not echo EventBridgeConfiguration, so prove the notification end to end instead."""
    s3, sqs, bucket = clients["s3"], clients["sqs"], _local_name("MediaBucket")
    expected: dict[str, set[str]] = {queue: set() for queue in _of_type("AWS::SQS::Queue")}
    rules = _of_type("AWS::Events::Rule").values()
    probes = ["live/pb/s/seg_00000001.m4s", "live/pb/s/seg_00000010.m4s", "sessions/pb/s/started.json"]
    for props in rules:
        for matcher in props["EventPattern"]["detail"]["object"]["key"]:
            if "prefix" in matcher:
                probes.append(f"{matcher['prefix']}parity/probe.json")
            else:  # a wildcard: every * becomes a path-safe word
                probes.append(matcher["wildcard"].replace("*", "parity"))
    for key in probes:  # a key reaches every rule it matches (EventBridge: '*' spans '/' too, like fnmatch)
        for props in rules:
            patterns = props["EventPattern"]["detail"]["object"]["key"]
            if any(key.startswith(m["prefix"]) if "prefix" in m else fnmatch.fnmatchcase(key, m["wildcard"])
                   for m in patterns):  # fmt: skip
                for target in props["Targets"]:
                    expected[_logical_id(target["Arn"])].add(key)
    assert "live/pb/s/seg_00000010.m4s" in expected["ThumbnailQueue"] and "live/pb/s/seg_00000010.m4s" in expected[
        "SegmentQueue"]  # fmt: skip
    assert "live/pb/s/seg_00000001.m4s" not in expected["ThumbnailQueue"]  # sampled: 1 in 5
    # Never-trigger objects first: moto delivers inside the PUT, so anything they caused is queued before the probes.
    never = ("thumbs/parity/poster.jpg", "parity/outside-every-prefix.json", "live/parity/s/index.m3u8",
             "live/pb/s/init_0.mp4", "vod/pb/s/recording.mp4")  # fmt: skip
    for key in (*never, *probes):
        s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    for logical_id, keys in expected.items():
        bodies = list(_drain(sqs, stack.queues[logical_id].url))
        assert {b["detail"]["object"]["key"] for b in bodies} == keys, logical_id
        assert all(b["source"] == "aws.s3" and b["detail"]["bucket"]["name"] == bucket for b in bodies)


def test_second_provision_is_a_no_op_that_keeps_data(
    stack: ProvisionedStack, clients: dict[str, Any], moto_endpoint: str
) -> None:
    s3, sqs, dynamodb = clients["s3"], clients["sqs"], clients["dynamodb"]
    s3.put_object(Bucket=stack.bucket, Key="live/p/s/seg-1.m4s", Body=b"media")
    dynamodb.put_item(TableName=stack.table.name, Item={"pk": {"S": "CHANNEL#1"}, "sk": {"S": "META"}})
    sqs.send_message(QueueUrl=stack.queues["CatalogDLQ"].url, MessageBody=json.dumps({"parked": True}))

    again = provision(load_stack_spec(), moto_endpoint)

    assert (again.queues, again.tables, again.rules, again.buckets) == (
        stack.queues,
        stack.tables,
        stack.rules,
        stack.buckets,
    )
    assert s3.get_object(Bucket=stack.bucket, Key="live/p/s/seg-1.m4s")["Body"].read() == b"media"
    assert dynamodb.get_item(TableName=stack.table.name, Key={"pk": {"S": "CHANNEL#1"}, "sk": {"S": "META"}})["Item"]
    assert list(_drain(sqs, stack.queues["CatalogDLQ"].url)) == [{"parked": True}]
    name = stack.spec.rules["CatalogRule"].name
    assert len(clients["events"].list_targets_by_rule(Rule=name)["Targets"]) == 1


def test_provision_repairs_drift_in_place(stack: ProvisionedStack, clients: dict[str, Any], moto_endpoint: str) -> None:
    sqs, events = clients["sqs"], clients["events"]
    queue, rule = stack.queues["CatalogQueue"], stack.spec.rules["CatalogRule"]
    sqs.set_queue_attributes(QueueUrl=queue.url, Attributes={"VisibilityTimeout": "5"})
    events.put_targets(Rule=rule.name, Targets=[{"Id": "Stray", "Arn": stack.queues["CatalogDLQ"].arn}])
    events.put_rule(Name=rule.name, EventPattern=json.dumps({"source": ["aws.s3"]}))

    provision(load_stack_spec(), moto_endpoint)

    assert _queue_attributes(sqs, "CatalogQueue")["VisibilityTimeout"] == "180"
    assert [t["Id"] for t in events.list_targets_by_rule(Rule=rule.name)["Targets"]] == ["CatalogQueue"]
    assert json.loads(events.describe_rule(Name=rule.name)["EventPattern"]) == dict(rule.event_pattern)


def test_environment_for_fills_provisioned_values(stack: ProvisionedStack) -> None:
    assert stack.environment_for("CatalogFunction") == {
        "TABLE_NAME": stack.table.name,
        "MEDIA_BUCKET": stack.bucket,
        "LOG_LEVEL": "INFO",
    }
    with pytest.raises(TemplateSpecError, match="WS_ENDPOINT"):
        stack.environment_for("WsFunction")
    env = stack.environment_for("WsFunction", {"WS_ENDPOINT": "http://127.0.0.1:3001/dev", "JWT_SECRET": "k" * 48})
    assert env["WS_ENDPOINT"] == "http://127.0.0.1:3001/dev"
    assert stack.value_of(Unresolved("!Ref CatalogQueue", "CatalogQueue")) == stack.queues["CatalogQueue"].url
    assert stack.value_of(Unresolved("!GetAtt MediaTable.StreamArn", "MediaTable", "StreamArn")).startswith(
        "arn:aws:dynamodb:"
    )


def test_an_s3_endpoint_without_eventbridge_support_is_reported_not_fatal() -> None:
    """An S3 server may answer PutBucketNotificationConfiguration(EventBridge) with an error."""
    s3 = boto3.client("s3", region_name=REGION)
    bucket = BucketSpec("MediaBucket", "media", eventbridge_enabled=True)
    with Stubber(s3) as stub:
        stub.add_response("head_bucket", {}, {"Bucket": "media"})
        stub.add_client_error("put_bucket_notification_configuration", "NotImplemented", http_status_code=501)
        assert _provision_bucket(s3, bucket, REGION) is False
        stub.assert_no_pending_responses()


def test_a_foreign_s3_server_keeps_its_own_event_wiring_and_cors() -> None:
    """MinIO: no bucket CORS API, and its webhook notification config must not be overwritten."""
    s3 = boto3.client("s3", region_name=REGION)
    bucket = BucketSpec(
        "MediaBucket",
        "media",
        eventbridge_enabled=True,
        cors_rules=({"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]},),
    )
    with Stubber(s3) as stub:  # any other call (put_bucket_notification_configuration) fails the stub
        stub.add_client_error("head_bucket", "404", http_status_code=404)
        stub.add_response("create_bucket", {}, {"Bucket": "media"})
        stub.add_client_error("put_bucket_cors", "NotImplemented", http_status_code=501)
        assert _provision_bucket(s3, bucket, REGION, notifications=False) is False
        stub.assert_no_pending_responses()
