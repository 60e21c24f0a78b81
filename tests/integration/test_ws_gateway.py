"""Integration tests for the API Gateway WebSocket emulator (``devstack.ws_gateway``).

Real clients only: aiohttp ``ws_connect`` viewers, a raw-socket client where a test needs frames aiohttp
cannot produce (fragmented messages), and the unmodified boto3 ``apigatewaymanagementapi`` client pointed
at ``gateway.management_url`` (run in a thread: the gateway shares this event loop). Timeouts are shrunk to
a few hundred milliseconds so the module runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import boto3
import pytest
from botocore.config import Config

from devstack.ws_gateway import GatewayLimits, WebSocketGateway
from tests.support.waiting import eventually

KB = 1024
AWS_ID = re.compile(r"^[A-Za-z0-9_-]{15}=$")
REQUEST_TIME = re.compile(r"^\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000$")
FAST = GatewayLimits(idle_timeout=30.0, max_connection_duration=30.0, integration_timeout=2.0)

Event = dict[str, Any]


class Recorder:
    """Integration double: records ``(route_key, event)`` and returns a canned Lambda response."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Event]] = []

    def route(self, key: str, response: Any = None, fail: bool = False) -> Callable[[Event], Awaitable[Any]]:
        async def invoke(event: Event) -> Any:
            self.calls.append((key, event))
            if fail:
                raise RuntimeError(f"{key} integration exploded")
            return {"statusCode": 200} if response is None else response

        return invoke

    def events(self, key: str) -> list[Event]:
        return [event for route_key, event in self.calls if route_key == key]


until = functools.partial(eventually, timeout=2.0, interval=0.005)


@pytest.fixture
async def make_gateway() -> AsyncIterator[Callable[..., Awaitable[WebSocketGateway]]]:
    started: list[WebSocketGateway] = []

    async def make(routes: dict[str, Any], **kwargs: Any) -> WebSocketGateway:
        kwargs.setdefault("limits", FAST)
        gateway = WebSocketGateway(routes, **kwargs)
        await gateway.start()
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        await gateway.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def management(gateway: WebSocketGateway) -> Any:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=gateway.management_url,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}),
    )


async def connect(
    session: aiohttp.ClientSession, gateway: WebSocketGateway, query: str = ""
) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    """Open a viewer socket and return it with the connection id the gateway assigned."""
    before = gateway.connection_ids
    ws = await session.ws_connect(gateway.ws_url + query, headers={"User-Agent": "viewer-test/1.0"})
    await until(lambda: len(gateway.connection_ids - before) == 1)
    (connection_id,) = gateway.connection_ids - before
    return ws, connection_id


class RawClient:
    """Minimal RFC 6455 client that writes arbitrary (fragmented, oversized) frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, gateway: WebSocketGateway) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /{gateway.stage} HTTP/1.1\r\nHost: 127.0.0.1:{gateway.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    @staticmethod
    def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
        first = (0x80 if fin else 0) | opcode
        size = len(payload)
        if size < 126:
            header = bytes([first, 0x80 | size])
        elif size < 65536:
            header = bytes([first, 0x80 | 126]) + size.to_bytes(2, "big")
        else:
            header = bytes([first, 0x80 | 127]) + size.to_bytes(8, "big")
        return header + b"\0\0\0\0" + payload  # a zero masking key leaves the payload unchanged

    async def send_fragmented(self, payload: bytes, frame_size: int) -> None:
        chunks = [payload[i : i + frame_size] for i in range(0, len(payload), frame_size)]
        for index, chunk in enumerate(chunks):
            opcode = 0x1 if index == 0 else 0x0
            data = self.frame(opcode, chunk, fin=index == len(chunks) - 1)
            self.writer.write(data[:3])  # split a header across writes too
            await self.writer.drain()
            self.writer.write(data[3:])
        await self.writer.drain()

    async def read_close_code(self) -> int:
        while True:
            first, second = await self.reader.readexactly(2)
            size = second & 0x7F
            if size == 126:
                size = int.from_bytes(await self.reader.readexactly(2), "big")
            elif size == 127:
                size = int.from_bytes(await self.reader.readexactly(8), "big")
            payload = await self.reader.readexactly(size)
            if first & 0x0F == 0x8:
                return int.from_bytes(payload[:2], "big")

    def close(self) -> None:
        self.writer.close()


# -- $connect -------------------------------------------------------------------------------------------


async def test_connect_event_has_aws_shape_and_query_string(make_gateway, session) -> None:
    rec = Recorder()
    gateway = await make_gateway({"$connect": rec.route("$connect")}, api_id="abcde12345")
    ws, connection_id = await connect(session, gateway, "?token=t0k&tag=a&tag=b")

    (event,) = rec.events("$connect")
    ctx = event["requestContext"]
    assert event["queryStringParameters"] == {"token": "t0k", "tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"token": ["t0k"], "tag": ["a", "b"]}
    assert event["headers"]["User-Agent"] == "viewer-test/1.0"
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["multiValueHeaders"]["Sec-WebSocket-Version"] == ["13"]
    assert event["isBase64Encoded"] is False
    assert ctx["routeKey"] == "$connect" and ctx["eventType"] == "CONNECT"
    assert ctx["messageDirection"] == "IN" and ctx["stage"] == "dev" and ctx["apiId"] == "abcde12345"
    assert ctx["connectionId"] == connection_id and AWS_ID.match(connection_id)
    assert AWS_ID.match(ctx["requestId"]) and ctx["extendedRequestId"] == ctx["requestId"]
    assert REQUEST_TIME.match(ctx["requestTime"])
    assert ctx["requestTimeEpoch"] >= ctx["connectedAt"] > 1_600_000_000_000
    assert ctx["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "viewer-test/1.0"}
    assert ctx["domainName"] == f"127.0.0.1:{gateway.port}"
    await ws.close()


@pytest.mark.parametrize("status", [401, 403])
async def test_connect_refusal_is_the_handshake_status(make_gateway, session, status: int) -> None:
    rec = Recorder()
    routes = {"$connect": rec.route("$connect", {"statusCode": status}), "$disconnect": rec.route("$disconnect")}
    gateway = await make_gateway(routes)

    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await session.ws_connect(gateway.ws_url)

    assert refused.value.status == status
    assert len(rec.events("$connect")) == 1
    assert gateway.connection_ids == frozenset()
    await asyncio.sleep(0.05)
    assert rec.events("$disconnect") == []  # a refused connection never existed


async def test_connect_integration_error_refuses_with_502(make_gateway, session) -> None:
    rec = Recorder()
    gateway = await make_gateway({"$connect": rec.route("$connect", fail=True)})

    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await session.ws_connect(gateway.ws_url)

    assert refused.value.status == 502
    assert gateway.connection_ids == frozenset()


async def test_connect_response_header_selects_subprotocol(make_gateway, session) -> None:
    response = {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "viewer.v1"}}
    gateway = await make_gateway({"$connect": Recorder().route("$connect", response)})

    ws = await session.ws_connect(gateway.ws_url, protocols=("viewer.v0", "viewer.v1"))

    assert ws.protocol == "viewer.v1"
    await ws.close()


# -- route selection ------------------------------------------------------------------------------------


async def test_route_selection_on_type(make_gateway, session) -> None:
    rec = Recorder()
    gateway = await make_gateway({"$default": rec.route("$default"), "chat": rec.route("chat")})
    ws, connection_id = await connect(session, gateway)

    for body in ('{"type": "chat", "text": "hi"}', '{"type": "other"}', "not json", "[1, 2]"):
        await ws.send_str(body)
    await until(lambda: len(rec.calls) == 4)

    assert [(key, event["body"]) for key, event in rec.calls] == [
        ("chat", '{"type": "chat", "text": "hi"}'),
        ("$default", '{"type": "other"}'),
        ("$default", "not json"),
        ("$default", "[1, 2]"),
    ]
    ctx = rec.calls[0][1]["requestContext"]
    assert ctx["eventType"] == "MESSAGE" and ctx["routeKey"] == "chat" and ctx["connectionId"] == connection_id
    assert AWS_ID.match(ctx["messageId"]) and rec.calls[0][1]["isBase64Encoded"] is False
    await ws.close()


async def test_nested_selection_expression(make_gateway, session) -> None:
    rec = Recorder()
    routes = {"$default": rec.route("$default"), "join": rec.route("join")}
    gateway = await make_gateway(routes, route_selection_expression="$request.body.meta.kind")
    ws, _ = await connect(session, gateway)

    await ws.send_str('{"meta": {"kind": "join"}}')
    await ws.send_str('{"kind": "join"}')
    await until(lambda: len(rec.calls) == 2)

    assert [key for key, _ in rec.calls] == ["join", "$default"]
    await ws.close()


async def test_no_matching_route_and_no_default_gets_forbidden_frame(make_gateway, session) -> None:
    rec = Recorder()
    gateway = await make_gateway({"chat": rec.route("chat")})
    ws, connection_id = await connect(session, gateway)

    await ws.send_str('{"type": "unknown"}')
    msg = await ws.receive(timeout=2)

    assert msg.type is aiohttp.WSMsgType.TEXT
    assert msg.data.startswith(f'{{"message": "Forbidden", "connectionId":"{connection_id}", "requestId":"')
    assert AWS_ID.match(json.loads(msg.data)["requestId"])
    assert rec.calls == [] and not ws.closed  # AWS keeps the connection open
    await ws.close()


# -- @connections via boto3 -----------------------------------------------------------------------------


async def test_post_to_connection_reaches_the_client_byte_exact(make_gateway, session) -> None:
    gateway = await make_gateway({})
    ws, connection_id = await connect(session, gateway)
    client = management(gateway)
    text = '{"type": "chat", "text": "héllo 🎥"}'.encode()
    binary = b"\xff\x00\xfe raw"

    await asyncio.to_thread(client.post_to_connection, ConnectionId=connection_id, Data=text)
    await asyncio.to_thread(client.post_to_connection, ConnectionId=connection_id, Data=binary)
    first, second = await ws.receive(timeout=2), await ws.receive(timeout=2)

    assert first.type is aiohttp.WSMsgType.TEXT and first.data.encode() == text
    assert second.type is aiohttp.WSMsgType.BINARY and second.data == binary
    await ws.close()


async def test_get_connection_reports_identity_and_activity(make_gateway, session) -> None:
    gateway = await make_gateway({})
    ws, connection_id = await connect(session, gateway)
    client = management(gateway)

    before = await asyncio.to_thread(client.get_connection, ConnectionId=connection_id)
    await asyncio.sleep(0.05)
    await asyncio.to_thread(client.post_to_connection, ConnectionId=connection_id, Data=b"ping")
    after = await asyncio.to_thread(client.get_connection, ConnectionId=connection_id)

    assert before["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "viewer-test/1.0"}
    assert before["ConnectedAt"] == after["ConnectedAt"] <= before["LastActiveAt"]
    assert after["LastActiveAt"] > before["LastActiveAt"]  # outbound messages count as activity
    await ws.close()


async def test_delete_connection_closes_client_and_fires_disconnect_once(make_gateway, session) -> None:
    rec = Recorder()
    gateway = await make_gateway({"$disconnect": rec.route("$disconnect")})
    ws, connection_id = await connect(session, gateway)
    client = management(gateway)

    await asyncio.to_thread(client.delete_connection, ConnectionId=connection_id)
    msg = await ws.receive(timeout=2)
    await until(lambda: len(rec.events("$disconnect")) == 1)
    await asyncio.sleep(0.1)

    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1000
    (event,) = rec.events("$disconnect")
    ctx = event["requestContext"]
    assert (ctx["eventType"], ctx["routeKey"], ctx["connectionId"]) == ("DISCONNECT", "$disconnect", connection_id)
    assert (ctx["disconnectStatusCode"], ctx["disconnectReason"]) == (1000, "Connection Closed Normally")
    assert event["headers"]["Host"] == f"127.0.0.1:{gateway.port}"
    with pytest.raises(client.exceptions.GoneException):
        await asyncio.to_thread(client.post_to_connection, ConnectionId=connection_id, Data=b"late")


async def test_unknown_connection_is_gone(make_gateway) -> None:
    gateway = await make_gateway({})
    client = management(gateway)

    for call in (client.get_connection, client.delete_connection):
        with pytest.raises(client.exceptions.GoneException):
            await asyncio.to_thread(call, ConnectionId="AAAAAAAAAAAAAAA=")
    with pytest.raises(client.exceptions.GoneException) as gone:
        await asyncio.to_thread(client.post_to_connection, ConnectionId="AAAAAAAAAAAAAAA=", Data=b"x")
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410


async def test_post_payload_limit_is_128_kb(make_gateway, session) -> None:
    gateway = await make_gateway({})
    ws, connection_id = await connect(session, gateway)
    client = management(gateway)

    with pytest.raises(client.exceptions.PayloadTooLargeException):
        await asyncio.to_thread(client.post_to_connection, ConnectionId=connection_id, Data=b"x" * (128 * KB + 1))
    await asyncio.to_thread(client.post_to_connection, ConnectionId=connection_id, Data=b"y" * (128 * KB))
    msg = await ws.receive(timeout=2)

    assert msg.data == "y" * (128 * KB)
    await ws.close()


async def test_post_to_closing_connection_is_gone_not_hanging(make_gateway, session) -> None:
    release = asyncio.Event()
    disconnects: list[Event] = []

    async def slow_disconnect(event: Event) -> None:
        disconnects.append(event)
        await release.wait()

    gateway = await make_gateway({"$disconnect": slow_disconnect})
    ws, connection_id = await connect(session, gateway)
    client = management(gateway)
    await ws.close()
    await until(lambda: len(disconnects) == 1)  # the socket is gone, $disconnect still running

    with pytest.raises(client.exceptions.GoneException):
        post = asyncio.to_thread(client.post_to_connection, ConnectionId=connection_id, Data=b"x")
        await asyncio.wait_for(post, timeout=2)
    release.set()


# -- inbound limits and timeouts ------------------------------------------------------------------------


async def test_frame_over_32_kb_closes_with_1009(make_gateway, session) -> None:
    rec = Recorder()
    gateway = await make_gateway({"$default": rec.route("$default"), "$disconnect": rec.route("$disconnect")})
    ws, _ = await connect(session, gateway)

    await ws.send_str("x" * (32 * KB + 1))  # aiohttp sends one frame
    msg = await ws.receive(timeout=2)
    await until(lambda: len(rec.events("$disconnect")) == 1)

    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1009
    assert rec.events("$disconnect")[0]["requestContext"]["disconnectStatusCode"] == 1009
    assert rec.events("$default") == []


async def test_fragmented_message_limit_is_128_kb(make_gateway) -> None:
    rec = Recorder()
    gateway = await make_gateway({"$default": rec.route("$default"), "$disconnect": rec.route("$disconnect")})

    ok = await RawClient.connect(gateway)
    await ok.send_fragmented(b"a" * (128 * KB), frame_size=32 * KB)  # 4 frames of exactly 32 KB
    await until(lambda: len(rec.events("$default")) == 1)
    assert len(rec.events("$default")[0]["body"]) == 128 * KB
    ok.close()

    too_big = await RawClient.connect(gateway)
    await too_big.send_fragmented(b"b" * (128 * KB + 1), frame_size=30 * KB)
    assert await asyncio.wait_for(too_big.read_close_code(), timeout=2) == 1009
    await until(lambda: any(e["requestContext"]["disconnectStatusCode"] == 1009 for e in rec.events("$disconnect")))
    assert len(rec.events("$default")) == 1
    too_big.close()


async def test_binary_frame_closes_with_1003(make_gateway, session) -> None:
    rec = Recorder()
    gateway = await make_gateway({"$default": rec.route("$default"), "$disconnect": rec.route("$disconnect")})
    ws, _ = await connect(session, gateway)

    await ws.send_bytes(b"\x00\x01")
    msg = await ws.receive(timeout=2)
    await until(lambda: len(rec.events("$disconnect")) == 1)

    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1003
    assert rec.events("$disconnect")[0]["requestContext"]["disconnectStatusCode"] == 1003
    assert rec.events("$default") == []


async def test_idle_timeout_counts_both_directions(make_gateway, session) -> None:
    rec = Recorder()
    limits = GatewayLimits(idle_timeout=0.3, max_connection_duration=30.0)
    gateway = await make_gateway({"$disconnect": rec.route("$disconnect")}, limits=limits)
    idle, idle_id = await connect(session, gateway)
    busy, busy_id = await connect(session, gateway)
    client = management(gateway)

    for _ in range(4):  # 0.6 s of outbound traffic keeps `busy` alive past the 0.3 s idle timeout
        await asyncio.sleep(0.15)
        await asyncio.to_thread(client.post_to_connection, ConnectionId=busy_id, Data=b"keepalive")

    assert (await idle.receive(timeout=1)).data == 1001
    assert busy_id in gateway.connection_ids and idle_id not in gateway.connection_ids
    (event,) = rec.events("$disconnect")
    ctx = event["requestContext"]
    assert (ctx["connectionId"], ctx["disconnectStatusCode"], ctx["disconnectReason"]) == (idle_id, 1001, "Going away")
    await busy.close()


async def test_max_connection_duration_closes_active_connection(make_gateway, session) -> None:
    rec = Recorder()
    limits = GatewayLimits(idle_timeout=30.0, max_connection_duration=0.3)
    gateway = await make_gateway(
        {"$default": rec.route("$default"), "$disconnect": rec.route("$disconnect")}, limits=limits
    )
    ws, connection_id = await connect(session, gateway)
    started = time.monotonic()
    closed = asyncio.create_task(ws.receive(timeout=2))

    while not closed.done():  # an active client: one message every 50 ms, well inside the idle timeout
        await ws.send_str('{"type": "tick"}')
        await asyncio.wait({closed}, timeout=0.05)
    elapsed = time.monotonic() - started
    await until(lambda: len(rec.events("$disconnect")) == 1)

    assert closed.result().data == 1001 and 0.25 <= elapsed < 1.0
    assert len(rec.events("$default")) >= 4
    ctx = rec.events("$disconnect")[0]["requestContext"]
    assert (ctx["connectionId"], ctx["disconnectStatusCode"], ctx["disconnectReason"]) == (
        connection_id,
        1001,
        "Going away",
    )


async def test_client_close_code_and_reason_reach_disconnect(make_gateway, session) -> None:
    rec = Recorder()
    gateway = await make_gateway({"$disconnect": rec.route("$disconnect")})
    ws, _ = await connect(session, gateway)

    await ws.close(code=4000, message=b"viewer left")
    await until(lambda: len(rec.events("$disconnect")) == 1)

    ctx = rec.events("$disconnect")[0]["requestContext"]
    assert (ctx["disconnectStatusCode"], ctx["disconnectReason"]) == (4000, "viewer left")


# -- dispatch and resilience ----------------------------------------------------------------------------


async def test_messages_are_ordered_per_connection_and_concurrent_across(make_gateway, session) -> None:
    log: list[tuple[str, str, int]] = []
    in_flight = {"now": 0, "max": 0}

    async def slow(event: Event) -> None:
        connection_id, n = event["requestContext"]["connectionId"], json.loads(event["body"])["n"]
        log.append(("start", connection_id, n))
        in_flight["now"] += 1
        in_flight["max"] = max(in_flight["max"], in_flight["now"])
        await asyncio.sleep(0.02)
        in_flight["now"] -= 1
        log.append(("end", connection_id, n))

    gateway = await make_gateway({"$default": slow})
    sockets = [await connect(session, gateway) for _ in range(2)]
    for n in range(5):
        for ws, _ in sockets:
            await ws.send_str(json.dumps({"n": n}))
    await until(lambda: len(log) == 20)

    for _, connection_id in sockets:
        mine = [(kind, n) for kind, cid, n in log if cid == connection_id]
        assert mine == [(kind, n) for n in range(5) for kind in ("start", "end")]
    assert in_flight["max"] == 2
    for ws, _ in sockets:
        await ws.close()


async def test_raising_handler_sends_error_frame_and_gateway_survives(make_gateway, session) -> None:
    rec = Recorder()
    gateway = await make_gateway({"boom": rec.route("boom", fail=True), "$default": rec.route("$default")})
    ws, connection_id = await connect(session, gateway)

    await ws.send_str('{"type": "boom"}')
    error = json.loads((await ws.receive(timeout=2)).data)
    await ws.send_str('{"type": "fine"}')
    await until(lambda: len(rec.events("$default")) == 1)

    assert error["message"] == "Internal server error" and error["connectionId"] == connection_id
    assert error["requestId"] == rec.events("boom")[0]["requestContext"]["requestId"]
    assert connection_id in gateway.connection_ids
    await ws.close()


async def test_close_disconnects_everyone(make_gateway, session) -> None:
    rec = Recorder()
    gateway = await make_gateway({"$disconnect": rec.route("$disconnect")})
    sockets = [await connect(session, gateway) for _ in range(3)]

    await gateway.close()
    codes = [(await ws.receive(timeout=2)).data for ws, _ in sockets]

    assert codes == [1001, 1001, 1001]
    assert sorted(e["requestContext"]["connectionId"] for e in rec.events("$disconnect")) == sorted(
        cid for _, cid in sockets
    )
    assert gateway.connection_ids == frozenset()
    with pytest.raises(aiohttp.ClientConnectionError):
        await session.ws_connect(gateway.ws_url)
