"""The embedded moto child: starts on a free port, expires shard iterators, stops on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import boto3

from devstack.moto_process import expire_shard_iterators


def test_child_reports_its_port_serves_s3_and_stops_on_sigterm() -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "devstack.moto_process", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        port = json.loads(child.stdout.readline())["port"]
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}")
        s3.create_bucket(Bucket="spill-test")
        s3.put_object(Bucket="spill-test", Key="k", Body=b"x" * 100_000)  # above the spill size: lands in a temp file
        assert s3.get_object(Bucket="spill-test", Key="k")["Body"].read() == b"x" * 100_000
    finally:
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=10) == 0


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
