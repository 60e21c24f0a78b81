"""The embedded moto child: starts on a free port, serves only local SDK clients, expires shard iterators, keeps
connections alive, parks stream-change waits, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from devstack import moto_tuning
from devstack.event_sources import DynamoDbStreamEventSource
from devstack.lambda_runtime import LocalFunction
from devstack.moto_process import LocalClientsOnly, expire_shard_iterators
from devstack.moto_tuning import FILTER_HEADER as FILTER
from devstack.moto_tuning import STREAM_CHANGES_PATH


@pytest.fixture(scope="module")
def child() -> Iterator[str]:
    """``python -m devstack.moto_process --port 0`` as ``capturestream up`` runs it; its endpoint URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.moto_process", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        yield f"http://127.0.0.1:{json.loads(process.stdout.readline())['port']}"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def _status(url: str, method: str = "GET", **headers: str) -> int:
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_child_serves_sdk_clients_and_presigned_urls(child: str) -> None:
    s3 = boto3.client("s3", endpoint_url=child)
    s3.create_bucket(Bucket="spill-test")
    s3.put_object(Bucket="spill-test", Key="k", Body=b"x" * 100_000)  # above the spill size: lands in a temp file
    assert s3.get_object(Bucket="spill-test", Key="k")["Body"].read() == b"x" * 100_000
    by_name = boto3.client("s3", endpoint_url=child.replace("127.0.0.1", "localhost"))
    assert by_name.head_object(Bucket="spill-test", Key="k")["ContentLength"] == 100_000
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "spill-test", "Key": "k"}, ExpiresIn=60)
    with urllib.request.urlopen(url, timeout=10) as response:
        assert len(response.read()) == 100_000


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},  # a "simple" cross-site form/fetch POST: no preflight
        {"Origin": "null"},  # sandboxed iframe, file://
        {"Sec-Fetch-Site": "cross-site"},  # no-cors requests from another site
        {"Sec-Fetch-Site": "same-site"},  # another port of localhost
    ],
)
def test_a_web_page_cannot_reset_the_stack(child: str, headers: dict[str, str]) -> None:
    s3 = boto3.client("s3", endpoint_url=child)
    s3.create_bucket(Bucket="survivor")
    assert _status(f"{child}/moto-api/reset", "POST", **headers) == 403
    assert _status(f"{child}/moto-api/data.json", **headers) == 403
    assert "survivor" in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_a_rebound_host_name_is_refused(child: str) -> None:
    port = child.rsplit(":", 1)[1]
    boto3.client("s3", endpoint_url=child).create_bucket(Bucket="media")
    assert _status(f"{child}/", Host=f"evil.example:{port}") == 403  # DNS rebinding: the page's own name
    assert _status(f"{child}/", Host="127.0.0.1:1") == 403  # not this server's port
    assert _status(f"{child}/", Host=f"media.localhost:{port}") == 200  # S3 virtual-hosted style stays usable


def _environ(host: str = "127.0.0.1:4566", server: str = "127.0.0.1", **headers: str) -> dict[str, str]:
    environ = {"SERVER_NAME": server, "SERVER_PORT": "4566", "HTTP_HOST": host}
    return environ | {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}


@pytest.mark.parametrize(
    ("environ", "allowed"),
    [
        (_environ(), True),
        (_environ("LOCALHOST:4566"), True),
        (_environ("bucket.localhost:4566"), True),
        (_environ("[::1]:4566", server="::1"), True),
        (_environ("127.0.0.2:4566"), True),  # all of 127/8 is loopback
        (_environ("192.168.1.5:4566", server="192.168.1.5"), True),  # bound to a LAN address on purpose
        (_environ(**{"Sec-Fetch-Site": "same-origin"}), True),  # moto's own dashboard
        (_environ(**{"Sec-Fetch-Site": "none"}), True),  # typed into the address bar
        (_environ("192.168.1.5:4566", server="0.0.0.0"), False),  # a wildcard bind names no host
        (_environ("evil.example:4566"), False),
        (_environ("localhost.evil.example:4566"), False),
        (_environ("127.0.0.1"), False),  # port 80 implied
        (_environ("127.0.0.1:4566/x"), False),
        (_environ("127.0.0.1:port"), False),
        (_environ(""), False),
        (_environ(Origin="http://127.0.0.1:8000"), False),  # even the local web app: it never calls AWS directly
    ],
)
def test_local_clients_only(environ: dict[str, str], allowed: bool) -> None:
    assert LocalClientsOnly.allows(environ) is allowed


def test_moto_global_cors_is_off() -> None:
    """Defence in depth behind the 403: moto's flask-cors would otherwise echo any Origin back."""
    script = textwrap.dedent(
        """
        from devstack.moto_process import configure_moto
        configure_moto()
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.test import Client
        client = Client(DomainDispatcherApplication(create_backend_app))
        response = client.get("/moto-api/data.json", headers={"Origin": "http://evil.example"})
        print(response.status_code, response.headers.get("Access-Control-Allow-Origin"))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.split() == ["200", "None"]


def test_shard_iterators_expire(moto_endpoint: str) -> None:
    """moto would keep every iterator forever; the expiry thread bounds them (and a consumer can re-ask)."""
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint)
    dynamodb.create_table(
        TableName="t",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    arn = dynamodb.describe_table(TableName="t")["Table"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams", endpoint_url=moto_endpoint)
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    iterator = iterator["ShardIterator"]
    for _ in range(20):
        iterator = streams.get_records(ShardIterator=iterator)["NextShardIterator"]
    backend = dynamodbstreams_backends["123456789012"]["us-east-1"]
    assert len(backend.shard_iterators) >= 20
    stop = threading.Event()
    thread = threading.Thread(target=expire_shard_iterators, args=(stop, 0.3), daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while backend.shard_iterators and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    assert not backend.shard_iterators
    fresh = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")["ShardIterator"]
    assert streams.get_records(ShardIterator=fresh)["Records"] == []


def _streamed_table(child: str, name: str) -> tuple[Any, str]:
    dynamodb = boto3.client("dynamodb", endpoint_url=child)
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    return dynamodb, dynamodb.describe_table(TableName=name)["Table"]["LatestStreamArn"]


def _changes(connection: http.client.HTTPConnection, after: int, timeout: float) -> int:
    connection.request("GET", f"{STREAM_CHANGES_PATH}?after={after}&timeout={timeout}")
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Connection") is None  # kept alive
    return json.loads(response.read())["version"]


def test_connections_are_kept_alive_even_when_a_body_is_left_unread(child: str) -> None:
    """werkzeug closed every connection; the child keeps them, and skips a body the application did not read."""
    connection = http.client.HTTPConnection(*child.removeprefix("http://").split(":"), timeout=10)
    _changes(connection, -1, 0)
    connection.request("PUT", "/bucket/key", body=b"x" * 5000, headers={"Origin": "http://evil.example"})
    refused = connection.getresponse()
    assert refused.status == 403 and refused.getheader("Connection") is None
    refused.read()
    local_port = connection.sock.getsockname()[1]
    _changes(connection, -1, 0)  # the next request on the same socket parses cleanly
    assert connection.sock.getsockname()[1] == local_port
    connection.close()


def test_a_parked_stream_change_wait_returns_when_a_record_is_stored(child: str) -> None:
    dynamodb, _ = _streamed_table(child, "parked")
    connection = http.client.HTTPConnection(*child.removeprefix("http://").split(":"), timeout=20)
    before = _changes(connection, -1, 0)
    timer = threading.Timer(0.3, lambda: dynamodb.put_item(TableName="parked", Item={"pk": {"S": "a"}}))
    started = time.monotonic()
    timer.start()
    assert _changes(connection, before, 10) > before
    assert 0.25 < time.monotonic() - started < 5  # woken by the write, not by the timeout
    assert _changes(connection, before + 100, 0.2) == before + 1  # nothing new: answered at the timeout


async def test_an_idle_stream_source_waits_for_writes_instead_of_polling(child: str) -> None:
    dynamodb, stream_arn = _streamed_table(child, "idle")
    delivered: asyncio.Queue[float] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    function = LocalFunction("fn", lambda e, c: loop.call_soon_threadsafe(delivered.put_nowait, time.monotonic()))
    source = DynamoDbStreamEventSource(stream_arn, function, endpoint_url=child)
    await source.start()
    try:
        reads: list[str] = []
        source.client.meta.events.register("before-call.dynamodb-streams.GetRecords", lambda **_: reads.append("r"))
        await asyncio.sleep(2.0)
        assert len(reads) <= 1  # polling read 25 times a second here
        written = time.monotonic()
        await asyncio.to_thread(dynamodb.put_item, TableName="idle", Item={"pk": {"S": "a"}})
        assert await asyncio.wait_for(delivered.get(), 5) - written < 0.5
    finally:
        await source.stop()


def test_request_costs_are_written_at_stop_when_asked_for(tmp_path: Any) -> None:
    """DEVSTACK_MOTO_COSTS: requests and server-thread CPU per kind (JSON target, else S3 method and object/bucket),
    written when the child stops; nothing is measured without it."""
    report = tmp_path / "costs.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.moto_process", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "DEVSTACK_MOTO_COSTS": str(report)},
    )
    try:
        endpoint = f"http://127.0.0.1:{json.loads(process.stdout.readline())['port']}"
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="costs")
        for index in range(3):
            s3.put_object(Bucket="costs", Key=f"live/{index}", Body=b"x")
        s3.list_objects_v2(Bucket="costs")
        boto3.client("sqs", endpoint_url=endpoint).create_queue(QueueName="costs")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    costs = json.loads(report.read_text())
    assert costs["S3 PUT object"]["requests"] == 3 and costs["S3 PUT object"]["cpu_s"] > 0
    assert costs["S3 GET bucket ?encoding-type&list-type"]["requests"] == 1
    assert costs["AmazonSQS.CreateQueue"]["requests"] == 1


def test_get_records_answers_the_json_motos_serializer_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The json.dumps answer (moto_tuning.get_records_json) is the same JSON document as moto's model-driven
    serializer's, for every attribute type, INSERT/MODIFY/REMOVE and an empty read (errors are raised by the same
    backend call as before)."""
    from moto import mock_aws
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    bodies: list[Any] = []

    def keep_body(response_dict: dict[str, Any], **_: Any) -> None:
        bodies.append(json.loads(response_dict["body"]))

    def read_all(streams: Any, arn: str) -> tuple[Any, Any]:
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
        records = streams.get_records(ShardIterator=iterator["ShardIterator"])
        empty = streams.get_records(ShardIterator=records["NextShardIterator"])
        for body in bodies[-2:]:
            body.pop("NextShardIterator")  # a fresh random id each time
        return bodies[-2:], (records["Records"], empty["Records"])

    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        arn = dynamodb.describe_table(TableName="t")["Table"]["LatestStreamArn"]
        key = {"pk": {"S": "a"}, "sk": {"S": "b"}}
        item = {"n": {"N": "1.50"}, "b": {"B": b"\x00\xff"}, "bs": {"BS": [b"\x02", b"\x03"]}, "ss": {"SS": ["p"]},
                "ns": {"NS": ["1", "2"]}, "t": {"BOOL": True}, "z": {"NULL": True},
                "l": {"L": [{"S": "x"}, {"B": b"\x01"}, {"M": {"k": {"N": "2"}}}]},
                "m": {"M": {"deep": {"L": [{"BS": [b"\x04"]}]}, "s": {"S": "é"}}}}  # fmt: skip
        dynamodb.put_item(TableName="t", Item={**key, **item})
        dynamodb.update_item(
            TableName="t", Key=key, UpdateExpression="SET n = :v", ExpressionAttributeValues={":v": {"N": "3"}}
        )
        dynamodb.delete_item(TableName="t", Key=key)
        streams = boto3.client("dynamodbstreams", region_name="us-east-1")
        streams.meta.events.register("response-received.dynamodbstreams.GetRecords", keep_body)
        motos, motos_parsed = read_all(streams, arn)
        calls: list[int] = []

        def counted(handler: Any) -> Any:
            calls.append(1)
            return moto_tuning.get_records_json(handler)

        monkeypatch.setattr(DynamoDBStreamsHandler, "get_records", counted)
        ours, ours_parsed = read_all(streams, arn)
    assert len(calls) == 2 and [len(body["Records"]) for body in ours] == [3, 0]
    assert ours == motos
    assert ours_parsed == motos_parsed


def test_put_object_without_tags_sends_no_tags_added_event(child: str) -> None:
    """S3 sends EventBridge 'Object Created' for a PutObject and 'Object Tags Added' only for tags set; moto sent
    both for every PutObject (the child no longer does for an untagged one)."""
    s3, events, sqs = (boto3.client(name, endpoint_url=child) for name in ("s3", "events", "sqs"))
    s3.create_bucket(Bucket="tagged-events")
    s3.put_bucket_notification_configuration(
        Bucket="tagged-events", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    queues = {}
    for detail_type in ("Object Created", "Object Tags Added"):
        name = detail_type.replace(" ", "-").lower()
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        pattern = {
            "source": ["aws.s3"],
            "detail-type": [detail_type],
            "detail": {"bucket": {"name": ["tagged-events"]}},
        }
        events.put_rule(Name=name, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])
        queues[detail_type] = url

    def keys(detail_type: str) -> list[str]:
        found = sqs.receive_message(QueueUrl=queues[detail_type], MaxNumberOfMessages=10, WaitTimeSeconds=0)
        return sorted(json.loads(m["Body"])["detail"]["object"]["key"] for m in found.get("Messages", []))

    s3.put_object(Bucket="tagged-events", Key="plain", Body=b"x")
    s3.put_object(Bucket="tagged-events", Key="tagged", Body=b"x", Tagging="a=1")
    s3.put_object_tagging(Bucket="tagged-events", Key="plain", Tagging={"TagSet": [{"Key": "b", "Value": "2"}]})
    assert keys("Object Created") == ["plain", "tagged"]
    assert keys("Object Tags Added") == ["plain", "tagged"]  # PutObjectTagging; a PutObject with tags as before
    assert s3.get_object_tagging(Bucket="tagged-events", Key="tagged")["TagSet"] == [{"Key": "a", "Value": "1"}]


def test_update_expressions_parsed_once_still_apply_to_each_item(child: str) -> None:
    """The cached UpdateExpression parse: the same text with other values and items, and a broken one still
    refused every time."""
    dynamodb = boto3.client("dynamodb", endpoint_url=child)
    dynamodb.create_table(
        TableName="cached-updates",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    update = "SET #n = if_not_exists(#n, :zero) + :one, #tag = :tag"
    for pk, one in (("a", "1"), ("b", "5"), ("a", "2")):
        dynamodb.update_item(
            TableName="cached-updates",
            Key={"pk": {"S": pk}},
            UpdateExpression=update,
            ExpressionAttributeNames={"#n": "n", "#tag": "tag"},
            ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": one}, ":tag": {"S": f"{pk}{one}"}},
        )
    items = {i["pk"]["S"]: i for i in dynamodb.scan(TableName="cached-updates")["Items"]}
    assert (items["a"]["n"], items["a"]["tag"]) == ({"N": "3"}, {"S": "a2"})
    assert (items["b"]["n"], items["b"]["tag"]) == ({"N": "5"}, {"S": "b5"})
    for _ in range(2):
        with pytest.raises(dynamodb.exceptions.ClientError, match="ValidationException"):
            dynamodb.update_item(TableName="cached-updates", Key={"pk": {"S": "a"}}, UpdateExpression="SET = :x")


async def test_the_child_leaves_out_stream_records_a_consumers_patterns_drop(child: str) -> None:
    """A stream source sends its FilterCriteria with GetRecords; the child answers with the matching records only,
    counts the others (stats.filtered) and names the last sequence number it read, so a consumer that re-acquires
    its iterator after a failure starts after the records it never saw."""
    dynamodb, stream_arn = _streamed_table(child, "filtered")
    pattern = '{"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "keep"}]}}}}'
    delivered: list[str] = []
    function = LocalFunction(
        "fn", lambda e, c: delivered.extend(r["dynamodb"]["Keys"]["pk"]["S"] for r in e["Records"])
    )
    source = DynamoDbStreamEventSource(stream_arn, function, endpoint_url=child, filter_patterns=(pattern,))
    await source.start()
    received: list[str] = []

    def on_read(parsed: dict[str, Any], **_: Any) -> None:
        received.extend(record["dynamodb"]["Keys"]["pk"]["S"] for record in parsed.get("Records", []))

    source.client.meta.events.register("after-call.dynamodb-streams.GetRecords", on_read)
    try:
        for pk in ("drop-1", "keep-1", "drop-2", "drop-3", "keep-2", "drop-4"):
            await asyncio.to_thread(dynamodb.put_item, TableName="filtered", Item={"pk": {"S": pk}})
        for _ in range(100):
            if len(delivered) == 2 and source.stats.filtered == 4:
                break
            await asyncio.sleep(0.05)
    finally:
        await source.stop()
    assert delivered == ["keep-1", "keep-2"] and source.stats.filtered == 4
    assert received == ["keep-1", "keep-2"]  # the others never left the child

    streams = boto3.client("dynamodbstreams", endpoint_url=child)
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    start = {"StreamArn": stream_arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}
    everything = streams.get_records(ShardIterator=streams.get_shard_iterator(**start)["ShardIterator"])["Records"]

    def no_patterns(request: Any, **_: Any) -> None:
        request.headers[FILTER] = "[]"

    streams.meta.events.register("before-sign.dynamodb-streams.GetRecords", no_patterns)
    answer = streams.get_records(ShardIterator=streams.get_shard_iterator(**start)["ShardIterator"])
    headers = answer["ResponseMetadata"]["HTTPHeaders"]
    assert len(answer["Records"]) == 6 and headers["x-devstack-filtered"] == "0"  # no pattern: every record
    assert headers["x-devstack-last-sequence"] == everything[-1]["dynamodb"]["SequenceNumber"]


def test_sends_skip_building_queue_attributes_but_queues_behave_the_same(child: str) -> None:
    """A standard queue's SendMessage no longer builds its attributes: messages, counts and GetQueueAttributes are
    as before; a FIFO queue with content-based deduplication still drops a duplicate body."""
    sqs = boto3.client("sqs", endpoint_url=child)
    standard = sqs.create_queue(QueueName="plain-sends")["QueueUrl"]
    for index in range(3):
        sqs.send_message(QueueUrl=standard, MessageBody=f"m{index}")
    sqs.send_message_batch(QueueUrl=standard, Entries=[{"Id": "a", "MessageBody": "m3"}])
    attributes = sqs.get_queue_attributes(QueueUrl=standard, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "4" and "QueueArn" in attributes
    assert "ContentBasedDeduplication" not in attributes
    received = sqs.receive_message(QueueUrl=standard, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in received) == ["m0", "m1", "m2", "m3"]
    fifo = sqs.create_queue(
        QueueName="dedup.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    for _ in range(2):
        sqs.send_message(QueueUrl=fifo, MessageBody="same", MessageGroupId="g")
    assert (
        sqs.get_queue_attributes(QueueUrl=fifo, AttributeNames=["All"])["Attributes"]["ContentBasedDeduplication"]
        == "true"
    )
    assert len(sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10)["Messages"]) == 1


_METADATA_AT_EVENT = textwrap.dedent(
    """
    import sys
    from devstack.moto_process import configure_moto
    configure_moto()
    import boto3
    from moto import mock_aws
    from moto.s3 import notifications
    from devstack.moto_tuning import StreamChanges, patch_moto
    if sys.argv[1] == "patched":
        patch_moto(StreamChanges())
    send_event = notifications.send_event
    def record(account_id, event_name, bucket, key):
        # the moment moto has stored the key, the moment a concurrent GET can read it
        print(key.metadata.get("Content-Type"), key.metadata.get("x-amz-meta-stream"))
        send_event(account_id, event_name, bucket, key)
    notifications.send_event = record
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="metadata-race")
        s3.put_object(Bucket="metadata-race", Key="k", Body=b"x", ContentType="video/mp4", Metadata={"stream": "s1"})
        head = s3.head_object(Bucket="metadata-race", Key="k")
        print(head["ContentType"], head["Metadata"]["stream"])
    """
)


@pytest.mark.parametrize(("mode", "at_event"), [("moto", "binary/octet-stream None"), ("patched", "video/mp4 s1")])
def test_a_put_objects_key_carries_its_metadata_from_when_it_is_stored(mode: str, at_event: str) -> None:
    """moto stores a PutObject's key and sends its events before it sets the request's metadata: a GET in between
    (the CDN edge, a function the event woke) read 'binary/octet-stream'. The child's keys have it from the start;
    moto's own order is pinned too, so the test shows what it guards (and fails if the patch stops applying)."""
    result = subprocess.run(
        [sys.executable, "-c", _METADATA_AT_EVENT, mode], capture_output=True, text=True, timeout=60, check=True
    )
    lines = result.stdout.splitlines()  # the 'Object Created' event first (moto also sends 'Object Tags Added')
    assert (lines[0], lines[-1]) == (at_event, "video/mp4 s1")
