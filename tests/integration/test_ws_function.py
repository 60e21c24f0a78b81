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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import boto3
import jwt
import pytest
from aiohttp import web

from capturestream import catalog, keys, table, tokens
from capturestream import messages as m
from capturestream.models import SessionManifestBody
from capturestream.settings import WsSettings, get_settings
from devstack.event_sources import DynamoDbStreamEventSource
from devstack.lambda_runtime import LocalFunction
from devstack.ws_gateway import WebSocketGateway
from devstack.ws_gateway.management import ManagementApi
from functions.notifier import background_loop, connections
from functions.ws import chat, clients, limits, routes, sender, subscriptions
from tests.support.aws import create_media_table
from tests.support.waiting import eventually

TABLE = "capturestream-MediaTable"
SECRET = "k" * 48


def _environment(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> object:
    """The functions' environment on moto and the table from template.yaml; the DynamoDB client."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("MEDIA_BUCKET", "media")
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.setenv("CDN_BASE_URL", "http://cdn.test")
    dynamodb = boto3.client("dynamodb")
    create_media_table(dynamodb, TABLE)
    return dynamodb


async def _ws_gateway(monkeypatch: pytest.MonkeyPatch) -> WebSocketGateway:
    function = LocalFunction("WsFunction", "ws.handler.handler", code_uri="functions/", timeout=10)
    gw = WebSocketGateway({"$connect": function.invoke, "$disconnect": function.invoke, "$default": function.invoke})
    await gw.start()
    monkeypatch.setenv("WS_ENDPOINT", gw.management_url)
    get_settings.cache_clear()
    clients.reset()
    return gw


@pytest.fixture
async def gateway(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[WebSocketGateway, object]]:
    dynamodb = _environment(moto_endpoint, monkeypatch)
    gw = await _ws_gateway(monkeypatch)
    yield gw, dynamodb
    await gw.close()
    get_settings.cache_clear()
    clients.reset()


@dataclass
class Pipeline:
    """The WebSocket function and the notifier behind one gateway, as ``capturestream up`` wires them."""

    gateway: WebSocketGateway
    dynamodb: Any
    #: The notifier's event source on the table's stream (from now on once started; the test starts it).
    notifier: DynamoDbStreamEventSource
    #: The connection id of every ``@connections`` POST the gateway answered, in order.
    posts: list[str]


@pytest.fixture
async def pipeline(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Pipeline]:
    posts: list[str] = []
    post = ManagementApi.post

    async def counted(self: ManagementApi, request: web.Request) -> web.StreamResponse:
        posts.append(request.match_info["connection_id"])
        return await post(self, request)

    monkeypatch.setattr(ManagementApi, "post", counted)
    dynamodb = _environment(moto_endpoint, monkeypatch)
    stream_arn = dynamodb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    function = LocalFunction("NotifierFunction", "notifier.handler.handler", code_uri="functions/", timeout=10)
    source = DynamoDbStreamEventSource(
        stream_arn, function, endpoint_url=moto_endpoint, poll_interval=0.02, idle_poll_interval=0.02
    )
    gw = await _ws_gateway(monkeypatch)
    yield Pipeline(gw, dynamodb, source, posts)
    await source.stop()
    await gw.close()
    background_loop.run(connections.close_shared(), timeout=5)
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
    _go_live(dynamodb)
    _go_live(dynamodb, "pb2", "20261125T150500Z-bbbbbb")
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
        # The subscription goes first, then the connection's set (so the set never misses a subscription).
        assert await eventually(lambda: _connection(dynamodb, connection_id)["subscriptions"] == {"pb2"})
        assert _subscription(dynamodb, "pb1", connection_id) is None
        await ws.close()
    assert await eventually(lambda: _connection(dynamodb, connection_id) is None)
    assert _subscription(dynamodb, "pb2", connection_id) is None


async def test_a_connection_watches_a_bounded_number_of_streams(gateway) -> None:
    gw, dynamodb = gateway
    for index in range(subscriptions.MAX_SUBSCRIPTIONS + 1):
        _go_live(dynamodb, f"pb{index}", f"20261125T150000Z-{index:06d}")
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
    monkeypatch.setenv("CHAT_RATE", "0.01")  # the burst of 5, then practically nothing (however slow the box)
    get_settings.cache_clear()
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


# --- hardening: made-up streams, token names, rate limits, posts to others --------------------------------


async def _open(http: aiohttp.ClientSession, gw: WebSocketGateway, query: str = "") -> tuple[Any, str]:
    """A new WebSocket and its connection id."""
    before = set(gw.connection_ids)
    ws = await http.ws_connect(f"{gw.ws_url}{query}")
    (connection_id,) = await eventually(lambda: set(gw.connection_ids) - before)
    return ws, connection_id


async def _send(ws: Any, **message: Any) -> None:
    await ws.send_str(json.dumps(message))


async def _reply(ws: Any, timeout: float = 5) -> dict[str, Any]:
    return json.loads((await ws.receive(timeout=timeout)).data)


async def _silence(ws: Any, seconds: float = 0.3) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await ws.receive(timeout=seconds)


async def test_subscribing_to_a_stream_that_does_not_exist_is_refused_and_stores_nothing(gateway) -> None:
    gw, dynamodb = gateway
    async with aiohttp.ClientSession() as http:
        ws, connection_id = await _open(http, gw)
        await _send(ws, type="subscribe", streamId="madeup1")
        reply = await _reply(ws)
        assert reply == {"type": "error", "code": "not_found", "message": "stream madeup1 does not exist"}
        assert _subscription(dynamodb, "madeup1", connection_id) is None
        assert "subscriptions" not in _connection(dynamodb, connection_id)
        await _send(ws, type="unsubscribe", streamId="madeup1")  # harmless, silent, writes nothing
        await _silence(ws)
        await ws.close()


@pytest.mark.parametrize("name", ["x" * 65, "Ada\nLovelace", "\u202eadA", "", 7])
async def test_a_token_whose_name_is_not_a_display_name_is_refused_at_connect(gateway, name: object) -> None:
    gw, dynamodb = gateway
    now = int(time.time())
    claims = {"sub": "user-7", "iat": now, "exp": now + 60, "iss": tokens.ISSUER, "aud": tokens.AUDIENCE, "name": name}
    signed = jwt.encode(claims, SECRET, algorithm=tokens.ALGORITHM)  # issue_token would refuse the name
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(f"{gw.ws_url}?token={signed}")
    assert info.value.status == 401
    stored = dynamodb.scan(TableName=TABLE)["Items"]
    assert not [i for i in stored if i[table.PK]["S"].startswith(table.CONNECTION_PREFIX)]


MESSAGES = {
    "heartbeat": {"type": "heartbeat"},
    "register": {"type": "register", "role": "viewer"},
    "getStreams": {"type": "getStreams"},
    "subscribe": {"type": "subscribe", "streamId": "pb1"},
    "unsubscribe": {"type": "unsubscribe", "streamId": "pb1"},
}


def test_every_client_message_type_has_a_limit() -> None:
    assert set(MESSAGES) | {"chat"} == set(limits.LIMITS) | {"chat"} == set(m.CLIENT_MESSAGE_TYPES)


@pytest.mark.parametrize("kind", sorted(MESSAGES))
async def test_every_message_type_is_rate_limited_per_connection(gateway, monkeypatch, kind: str) -> None:
    """Over its type's limit a message is refused with rate_limited saying when to retry; other connections and
    other types are unaffected. (A small burst and a slow refill here; the real limits are in limits.LIMITS.)"""
    gw, dynamodb = gateway
    _go_live(dynamodb)
    monkeypatch.setitem(limits.LIMITS, kind, limits.Limit(burst=2, rate=0.05))
    answered = kind == "getStreams"  # the only one of these with a reply of its own
    async with aiohttp.ClientSession() as http:
        ws, _ = await _open(http, gw)
        for _ in range(3):
            await _send(ws, **MESSAGES[kind])
        replies = [await _reply(ws) for _ in range(3 if answered else 1)]
        assert [r["type"] for r in replies] == [*(["streamList"] * 2 if answered else []), "error"]
        assert replies[-1]["code"] == "rate_limited"
        assert re.fullmatch(rf"too many '{kind}' messages: at most 2 at once, then one every 20 s; retry in "
                            r"(1\d|20)\.\d s", replies[-1]["message"]), replies[-1]["message"]  # fmt: skip
        other = "heartbeat" if kind != "heartbeat" else "register"
        await _send(ws, **MESSAGES[other])  # another type has its own bucket
        another, _ = await _open(http, gw)
        await _send(another, **MESSAGES[kind])  # another connection too
        if answered:
            assert (await _reply(another))["type"] == "streamList"
        await _silence(ws)
        await _silence(another)


async def test_a_rate_limited_message_is_not_acted_on(gateway, monkeypatch) -> None:
    gw, dynamodb = gateway
    _go_live(dynamodb)
    _go_live(dynamodb, "pb2", "20261125T150500Z-bbbbbb")
    for kind in ("register", "subscribe"):
        monkeypatch.setitem(limits.LIMITS, kind, limits.Limit(burst=1, rate=0.01))
    async with aiohttp.ClientSession() as http:
        ws, connection_id = await _open(http, gw)
        await _send(ws, type="register", role="viewer")
        await _send(ws, type="register", role="streamer")
        await _send(ws, type="subscribe", streamId="pb1")
        await _send(ws, type="subscribe", streamId="pb2")
        assert [(await _reply(ws))["code"] for _ in range(2)] == ["rate_limited", "rate_limited"]
        item = _connection(dynamodb, connection_id)
        assert item["role"] == "viewer" and item["subscriptions"] == {"pb1"}
        assert _subscription(dynamodb, "pb2", connection_id) is None


async def test_a_message_from_a_connection_whose_item_is_gone_is_told_to_reconnect(gateway) -> None:
    gw, dynamodb = gateway
    async with aiohttp.ClientSession() as http:
        ws, connection_id = await _open(http, gw)
        dynamodb.delete_item(TableName=TABLE, Key=table.connection_key(connection_id))  # e.g. cleaned up as stale
        await _send(ws, type="heartbeat")
        assert await _reply(ws) == {"type": "error", "code": "not_found", "message": sender.NO_CONNECTION}
        assert _connection(dynamodb, connection_id) is None  # the heartbeat did not bring it back


async def test_a_subscribe_flood_over_made_up_ids_posts_nothing_to_anyone_else(pipeline: Pipeline) -> None:
    """One socket cycling subscribe/unsubscribe over made-up ids: only its own error replies are posted."""
    gw, dynamodb = pipeline.gateway, pipeline.dynamodb
    _go_live(dynamodb)
    await pipeline.notifier.start()
    async with aiohttp.ClientSession() as http:
        lobby, lobby_id = await _open(http, gw, "?viewer=lobby-1")
        await _send(lobby, type="register", role="viewer")
        flooder, flooder_id = await _open(http, gw, "?viewer=flood-1")
        for index in range(15):
            await _send(flooder, type="subscribe", streamId=f"madeup{index}")
            await _send(flooder, type="unsubscribe", streamId=f"madeup{index}")
        assert {(await _reply(flooder))["code"] for _ in range(15)} == {"not_found"}
        # A real subscription after the flood: its count is the first thing the lobby hears.
        watcher, watcher_id = await _open(http, gw, "?viewer=watch-1")
        await _send(watcher, type="subscribe", streamId="pb1")
        assert await _reply(lobby, timeout=10) == {"type": "viewerCount", "streamId": "pb1", "count": 1}
        await _silence(flooder)
    assert pipeline.posts.count(flooder_id) == 15  # its own errors
    assert sorted(p for p in pipeline.posts if p != flooder_id) == sorted([lobby_id, watcher_id])


async def test_a_viewer_count_is_posted_only_when_it_changes(pipeline: Pipeline) -> None:
    """A second tab (or a reload) of the same viewer subscribing again posts nothing; a new viewer does."""
    gw, dynamodb = pipeline.gateway, pipeline.dynamodb
    _go_live(dynamodb)
    await pipeline.notifier.start()
    count = {"type": "viewerCount", "streamId": "pb1"}
    async with aiohttp.ClientSession() as http:
        lobby, _ = await _open(http, gw, "?viewer=lobby-1")
        await _send(lobby, type="register", role="viewer")
        alice, _ = await _open(http, gw, "?viewer=alice-1")
        await _send(alice, type="subscribe", streamId="pb1")
        assert await _reply(lobby, timeout=10) == {**count, "count": 1}
        alice_tab, _ = await _open(http, gw, "?viewer=alice-1")
        await _send(alice_tab, type="subscribe", streamId="pb1")
        await _send(alice, type="subscribe", streamId="pb1")  # and a repeated subscribe
        await eventually(lambda: len(dynamodb.query(TableName=TABLE, **table.subscriptions_query("pb1"))["Items"]) == 2)
        bob, _ = await _open(http, gw, "?viewer=bob-1")
        await _send(bob, type="subscribe", streamId="pb1")
        assert await _reply(lobby, timeout=10) == {**count, "count": 2}  # not a second "1" before it
        await _silence(lobby)
