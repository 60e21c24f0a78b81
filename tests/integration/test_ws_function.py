"""The WebSocket function behind the real gateway emulator, with DynamoDB on moto.

Real WebSocket clients connect to the devstack gateway, which invokes ``functions/ws`` through the local Lambda
runtime exactly as ``capturestream up`` wires it; replies travel back through ``post_to_connection``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import boto3
import pytest

from capturestream import catalog, table, tokens
from capturestream.models import SessionManifestBody
from capturestream.settings import get_settings
from devstack.lambda_runtime import LocalFunction
from devstack.ws_gateway import WebSocketGateway
from functions.ws import routes
from tests.support.aws import create_media_table

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
    routes._management.cache_clear()
    routes._dynamodb.cache_clear()
    yield gw, dynamodb
    await gw.close()
    get_settings.cache_clear()
    routes._management.cache_clear()
    routes._dynamodb.cache_clear()


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
        await ws.send_str(json.dumps({"type": "subscribe", "streamId": "pb1"}))
        reply = json.loads((await ws.receive(timeout=5)).data)
        assert reply["code"] == "not_supported"


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


async def test_get_streams_lists_live_sessions(gateway) -> None:
    gw, dynamodb = gateway
    body = SessionManifestBody(
        channel_id="abcdefghijkl",
        playback_id="pb1",
        session_id="20261125T150000Z-aaaaaa",
        started_at="2026-11-25T15:00:00+00:00",
    )
    dynamodb.update_item(TableName=TABLE, **catalog.started_update(body))
    async with aiohttp.ClientSession() as http, http.ws_connect(gw.ws_url) as ws:
        await ws.send_str(json.dumps({"type": "getStreams"}))
        reply = json.loads((await ws.receive(timeout=5)).data)
    assert reply["type"] == "streamList"
    (stream,) = reply["streams"]
    assert stream["streamId"] == "pb1" and stream["status"] == "live"
    assert stream["playbackUrl"] == "http://cdn.test/live/pb1/20261125T150000Z-aaaaaa/index.m3u8"
