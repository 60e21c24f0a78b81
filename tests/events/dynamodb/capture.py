"""Regenerate ``moto_notifier_batch.json``: a Lambda DynamoDB Streams event captured from moto.

Run from the repository root::

    .venv/bin/python tests/events/dynamodb/capture.py

It starts ``ThreadedMotoServer(port=0)``, creates the media table exactly as template.yaml declares it, performs
the writes the functions perform in one broadcast's life (the catalog's started / reconnecting / ended updates of
the stream item, the notifier's viewer-count write, two subscriptions and one removal, a chat message, a
segment update of the session item, a connection item), reads the stream with GetRecords and shapes every record
with :func:`devstack.event_sources.stream_records.stream_record` — what the devstack poller hands the notifier.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3

sys.path[:0] = ["core", "."]

from capturestream import catalog, keys, table  # noqa: E402
from capturestream.chat import ChatEntry  # noqa: E402
from capturestream.models import SessionManifestBody  # noqa: E402
from devstack.event_sources.stream_records import stream_record  # noqa: E402
from tests.support.aws import create_media_table  # noqa: E402

HERE = Path(__file__).parent
TABLE = "capturestream-MediaTable"
BODY = {
    "channel_id": "abcdefghijkl",
    "playback_id": "pb1",
    "session_id": "20261125T150000Z-a1",
    "started_at": "2026-11-25T15:00:00+00:00",
    "title": "Speedrun",
    "media": {"video_codec": "avc1.64001f", "width": 1280, "height": 720},
}


def _writes(dynamodb) -> None:  # noqa: ANN001
    def update(args: dict) -> None:
        dynamodb.update_item(TableName=TABLE, **args)

    started = SessionManifestBody.model_validate(BODY)
    update(catalog.stream_update(started, keys.ManifestKind.STARTED))  # INSERT stream: streamLive
    for connection, viewer in (("C1=", "anon:a"), ("C2=", "anon:b")):
        dynamodb.put_item(TableName=TABLE, Item=table.connection_to_item({"connection_id": connection}))
        dynamodb.put_item(TableName=TABLE, Item=table.subscription_to_item("pb1", connection, viewer, 2_000_000_000))
    update({"Key": table.stream_key("pb1"), "UpdateExpression": "SET viewer_count = :n",
            "ExpressionAttributeValues": {":n": {"N": "2"}}})  # fmt: skip  # count only: nothing to say
    segment = keys.LiveSegment(playback_id="pb1", session_id=BODY["session_id"], sequence=3)
    update(catalog.segment_update(segment, started.started_at))  # a session item: not the notifier's
    chat = ChatEntry(playback_id="pb1", session_id=BODY["session_id"], id="19ab0000000-0a0b0c0d", user="Ada",
                     text="hello", ts=1_764_082_805_000, media_ms=5_000)  # fmt: skip
    dynamodb.put_item(TableName=TABLE, Item=chat.to_item())
    update(catalog.stream_update(started.model_copy(update={"revision": 1}), keys.ManifestKind.RECONNECTING))
    thumbnail = keys.LiveThumbnail(playback_id="pb1", session_id=BODY["session_id"], sequence=3).key
    update({"Key": table.stream_key("pb1"), "UpdateExpression": "SET thumbnail_path = :t",
            "ExpressionAttributeValues": {":t": {"S": thumbnail}}})  # fmt: skip
    dynamodb.delete_item(TableName=TABLE, Key=table.subscription_key("pb1", "C2="))
    ended = {**BODY, "ended_at": "2026-11-25T15:10:00+00:00", "duration": 600.0, "revision": 2}
    update(catalog.stream_update(SessionManifestBody.model_validate(ended), keys.ManifestKind.ENDED))


def main() -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        kwargs = {"endpoint_url": f"http://{host}:{port}", "region_name": "us-east-1",
                  "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # fmt: skip
        dynamodb, streams = boto3.client("dynamodb", **kwargs), boto3.client("dynamodbstreams", **kwargs)
        create_media_table(dynamodb, TABLE)
        arn = dynamodb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
        (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST")
        _writes(dynamodb)
        records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
        event = {"Records": [stream_record(record, arn, "us-east-1") for record in records]}
        (HERE / "moto_notifier_batch.json").write_text(json.dumps(event, indent=1, sort_keys=False) + "\n")
        print(f"captured {len(records)} records")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
