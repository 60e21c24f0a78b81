"""What the in-process ingest node tests share: the moto resources a node needs and one channel to publish to."""

from __future__ import annotations

from dataclasses import dataclass

import boto3

from capturestream import table
from capturestream.models import Channel
from tests.support.aws import create_media_table

BUCKET = "media"
TABLE = "capturestream-MediaTable"


@dataclass(frozen=True)
class PublishTarget:
    """A channel in the table and its stream key (shown once, as the API would)."""

    channel: Channel
    key: str


def provision_publish_target(name: str = "studio") -> PublishTarget:
    """The media bucket and the table (from template.yaml) on the moto ``AWS_ENDPOINT_URL`` names, with one channel."""
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    dynamodb = boto3.client("dynamodb")
    create_media_table(dynamodb, TABLE)
    channel, issued = Channel.create(name=name, owner="o")
    dynamodb.put_item(TableName=TABLE, Item=table.channel_to_item(channel))
    return PublishTarget(channel, issued.value.get_secret_value())
