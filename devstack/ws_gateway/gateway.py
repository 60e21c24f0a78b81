"""The WebSocket API emulator: upgrade with ``$connect``, message routing, ``$disconnect``, lifecycle.

This module owns :class:`WebSocketGateway`, an aiohttp server that behaves like one API Gateway WebSocket
API stage: ``ws://HOST:PORT/{stage}`` for clients and ``http://HOST:PORT/{stage}`` as the
``apigatewaymanagementapi`` endpoint (the real AWS URL shape, ``https://{api-id}.execute-api.{region}
.amazonaws.com/{stage}``).

Rules:
    * Integrations are a ``Mapping[route_key, Invoker]`` (one async callable per route, as the template wires
      one function per route; in the devstack, ``LocalFunction.invoke``). Reserved keys: ``$connect``,
      ``$disconnect``, ``$default``; every other key is a custom route chosen by the selection expression.
    * ``$connect`` runs before the upgrade completes: "Until execution of the integration associated with
      the $connect route is completed, the upgrade request is pending" (https://docs.aws.amazon.com/apigateway/
      latest/developerguide/apigateway-websocket-api-route-keys-connect-disconnect.html). A non-2xx
      ``statusCode`` is returned to the client as the HTTP status (the docs' subprotocol example: the Lambda
      returns 400 and wscat prints "Unexpected server response: 400"); a ``Sec-WebSocket-Protocol`` response
      header selects the subprotocol. A raising integration refuses with 502 and a timeout with 504 (the
      REST/HTTP proxy convention; AWS does not document the WebSocket case). No ``$connect`` route: accept.
    * Routes are one-way (no route responses), as ``template.yaml`` configures them: a returned ``body`` is
      ignored and functions reply with ``post_to_connection``. Route keys listed in ``route_responses`` act
      like routes with a ``$default`` route response: a string ``body`` is sent back as a text frame.
    * A failing or timed-out message integration sends AWS's error frame (``Internal server error`` /
      ``Endpoint request timed out``); a message with no route gets ``Forbidden``. The gateway keeps running.
    * ``$disconnect`` fires exactly once per registered connection, after its queued messages were handled,
      whatever ended it. Its failures are logged, never raised ("best-effort" on AWS).
    * Per-message logging is DEBUG only; nothing configures logging.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Any

from aiohttp import web

from .config import ABNORMAL, GATEWAY_SHUTDOWN, GatewayLimits, Invoker
from .connection import Connection
from .events import (
    ConnectionInfo,
    connect_event,
    disconnect_event,
    epoch_ms,
    error_frame,
    message_event,
    new_id,
)
from .frames import install_frame_guard
from .management import ManagementApi
from .routing import DEFAULT_ROUTE, RouteSelector

__all__ = ["WebSocketGateway"]

logger = logging.getLogger(__name__)

CONNECT = "$connect"
DISCONNECT = "$disconnect"
_RESERVED = frozenset({CONNECT, DISCONNECT, DEFAULT_ROUTE})
_STAGE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # API Gateway stage names: alphanumerics, hyphen, underscore
_API_ID_ALPHABET = string.ascii_lowercase + string.digits


class _Failure(Enum):
    """How an integration failed; the value is the message of the error frame a client receives."""

    #: The integration raised (Lambda function error).
    ERROR = "Internal server error"
    #: The integration ran past ``integration_timeout`` (29 s on AWS).
    TIMEOUT = "Endpoint request timed out"


@dataclass(frozen=True, slots=True)
class _Outcome:
    response: Any = None
    failure: _Failure | None = None


def _proxy_response(response: Any) -> tuple[int, Mapping[str, Any], str]:
    """``(statusCode, headers, body)`` of a Lambda proxy response; non-dict responses count as 200."""
    if not isinstance(response, Mapping):
        return 200, {}, ""
    try:
        status = int(response.get("statusCode", 200))
    except (TypeError, ValueError):
        return 502, {}, '{"message": "Internal server error"}'
    headers = response.get("headers")
    body = response.get("body")
    return status, headers if isinstance(headers, Mapping) else {}, body if isinstance(body, str) else ""


def _validate_routes(routes: Mapping[str, Invoker], route_responses: Collection[str]) -> None:
    for key, invoker in routes.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"route keys must be non-empty strings, got {key!r}")
        if key.startswith("$") and key not in _RESERVED:
            raise ValueError(f"unknown reserved route key {key!r}")
        if not callable(invoker):
            raise TypeError(f"route {key!r} needs an async callable, got {invoker!r}")
    bad = set(route_responses) - (set(routes) - {CONNECT, DISCONNECT})
    if bad:
        raise ValueError(f"route_responses names routes that are not message routes: {sorted(bad)}")


class WebSocketGateway:
    """A local API Gateway WebSocket API stage.

    Args:
        routes: Route key → integration. See the module docstring for the reserved keys.
        route_selection_expression: ``$request.body.<field>[.<field>...]``.
        stage: Stage name; the first path segment of both URLs.
        api_id: ``requestContext.apiId``; a random AWS-style 10-character id by default.
        limits: Quotas (AWS defaults).
        route_responses: Message routes that have a route response (two-way).

    Raises:
        ValueError: Invalid route keys, stage name or selection expression.
        TypeError: A route integration is not callable.
    """

    def __init__(
        self,
        routes: Mapping[str, Invoker],
        *,
        route_selection_expression: str = "$request.body.type",
        stage: str = "dev",
        api_id: str | None = None,
        limits: GatewayLimits | None = None,
        route_responses: Collection[str] = (),
    ) -> None:
        _validate_routes(routes, route_responses)
        if not _STAGE.match(stage):
            raise ValueError(f"invalid stage name {stage!r}")
        self._routes = dict(routes)
        self._selector = RouteSelector(route_selection_expression, self._routes)
        self._route_responses = frozenset(route_responses)
        self._stage = stage
        self._api_id = api_id or "".join(secrets.choice(_API_ID_ALPHABET) for _ in range(10))
        self._limits = limits or GatewayLimits()
        self._connections: dict[str, Connection] = {}
        self._served: set[asyncio.Future[None]] = set()
        self._management = ManagementApi(self._connections, self._limits)
        self._runner: web.AppRunner | None = None
        self._url_host = "127.0.0.1"
        self._port: int | None = None
        self._accepting = False

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Start serving.

        Args:
            host: Interface to bind.
            port: TCP port; 0 picks a free one.

        Returns:
            The bound port.

        Raises:
            RuntimeError: Already started.
        """
        if self._runner is not None:
            raise RuntimeError("gateway already started")
        app = web.Application(client_max_size=2 * self._limits.max_message_bytes)
        app.router.add_get(f"/{self._stage}", self._handle_upgrade, allow_head=False)
        self._management.add_routes(app.router, self._stage)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = runner.addresses[0][1]
        wildcard = host in ("", "0.0.0.0", "::")
        self._url_host = "127.0.0.1" if wildcard else f"[{host}]" if ":" in host else host
        self._accepting = True
        logger.info("WebSocket gateway listening on %s (management %s)", self.ws_url, self.management_url)
        return self._port

    async def close(self) -> None:
        """Close every socket (1001), fire each ``$disconnect``, then stop the server. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._accepting = False
        for conn in list(self._connections.values()):
            conn.close(GATEWAY_SHUTDOWN)
        if self._served:
            grace = self._limits.close_timeout + self._limits.integration_timeout
            _, pending = await asyncio.wait(set(self._served), timeout=grace)
            if pending:
                logger.warning("%d connections did not finish before shutdown", len(pending))
        await runner.cleanup()
        logger.info("WebSocket gateway on port %s stopped", self._port)

    async def __aenter__(self) -> WebSocketGateway:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- properties --------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port. Raises ``RuntimeError`` before :meth:`start`."""
        if self._port is None:
            raise RuntimeError("gateway not started")
        return self._port

    @property
    def ws_url(self) -> str:
        """Client URL, e.g. ``ws://127.0.0.1:PORT/dev``."""
        return f"ws://{self._url_host}:{self.port}/{self._stage}"

    @property
    def management_url(self) -> str:
        """``endpoint_url`` for ``boto3.client("apigatewaymanagementapi")``, e.g. ``http://127.0.0.1:PORT/dev``."""
        return f"http://{self._url_host}:{self.port}/{self._stage}"

    @property
    def stage(self) -> str:
        """The stage name."""
        return self._stage

    @property
    def api_id(self) -> str:
        """``requestContext.apiId``."""
        return self._api_id

    @property
    def limits(self) -> GatewayLimits:
        """The active limits."""
        return self._limits

    @property
    def connection_ids(self) -> frozenset[str]:
        """Ids of the open connections (a snapshot)."""
        return frozenset(self._connections)

    # -- connection lifecycle ----------------------------------------------------------------------------

    def _connection_info(self, request: web.Request) -> ConnectionInfo:
        return ConnectionInfo(
            connection_id=new_id(),
            connected_at=epoch_ms(),
            source_ip=request.remote or "",
            user_agent=request.headers.get("User-Agent", ""),
            domain_name=request.host,
            stage=self._stage,
            api_id=self._api_id,
        )

    def _new_ws(self, protocols: tuple[str, ...] = ()) -> web.WebSocketResponse:
        return web.WebSocketResponse(
            protocols=protocols,
            compress=False,  # frames on the wire are the payload, so the 32 KB frame quota is exact
            max_msg_size=self._limits.max_message_bytes + 1,  # aiohttp rejects sizes >= max_msg_size
            timeout=self._limits.close_timeout,
        )

    async def _handle_upgrade(self, request: web.Request) -> web.StreamResponse:
        if not self._accepting:
            return web.Response(status=503)
        ws = self._new_ws()
        if not ws.can_prepare(request).ok:
            return web.Response(status=426, headers={"Upgrade": "websocket"})
        info = self._connection_info(request)
        if CONNECT in self._routes:
            accepted = await self._run_connect(info, request)
            if isinstance(accepted, web.Response):
                return accepted
            ws = self._new_ws(accepted) if accepted else ws
            if not self._accepting:  # close() began while $connect ran
                return web.Response(status=503)
        try:
            await ws.prepare(request)
        except ConnectionError:
            logger.debug("client left during $connect", extra={"connection_id": info.connection_id})
            return ws
        assert request.transport is not None  # prepared responses always have one
        conn = Connection(info, ws, request.transport, self._limits, self._dispatch)
        install_frame_guard(request, ws, self._limits.max_frame_bytes)
        await self._serve(conn)
        return ws

    async def _run_connect(self, info: ConnectionInfo, request: web.Request) -> web.Response | tuple[str, ...]:
        """Invoke ``$connect``: the refusal to send, or the subprotocols to accept (often none)."""
        event = connect_event(info, request.headers.items(), request.query.items(), forwarded_port=self.port)
        outcome = await self._invoke(CONNECT, event, info.connection_id)
        if outcome.failure is not None:
            status = 504 if outcome.failure is _Failure.TIMEOUT else 502
            return web.json_response({"message": outcome.failure.value}, status=status)
        status, headers, body = _proxy_response(outcome.response)
        if not 200 <= status < 300:
            logger.debug("$connect refused with %d", status, extra={"connection_id": info.connection_id})
            return web.Response(status=status, text=body)
        protocol = next((str(v) for k, v in headers.items() if k.lower() == "sec-websocket-protocol"), "")
        return (protocol,) if protocol else ()

    async def _serve(self, conn: Connection) -> None:
        served = asyncio.get_running_loop().create_future()
        self._served.add(served)
        self._connections[conn.connection_id] = conn
        conn.start_timers()
        logger.debug("connected", extra={"connection_id": conn.connection_id})
        observed = ABNORMAL
        try:
            observed = await conn.run()
        finally:
            self._connections.pop(conn.connection_id, None)
            conn.end(observed)  # a server-side cause recorded earlier wins
            try:
                await conn.finish()
                await self._fire_disconnect(conn)
            finally:
                served.set_result(None)
                self._served.discard(served)

    async def _fire_disconnect(self, conn: Connection) -> None:
        cause = conn.cause or ABNORMAL
        logger.debug("disconnected %d %s", cause.code, cause.reason, extra={"connection_id": conn.connection_id})
        if DISCONNECT in self._routes:
            event = disconnect_event(conn.info, cause.code, cause.reason)
            await self._invoke(DISCONNECT, event, conn.connection_id)

    # -- messages and integrations -----------------------------------------------------------------------

    async def _dispatch(self, conn: Connection, text: str) -> None:
        route_key = self._selector.select(text)
        if route_key is None:
            await conn.send_text(error_frame("Forbidden", conn.connection_id, new_id()))
            return
        event = message_event(conn.info, route_key, text)
        request_id = event["requestContext"]["requestId"]
        outcome = await self._invoke(route_key, event, conn.connection_id)
        if outcome.failure is not None:
            await conn.send_text(error_frame(outcome.failure.value, conn.connection_id, request_id))
        elif route_key in self._route_responses:
            _, _, body = _proxy_response(outcome.response)
            if body:
                await conn.send_text(body)

    async def _invoke(self, route_key: str, event: dict[str, Any], connection_id: str) -> _Outcome:
        """Call the route's integration within the integration timeout; failures are logged, not raised."""
        fields = {"connection_id": connection_id, "route_key": route_key}
        timeout = asyncio.timeout(self._limits.integration_timeout)
        try:
            async with timeout:
                return _Outcome(response=await self._routes[route_key](event))
        except TimeoutError:
            if not timeout.expired():
                logger.exception("route %s integration raised TimeoutError", route_key, extra=fields)
                return _Outcome(failure=_Failure.ERROR)
            logger.warning("route %s integration timed out", route_key, extra=fields)
            return _Outcome(failure=_Failure.TIMEOUT)
        except Exception:  # integrations are user code; API Gateway turns any failure into an error response
            logger.exception("route %s integration failed", route_key, extra=fields)
            return _Outcome(failure=_Failure.ERROR)
