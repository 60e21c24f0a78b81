"""The local API Gateway HTTP API: aiohttp requests → Lambda proxy events (payload format 2.0) → responses.

This module owns :class:`HttpApiAdapter`, which the local stack mounts beside the CDN edge so the REST function
(``functions/api``) gets exactly the events it gets in AWS. Behaviour follows the API Gateway developer guide
("Working with AWS Lambda proxy integrations for HTTP APIs", "Working with routes for HTTP APIs", "Quotas for
configuring and running an HTTP API"); where the guide is silent, observed AWS behaviour is cited inline.

Rules:
- Routes are API Gateway route keys: ``METHOD /path`` with ``{param}`` and a trailing greedy ``{name+}``,
  ``ANY`` for every method, and ``$default`` as the catch-all. The most specific route wins: no greedy variable
  before greedy, more literal segments first, an explicit method before ``ANY``, ``$default`` last.
- The event is the 2.0 shape: header names lower-cased and repeated headers joined with ``,``; ``Cookie``
  headers moved into ``cookies``; repeated query values joined with ``,``; ``rawPath``, ``http.path`` and path
  parameters URL-decoded (HTTP APIs decode the path; REST APIs do not); the body is text only for ``text/*``,
  ``application/json``, ``application/xml`` and ``application/javascript`` (verified against AWS in
  ministackorg/ministack#766), otherwise base64 with ``isBase64Encoded``. Absent parts (body, query, cookies,
  path parameters) are left out, and ``stageVariables`` is never sent (the ``$default`` stage has none).
- Responses are read the 2.0 way: ``statusCode``/``headers``/``cookies`` (each one ``Set-Cookie``)/``body``/
  ``isBase64Encoded``. ``multiValueHeaders`` is a 1.0 field that HTTP APIs ignore in 2.0 responses (the API
  Gateway team, aws/serverless-java-container#377), so it is ignored here too. A result without
  ``statusCode`` is inferred: 200, ``application/json``, the result as body (a string as-is, else its JSON).
- Gateway errors look like AWS's: no route → 404 ``{"message":"Not Found"}``; payload over 10 MB → 413
  ``{"message":"Request Entity Too Large"}``; function error or malformed response → 500
  ``{"message":"Internal Server Error"}``; integration timeout (30 s, the HTTP API maximum) → 503
  ``{"message":"Service Unavailable"}`` (what HTTP APIs answer on timeout, cortexlabs/cortex#1225). Every
  response carries an ``apigw-requestid`` header.
- The body is read from the stream with its own 10 MB cap, so the aiohttp application's ``client_max_size``
  (1 MiB by default) does not apply.
- The edge catches every function failure (that is its job); it never swallows cancellation.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDict

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "MAX_PAYLOAD_BYTES", "HttpApiAdapter", "Invoke"]

logger = logging.getLogger(__name__)

Invoke = Callable[[dict[str, Any]], Awaitable[Any]]

#: HTTP API quota "Maximum integration timeout": 30 seconds, not adjustable.
DEFAULT_TIMEOUT_SECONDS = 30.0
#: HTTP API quota "Payload size": 10 MB.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
DEFAULT_ROUTE = "$default"
LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account, as in devstack.lambda_runtime

_TEXT_TYPES = frozenset({"application/json", "application/xml", "application/javascript"})
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"})
_READ_CHUNK = 64 * 1024
_VARIABLE = re.compile(r"^\{([A-Za-z0-9_.:-]+)(\+?)\}$")


class _BadResponse(ValueError):
    """The function returned something API Gateway cannot turn into an HTTP response."""


@dataclass(frozen=True)
class _Route:
    method: str  # upper case, or "ANY"
    path: str  # the template, or "$default"
    invoke: Invoke
    pattern: re.Pattern[str] | None
    params: tuple[str, ...]
    greedy: bool
    literal_segments: int

    @property
    def key(self) -> str:
        return DEFAULT_ROUTE if self.pattern is None else f"{self.method} {self.path}"

    def rank(self) -> tuple[int, int, int, int]:
        """Sort key: most specific first (see the module rules)."""
        return (self.pattern is None, self.greedy, -self.literal_segments, self.method == "ANY")


def _compile(method: str, path: str, invoke: Invoke) -> _Route:
    """Parse one route; raises ValueError on a template API Gateway would reject."""
    method = method.upper()
    if path == DEFAULT_ROUTE:
        return _Route("ANY", path, invoke, None, (), True, 0)
    if not path.startswith("/"):
        raise ValueError(f"route path must start with '/': {path!r}")
    parts, params, greedy, literals = [], [], False, 0
    segments = path.strip("/").split("/") if path != "/" else []
    for index, segment in enumerate(segments):
        variable = _VARIABLE.match(segment)
        if variable is None:
            parts.append(re.escape(segment))
            literals += 1
            continue
        if variable[2] and index != len(segments) - 1:
            raise ValueError(f"a greedy path variable must be the last segment: {path!r}")
        greedy = greedy or bool(variable[2])
        params.append(variable[1])
        parts.append("(.+)" if variable[2] else "([^/]+)")
    pattern = re.compile("/" + "/".join(parts))
    return _Route(method, path, invoke, pattern, tuple(params), greedy, literals)


def _request_id() -> str:
    """An id shaped like API Gateway's (16 base64 characters, e.g. ``RL2XYiwjPHcEMEQ=``)."""
    return base64.b64encode(secrets.token_bytes(10)).decode()


def _json_response(status: int, message: str, request_id: str) -> web.Response:
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return web.Response(
        status=status, body=body, headers={"Content-Type": "application/json", "apigw-requestid": request_id}
    )


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _clf_time(epoch: float) -> str:
    """``requestContext.time``: ``12/Mar/2020:19:03:58 +0000`` (locale-independent)."""
    t = time.gmtime(epoch)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def _is_text(content_type: str | None, content_encoding: str | None) -> bool:
    if content_encoding and content_encoding.strip().lower() not in ("", "identity"):
        return False
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type.startswith("text/") or media_type in _TEXT_TYPES


class HttpApiAdapter:
    """An API Gateway HTTP API (``$default`` stage, Lambda proxy integrations, payload format 2.0).

    Args:
        routes: ``(method, path_template, invoke)`` triples, e.g. ``("ANY", "/api/{proxy+}", fn)`` or
            ``("ANY", "$default", fn)``. ``invoke(event)`` runs the function and returns its JSON-decoded
            result; it raises when the invocation fails.
        timeout_seconds: integration timeout (API Gateway: at most 30 s).
        max_payload_bytes: request body limit (API Gateway: 10 MB).
        api_id: ``requestContext.apiId``.
        account_id: ``requestContext.accountId``.
    """

    def __init__(
        self,
        routes: Iterable[tuple[str, str, Invoke]],
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        api_id: str = "local",
        account_id: str = LOCAL_ACCOUNT_ID,
    ) -> None:
        compiled = [_compile(method, path, invoke) for method, path, invoke in routes]
        keys = [route.key for route in compiled]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise ValueError(f"duplicate routes: {', '.join(duplicates)}")
        self._routes = sorted(compiled, key=_Route.rank)
        self.timeout_seconds = timeout_seconds
        self.max_payload_bytes = max_payload_bytes
        self.api_id = api_id
        self.account_id = account_id

    @property
    def route_keys(self) -> list[str]:
        """The route keys, most specific first."""
        return [route.key for route in self._routes]

    def match(self, method: str, path: str) -> bool:
        """True when a request ``method path`` (decoded path, no query) is served by one of the routes."""
        return self._select(method, path) is not None

    def _select(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | None:
        method = method.upper()
        for route in self._routes:
            if route.method not in ("ANY", method):
                continue
            if route.pattern is None:
                return route, {}
            found = route.pattern.fullmatch(path)
            if found is not None:
                return route, dict(zip(route.params, found.groups(), strict=True))
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one request the way API Gateway would (never raises for function failures)."""
        request_id = _request_id()
        started = time.monotonic()
        response = await self._handle(request, request_id)
        logger.debug(
            "%s %s -> %d (%.1f ms, apigw-requestid %s)",
            request.method,
            request.path,
            response.status,
            (time.monotonic() - started) * 1000,
            request_id,
        )
        return response

    async def _handle(self, request: web.Request, request_id: str) -> web.StreamResponse:
        selected = self._select(request.method, request.path)
        if selected is None:
            return _json_response(404, "Not Found", request_id)
        route, path_parameters = selected
        body = await self._read_body(request)
        if body is None:
            return _json_response(413, "Request Entity Too Large", request_id)
        event = self.build_event(request, route.key, path_parameters, body, request_id)
        try:
            result = await asyncio.wait_for(route.invoke(event), self.timeout_seconds)
        except TimeoutError:
            logger.warning(
                "%s timed out after %.1f s (apigw-requestid %s)", route.key, self.timeout_seconds, request_id
            )
            return _json_response(503, "Service Unavailable", request_id)
        except Exception:  # the gateway turns any function failure into a 500, like AWS
            logger.exception("%s: function failed (apigw-requestid %s)", route.key, request_id)
            return _json_response(500, "Internal Server Error", request_id)
        try:
            return self._to_response(result, request_id)
        except _BadResponse as exc:
            logger.error("%s: malformed function response: %s (apigw-requestid %s)", route.key, exc, request_id)
            return _json_response(500, "Internal Server Error", request_id)

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The request body, or None when it exceeds the payload limit."""
        if request.content_length is not None and request.content_length > self.max_payload_bytes:
            return None
        chunks, size = [], 0
        while chunk := await request.content.read(_READ_CHUNK):
            size += len(chunk)
            if size > self.max_payload_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def build_event(
        self, request: web.Request, route_key: str, path_parameters: dict[str, str], body: bytes, request_id: str
    ) -> dict[str, Any]:
        """The payload format 2.0 event API Gateway would send for ``request``."""
        headers, cookies = _event_headers(request, body)
        raw_query = request.rel_url.raw_query_string
        now = time.time()
        host = request.host
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": request.path,
            "rawQueryString": raw_query,
            "headers": headers,
            "requestContext": {
                "accountId": self.account_id,
                "apiId": self.api_id,
                "domainName": host,
                "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
                "http": {
                    "method": request.method,
                    "path": request.path,
                    "protocol": f"HTTP/{request.version.major}.{request.version.minor}",
                    "sourceIp": request.remote or "127.0.0.1",
                    "userAgent": request.headers.get("User-Agent", ""),
                },
                "requestId": request_id,
                "routeKey": route_key,
                "stage": "$default",
                "time": _clf_time(now),
                "timeEpoch": int(now * 1000),
            },
            "isBase64Encoded": False,
        }
        if cookies:
            event["cookies"] = cookies
        if raw_query:
            event["queryStringParameters"] = _query_parameters(raw_query)
        if path_parameters:
            event["pathParameters"] = path_parameters
        if body:
            event["body"], event["isBase64Encoded"] = _event_body(request, body)
        return event

    def _to_response(self, result: Any, request_id: str) -> web.Response:
        """Map a function result to the HTTP response, the 2.0 way."""
        if not (isinstance(result, dict) and "statusCode" in result):
            text = result if isinstance(result, str) else json.dumps(result)
            headers = {"Content-Type": "application/json", "apigw-requestid": request_id}
            return web.Response(status=200, body=text.encode("utf-8"), headers=headers)
        status = result["statusCode"]
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise _BadResponse(f"statusCode must be an integer HTTP status, got {status!r}")
        headers = CIMultiDict[str]()
        for name, value in (result.get("headers") or {}).items():
            if value is not None and str(name).lower() not in _HOP_BY_HOP:
                headers.add(str(name), _header_value(value))
        for cookie in result.get("cookies") or ():
            headers.add("Set-Cookie", str(cookie))
        headers["apigw-requestid"] = request_id
        return web.Response(status=status, body=_response_body(result), headers=headers)


def _event_headers(request: web.Request, body: bytes) -> tuple[dict[str, str], list[str]]:
    """Lower-cased headers with repeats comma-joined, plus the cookies split out of ``Cookie``."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers.items():
        lower = name.lower()
        if lower == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[lower] = f"{headers[lower]},{value}" if lower in headers else value
    peer = request.remote or "127.0.0.1"
    forwarded = headers.get("x-forwarded-for")
    headers["x-forwarded-for"] = f"{forwarded}, {peer}" if forwarded else peer
    headers["x-forwarded-proto"] = request.scheme
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        headers["x-forwarded-port"] = str(sockname[1])
    headers["x-amzn-trace-id"] = f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"
    if body:
        headers["content-length"] = str(len(body))
    return headers, cookies


def _event_body(request: web.Request, body: bytes) -> tuple[str, bool]:
    """``(body, isBase64Encoded)``: UTF-8 text for textual content types, base64 for everything else."""
    if _is_text(request.headers.get("Content-Type"), request.headers.get("Content-Encoding")):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass  # declared text, but not UTF-8: pass it intact
    return base64.b64encode(body).decode(), True


def _query_parameters(raw_query: str) -> dict[str, str]:
    """Decoded query parameters, repeated names comma-joined in order (2.0 has no multi-value map)."""
    parameters: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        parameters[name] = f"{parameters[name]},{value}" if name in parameters else value
    return parameters


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise _BadResponse(f"header values must be strings, got {type(value).__name__}")


def _response_body(result: dict[str, Any]) -> bytes:
    body = result.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise _BadResponse(f"body must be a string, got {type(body).__name__}")
    if result.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except binascii.Error as exc:
            raise _BadResponse("isBase64Encoded is true but body is not valid base64") from exc
    return body.encode("utf-8")
