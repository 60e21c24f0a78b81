"""Live metadata and notifications end to end: ffmpeg → ingest node → S3 → catalog → DynamoDB Streams → notifier
→ the WebSocket gateway → real WebSocket clients, and the REST read API, all inside one ``capturestream up``."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import boto3
import pytest

from capturestream import keys, table
from tests.e2e.test_ingest import ffmpeg_args
from tests.support.system import System

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg"),
]


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = System(tmp_path_factory.mktemp("events") / "state", "--reconnect-window", "1")
    yield running
    running.stop()


class Viewer:
    """A browser's WebSocket: every message it receives, with its arrival time."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> Viewer:
        self.ws = await self.http.ws_connect(self.url)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        async for frame in self.ws:
            self.received.append((time.monotonic(), json.loads(frame.data)))

    async def send(self, **message: Any) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(message))

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10) -> tuple[float, dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for arrived, message in self.received:
                if predicate(message):
                    return arrived, message
            await asyncio.sleep(0.02)
        raise AssertionError(f"not received within {timeout} s; got {[m for _, m in self.received][-10:]}")

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for _, m in self.received if m["type"] == kind]

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader


#: Seconds the publisher streams: long enough for every live step below (two subscriptions, a second tab, chat,
#: a stale connection, a flood) to happen while the broadcast is still live on a busy CI box.
SECONDS = 16


def _count(viewer: Viewer, playback_id: str) -> Callable[[dict[str, Any]], Callable[[dict[str, Any]], bool]]:
    return lambda n: lambda m: m == {"type": "viewerCount", "streamId": playback_id, "count": n}


async def test_a_broadcast_seen_by_websocket_viewers_and_the_rest_api(system: System) -> None:
    status, created = system.request("POST", "/api/channels", {"name": "Events e2e"})
    assert status == 201, created
    playback_id = created["channel"]["playbackId"]
    url = f"{created['ingest']['server']}/{created['streamKey']}"
    ws_url = system.stack["ws_url"]
    dynamodb = boto3.client("dynamodb", endpoint_url=system.stack["s3_endpoint"])
    table_name = system.stack["table"]
    s3 = boto3.client("s3", endpoint_url=system.stack["s3_endpoint"])
    async with aiohttp.ClientSession() as http:
        lobby = await Viewer(http, f"{ws_url}?viewer=lobby-1").open()
        await lobby.send(type="register", role="viewer")
        alice = await Viewer(http, f"{ws_url}?viewer=alice-1").open()
        await alice.send(type="register", role="viewer")
        await alice.send(type="subscribe", streamId=playback_id)  # too early: the channel has never been live
        _, refused = await alice.wait_for(lambda m: m["type"] == "error")
        assert refused["code"] == "not_found"
        await asyncio.sleep(0.5)  # let the lobby's register land before the stream goes live

        # Go live: streamLive reaches the lobby within 1 s of started.json landing in S3.
        seen: dict[str, float] = {}
        session_prefix = keys.playback_prefix(keys.SESSIONS_PREFIX, playback_id)
        publisher = subprocess.Popen(ffmpeg_args(url, SECONDS), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            listed: list[dict[str, Any]] = []
            deadline = time.monotonic() + 10
            while not listed and time.monotonic() < deadline:
                listed = s3.list_objects_v2(Bucket=system.stack["bucket"], Prefix=session_prefix).get("Contents", [])
                await asyncio.sleep(0.005)
            (started_key,) = [o["Key"] for o in listed]
            seen[started_key] = time.monotonic()
            arrived, live = await lobby.wait_for(lambda m: m["type"] == "streamLive")
            assert live["stream"]["streamId"] == playback_id and live["stream"]["status"] == "live"
            assert live["stream"]["title"] == "Events e2e"
            assert live["stream"]["playbackUrl"].endswith("/index.m3u8")
            assert arrived - seen[started_key] < 1.0, f"streamLive {arrived - seen[started_key]:.3f} s after S3"
            await alice.send(type="subscribe", streamId=playback_id)  # now it exists
            await alice.wait_for(_count(alice, playback_id)(1))

            status, listing = system.request("GET", "/api/streams", token=None)
            assert status == 200 and playback_id in [s["id"] for s in listing["items"]]
            shown = system.cli("status").stdout  # what a developer sees
            line = next(line for line in shown.splitlines() if playback_id in line)
            assert "live" in line and "1 watching" in line and "Events e2e" in line, shown

            # A second viewer joins (and the first one's second tab does not count twice), then leaves.
            bob = await Viewer(http, f"{ws_url}?viewer=bob-1").open()
            await bob.send(type="subscribe", streamId=playback_id)
            await alice.wait_for(_count(alice, playback_id)(2))
            alice_tab = await Viewer(http, f"{ws_url}?viewer=alice-1").open()
            await alice_tab.send(type="subscribe", streamId=playback_id)
            await asyncio.sleep(1.0)
            assert _count(alice, playback_id)(3) not in [m for m in alice.of_type("viewerCount")]
            assert all(m["count"] <= 2 for m in alice.of_type("viewerCount"))
            await alice_tab.close()
            await bob.close()
            await alice.wait_for(_count(alice, playback_id)(1))

            # Chat: alice → carol; stored; returned by the chat endpoint.
            carol = await Viewer(http, f"{ws_url}?viewer=carol-1").open()
            await carol.send(type="subscribe", streamId=playback_id)
            await alice.wait_for(_count(alice, playback_id)(2))
            await alice.send(type="chat", streamId=playback_id, text="hello from alice")
            _, chat = await carol.wait_for(lambda m: m["type"] == "chat")
            assert chat["text"] == "hello from alice" and chat["user"].startswith("guest-")
            await alice.wait_for(lambda m: m["type"] == "chat" and m["id"] == chat["id"])  # the sender sees it too

            # A connection whose $disconnect was missed: its next fan-out finds it gone and deletes it (only it).
            stale = "Zstale000000="
            dynamodb.put_item(TableName=table_name, Item=table.connection_to_item({"connection_id": stale}))
            dynamodb.update_item(
                TableName=table_name,
                Key=table.connection_key(stale),
                UpdateExpression="ADD subscriptions :s",
                ExpressionAttributeValues={":s": table.string_set(playback_id)},
            )
            dynamodb.put_item(
                TableName=table_name, Item=table.subscription_to_item(playback_id, stale, "anon:ghost", 2**31)
            )
            await carol.send(type="chat", streamId=playback_id, text="anyone there?")
            await alice.wait_for(lambda m: m["type"] == "chat" and m["text"] == "anyone there?")
            deadline = time.monotonic() + 5
            while "Item" in dynamodb.get_item(TableName=table_name, Key=table.connection_key(stale)):
                assert time.monotonic() < deadline, "the stale connection was not removed"
                await asyncio.sleep(0.05)
            assert "Item" not in dynamodb.get_item(TableName=table_name, Key=table.subscription_key(playback_id, stale))
            carol_id = [
                table.from_item(i)["connection_id"]
                for i in dynamodb.query(TableName=table_name, **table.subscriptions_query(playback_id))["Items"]
            ]
            assert len(carol_id) == 2  # alice and carol are still subscribed: the senders were not touched

            # A chat flood is rate-limited with error replies; nothing past the burst is stored.
            for index in range(12):
                await carol.send(type="chat", streamId=playback_id, text=f"flood {index}")
            _, refused = await carol.wait_for(lambda m: m["type"] == "error")
            assert refused["code"] == "rate_limited"
            assert publisher.wait(timeout=30) == 0, publisher.stderr.read().decode()[-2000:] if publisher.stderr else ""
        finally:
            if publisher.poll() is None:
                publisher.kill()
                publisher.wait()

        # ffmpeg finished its input and unpublished (deleteStream): a clean stop ends the broadcast at once, with no
        # "reconnecting" window in between (a dropped publisher's window is tests/e2e/test_ingest.py's).
        _, ended = await lobby.wait_for(lambda m: m["type"] == "streamEnded", timeout=15)
        assert ended == {"type": "streamEnded", "streamId": playback_id}
        statuses = [m["stream"]["status"] for _, m in lobby.received if m["type"] == "streamLive"]
        assert "reconnecting" not in statuses, statuses
        await alice.wait_for(lambda m: m["type"] == "streamEnded")
        for viewer in (lobby, alice, carol):
            await viewer.close()

    deadline = time.monotonic() + 10  # segment counts arrive in batches gathered for up to 5 s
    while True:
        status, stream = system.request("GET", f"/api/stream/{playback_id}", token=None)
        if stream.get("segmentCount", 0) >= SECONDS - 1 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert status == 200 and stream["status"] == "ended", stream
    assert SECONDS - 1 <= stream["duration"] <= SECONDS + 1.5 and stream["segmentCount"] >= SECONDS - 1, stream
    status, history = system.request("GET", f"/api/streams/{playback_id}/chat", token=None)
    assert status == 200
    texts = [m["text"] for m in history["items"]]
    assert texts[:2] == ["hello from alice", "anyone there?"]
    assert 2 < len(texts) < 2 + 12  # part of the flood was refused
    assert all(0 < m["mediaTime"] < SECONDS + 2 for m in history["items"])
    status, ended_list = system.request("GET", "/api/streams?status=ended", token=None)
    assert status == 200 and playback_id in [s["id"] for s in ended_list["items"]]
