"""Owner kicks reach the ingest node through DynamoDB only: rotate-key and end-stream disconnect a real ffmpeg
publisher within 2 s and end its broadcast at once; the node's key cache never honours a rotated key; and a
DynamoDB blip during a reconnect does not end a live broadcast.

The node runs in-process (RtmpServer, SessionRegistry, StreamKeyChecker, KeyWatch at its 1 s default) against the
moto server; the API is the real REST function (Mangum handler) on the same moto table, called from a thread.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from capturestream import table
from capturestream.models import Channel
from capturestream.settings import get_settings
from functions.api import deps
from ingest_node.publishers.key_watch import KeyWatch
from ingest_node.publishers.rtmp_server import RtmpServer
from ingest_node.publishers.stream_keys import StreamKeyChecker
from ingest_node.sessions.registry import SessionRegistry
from ingest_node.storage.uploader import Uploader
from tests.integration.node_support import BUCKET, TABLE, PublishTarget
from tests.support.api import SECRET, call, token_for
from tests.unit.rtmp.helpers import Client, ClientHandshake

pytestmark = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs ffmpeg")


class FlakyDynamoDB:
    """The real aiobotocore client, until ``down``: then every ``get_item`` is throttled (a DynamoDB blip)."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.down = False

    async def get_item(self, **kwargs: Any) -> Any:
        if self.down:
            error = {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}
            raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}, "GetItem")
        return await self._real.get_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@dataclass
class Node:
    server: RtmpServer
    registry: SessionRegistry
    dynamodb: FlakyDynamoDB
    port: int
    target: PublishTarget


@pytest.fixture
async def node(publish_target: PublishTarget, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Node]:
    for name, value in {"TABLE_NAME": TABLE, "MEDIA_BUCKET": BUCKET, "JWT_SECRET": SECRET}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    deps.reset_clients()
    async with Uploader(BUCKET) as uploader, get_session().create_client("dynamodb") as ddb:
        registry = SessionRegistry(uploader, reconnect_window=30, segment_seconds=1.0, node_id="test")
        flaky = FlakyDynamoDB(ddb)
        checker = StreamKeyChecker(flaky, TABLE, live_channels=lambda: [b.channel for b in registry.broadcasts])
        server = RtmpServer(registry, checker)
        watch = KeyWatch(registry, checker)
        watch.start()
        port = await server.start("127.0.0.1", 0)
        yield Node(server, registry, flaky, port, publish_target)
        await watch.close()
        await server.close()
        await registry.close()
    get_settings.cache_clear()
    deps.reset_clients()


async def _ffmpeg(port: int, key: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *("ffmpeg", "-hide_banner", "-loglevel", "quiet", "-re"),
        *("-f", "lavfi", "-i", "testsrc2=size=256x144:rate=30", "-f", "lavfi", "-i", "sine=sample_rate=48000"),
        *("-t", "30", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-c:a", "aac"),
        *("-f", "flv", f"rtmp://127.0.0.1:{port}/live/{key}"),
    )


async def _live(node: Node, channel_id: str, timeout: float = 15) -> str:
    """Wait until the channel has a broadcast; its session id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for broadcast in node.registry.broadcasts:
            if broadcast.channel.channel_id == channel_id:
                return broadcast.session_id
        await asyncio.sleep(0.05)
    raise AssertionError("the publisher never went live")


async def _publish(port: int, key: str) -> tuple[bytes, asyncio.StreamWriter]:
    """A raw publish; returns what the server answered up to its onStatus (or its close) and the open writer."""
    client = Client()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    handshake = ClientHandshake()
    writer.write(handshake.c0c1())
    writer.write(ClientHandshake.c2(await reader.readexactly(3073)))
    writer.write(client.command("connect", 1, {"app": "live", "tcUrl": f"rtmp://127.0.0.1:{port}/live"}))
    writer.write(client.command("createStream", 2, None))
    writer.write(client.command("publish", 3, None, key, "live", csid=4, stream_id=1))
    received = b""
    async with asyncio.timeout(10):
        while b"NetStream.Publish." not in received:
            chunk = await reader.read(65536)
            if not chunk:
                break
            received += chunk
    return received, writer


async def _api(method: str, path: str) -> tuple[int, Any]:
    status, _, body = await asyncio.to_thread(call, method, path, token=token_for("o"))
    return status, body


async def _kicked_within(publisher: asyncio.subprocess.Process, started: float) -> float:
    await asyncio.wait_for(publisher.wait(), 10)
    return time.monotonic() - started


async def test_rotate_key_kicks_the_publisher_and_the_old_key_is_refused(node: Node) -> None:
    channel = node.target.channel
    publisher = await _ffmpeg(node.port, node.target.key)
    try:
        await _live(node, channel.channel_id)
        await asyncio.sleep(1.5)  # a couple of segments in
        status, body = await _api("POST", f"/api/channels/{channel.channel_id}/rotate-key")
        assert status == 200, body
        took = await _kicked_within(publisher, time.monotonic())
    finally:
        if publisher.returncode is None:
            publisher.kill()
    print(f"rotate-key: publisher disconnected {took:.2f} s after the API answered")
    assert took <= 2.0, f"publisher on the rotated key kept streaming {took:.2f} s"
    assert not node.registry.broadcasts  # ended at once, no 30 s reconnect window
    refused, writer = await _publish(node.port, node.target.key)
    writer.close()
    assert b"NetStream.Publish.BadName" in refused
    accepted, writer = await _publish(node.port, body["streamKey"])
    writer.close()
    assert b"NetStream.Publish.Start" in accepted


async def test_end_stream_kicks_the_publisher_and_holds_its_reconnects(node: Node) -> None:
    channel = node.target.channel
    publisher = await _ffmpeg(node.port, node.target.key)
    try:
        await _live(node, channel.channel_id)
        await asyncio.sleep(1.5)
        status, body = await _api("POST", f"/api/channels/{channel.channel_id}/end-stream")
        assert status == 202, body
        took = await _kicked_within(publisher, time.monotonic())
    finally:
        if publisher.returncode is None:
            publisher.kill()
    print(f"end-stream: publisher disconnected {took:.2f} s after the API answered")
    assert took <= 2.0, f"publisher kept streaming {took:.2f} s after end-stream"
    assert not node.registry.broadcasts
    held, writer = await _publish(node.port, node.target.key)  # what OBS's automatic reconnect would do
    writer.close()
    assert b"NetStream.Publish.Denied" in held


async def test_the_key_cache_never_outlives_a_rotation(node: Node) -> None:
    """A key accepted a moment ago (cached 5 s) is refused ~1 s after its rotation: the watch drops the entry."""
    accepted, writer = await _publish(node.port, node.target.key)
    assert b"NetStream.Publish.Start" in accepted
    writer.close()
    await asyncio.sleep(0.3)
    status, _ = await _api("POST", f"/api/channels/{node.target.channel.channel_id}/rotate-key")
    assert status == 200
    rotated = time.monotonic()
    await asyncio.sleep(1.5)  # one watch tick (1 s) and its read
    refused, writer = await _publish(node.port, node.target.key)
    writer.close()
    assert time.monotonic() - rotated < 5.0  # still inside the cache's 5 s TTL
    assert b"NetStream.Publish.BadName" in refused


async def test_a_dynamodb_blip_during_a_reconnect_does_not_end_the_broadcast(node: Node) -> None:
    """OBS dropped; its reconnect's key check is throttled: the live broadcast vouches for the key (grace).
    A key no broadcast here vouches for gets a clear, retryable refusal instead."""
    channel = node.target.channel
    other = provision_publish_target_in_place()
    publisher = await _ffmpeg(node.port, node.target.key)
    await _live(node, channel.channel_id)
    await asyncio.sleep(1.5)
    publisher.send_signal(signal.SIGKILL)  # a drop: the broadcast waits 30 s for a reconnect
    await publisher.wait()
    session = await _live(node, channel.channel_id)
    await asyncio.sleep(5.5)  # the key cache (5 s) has expired: the next check must read DynamoDB
    node.dynamodb.down = True
    resumed, writer = await _publish(node.port, node.target.key)
    assert b"NetStream.Publish.Start" in resumed
    assert await _live(node, channel.channel_id) == session  # the same broadcast, resumed
    unvouched, other_writer = await _publish(node.port, other.key)
    other_writer.close()
    assert b"NetStream.Publish.Rejected" in unvouched
    writer.close()


def provision_publish_target_in_place() -> PublishTarget:
    """A second channel in the already provisioned table."""
    channel, issued = Channel.create(name="second", owner="o")
    boto3.client("dynamodb").put_item(TableName=TABLE, Item=table.channel_to_item(channel))
    return PublishTarget(channel, issued.value.get_secret_value())
