"""Regenerate the moto fixtures in this folder by running a real moto server.

Run from the repository root::

    .venv/bin/python tests/events/capture.py

What it does (see README.md next to it):

1. starts ``ThreadedMotoServer(port=0)`` on 127.0.0.1 (as tests/conftest.py does);
2. bucket ``media-direct`` with an S3 → SQS ``QueueConfigurations`` notification (``s3:ObjectCreated:*``);
   bucket ``media-eb`` with ``EventBridgeConfiguration`` plus an EventBridge rule on the default bus
   (``source aws.s3``, ``detail-type Object Created``) whose target is another SQS queue;
3. puts the same keys in both buckets (a segment, a started manifest, a key with a space and a ``+``,
   a foreign key) and one two-part multipart upload (moto notifies it twice);
4. receives every message and writes the raw message bodies and Lambda-shaped SQS events.

The message bodies are exactly what moto produced. The SQS *envelope* around them is built here the way the
Lambda SQS event source mapping builds it (messageId, receiptHandle, body, attributes, md5OfBody, eventSource,
eventSourceARN, awsRegion), which is also what the devstack poller does.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import boto3

HERE = Path(__file__).parent
REGION = "us-east-1"
SESSION = "pb1/20261125T150000Z-a1"
PUT_KEYS = (
    f"live/{SESSION}/seg_00000001.m4s",
    f"sessions/{SESSION}/started.json",
    "live/pb1/odd dir/a+b c.m4s",  # a space and a literal plus: tests decode-exactly-once
    "uploads/readme.txt",  # outside the key layout
)
MULTIPART_KEY = f"vod/{SESSION}/recording.mp4"
PART_SIZE = 5 * 1024 * 1024  # S3 (and moto) minimum for every part but the last


def _clients(endpoint: str) -> dict[str, Any]:
    kwargs = {"endpoint_url": endpoint, "region_name": REGION}
    return {name: boto3.client(name, **kwargs) for name in ("s3", "sqs", "events")}


def _queue(sqs: Any, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _provision(c: dict[str, Any]) -> dict[str, tuple[str, str]]:
    queues = {"direct": _queue(c["sqs"], "media-events"), "eb": _queue(c["sqs"], "media-eb-events")}
    c["s3"].create_bucket(Bucket="media-direct")
    c["s3"].put_bucket_notification_configuration(
        Bucket="media-direct",
        NotificationConfiguration={
            "QueueConfigurations": [{"Id": "media", "QueueArn": queues["direct"][1], "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    c["s3"].create_bucket(Bucket="media-eb")
    c["s3"].put_bucket_notification_configuration(
        Bucket="media-eb", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    pattern = {"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {"bucket": {"name": ["media-eb"]}}}
    c["events"].put_rule(Name="media-object-created", EventPattern=json.dumps(pattern))
    c["events"].put_targets(Rule="media-object-created", Targets=[{"Id": "queue", "Arn": queues["eb"][1]}])
    return queues


def _upload(s3: Any, bucket: str) -> None:
    for key in PUT_KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    upload = s3.create_multipart_upload(Bucket=bucket, Key=MULTIPART_KEY, ContentType="video/mp4")
    parts = []
    for number, body in ((1, b"\0" * PART_SIZE), (2, b"moov")):
        part = s3.upload_part(
            Bucket=bucket, Key=MULTIPART_KEY, UploadId=upload["UploadId"], PartNumber=number, Body=body
        )
        parts.append({"PartNumber": number, "ETag": part["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket, Key=MULTIPART_KEY, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
    ).get("Messages", []):
        messages.extend(batch)
    return messages


def _lambda_sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """Wrap received messages the way the Lambda SQS event source mapping does."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def _body_for(messages: list[dict[str, Any]], needle: str) -> Any:
    """The first message body whose (encoded or raw) key contains ``needle``."""
    return next(json.loads(m["Body"]) for m in messages if needle in m["Body"])


def _write(name: str, payload: Any) -> None:
    (HERE / name).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote tests/events/{name}")


def capture(endpoint: str) -> None:
    """Provision, upload, drain both queues and write every ``moto_*.json`` fixture."""
    c = _clients(endpoint)
    queues = _provision(c)
    test_events = _drain(c["sqs"], queues["direct"][0])  # the s3:TestEvent sent on configuration
    _upload(c["s3"], "media-direct")
    _upload(c["s3"], "media-eb")
    direct = _drain(c["sqs"], queues["direct"][0])
    bridged = _drain(c["sqs"], queues["eb"][0])
    _write("moto_s3_testevent_body.json", json.loads(test_events[0]["Body"]))
    _write("moto_s3_put_segment.json", _body_for(direct, "seg_00000001"))
    _write("moto_s3_put_space_plus.json", _body_for(direct, "odd"))
    _write("moto_eventbridge_started.json", _body_for(bridged, "started.json"))
    _write("moto_sqs_s3.json", _lambda_sqs_event(test_events + direct, queues["direct"][1]))
    _write("moto_sqs_eventbridge.json", _lambda_sqs_event(bridged, queues["eb"][1]))


def main() -> None:
    """Run moto on a free port, capture, stop."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        os.environ.setdefault(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        capture(f"http://{host}:{port}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
