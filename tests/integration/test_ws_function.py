"""The WebSocket function behind the real gateway emulator, with DynamoDB on moto.

Real WebSocket clients connect to the devstack gateway, which invokes ``functions/ws`` through the local Lambda
runtime exactly as ``capturestream up`` wires it; replies travel back through ``post_to_connection``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import boto3
import pytest

from capturestream import catalog, keys, table, tokens
from capturestream.models import SessionManifestBody
from capturestream.settings import WsSettings, get_settings
from devstack.lambda_runtime import LocalFunction
from devstack.ws_gateway import WebSocketGateway
from functions.ws import chat, clients, routes, subscriptions
from tests.support.aws import create_media_table
from tests.support.waiting import eventually

TABLE = "capturestream-MediaTable"
SECRET = "k" * 48


@pytest.fixture
async def gateway(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[WebSocketGateway, object]]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("MEDIA_BUCKET", "media")
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.setenv("CDN_BASE_URL", "http://cdn.test")
    dynamodb = boto3.client("dynamodb")
    create_media_table(dynamodb, TABLE)
    function = LocalFunction("WsFunction", "ws.handler.handler", code_uri="functions/", timeout=10)
    gw = WebSocketGateway({"$connect": function.invoke, "$disconnect": function.invoke, "$default": function.invoke})
    await gw.start()
    monkeypatch.setenv("WS_ENDPOINT", gw.management_url)
    get_settings.cache_clear()
    clients.reset()
    yield gw, dynamodb
    await gw.close()
    get_settings.cache_clear()
    clients.reset()


def _connection(dynamodb, connection_id: str) -> dict | None:
    item = dynamodb.get_item(TableName=TABLE, Key=table.connection_key(connection_id)).get("Item")
    return table.from_item(item) if item else None


async def _only_connection_id(gw: WebSocketGateway) -> str:
    (connection_id,) = gw.connection_ids
    return connection_id


async def test_anonymous_connect_stores_item_with_ttl_and_disconnect_removes_it(gateway) -> None:
    gw, dynamodb = gateway
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(gw.ws_url)
        connection_id = await _only_connection_id(gw)
        item = _connection(dynamodb, connection_id)
        assert item is not None and "user_id" not in item  # anonymous viewer
        assert item["role"] == "viewer"
        assert abs(item["expires_at"] - (time.time() + routes.CONNECTION_TTL_SECONDS)) < 30
        await ws.close()
    for _ in range(50):
        if _connection(dynamodb, connection_id) is None:
            break
        await asyncio.sleep(0.05)
    assert _connection(dynamodb, connection_id) is None


async def test_token_identifies_user_and_bad_token_is_refused(gateway) -> None:
    gw, dynamodb = gateway
    good = tokens.issue_token(SECRET, "user-7", 600, name="Ada")
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{gw.ws_url}?token={good}"):
            item = _connection(dynamodb, await _only_connection_id(gw))
            assert item["user_id"] == "user-7" and item["user_name"] == "Ada"
        forged = tokens.issue_token("x" * 48, "user-7", 600)
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(f"{gw.ws_url}?token={forged}")
        assert info.value.status == 401


async def test_invalid_and_unsupported_messages_get_error_replies(gateway) -> None:
    gw, _ = gateway
    async with aiohttp.ClientSession() as http, http.ws_connect(gw.ws_url) as ws:
        await ws.send_str("not json")
        reply = json.loads((await ws.receive(timeout=5)).data)
        assert reply["type"] == "error" and reply["code"] == "invalid_message"
        await ws.send_str(json.dumps({"type": "chat", "streamId": "../x", "text": "hi"}))
        reply = json.loads((await ws.receive(timeout=5)).data)
        assert reply["code"] == "invalid_message" and "streamId" in reply["message"]
        await ws.send_str(json.dumps({"type": "chat", "streamId": "pb1", "text": "x" * 20_000}))
        reply = json.loads((await ws.receive(timeout=5)).data)
        assert reply["code"] == "invalid_message" and "text" in reply["message"]
        await ws.send_str(json.dumps({"type": "chat", "streamId": "nobody", "text": "hi"}))
        reply = json.loads((await ws.receive(timeout=5)).data)
        assert reply["code"] == "not_found" and "not live" in reply["message"]


async def test_heartbeat_and_register_update_the_connection(gateway) -> None:
    gw, dynamodb = gateway
    async with aiohttp.ClientSession() as http, http.ws_connect(gw.ws_url) as ws:
        connection_id = await _only_connection_id(gw)
        await ws.send_str(json.dumps({"type": "register", "role": "streamer"}))
        await ws.send_str(json.dumps({"type": "heartbeat"}))
        for _ in range(50):
            item = _connection(dynamodb, connection_id)
            if item.get("role") == "streamer" and item.get("last_seen_at"):
                break
            await asyncio.sleep(0.05)
        assert item["role"] == "streamer" and item["last_seen_at"] >= item["connected_at"]


def _go_live(dynamodb, playback_id: str = "pb1", session_id: str = "20261125T150000Z-aaaaaa", **fields) -> None:
    body = SessionManifestBody(
        channel_id="abcdefghijkl",
        playback_id=playback_id,
        session_id=session_id,
        started_at=fields.pop("started_at", "2026-11-25T15:00:00+00:00"),
        title="Speedrun",
        **fields,
    )
    dynamodb.update_item(TableName=TABLE, **catalog.stream_update(body, keys.ManifestKind.STARTED))


async def test_get_streams_lists_live_then_reconnecting_streams(gateway) -> None:
    gw, dynamodb = gateway
    _go_live(dynamodb)
    _go_live(dynamodb, "pb2", "20261125T150500Z-bbbbbb", started_at="2026-11-25T15:05:00+00:00")
    back = SessionManifestBody(
        channel_id="abcdefghijkl",
        playback_id="pb3",
        session_id="20261125T151000Z-cccccc",
        started_at="2026-11-25T15:10:00+00:00",
        revision=1,
    )
    dynamodb.update_item(TableName=TABLE, **catalog.stream_update(back, keys.ManifestKind.RECONNECTING))
    async with aiohttp.ClientSession() as http, http.ws_connect(gw.ws_url) as ws:
        await ws.send_str(json.dumps({"type": "getStreams"}))
        reply = json.loads((await ws.receive(timeout=5)).data)
    assert reply["type"] == "streamList"
    assert [(s["streamId"], s["status"]) for s in reply["streams"]] == [
        ("pb2", "live"),
        ("pb1", "live"),
        ("pb3", "reconnecting"),
    ]
    assert reply["streams"][1]["playbackUrl"] == "http://cdn.test/live/pb1/20261125T150000Z-aaaaaa/index.m3u8"
    assert reply["streams"][1]["title"] == "Speedrun"


async def test_an_unreadable_stream_item_does_not_hide_the_others(gateway) -> None:
    gw, dynamodb = gateway
    _go_live(dynamodb)
    broken = {**table.stream_key("pbx"), table.GSI1_PK: {"S": "STREAMS#live"}, table.GSI1_SK: {"S": "9999#pbx"}}
    dynamodb.put_item(TableName=TABLE, Item=broken)  # no playback or session id
    async with aiohttp.ClientSession() as http, http.ws_connect(gw.ws_url) as ws:
        await ws.send_str(json.dumps({"type": "getStreams"}))
        reply = json.loads((await ws.receive(timeout=5)).data)
    assert [s["streamId"] for s in reply["streams"]] == ["pb1"]


def _subscription(dynamodb, playback_id: str, connection_id: str) -> dict | None:
    item = dynamodb.get_item(TableName=TABLE, Key=table.subscription_key(playback_id, connection_id)).get("Item")
    return table.from_item(item) if item else None


async def test_subscribe_unsubscribe_and_disconnect_keep_items_exact(gateway) -> None:
    """Subscriptions carry the viewer identity; unsubscribe and $disconnect remove exactly this connection's."""
    gw, dynamodb = gateway
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{gw.ws_url}?viewer=tab-1234")
        connection_id = await _only_connection_id(gw)
        for stream in ("pb1", "pb2"):
            await ws.send_str(json.dumps({"type": "subscribe", "streamId": stream}))
        assert await eventually(lambda: _subscription(dynamodb, "pb2", connection_id))
        sub = _subscription(dynamodb, "pb1", connection_id)
        assert sub["viewer"] == "anon:tab-1234" and sub["expires_at"] > time.time() + 7000
        assert _connection(dynamodb, connection_id)["subscriptions"] == {"pb1", "pb2"}
        await ws.send_str(json.dumps({"type": "unsubscribe", "streamId": "pb1"}))
        assert await eventually(lambda: _subscription(dynamodb, "pb1", connection_id) is None)
        assert _connection(dynamodb, connection_id)["subscriptions"] == {"pb2"}
        await ws.close()
    assert await eventually(lambda: _connection(dynamodb, connection_id) is None)
    assert _subscription(dynamodb, "pb2", connection_id) is None


async def test_a_connection_watches_a_bounded_number_of_streams(gateway) -> None:
    gw, _ = gateway
    async with aiohttp.ClientSession() as http, http.ws_connect(gw.ws_url) as ws:
        for index in range(subscriptions.MAX_SUBSCRIPTIONS + 1):
            await ws.send_str(json.dumps({"type": "subscribe", "streamId": f"pb{index}"}))
        reply = json.loads((await ws.receive(timeout=5)).data)
        assert reply["type"] == "error" and reply["code"] == "conflict"
        await ws.send_str(json.dumps({"type": "subscribe", "streamId": "pb0"}))  # already watched: fine
        await ws.send_str(json.dumps({"type": "heartbeat"}))
        with pytest.raises(asyncio.TimeoutError):
            await ws.receive(timeout=0.5)


def _chat(dynamodb, session_id: str = "20261125T150000Z-aaaaaa") -> list[dict]:
    items = dynamodb.query(TableName=TABLE, **table.chat_range_query(session_id, 0, 10**12 - 1, 100))["Items"]
    return [table.from_item(item) for item in items]


async def test_chat_is_stored_with_media_time_and_floods_are_rate_limited(gateway, monkeypatch) -> None:
    gw, dynamodb = gateway
    started = time.time() - 42
    _go_live(dynamodb, started_at=datetime.fromtimestamp(started, UTC).isoformat())
    user = tokens.issue_token(SECRET, "user-7", 600, name="Ada")
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{gw.ws_url}?token={user}") as ws:
        for index in range(8):
            await ws.send_str(json.dumps({"type": "chat", "streamId": "pb1", "text": f"hello {index}"}))
        errors = [json.loads((await ws.receive(timeout=5)).data) for _ in range(3)]
    assert {e["code"] for e in errors} == {"rate_limited"}
    stored = await eventually(lambda: len(_chat(dynamodb)) == 5 and _chat(dynamodb))
    assert [m["text"] for m in stored] == [f"hello {i}" for i in range(5)]  # burst of 5, in order
    assert {m["user"] for m in stored} == {"Ada"} and stored[0]["user_id"] == "user-7"
    assert all(abs(m["media_ms"] - (m["ts"] - started * 1000)) < 5 for m in stored)
    assert 41_000 < stored[0]["media_ms"] < 60_000


async def test_anonymous_chat_gets_a_stable_guest_name(gateway) -> None:
    gw, dynamodb = gateway
    _go_live(dynamodb)
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.ws_connect(f"{gw.ws_url}?viewer=tab-1234") as ws:
                await ws.send_str(json.dumps({"type": "chat", "streamId": "pb1", "text": "hi"}))
                await eventually(lambda: _chat(dynamodb))
    names = {m["user"] for m in await eventually(lambda: len(_chat(dynamodb)) == 2 and _chat(dynamodb))}
    assert names == {chat.guest_name(get_settings(WsSettings), "anon:tab-1234")}  # a reload keeps the name
    assert re.fullmatch("guest-[a-z2-7]{13}", names.pop())  # 65 bits of an HMAC keyed by the server
