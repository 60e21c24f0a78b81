"""Event sources against the real moto server over HTTP: Lambda's SQS/stream/TTL semantics end to end.

Handlers are plain callables wrapped in ``LocalFunction``; they run in worker threads and report what they
saw through :class:`Calls`. Resources are created per test with boto3 (the server is reset per test).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import boto3
import pytest

from devstack.event_sources import DynamoDbStreamEventSource, EventSource, SqsEventSource, TtlSweeper
from devstack.lambda_runtime import LocalFunction
from tests.support.waiting import eventually

REGION = "us-east-1"


class Calls:
    """Thread-safe record of handler calls, awaitable from the test's event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.items: list[Any] = []
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    def add(self, item: Any) -> None:
        """Record ``item`` (called from handler threads)."""
        self.items.append(item)
        self.loop.call_soon_threadsafe(self._queue.put_nowait, item)

    async def next(self, timeout: float = 5.0) -> Any:
        """The next recorded item, in call order."""
        return await asyncio.wait_for(self._queue.get(), timeout)


@pytest.fixture
def aws(moto_endpoint: str) -> Callable[[str], Any]:
    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=moto_endpoint, region_name=REGION)

    return client


@pytest.fixture
async def running(moto_endpoint: str) -> AsyncIterator[Callable[[EventSource], Any]]:
    """Start sources for a test and always stop them afterwards."""
    started: list[EventSource] = []

    async def start(source: EventSource) -> Any:
        await source.start()
        started.append(source)
        return source

    yield start
    for source in started:
        await source.stop()


def create_queue(sqs: Any, name: str, *, visibility: int = 30, dlq_arn: str | None = None) -> tuple[str, str]:
    attributes = {"VisibilityTimeout": str(visibility)}
    if dlq_arn:
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def queue_depth(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def sqs_source(url: str, arn: str, function: LocalFunction, endpoint: str, **kwargs: Any) -> SqsEventSource:
    kwargs.setdefault("wait_time_seconds", 20)
    return SqsEventSource(url, arn, function, endpoint_url=endpoint, **kwargs)


# --- SQS ------------------------------------------------------------------------------------------------


async def test_message_reaches_handler_as_lambda_sqs_event_and_is_deleted(aws, running, moto_endpoint) -> None:
    sqs = aws("sqs")
    url, arn = create_queue(sqs, "media-events")
    calls = Calls()
    source = await running(sqs_source(url, arn, LocalFunction("fn", lambda e, c: calls.add(e)), moto_endpoint))

    sent = sqs.send_message(
        QueueUrl=url,
        MessageBody='{"hello": "world"}',
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "segment"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    event = await calls.next()

    [record] = event["Records"]
    assert list(record) == [
        "messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfMessageAttributes",
        "md5OfBody", "eventSource", "eventSourceARN", "awsRegion",
    ]  # fmt: skip
    assert record["messageId"] == sent["MessageId"]
    assert record["body"] == '{"hello": "world"}'
    assert record["md5OfBody"] == hashlib.md5(b'{"hello": "world"}').hexdigest()
    assert record["md5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])
    assert record["messageAttributes"] == {
        "kind": {"stringValue": "segment", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "blob": {
            "binaryValue": base64.b64encode(b"\x00\x01").decode(),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Binary",
        },
    }
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == ("aws:sqs", arn, REGION)
    await eventually(lambda: source.stats.deleted == 1)
    assert queue_depth(sqs, url) == 0


async def test_partial_batch_failure_returns_only_the_failed_record(aws, running, moto_endpoint) -> None:
    sqs = aws("sqs")
    url, arn = create_queue(sqs, "partial", visibility=1)
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    calls = Calls()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.add(event)
        failed = [r["messageId"] for r in event["Records"] if r["body"] == "b" and len(calls.items) == 1]
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

    source = await running(sqs_source(url, arn, LocalFunction("fn", handler, timeout=1), moto_endpoint, pollers=1))

    first = await calls.next()
    retried = await calls.next(timeout=4)

    assert sorted(r["body"] for r in first["Records"]) == ["a", "b", "c"]
    assert [r["body"] for r in retried["Records"]] == ["b"]
    assert retried["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    await eventually(lambda: source.stats.deleted == 3)
    assert source.stats.partial_batches == 1
    assert queue_depth(sqs, url) == 0


@pytest.mark.parametrize(
    "response",
    [
        {"batchItemFailures": [{"itemIdentifier": "not-a-message-id"}]},
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"messageId": "bad key name"}]},
        "not an object",
    ],
)
async def test_unusable_batch_response_fails_the_whole_batch(aws, running, moto_endpoint, response) -> None:
    sqs = aws("sqs")
    url, arn = create_queue(sqs, "bad-response")
    calls = Calls()

    def handler(event: dict[str, Any], context: Any) -> Any:
        calls.add(event)
        return response

    source = await running(sqs_source(url, arn, LocalFunction("fn", handler), moto_endpoint))
    sqs.send_message(QueueUrl=url, MessageBody="x")
    await calls.next()

    await eventually(lambda: source.stats.failures == 1)
    assert source.stats.deleted == 0
    assert queue_depth(sqs, url) == 1


async def test_batch_response_is_ignored_without_report_batch_item_failures(aws, running, moto_endpoint) -> None:
    sqs = aws("sqs")
    url, arn = create_queue(sqs, "no-reporting")
    calls = Calls()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.add(event)
        return {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}

    source = await running(
        sqs_source(url, arn, LocalFunction("fn", handler), moto_endpoint, report_batch_item_failures=False)
    )
    sqs.send_message(QueueUrl=url, MessageBody="x")
    await calls.next()

    await eventually(lambda: source.stats.deleted == 1)
    assert queue_depth(sqs, url) == 0


async def test_batching_window_gathers_messages_into_one_invocation(aws, running, moto_endpoint) -> None:
    sqs = aws("sqs")
    url, arn = create_queue(sqs, "windowed")
    calls = Calls()
    source = sqs_source(
        url, arn, LocalFunction("fn", lambda e, c: calls.add(e)), moto_endpoint,
        pollers=1, batch_size=3, maximum_batching_window=2,
    )  # fmt: skip
    await running(source)

    for body in ("1", "2", "3"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
        await asyncio.sleep(0.15)
    event = await calls.next(timeout=3)

    assert sorted(r["body"] for r in event["Records"]) == ["1", "2", "3"]  # full batch: no wait for the window
    assert source.stats.invocations == 1


async def test_hurry_delivers_a_gathering_batch_without_waiting_out_the_window(aws, running, moto_endpoint) -> None:
    """Before a shutdown, a 30 s window must not hold the drain: ``hurry()`` delivers what was gathered now."""
    sqs = aws("sqs")
    url, arn = create_queue(sqs, "slow-window")
    calls = Calls()
    source = sqs_source(
        url, arn, LocalFunction("fn", lambda e, c: calls.add(e)), moto_endpoint,
        pollers=1, batch_size=100, maximum_batching_window=30,
    )  # fmt: skip
    await running(source)
    sqs.send_message(QueueUrl=url, MessageBody="gathered")
    await asyncio.sleep(0.5)
    assert source.stats.invocations == 0  # still inside the window
    started = time.monotonic()
    source.hurry()
    event = await calls.next(timeout=3)
    assert [r["body"] for r in event["Records"]] == ["gathered"] and time.monotonic() - started < 2.5


async def test_always_failing_record_ends_in_dlq_after_max_receive_count(aws, running, moto_endpoint) -> None:
    sqs = aws("sqs")
    dlq_url, dlq_arn = create_queue(sqs, "media-events-dlq")
    url, arn = create_queue(sqs, "media-events", visibility=1, dlq_arn=dlq_arn)
    calls = Calls()

    def handler(event: dict[str, Any], context: Any) -> None:
        calls.add(event["Records"][0]["attributes"]["ApproximateReceiveCount"])
        raise RuntimeError("poison")

    await running(sqs_source(url, arn, LocalFunction("fn", handler, timeout=1), moto_endpoint))
    sqs.send_message(QueueUrl=url, MessageBody="poison pill")

    dead: list[dict[str, Any]] = []
    deadline = time.monotonic() + 8
    while not dead and time.monotonic() < deadline:
        response = await asyncio.to_thread(sqs.receive_message, QueueUrl=dlq_url, WaitTimeSeconds=1)
        dead = response.get("Messages", [])

    assert [m["Body"] for m in dead] == ["poison pill"]
    assert calls.items == ["1", "2"]  # maxReceiveCount=2 deliveries, then SQS redrove it
    assert queue_depth(sqs, url) == 0


async def test_handler_errors_malformed_bodies_and_timeouts_never_kill_the_poller(aws, running, moto_endpoint) -> None:
    sqs = aws("sqs")
    url, arn = create_queue(sqs, "robust")
    delivered = Calls()

    def handler(event: dict[str, Any], context: Any) -> None:
        body = json.loads(event["Records"][0]["body"])  # "not json" raises here
        if body["action"] == "raise":
            raise KeyError("boom")
        if body["action"] == "hang":
            time.sleep(0.8)
        delivered.add(body["action"])

    function = LocalFunction("fn", handler, timeout=0.3)
    source = await running(sqs_source(url, arn, function, moto_endpoint, pollers=1, batch_size=1))
    for body in ('{"action": "raise"}', "not json", '{"action": "hang"}', '{"action": "good"}'):
        sqs.send_message(QueueUrl=url, MessageBody=body)

    assert await delivered.next(timeout=5) == "good"
    assert source.stats.failures == 3
    assert function.stats.timeouts == 1


async def test_poller_survives_endpoint_errors(aws, running, moto_endpoint) -> None:
    sqs = aws("sqs")
    url, arn = create_queue(sqs, "flaky")
    calls = Calls()
    source = await running(
        sqs_source(url, arn, LocalFunction("fn", lambda e, c: calls.add(e)), moto_endpoint, wait_time_seconds=1)
    )

    sqs.delete_queue(QueueUrl=url)  # every ReceiveMessage now fails with QueueDoesNotExist
    await eventually(lambda: source.stats.endpoint_errors >= 2)
    create_queue(sqs, "flaky")
    sqs.send_message(QueueUrl=url, MessageBody="after the outage")

    event = await calls.next(timeout=8)
    assert event["Records"][0]["body"] == "after the outage"


async def test_visibility_timeout_shorter_than_function_timeout_is_rejected(aws, moto_endpoint) -> None:
    sqs = aws("sqs")
    url, arn = create_queue(sqs, "short", visibility=2)
    source = sqs_source(url, arn, LocalFunction("fn", lambda e, c: None, timeout=5), moto_endpoint)

    with pytest.raises(ValueError, match="visibility timeout"):
        await source.start()
    assert not source.running


async def test_s3_put_reaches_handler_through_eventbridge_and_sqs(aws, running, moto_endpoint) -> None:
    sqs, s3, events = aws("sqs"), aws("s3"), aws("events")
    url, arn = create_queue(sqs, "media-events")
    s3.create_bucket(Bucket="media")
    s3.put_bucket_notification_configuration(Bucket="media", NotificationConfiguration={"EventBridgeConfiguration": {}})
    pattern = {"source": ["aws.s3"], "detail-type": ["Object Created"]}
    events.put_rule(Name="media-created", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="media-created", Targets=[{"Id": "queue", "Arn": arn}])
    calls = Calls()

    def handler(event: dict[str, Any], context: Any) -> None:
        now = time.perf_counter()
        for record in event["Records"]:
            calls.add((now, json.loads(record["body"])))

    await running(sqs_source(url, arn, LocalFunction("fn", handler), moto_endpoint))
    await asyncio.sleep(0.1)  # the pollers are long-polling before the first put

    latencies = []
    for index in range(30):
        key = f"live/s1/seg{index}.m4s"
        started = time.perf_counter()
        await asyncio.to_thread(s3.put_object, Bucket="media", Key=key, Body=b"x" * 1024)
        arrived, body = await calls.next()
        latencies.append((arrived - started) * 1000)
        assert (body["source"], body["detail-type"]) == ("aws.s3", "Object Created")
        assert body["detail"]["object"]["key"] == key

    p50 = statistics.median(latencies)
    print(f"\nS3 put -> EventBridge -> SQS -> handler: p50 {p50:.1f} ms, max {max(latencies):.1f} ms (n=30)")
    assert p50 <= 100


# --- DynamoDB Streams -----------------------------------------------------------------------------------


def create_streamed_table(dynamodb: Any, name: str = "media") -> str:
    description = dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return description["TableDescription"]["LatestStreamArn"]


def stream_source(stream_arn: str, function: LocalFunction, endpoint: str, **kwargs: Any) -> DynamoDbStreamEventSource:
    return DynamoDbStreamEventSource(stream_arn, function, endpoint_url=endpoint, **kwargs)


def keys_of(event: dict[str, Any]) -> list[str]:
    return [record["dynamodb"]["Keys"]["pk"]["S"] for record in event["Records"]]


async def test_item_writes_reach_stream_consumer_as_insert_modify_remove(aws, running, moto_endpoint) -> None:
    dynamodb = aws("dynamodb")
    stream_arn = create_streamed_table(dynamodb)
    calls = Calls()

    def handler(event: dict[str, Any], context: Any) -> None:
        for record in event["Records"]:
            calls.add(record)

    await running(stream_source(stream_arn, LocalFunction("fn", handler), moto_endpoint))
    dynamodb.put_item(TableName="media", Item={"pk": {"S": "s1"}, "state": {"S": "live"}, "raw": {"B": b"\x01"}})
    dynamodb.update_item(
        TableName="media",
        Key={"pk": {"S": "s1"}},
        UpdateExpression="SET #s = :ended",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":ended": {"S": "ended"}},
    )
    dynamodb.delete_item(TableName="media", Key={"pk": {"S": "s1"}})

    insert, modify, remove = [await calls.next() for _ in range(3)]

    assert [r["eventName"] for r in (insert, modify, remove)] == ["INSERT", "MODIFY", "REMOVE"]
    assert list(insert) == [
        "eventID",
        "eventName",
        "eventVersion",
        "eventSource",
        "awsRegion",
        "dynamodb",
        "eventSourceARN",
    ]
    assert (insert["eventSource"], insert["eventSourceARN"], insert["awsRegion"]) == (
        "aws:dynamodb",
        stream_arn,
        REGION,
    )
    assert insert["dynamodb"]["Keys"] == {"pk": {"S": "s1"}}
    assert insert["dynamodb"]["NewImage"] == {"pk": {"S": "s1"}, "state": {"S": "live"}, "raw": {"B": "AQ=="}}
    assert "OldImage" not in insert["dynamodb"]
    assert modify["dynamodb"]["OldImage"]["state"] == {"S": "live"}
    assert modify["dynamodb"]["NewImage"]["state"] == {"S": "ended"}
    assert remove["dynamodb"]["OldImage"]["state"] == {"S": "ended"}
    assert "NewImage" not in remove["dynamodb"]
    sequence_numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in (insert, modify, remove)]
    assert sequence_numbers == sorted(sequence_numbers)
    assert abs(insert["dynamodb"]["ApproximateCreationDateTime"] - time.time()) < 60
    assert insert["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert insert["dynamodb"]["SizeBytes"] > 0


async def test_stream_filter_criteria_and_batching_window(aws, running, moto_endpoint) -> None:
    """Records matching no FilterCriteria pattern are never delivered; the matching ones written over ~0.6 s
    arrive as one batch once the 1 s window has passed."""
    dynamodb = aws("dynamodb")
    stream_arn = create_streamed_table(dynamodb)
    calls = Calls()
    pattern = json.dumps({"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "SUB#"}]}}}})
    source = stream_source(
        stream_arn, LocalFunction("fn", lambda e, c: calls.add((time.monotonic(), e))), moto_endpoint,
        filter_patterns=(pattern,), maximum_batching_window=1.0,
    )  # fmt: skip
    await running(source)
    started = time.monotonic()
    for key in ("SUB#a", "CONN#x", "SUB#b", "CHAT#y", "SUB#c"):
        dynamodb.put_item(TableName="media", Item={"pk": {"S": key}})
        await asyncio.sleep(0.15)
    delivered_at, event = await calls.next(timeout=5)
    assert keys_of(event) == ["SUB#a", "SUB#b", "SUB#c"]
    assert delivered_at - started >= 0.95  # the window, counted from the first buffered record
    await asyncio.sleep(0.3)
    assert source.stats.invocations == 1 and source.stats.filtered == 2


async def test_a_batching_stream_source_reads_a_busy_shard_four_times_a_second(aws, running, moto_endpoint) -> None:
    """With a batching window the shard is read at Lambda's rate (every 0.25 s), not every 40 ms, however busy the
    table; the window's batch still holds every record (the source without a window reads ~25 times a second)."""
    dynamodb = aws("dynamodb")
    stream_arn = create_streamed_table(dynamodb)
    calls = Calls()
    windowed = stream_source(
        stream_arn, LocalFunction("fn", lambda e, c: calls.add(e)), moto_endpoint, maximum_batching_window=1.5
    )
    eager = stream_source(stream_arn, LocalFunction("fn2", lambda e, c: None), moto_endpoint)
    reads = {windowed: 0, eager: 0}
    for source in reads:
        await running(source)

        def count(*_: Any, _source: DynamoDbStreamEventSource = source, **__: Any) -> None:
            reads[_source] += 1

        source.client.meta.events.register("before-call.dynamodb-streams.GetRecords", count)
    started = time.monotonic()
    for index in range(50):  # 50 writes over ~1 s
        await asyncio.to_thread(dynamodb.put_item, TableName="media", Item={"pk": {"S": f"k{index:02d}"}})
        await asyncio.sleep(max(0.0, started + (index + 1) * 0.02 - time.monotonic()))
    event = await calls.next(timeout=5)
    elapsed = time.monotonic() - started
    assert keys_of(event) == [f"k{index:02d}" for index in range(50)]
    assert reads[windowed] <= elapsed / 0.25 + 2, (reads, elapsed)
    assert reads[eager] > 2 * reads[windowed], reads


async def test_failing_stream_batch_is_retried_in_order_then_skipped(aws, running, moto_endpoint) -> None:
    dynamodb, sqs = aws("dynamodb"), aws("sqs")
    stream_arn = create_streamed_table(dynamodb)
    failure_url, _ = create_queue(sqs, "stream-failures")
    calls = Calls()

    def handler(event: dict[str, Any], context: Any) -> None:
        calls.add(keys_of(event))
        if "bad" in keys_of(event):
            raise ValueError("cannot process")

    source = await running(
        stream_source(
            stream_arn, LocalFunction("fn", handler), moto_endpoint,
            batch_size=1, maximum_retry_attempts=2, on_failure_queue_url=failure_url,
        )
    )  # fmt: skip
    for key in ("bad", "good"):
        dynamodb.put_item(TableName="media", Item={"pk": {"S": key}})

    assert [await calls.next() for _ in range(4)] == [["bad"], ["bad"], ["bad"], ["good"]]
    await eventually(lambda: source.stats.on_failure_sent == 1)
    [message] = sqs.receive_message(QueueUrl=failure_url)["Messages"]
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["responseContext"]["functionError"] == "Unhandled"
    info = record["DDBStreamBatchInfo"]
    assert (info["batchSize"], info["streamArn"]) == (1, stream_arn)
    assert info["startSequenceNumber"] == info["endSequenceNumber"]
    assert source.stats.discarded_records == 1


async def test_partial_stream_failure_checkpoints_at_the_failed_record(aws, running, moto_endpoint) -> None:
    dynamodb = aws("dynamodb")
    stream_arn = create_streamed_table(dynamodb)
    for key in ("k1", "k2", "k3"):
        dynamodb.put_item(TableName="media", Item={"pk": {"S": key}})
    calls = Calls()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.add(keys_of(event))
        if len(calls.items) > 1:
            return {"batchItemFailures": []}
        second = event["Records"][1]["dynamodb"]["SequenceNumber"]
        return {"batchItemFailures": [{"itemIdentifier": second}]}

    await running(
        stream_source(stream_arn, LocalFunction("fn", handler), moto_endpoint, starting_position="TRIM_HORIZON")
    )

    assert await calls.next() == ["k1", "k2", "k3"]
    assert await calls.next() == ["k2", "k3"]
    await asyncio.sleep(0.2)
    assert len(calls.items) == 2


async def test_bisect_on_function_error_isolates_the_bad_record(aws, running, moto_endpoint) -> None:
    dynamodb = aws("dynamodb")
    stream_arn = create_streamed_table(dynamodb)
    for key in ("a", "b", "bad", "d"):
        dynamodb.put_item(TableName="media", Item={"pk": {"S": key}})
    calls = Calls()

    def handler(event: dict[str, Any], context: Any) -> None:
        calls.add(keys_of(event))
        if "bad" in keys_of(event):
            raise ValueError("bad record")

    await running(
        stream_source(
            stream_arn, LocalFunction("fn", handler), moto_endpoint,
            starting_position="TRIM_HORIZON", bisect_on_function_error=True, maximum_retry_attempts=0,
        )
    )  # fmt: skip

    batches = [await calls.next() for _ in range(5)]
    assert batches == [["a", "b", "bad", "d"], ["a", "b"], ["bad", "d"], ["bad"], ["d"]]


async def test_stream_put_to_handler_latency(aws, running, moto_endpoint) -> None:
    dynamodb = aws("dynamodb")
    stream_arn = create_streamed_table(dynamodb)
    calls = Calls()

    def handler(event: dict[str, Any], context: Any) -> None:
        now = time.perf_counter()
        for key in keys_of(event):
            calls.add((now, key))

    await running(stream_source(stream_arn, LocalFunction("fn", handler), moto_endpoint))

    latencies = []
    for index in range(20):
        await asyncio.sleep(random.uniform(0, 0.05))  # writes land at random points of the poll cycle
        started = time.perf_counter()
        await asyncio.to_thread(dynamodb.put_item, TableName="media", Item={"pk": {"S": f"k{index}"}})
        arrived, key = await calls.next()
        assert key == f"k{index}"
        latencies.append((arrived - started) * 1000)

    p50 = statistics.median(latencies)
    print(f"\nDynamoDB put -> stream -> handler: p50 {p50:.1f} ms, max {max(latencies):.1f} ms (n=20)")
    assert p50 <= 100


async def test_stream_consumer_recovers_when_its_iterator_disappears(aws, running, moto_endpoint) -> None:
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    dynamodb = aws("dynamodb")
    stream_arn = create_streamed_table(dynamodb)
    calls = Calls()
    source = await running(
        stream_source(stream_arn, LocalFunction("fn", lambda e, c: calls.add(keys_of(e))), moto_endpoint)
    )
    dynamodb.put_item(TableName="media", Item={"pk": {"S": "before"}})
    assert await calls.next() == ["before"]

    dynamodbstreams_backends["123456789012"][REGION].shard_iterators.clear()  # as if they had expired
    await eventually(lambda: source.stats.endpoint_errors >= 1)
    dynamodb.put_item(TableName="media", Item={"pk": {"S": "after"}})

    assert await calls.next() == ["after"]  # resumed after the last record read: no replay, no gap
    await asyncio.sleep(0.2)
    assert calls.items == [["before"], ["after"]]


# --- TTL ------------------------------------------------------------------------------------------------


async def test_ttl_sweeper_deletes_expired_items_and_keeps_the_rest(aws, running, moto_endpoint) -> None:
    dynamodb = aws("dynamodb")
    stream_arn = create_streamed_table(dynamodb, "sessions")
    now = int(time.time())
    items = {
        "expired": {"N": str(now - 10)},
        "future": {"N": str(now + 3600)},
        "text-ttl": {"S": str(now - 10)},  # not a Number: DynamoDB ignores it
        "ancient": {"N": str(now - 6 * 365 * 24 * 3600)},  # over five years old: ignored too
    }
    for key, ttl in items.items():
        dynamodb.put_item(TableName="sessions", Item={"pk": {"S": key}, "expires_at": ttl})
    dynamodb.put_item(TableName="sessions", Item={"pk": {"S": "no-ttl"}})
    removed = Calls()

    def on_stream(event: dict[str, Any], context: Any) -> None:
        for record in event["Records"]:
            removed.add((record["eventName"], record["dynamodb"]["OldImage"]["pk"]["S"]))

    await running(stream_source(stream_arn, LocalFunction("fn", on_stream), moto_endpoint))
    sweeper = await running(TtlSweeper("sessions", "expires_at", interval=60, endpoint_url=moto_endpoint))

    assert await removed.next() == ("REMOVE", "expired")
    remaining = {item["pk"]["S"] for item in dynamodb.scan(TableName="sessions")["Items"]}
    assert remaining == {"future", "text-ttl", "ancient", "no-ttl"}
    assert sweeper.stats.expired == 1


async def test_ttl_sweeper_keeps_an_item_whose_ttl_was_extended(aws, running, moto_endpoint) -> None:
    dynamodb = aws("dynamodb")
    create_streamed_table(dynamodb, "sessions")
    now = int(time.time())
    dynamodb.put_item(TableName="sessions", Item={"pk": {"S": "s"}, "expires_at": {"N": str(now + 3600)}})
    sweeper = await running(TtlSweeper("sessions", "expires_at", interval=60, endpoint_url=moto_endpoint))

    # As if a scan had seen the item expired just before its TTL was extended:
    assert await sweeper.expire({"pk": {"S": "s"}}, now) is False

    assert "Item" in dynamodb.get_item(TableName="sessions", Key={"pk": {"S": "s"}})
    assert sweeper.stats.kept == 1


# --- stop() ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqs-long-poll", "sqs-busy-handler", "stream", "ttl"])
async def test_stop_is_prompt(aws, moto_endpoint, kind) -> None:
    sqs, dynamodb = aws("sqs"), aws("dynamodb")
    url, arn = create_queue(sqs, "q")
    stream_arn = create_streamed_table(dynamodb)
    busy = Calls()

    def slow(event: Any, context: Any) -> None:
        busy.add(1)
        time.sleep(3)

    sources: dict[str, Callable[[], EventSource]] = {
        "sqs-long-poll": lambda: sqs_source(url, arn, LocalFunction("fn", slow), moto_endpoint),
        "sqs-busy-handler": lambda: sqs_source(url, arn, LocalFunction("fn", slow, timeout=5), moto_endpoint),
        "stream": lambda: stream_source(stream_arn, LocalFunction("fn", slow), moto_endpoint),
        "ttl": lambda: TtlSweeper("media", "expires_at", endpoint_url=moto_endpoint),
    }
    source = sources[kind]()
    await source.start()
    if kind == "sqs-busy-handler":
        sqs.send_message(QueueUrl=url, MessageBody="takes 3 s")
        await busy.next()
    await asyncio.sleep(0.2)

    started = time.monotonic()
    await source.stop()

    assert time.monotonic() - started < 1.0
    assert not source.running
