"""Integration tests for the notifier's ``@connections`` client and its background event loop.

Real sockets only: the devstack API Gateway WebSocket emulator with aiohttp ``ws_connect`` viewers for delivery
and ``GoneException``; tiny aiohttp (or raw asyncio) servers for what the emulator never does on purpose (500s,
throttling, a keep-alive connection dropped under the client, checking every signature with botocore).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from unittest import mock

import aiohttp
import pytest
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from devstack.ws_gateway import GatewayLimits, WebSocketGateway
from functions.notifier import background_loop
from functions.notifier.connections import (
    DELIVERED,
    GONE,
    MAX_MESSAGE_BYTES,
    ConnectionPoster,
    PostError,
    shared_poster,
)
from tests.support.waiting import eventually

FAST = GatewayLimits(idle_timeout=30.0, max_connection_duration=30.0, integration_timeout=2.0, close_timeout=0.5)
MESSAGE = '{"type":"viewers","count":3,"note":"é ✓"}'.encode()


async def _ok(event: dict[str, Any]) -> dict[str, int]:
    return {"statusCode": 200}


until = functools.partial(eventually, timeout=2.0, interval=0.005)


@pytest.fixture
async def gateway() -> AsyncIterator[WebSocketGateway]:
    async with WebSocketGateway({"$connect": _ok, "$disconnect": _ok}, limits=FAST) as started:
        yield started


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def viewers(
    session: aiohttp.ClientSession, gateway: WebSocketGateway, count: int
) -> dict[str, aiohttp.ClientWebSocketResponse]:
    """Open ``count`` viewer sockets; return them by the connection id the gateway assigned.

    Each viewer learns its id from a first message: its id, posted to it.
    """
    sockets = await asyncio.gather(*(session.ws_connect(gateway.ws_url) for _ in range(count)))
    await until(lambda: len(gateway.connection_ids) == count)
    async with ConnectionPoster(gateway.management_url) as poster:
        for connection_id in gateway.connection_ids:
            assert await poster.post(connection_id, connection_id.encode()) == DELIVERED
    return {(await ws.receive_str(timeout=2)): ws for ws in sockets}


# -- delivery and GoneException against the emulator -------------------------------------------------------------


async def test_post_many_delivers_the_exact_bytes_to_every_viewer(gateway, session) -> None:
    sockets = await viewers(session, gateway, 50)
    async with ConnectionPoster(gateway.management_url, in_flight=8) as poster:
        result = await poster.post_many(sockets, MESSAGE)
    assert (result.delivered, result.gone, result.failed) == (50, [], {})
    received = await asyncio.gather(*(ws.receive(timeout=2) for ws in sockets.values()))
    assert all(message.type is aiohttp.WSMsgType.TEXT for message in received)
    assert {message.data.encode() for message in received} == {MESSAGE}


async def test_a_closed_viewer_comes_back_gone_and_the_others_are_delivered(gateway, session) -> None:
    sockets = await viewers(session, gateway, 5)
    closed_id, closed = next(iter(sockets.items()))
    await closed.close()
    await until(lambda: closed_id not in gateway.connection_ids)
    async with ConnectionPoster(gateway.management_url) as poster:
        result = await poster.post_many([*sockets, "neverExisted0000="], MESSAGE)
        assert await poster.post(closed_id, MESSAGE) == GONE
    assert result.delivered == 4 and result.failed == {}
    assert sorted(result.gone) == sorted([closed_id, "neverExisted0000="])
    for connection_id, ws in sockets.items():
        if connection_id != closed_id:
            assert (await ws.receive_str(timeout=2)).encode() == MESSAGE


async def test_an_oversized_message_raises_before_any_request(gateway, session) -> None:
    sockets = await viewers(session, gateway, 1)
    (connection_id,) = sockets
    async with ConnectionPoster(gateway.management_url) as poster:
        with mock.patch.object(poster, "_attempt", wraps=poster._attempt) as attempts:
            with pytest.raises(ValueError, match="quota"):
                await poster.post_many(sockets, b"x" * (MAX_MESSAGE_BYTES + 1))
            with pytest.raises(ValueError, match="quota"):
                await poster.post(connection_id, b"x" * (MAX_MESSAGE_BYTES + 1))
            assert attempts.call_count == 0
            assert await poster.post(connection_id, b"y" * MAX_MESSAGE_BYTES) == DELIVERED  # the quota itself fits
    assert len(await sockets[connection_id].receive_str(timeout=2)) == MAX_MESSAGE_BYTES


# -- retries against scripted servers --------------------------------------------------------------------------


class Scripted:
    """An ``@connections`` endpoint answering each id from a script of statuses; the last one repeats."""

    def __init__(self, scripts: dict[str, list[int]]) -> None:
        self.scripts = scripts
        self.calls: dict[str, int] = {}

    async def post(self, request: web.Request) -> web.Response:
        connection_id = request.match_info["connection_id"]
        await request.read()
        script = self.scripts[connection_id]
        status = script[min(self.calls.get(connection_id, 0), len(script) - 1)]
        self.calls[connection_id] = self.calls.get(connection_id, 0) + 1
        error_type = {410: "GoneException", 403: "ForbiddenException", 429: "LimitExceededException"}
        headers = {"x-amzn-ErrorType": error_type[status]} if status in error_type else {}
        return web.Response(status=status, body=b'{"message": "scripted"}', headers=headers)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[web.Application], Awaitable[str]]]:
    """Start an aiohttp app on 127.0.0.1; returns its ``http://127.0.0.1:PORT/dev`` endpoint."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{runner.addresses[0][1]}/dev"

    yield start
    for runner in runners:
        await runner.cleanup()


async def scripted(serve: Callable[[web.Application], Awaitable[str]], scripts: dict[str, list[int]]) -> Any:
    server = Scripted(scripts)
    app = web.Application()
    app.router.add_post("/dev/@connections/{connection_id}", server.post)
    return server, await serve(app)


async def test_500_and_429_are_retried_then_delivered(serve) -> None:
    server, endpoint = await scripted(serve, {"flaky0000=": [500, 503, 200], "busy0000=": [429, 200]})
    async with ConnectionPoster(endpoint, retries=2, backoff=0.001) as poster:
        assert await poster.post("flaky0000=", MESSAGE) == DELIVERED
        result = await poster.post_many(["busy0000="], MESSAGE)
    assert result.delivered == 1 and server.calls == {"flaky0000=": 3, "busy0000=": 2}


async def test_max_rps_caps_the_sustained_rate_but_not_one_burst(serve) -> None:
    """A bucket of 200/s holds one second's worth: 200 posts go at once, the next 100 need ~0.5 s more."""
    ids = [f"rate{index:04d}=" for index in range(300)]
    server, endpoint = await scripted(serve, {i: [200] for i in ids})
    async with ConnectionPoster(endpoint, max_rps=200) as poster:
        started = time.monotonic()
        burst = await poster.post_many(ids[:200], MESSAGE)
        burst_seconds = time.monotonic() - started
        rest = await poster.post_many(ids[200:], MESSAGE)
        total = time.monotonic() - started
    assert burst.delivered == 200 and rest.delivered == 100 and sum(server.calls.values()) == 300
    assert burst_seconds < 0.4 and 0.45 <= total < 2.0, (burst_seconds, total)


async def test_retries_are_bounded_and_4xx_is_not_retried(serve) -> None:
    scripts = {"down0000=": [500], "bad id": [403], "gone0000=": [410], "fine0000=": [200], "huge0000=": [413]}
    server, endpoint = await scripted(serve, scripts)
    async with ConnectionPoster(endpoint, retries=2, backoff=0.001) as poster:
        with pytest.raises(PostError) as down:
            await poster.post("down0000=", MESSAGE)
        result = await poster.post_many(scripts, MESSAGE)
    assert down.value.status == 500 and down.value.connection_id == "down0000="
    assert server.calls == {"down0000=": 6, "bad id": 1, "gone0000=": 1, "fine0000=": 1, "huge0000=": 1}
    assert result.delivered == 1 and result.gone == ["gone0000="]
    assert set(result.failed) == {"down0000=", "bad id", "huge0000="}
    assert "ForbiddenException" in result.failed["bad id"] and result.failed["down0000="].startswith("500")


async def test_an_unreachable_endpoint_fails_after_the_retries() -> None:
    async with ConnectionPoster("http://127.0.0.1:9/dev", retries=1, backoff=0.001, timeout=1.0) as poster:
        result = await poster.post_many(["a0000000="], MESSAGE)
    assert result.failed and result.failed["a0000000="].startswith("0 ClientConnectorError")


async def test_a_silent_endpoint_times_out_and_is_retried() -> None:
    requests: list[bytes] = []
    closed: list[bool] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readuntil(b"\r\n\r\n"))
        await reader.read()  # until the client gives up and closes
        writer.close()
        closed.append(True)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    async with server:
        endpoint = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/dev"
        async with ConnectionPoster(endpoint, timeout=0.1, retries=1, backoff=0.001) as poster:
            with pytest.raises(PostError) as silent:
                await poster.post("quiet0000=", MESSAGE)
        await until(lambda: len(closed) == len(requests))
    assert silent.value.status == 0 and silent.value.error_type == "SocketTimeoutError"
    assert len(requests) == 2


async def test_requests_carry_botocores_signature_for_any_id(serve) -> None:
    """Every request, as received, verifies against botocore's SigV4Auth (odd ids take the slow path)."""
    seen: list[tuple[str, str]] = []

    async def verify(request: web.Request) -> web.Response:
        body = await request.read()
        url = f"http://{request.host}{request.raw_path}"
        theirs = AWSRequest("POST", url, data=body)
        signed_at = dt.datetime.strptime(request.headers["x-amz-date"], "%Y%m%dT%H%M%SZ")
        with mock.patch("botocore.auth.get_current_datetime", return_value=signed_at):
            SigV4Auth(Credentials("test", "test"), "execute-api", "us-east-1").add_auth(theirs)
        seen.append((request.match_info["connection_id"], request.raw_path))
        ok = theirs.headers["Authorization"] == request.headers["Authorization"]
        return web.Response(status=200 if ok else 403, headers={"x-amzn-ErrorType": "InvalidSignatureException"})

    app = web.Application()
    app.router.add_post("/dev/@connections/{connection_id}", verify)
    endpoint = await serve(app)
    ids = ["Jd3AbcdEfgh=", "C00000001=", "a/b", "x+y z", "é", "trailing=="]
    async with ConnectionPoster(endpoint) as poster:
        result = await poster.post_many(ids, MESSAGE)
    assert (result.delivered, result.failed) == (len(ids), {})
    assert sorted(connection_id for connection_id, _ in seen) == sorted(ids)
    assert ("Jd3AbcdEfgh=", "/dev/@connections/Jd3AbcdEfgh%3D") in seen


async def stale_keepalive_server() -> tuple[asyncio.Server, str, list[str]]:
    """Answers the first request of each TCP connection (keep-alive), then drops the connection on the second
    without answering: what a client finds when it reuses a connection that died while it was frozen."""
    log: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                if served:
                    log.append("dropped")
                    return
                log.append("answered")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                served += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/dev", log


async def test_a_stale_keepalive_connection_is_retried_at_once() -> None:
    server, endpoint, log = await stale_keepalive_server()
    async with server:
        async with ConnectionPoster(endpoint, in_flight=1, retries=1, backoff=30.0) as poster:
            assert await poster.post("first0000=", MESSAGE) == DELIVERED
            started = time.monotonic()
            assert await poster.post("second000=", MESSAGE) == DELIVERED  # reused → dropped → new connection
            assert time.monotonic() - started < 1.0  # no backoff for a stale connection
        assert log == ["answered", "dropped", "answered"]
        async with ConnectionPoster(endpoint, in_flight=1, retries=0) as poster:
            await poster.post("first0000=", MESSAGE)
            with pytest.raises(PostError) as stale:
                await poster.post("second000=", MESSAGE)
        assert stale.value.status == 0 and stale.value.error_type == "ServerDisconnectedError"


# -- the background loop ---------------------------------------------------------------------------------------


async def test_background_loop_serves_several_threads_with_one_poster(gateway, session) -> None:
    sockets = await viewers(session, gateway, 6)
    loop = background_loop.BackgroundLoop(name="test-loop")
    seen: list[tuple[ConnectionPoster, threading.Thread]] = []

    async def notify(connection_id: str) -> str:
        poster = await shared_poster(gateway.management_url)
        seen.append((poster, threading.current_thread()))
        return await poster.post(connection_id, MESSAGE)

    def invoke(connection_id: str) -> str:  # what a synchronous Lambda handler does
        return loop.run(notify(connection_id), timeout=5)

    try:
        outcomes = await asyncio.gather(*(asyncio.to_thread(invoke, connection_id) for connection_id in sockets))
        assert outcomes == [DELIVERED] * len(sockets)
        assert len({id(poster) for poster, _ in seen}) == 1  # created once, lazily, inside the loop
        assert {thread.name for _, thread in seen} == {"test-loop"}
        for ws in sockets.values():
            assert (await ws.receive_str(timeout=2)).encode() == MESSAGE
        await asyncio.to_thread(loop.run, seen[0][0].close())
    finally:
        loop.close()


def test_background_loop_timeouts_errors_and_reentry() -> None:
    loop = background_loop.BackgroundLoop()
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def fails() -> None:
        raise KeyError("boom")

    async def reenter() -> None:
        loop.run(asyncio.sleep(0))

    try:
        with pytest.raises(TimeoutError):
            loop.run(slow(), timeout=0.05)
        assert cancelled.wait(1)
        with pytest.raises(KeyError):
            loop.run(fails())
        with pytest.raises(RuntimeError, match="own loop"):
            loop.run(reenter())
        assert loop.run(asyncio.sleep(0, "ok")) == "ok"
    finally:
        loop.close()
    assert background_loop.shared() is background_loop.shared()
    assert background_loop.run(asyncio.sleep(0, 42), timeout=1) == 42
