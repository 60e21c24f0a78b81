"""The local HTTP API (API Gateway payload 2.0) in a real aiohttp server, driven by a real aiohttp client."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import boto3
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from capturestream.settings import get_settings
from capturestream.tokens import issue_token
from devstack.http_api import HttpApiAdapter
from functions.api import deps
from functions.api import handler as api_handler
from tests.support.aws import create_media_table

Serve = Callable[..., Awaitable[tuple[str, HttpApiAdapter]]]


class Recorder:
    """An ``invoke`` that records events and answers with a canned (or computed) result."""

    def __init__(self, result: Any = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.result = result if result is not None else {"statusCode": 200, "body": "ok"}

    async def __call__(self, event: dict[str, Any]) -> Any:
        self.events.append(event)
        return self.result(event) if callable(self.result) else self.result

    @property
    def event(self) -> dict[str, Any]:
        assert len(self.events) == 1, self.events
        return self.events[0]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start a real aiohttp server that hands matching requests to an adapter (as the local stack mounts it)."""
    servers: list[TestServer] = []

    async def start(
        routes: list[tuple[str, str, Any]], *, claim_all: bool = False, **options: Any
    ) -> tuple[str, HttpApiAdapter]:
        adapter = HttpApiAdapter(routes, **options)

        async def dispatch(request: web.Request) -> web.StreamResponse:
            if claim_all or adapter.match(request.method, request.path):
                return await adapter.handle(request)
            return web.Response(status=418, text="not the API")  # the CDN edge would serve this

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", dispatch)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/"), adapter

    yield start
    for server in servers:
        await server.close()


async def test_event_has_the_payload_2_0_shape(serve: Serve) -> None:
    recorder = Recorder()
    base, _ = await serve([("ANY", "/api/{proxy+}", recorder)])
    headers = CIMultiDict([("X-Custom", "one"), ("X-Custom", "two"), ("Cookie", "a=1; b=2"), ("User-Agent", "ua/1")])
    query = "limit=2&tag=a&tag=b&q=hello%20world&empty="
    before = time.time()
    async with aiohttp.ClientSession() as session, session.get(f"{base}/api/channels/me?{query}", headers=headers) as r:
        assert r.status == 200
        assert await r.text() == "ok"
        request_id = r.headers["apigw-requestid"]
    event = recorder.event
    assert event["version"] == "2.0"
    assert event["routeKey"] == "ANY /api/{proxy+}"
    assert event["rawPath"] == "/api/channels/me"
    assert event["rawQueryString"] == query
    assert event["queryStringParameters"] == {"limit": "2", "tag": "a,b", "q": "hello world", "empty": ""}
    assert event["pathParameters"] == {"proxy": "channels/me"}
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["headers"]["x-custom"] == "one,two"
    assert "cookie" not in event["headers"]
    assert all(name == name.lower() for name in event["headers"])
    assert event["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert event["headers"]["x-forwarded-proto"] == "http"
    assert event["headers"]["x-forwarded-port"] == base.rsplit(":", 1)[1]
    assert event["isBase64Encoded"] is False
    assert "body" not in event
    assert "stageVariables" not in event
    context = event["requestContext"]
    assert context["http"] == {
        "method": "GET",
        "path": "/api/channels/me",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "ua/1",
    }
    assert context["routeKey"] == "ANY /api/{proxy+}"
    assert context["stage"] == "$default"
    assert context["requestId"] == request_id
    assert context["accountId"] and context["apiId"]
    assert context["domainName"] == base.split("://", 1)[1]
    assert re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000", context["time"])
    assert before * 1000 - 1000 <= context["timeEpoch"] <= time.time() * 1000 + 1000


async def test_bodies_round_trip_text_and_binary(serve: Serve) -> None:
    def echo(event: dict[str, Any]) -> dict[str, Any]:
        content_type = event["headers"].get("content-type", "application/octet-stream")
        body = event["body"] if event["isBase64Encoded"] else base64.b64encode(event["body"].encode()).decode()
        return {"statusCode": 200, "headers": {"content-type": content_type}, "body": body, "isBase64Encoded": True}

    recorder = Recorder(echo)
    base, _ = await serve([("POST", "/upload", recorder)])
    binary = bytes(range(256)) * 4
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/upload", data=binary, headers={"Content-Type": "image/png"}) as r:
            assert r.status == 200
            assert await r.read() == binary
            assert r.headers["Content-Type"] == "image/png"
        async with session.post(f"{base}/upload", json={"name": "é ok"}) as r:
            assert await r.json() == {"name": "é ok"}
        async with session.post(f"{base}/upload", data=b"a=1&b=2", headers={"Content-Type": "text/plain"}) as r:
            assert await r.read() == b"a=1&b=2"
    binary_event, json_event, text_event = recorder.events
    assert binary_event["isBase64Encoded"] is True
    assert base64.b64decode(binary_event["body"]) == binary
    assert json_event["isBase64Encoded"] is False
    assert json.loads(json_event["body"]) == {"name": "é ok"}
    assert text_event["body"] == "a=1&b=2"
    assert binary_event["headers"]["content-length"] == str(len(binary))


async def test_response_mapping_v2(serve: Serve) -> None:
    result = {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "X-Trace": "abc", "X-Number": 7},
        "multiValueHeaders": {"X-Ignored": ["1", "2"]},  # a 1.0 field: HTTP APIs ignore it in 2.0
        "cookies": ["session=1; HttpOnly", "theme=dark"],
        "body": '{"created": true}',
    }
    base, _ = await serve([("POST", "/things", Recorder(result))])
    async with aiohttp.ClientSession() as session, session.post(f"{base}/things") as r:
        assert r.status == 201
        assert await r.json() == {"created": True}
        assert r.headers["X-Trace"] == "abc"
        assert r.headers["X-Number"] == "7"
        assert r.headers.getall("Set-Cookie") == ["session=1; HttpOnly", "theme=dark"]
        assert "X-Ignored" not in r.headers
        assert r.headers["apigw-requestid"]


@pytest.mark.parametrize(
    ("result", "body"),
    [({"hello": "world"}, b'{"hello": "world"}'), ("plain text", b"plain text"), ([1, 2], b"[1, 2]")],
)
async def test_response_without_status_code_is_inferred(serve: Serve, result: Any, body: bytes) -> None:
    base, _ = await serve([("GET", "/infer", Recorder(result))])
    async with aiohttp.ClientSession() as session, session.get(f"{base}/infer") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json"
        assert await r.read() == body


async def test_function_error_and_malformed_response_are_500(serve: Serve) -> None:
    async def crash(event: dict[str, Any]) -> Any:
        raise RuntimeError("handler blew up")

    base, _ = await serve(
        [("GET", "/crash", crash), ("GET", "/malformed", Recorder({"statusCode": "two hundred", "body": "x"}))]
    )
    async with aiohttp.ClientSession() as session:
        for path in ("/crash", "/malformed"):
            async with session.get(f"{base}{path}") as r:
                assert r.status == 500
                assert await r.json() == {"message": "Internal Server Error"}
                assert r.headers["apigw-requestid"]


async def test_slow_function_times_out_with_503(serve: Serve) -> None:
    async def slow(event: dict[str, Any]) -> Any:
        await asyncio.sleep(5)
        return {"statusCode": 200}

    base, adapter = await serve([("GET", "/slow", slow)], timeout_seconds=0.3)
    started = time.monotonic()
    async with aiohttp.ClientSession() as session, session.get(f"{base}/slow") as r:
        assert r.status == 503
        assert await r.json() == {"message": "Service Unavailable"}
    assert 0.25 <= time.monotonic() - started < 2.0
    assert adapter.timeout_seconds == 0.3


async def test_oversized_payload_is_413(serve: Serve) -> None:
    recorder = Recorder()
    base, adapter = await serve([("POST", "/small", recorder)], max_payload_bytes=1024)
    base_default, default = await serve([("POST", "/big", recorder)])
    assert default.max_payload_bytes == 10 * 1024 * 1024

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the cap applies while reading
        for _ in range(3):
            yield b"x" * 600

    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/small", data=b"x" * 1025) as r:
            assert r.status == 413
            assert await r.json() == {"message": "Request Entity Too Large"}
        async with session.post(f"{base}/small", data=chunked()) as r:
            assert r.status == 413
        async with session.post(f"{base}/small", data=b"x" * 1024) as r:
            assert r.status == 200
        async with session.post(f"{base_default}/big", data=io.BytesIO(b"x" * (10 * 1024 * 1024 + 1))) as r:
            assert r.status == 413
        async with session.post(f"{base_default}/big", data=io.BytesIO(b"x" * (2 * 1024 * 1024))) as r:
            assert r.status == 200  # above aiohttp's default client_max_size (1 MiB), below the API limit
    assert len(recorder.events) == 2


async def test_unknown_route_is_404(serve: Serve) -> None:
    base, adapter = await serve([("GET", "/docs", Recorder())], claim_all=True)
    assert adapter.match("GET", "/docs")
    assert not adapter.match("POST", "/docs")
    assert not adapter.match("GET", "/docs/extra")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/docs") as r:
            assert r.status == 200
        for method, path in (("POST", "/docs"), ("GET", "/docs/extra"), ("GET", "/")):
            async with session.request(method, f"{base}{path}") as r:
                assert r.status == 404
                assert await r.json() == {"message": "Not Found"}
                assert r.headers["apigw-requestid"]


async def test_most_specific_route_wins(serve: Serve) -> None:
    keys = ["GET /pets/{id}", "GET /pets/dog", "ANY /pets/{proxy+}", "$default", "POST /pets/{id}"]
    routes = [(k.split(" ")[0], k.split(" ")[-1], Recorder(lambda event: event["routeKey"])) for k in keys]
    base, adapter = await serve(routes)
    assert adapter.route_keys[-1] == "$default"
    cases = {
        ("GET", "/pets/dog"): "GET /pets/dog",
        ("GET", "/pets/7"): "GET /pets/{id}",
        ("POST", "/pets/7"): "POST /pets/{id}",
        ("DELETE", "/pets/7"): "ANY /pets/{proxy+}",
        ("GET", "/pets/7/toys"): "ANY /pets/{proxy+}",
        ("GET", "/elsewhere"): "$default",
    }
    async with aiohttp.ClientSession() as session:
        for (method, path), expected in cases.items():
            async with session.request(method, f"{base}{path}") as r:
                assert await r.text() == expected, (method, path)
    pet = next(r for r in routes if r[1] == "/pets/{id}" and r[0] == "GET")[2]
    assert pet.events[0]["pathParameters"] == {"id": "7"}
    with pytest.raises(ValueError):
        HttpApiAdapter([("GET", "/a/{rest+}/b", Recorder())])
    with pytest.raises(ValueError):
        HttpApiAdapter([("GET", "/a", Recorder()), ("GET", "/a", Recorder())])


# ------------------------------------------------------------------------------------------------ end to end


@pytest.fixture
def api_stack(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("TABLE_NAME", "capturestream-MediaTable")
    monkeypatch.setenv("MEDIA_BUCKET", "capturestream-media")
    monkeypatch.setenv("JWT_SECRET", "integration-jwt-secret-0123456789abcdef")
    monkeypatch.setenv("RTMP_INGEST_URL", "rtmp://127.0.0.1:1935/live")
    monkeypatch.setenv("WEB_BASE_URL", "http://127.0.0.1:8000")
    get_settings.cache_clear()
    deps.reset_clients()
    create_media_table(boto3.client("dynamodb"))
    yield
    get_settings.cache_clear()
    deps.reset_clients()


async def lambda_invoke(event: dict[str, Any]) -> Any:
    """The real REST handler, in a worker thread, with the event and result JSON round-tripped like Lambda."""
    result = await asyncio.to_thread(api_handler.handler, json.loads(json.dumps(event)), None)
    return json.loads(json.dumps(result))


async def test_end_to_end_through_the_real_api_handler(serve: Serve, api_stack: None) -> None:
    base, _ = await serve(
        [
            ("ANY", "/api/{proxy+}", lambda_invoke),
            ("GET", "/docs", lambda_invoke),
            ("GET", "/openapi.json", lambda_invoke),
        ]
    )
    token = issue_token("integration-jwt-secret-0123456789abcdef", "e2e-user", 300)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/api/status") as r:
            assert r.status == 200
            body = await r.json()
            assert body["status"] == "ok" and body["checks"] == {"table": "ok"}
            assert r.headers["apigw-requestid"]
        async with session.post(
            f"{base}/api/channels", json={"name": "e2e"}, headers={"Authorization": f"Bearer {token}"}
        ) as r:
            assert r.status == 201
            created = await r.json()
            assert created["streamKey"].startswith("live_")
            assert r.headers["Cache-Control"] == "no-store"
        async with session.get(f"{base}/api/channels/me", headers={"Authorization": "Bearer nope"}) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
        async with session.get(f"{base}/docs") as r:
            assert r.status == 200
            assert "swagger" in (await r.text()).lower()
        async with session.get(f"{base}/api/does-not-exist") as r:
            assert r.status == 404
            assert (await r.json())["error"]["code"] == "not_found"
        async with session.get(f"{base}/not-routed") as r:
            assert r.status == 418  # not an API route: the adapter does not claim it
