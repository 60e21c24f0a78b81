"""The notifier function over a captured DynamoDB Streams batch: real gateway, real WebSocket viewers, moto table.

The captured batch (``tests/events/dynamodb/moto_notifier_batch.json``) is one broadcast's life; the viewers are
aiohttp WebSockets on the devstack API Gateway emulator, which the function reaches through its SigV4
``@connections`` client exactly as in ``capturestream up``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest

from capturestream import table
from capturestream.settings import get_settings
from devstack.lambda_runtime import LocalFunction
from devstack.ws_gateway import WebSocketGateway
from functions.notifier import background_loop, connections
from tests.support.aws import create_media_table

TABLE = "capturestream-MediaTable"
BATCH = json.loads((Path(__file__).parents[1] / "events" / "dynamodb" / "moto_notifier_batch.json").read_text())
STALE = "Zstale000000="


async def _ok(event: dict[str, Any]) -> dict[str, int]:
    return {"statusCode": 200}


@pytest.fixture
async def stack(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, Any]]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("MEDIA_BUCKET", "media")
    monkeypatch.setenv("CDN_BASE_URL", "http://cdn.test")
    dynamodb = boto3.client("dynamodb")
    create_media_table(dynamodb, TABLE)
    async with WebSocketGateway({"$connect": _ok, "$disconnect": _ok}) as gateway, aiohttp.ClientSession() as http:
        monkeypatch.setenv("WS_ENDPOINT", gateway.management_url)
        get_settings.cache_clear()
        sockets = {}
        for name in ("alice", "bob", "lobby"):
            before = set(gateway.connection_ids)
            sockets[name] = await http.ws_connect(gateway.ws_url)
            while set(gateway.connection_ids) == before:
                await asyncio.sleep(0.005)
            (sockets[f"{name}_id"],) = set(gateway.connection_ids) - before
        yield {"gateway": gateway, "dynamodb": dynamodb, **sockets}
        for name in ("alice", "bob", "lobby"):
            await sockets[name].close()
    background_loop.run(connections.close_shared(), timeout=5)
    get_settings.cache_clear()


def _connect(dynamodb: Any, connection_id: str, viewer: str, *, watches: str | None, lobby: bool = False) -> None:
    extra = {table.GSI1_PK: table.LOBBY, table.GSI1_SK: connection_id} if lobby else {}
    item = table.connection_to_item({"connection_id": connection_id, "viewer": viewer, **extra})
    if watches:
        item["subscriptions"] = table.string_set(watches)
        dynamodb.put_item(TableName=TABLE, Item=table.subscription_to_item(watches, connection_id, viewer, 2**31))
    dynamodb.put_item(TableName=TABLE, Item=item)


async def _received(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[dict[str, Any]]:
    return [json.loads((await ws.receive(timeout=5)).data) for _ in range(count)]


async def test_one_broadcasts_batch_reaches_subscribers_and_lobby_in_order(stack: dict[str, Any]) -> None:
    dynamodb = stack["dynamodb"]
    _connect(dynamodb, stack["alice_id"], "anon:a", watches="pb1")
    _connect(dynamodb, stack["bob_id"], "anon:a", watches="pb1")  # alice's second tab: one viewer
    _connect(dynamodb, stack["lobby_id"], "anon:l", watches=None, lobby=True)
    _connect(dynamodb, STALE, "anon:ghost", watches="pb1")  # its $disconnect was missed
    dynamodb.put_item(TableName=TABLE, Item=table.to_item({**{k: v["S"] for k, v in table.stream_key("pb1").items()},
                                                           "playback_id": "pb1", "session_id": "s0"}))  # fmt: skip
    dynamodb.put_item(TableName=TABLE, Item=table.to_item({**{k: v["S"] for k, v in table.session_key("s0").items()},
                                                           "session_id": "s0", "status": "live"}))  # fmt: skip
    function = LocalFunction("NotifierFunction", "notifier.handler.handler", code_uri="functions/", timeout=10)
    assert await function.invoke(BATCH) == {"batchItemFailures": []}

    watched = await _received(stack["alice"], 6)
    assert [m["type"] for m in watched] == [
        "streamLive",
        "chat",
        "streamLive",
        "thumbnail",
        "streamEnded",
        "viewerCount",
    ]
    assert watched[1]["text"] == "hello" and watched[2]["stream"]["status"] == "reconnecting"
    assert watched[3]["url"] == "http://cdn.test/thumbs/pb1/20261125T150000Z-a1/live_00000003.jpg"
    assert watched[5] == {"type": "viewerCount", "streamId": "pb1", "count": 2}  # alice (2 tabs) + the ghost
    assert await _received(stack["bob"], 6) == watched
    lobby = await _received(stack["lobby"], 5)
    assert [m["type"] for m in lobby] == ["streamLive", "streamLive", "thumbnail", "streamEnded", "viewerCount"]

    # The ghost answered Gone: it and its subscription are deleted; nobody else is.
    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key=table.connection_key(STALE))
    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key=table.subscription_key("pb1", STALE))
    for name in ("alice_id", "bob_id", "lobby_id"):
        assert "Item" in dynamodb.get_item(TableName=TABLE, Key=table.connection_key(stack[name]))
    stored = table.from_item(dynamodb.get_item(TableName=TABLE, Key=table.stream_key("pb1"))["Item"])
    assert stored["viewer_count"] == 2
    session = table.from_item(dynamodb.get_item(TableName=TABLE, Key=table.session_key("s0"))["Item"])
    assert (session["viewers_now"], session["peak_viewers"], session["viewer_seconds"]) == (2, 2, 0)


async def test_a_redelivered_batch_posts_nothing_new_for_unchanged_state(stack: dict[str, Any]) -> None:
    """Records whose images did not change (e.g. a retried no-op rewrite) post nothing."""
    unchanged = [r for r in BATCH["Records"] if r["eventName"] == "MODIFY"][-1]
    same = {**unchanged, "dynamodb": {**unchanged["dynamodb"], "OldImage": unchanged["dynamodb"]["NewImage"]}}
    _connect(stack["dynamodb"], stack["alice_id"], "anon:a", watches="pb1", lobby=True)
    function = LocalFunction("NotifierFunction", "notifier.handler.handler", code_uri="functions/", timeout=10)
    started = time.monotonic()
    assert await function.invoke({"Records": [same]}) == {"batchItemFailures": []}
    with pytest.raises(asyncio.TimeoutError):
        await stack["alice"].receive(timeout=0.5)
    assert time.monotonic() - started < 5


async def test_a_redelivered_batch_does_not_repeat_an_unchanged_viewer_count(stack: dict[str, Any]) -> None:
    """Stream records redelivered after a retry repeat their messages (nothing tells them apart), but the viewer
    count they recount is unchanged: no second ``viewerCount``."""
    dynamodb = stack["dynamodb"]
    _connect(dynamodb, stack["alice_id"], "anon:a", watches="pb1")
    _connect(dynamodb, stack["bob_id"], "anon:b", watches="pb1")
    dynamodb.put_item(TableName=TABLE, Item=table.to_item({**{k: v["S"] for k, v in table.stream_key("pb1").items()},
                                                           "playback_id": "pb1", "session_id": "s0"}))  # fmt: skip
    function = LocalFunction("NotifierFunction", "notifier.handler.handler", code_uri="functions/", timeout=10)
    assert await function.invoke(BATCH) == {"batchItemFailures": []}
    first = await _received(stack["alice"], 6)
    assert first[-1] == {"type": "viewerCount", "streamId": "pb1", "count": 2}
    assert await function.invoke(BATCH) == {"batchItemFailures": []}
    assert await _received(stack["alice"], 5) == first[:5]
    with pytest.raises(asyncio.TimeoutError):
        await stack["alice"].receive(timeout=0.5)
