"""Lambda-shaped documents built from DynamoDB Streams records: the event record and the on-failure record.

Rules (AWS Lambda Developer Guide: with-ddb "Example DynamoDB Streams record event", services-dynamodb-errors
"Example invocation record"):
    * Event records keep GetRecords' fields, add ``eventSourceARN`` and the stream's region, give
      ``ApproximateCreationDateTime`` as whole epoch seconds (a number) and base64-encode binary values
      (botocore parses ``B``/``BS`` into ``bytes``).
    * The on-failure record carries batch metadata (``DDBStreamBatchInfo``), never the records.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any

__all__ = ["on_failure_record", "stream_record"]


def stream_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """Build one Lambda DynamoDB Streams event record from a GetRecords record (as parsed by botocore).

    Args:
        record: One entry of ``GetRecords``' ``Records``.
        stream_arn: The stream ARN (``eventSourceARN``).
        region: The stream's region (``awsRegion``).

    Returns:
        The record, keyed and ordered like the records Lambda delivers.
    """
    source = record["dynamodb"]
    dynamodb: dict[str, Any] = {}
    created = source.get("ApproximateCreationDateTime")
    if created is not None:
        dynamodb["ApproximateCreationDateTime"] = _epoch_seconds(created)
    for name in ("Keys", "NewImage", "OldImage"):
        if name in source:
            dynamodb[name] = _json_attributes(source[name])
    for name in ("SequenceNumber", "SizeBytes", "StreamViewType"):
        if name in source:
            dynamodb[name] = source[name]
    converted: dict[str, Any] = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in record:  # TTL deletions carry {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
        converted["userIdentity"] = {
            "type": record["userIdentity"].get("Type"),
            "principalId": record["userIdentity"].get("PrincipalId"),
        }
    return converted


def on_failure_record(
    *,
    function_arn: str,
    stream_arn: str,
    shard_id: str,
    batch: list[dict[str, Any]],
    attempts: int,
    unhandled: bool,
) -> dict[str, Any]:
    """The invocation record Lambda sends to an on-failure destination for a discarded stream batch.

    Args:
        function_arn: The invoked function's ARN.
        stream_arn: The stream ARN.
        shard_id: The shard the batch came from.
        batch: The discarded GetRecords records (the records themselves are not included, as in AWS).
        attempts: How many times the batch was invoked (``approximateInvokeCount``).
        unhandled: True if the last attempt was a function error (``functionError: Unhandled``).

    Returns:
        The document, shaped like Lambda's DynamoDB stream invocation record.
    """
    first, last = batch[0]["dynamodb"], batch[-1]["dynamodb"]
    response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if unhandled:
        response_context["functionError"] = "Unhandled"
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": attempts,
        },
        "responseContext": response_context,
        "version": "1.0",
        "timestamp": _iso(dt.datetime.now(dt.UTC), milliseconds=True),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": first["SequenceNumber"],
            "endSequenceNumber": last["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _iso(first.get("ApproximateCreationDateTime")),
            "approximateArrivalOfLastRecord": _iso(last.get("ApproximateCreationDateTime")),
            "batchSize": len(batch),
            "streamArn": stream_arn,
        },
    }


def _epoch_seconds(value: dt.datetime | float) -> float:
    """Lambda events carry whole epoch seconds as a number (e.g. ``1693997155.0``)."""
    seconds = value.timestamp() if isinstance(value, dt.datetime) else float(value)
    return float(int(seconds))


def _iso(value: dt.datetime | float | None, *, milliseconds: bool = False) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromtimestamp(float(value), dt.UTC)
    value = value.astimezone(dt.UTC)
    if milliseconds:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_attributes(value: Any) -> Any:
    """Turn botocore's parsed attribute values back into DynamoDB JSON (``bytes`` -> base64 text)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {key: _json_attributes(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_attributes(item) for item in value]
    return value
