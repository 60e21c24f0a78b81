"""The ``@connections`` management API (``apigatewaymanagementapi`` 2018-11-29) over aiohttp.

This module owns ``POST|GET|DELETE /{stage}/@connections/{connectionId}``, the API the unmodified boto3
``apigatewaymanagementapi`` client calls with ``endpoint_url=http://127.0.0.1:PORT/{stage}``. Status codes
and error types come from botocore's service model (``apigatewaymanagementapi/2018-11-29/service-2.json``):
PostToConnection 200, GetConnection 200, DeleteConnection 204; ``GoneException`` 410,
``PayloadTooLargeException`` 413, ``LimitExceededException`` 429 ("the WebSocket client side buffer is
full"). botocore reads the error code from the ``x-amzn-ErrorType`` header, so each error sets it.

Rules:
    * Requests are SigV4-signed by boto3; any signature is accepted (this is a local emulator).
    * The connection id arrives URL-encoded (``%3D``); aiohttp decodes it before matching.
    * An unknown id, an id still in ``$connect`` ("a message was posted ... before the connection was
      established", https://repost.aws/knowledge-center/410-gone-api-gateway), and a closing or closed
      connection all get 410 with body ``{"message": null}`` (what boto3 needs to raise ``GoneException``).
    * POST is the fan-out hot path: one dict lookup, one read, one frame write, no JSON, no INFO logging.
      Bodies over the 128 KB message quota get 413 before they are read when ``Content-Length`` says so.
      Valid UTF-8 is sent as a text frame; other bytes as a binary frame (a text frame must be UTF-8,
      RFC 6455 §5.6). AWS does not document this case.
    * GET returns ``connectedAt``/``lastActiveAt`` as ISO 8601 with milliseconds and ``identity``.
    * DELETE starts the close (code 1000) and answers 204 at once; ``$disconnect`` follows asynchronously,
      as on AWS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web

from .config import DELETED, GatewayLimits
from .connection import Connection
from .events import iso_timestamp

__all__ = ["ManagementApi"]

_JSON = "application/json"
_GONE_BODY = b'{"message": null}'


def _error(status: int, error_type: str, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type=_JSON, headers={"x-amzn-ErrorType": error_type})


def _gone() -> web.Response:
    return _error(410, "GoneException", _GONE_BODY)


class ManagementApi:
    """Request handlers for ``@connections``.

    Args:
        connections: The gateway's registry of open connections (read-only here).
        limits: Gateway limits (``max_message_bytes`` bounds POST bodies).
    """

    __slots__ = ("_connections", "_max_bytes", "_too_large_body")

    def __init__(self, connections: Mapping[str, Connection], limits: GatewayLimits) -> None:
        self._connections = connections
        self._max_bytes = limits.max_message_bytes
        self._too_large_body = json.dumps(
            {"message": f"Data exceeds the {limits.max_message_bytes}-byte message payload quota"}
        ).encode()

    def add_routes(self, router: web.UrlDispatcher, stage: str) -> None:
        """Register the three operations under ``/{stage}/@connections/{connection_id}``."""
        path = f"/{stage}/@connections/{{connection_id}}"
        router.add_post(path, self.post)
        router.add_get(path, self.get, allow_head=False)
        router.add_delete(path, self.delete)

    def _open(self, request: web.Request) -> Connection | None:
        conn = self._connections.get(request.match_info["connection_id"])
        return None if conn is None or conn.ending else conn

    def _too_large(self) -> web.Response:
        return _error(413, "PayloadTooLargeException", self._too_large_body)

    async def post(self, request: web.Request) -> web.Response:
        """PostToConnection: send the body to the client as one frame."""
        conn = self._open(request)
        if conn is None:
            return _gone()
        length = request.content_length
        if length is not None and length > self._max_bytes:
            return self._too_large()
        try:
            data = await request.read()
        except web.HTTPRequestEntityTooLarge:  # chunked body beyond client_max_size
            return self._too_large()
        if len(data) > self._max_bytes:
            return self._too_large()
        if conn.buffer_full():
            return _error(429, "LimitExceededException", b'{"message": "Client side buffer is full"}')
        try:
            await conn.send(data)
        except ConnectionError:  # closed while the body was being read
            return _gone()
        return web.Response()

    async def get(self, request: web.Request) -> web.Response:
        """GetConnection: when and from where the client connected, and when it was last active."""
        conn = self._open(request)
        if conn is None:
            return _gone()
        info = conn.info
        return web.json_response(
            {
                "connectedAt": iso_timestamp(info.connected_at),
                "identity": {"sourceIp": info.source_ip, "userAgent": info.user_agent},
                "lastActiveAt": iso_timestamp(conn.last_active_ms()),
            }
        )

    async def delete(self, request: web.Request) -> web.Response:
        """DeleteConnection: close the socket (``$disconnect`` fires once it is closed)."""
        conn = self._open(request)
        if conn is None:
            return _gone()
        conn.close(DELETED)
        return web.Response(status=204)
