"""A recording, breakable HTTP proxy in front of the moto server, for S3 outage tests.

Why a proxy rather than SIGSTOP on moto: moto serves DynamoDB too (stream-key checks), and a node restarted
during an S3 outage must still let its publisher in; here only the S3 path goes down. It also records every
PUT in the order S3 stored it (completion order: the node stores one object per stream at a time), which is what
the ordering checks read.

- ``down()``: every request (new or on a kept-alive connection) gets its connection cut before any answer, as an
  unreachable S3 looks to a client (``ServerDisconnectedError``: status 0, retryable). ``up()`` restores it.
- ``reject(key, status, code)``: answer PUTs of ``key`` with an S3 error document instead of storing them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass(frozen=True)
class Put:
    """One PUT that reached S3 (``status`` 200: stored)."""

    key: str
    status: int
    at: float
    #: The body of a playlist PUT (``.m3u8``), to check what each stored version named.
    body: bytes | None = None


@dataclass
class S3Proxy:
    """``async with S3Proxy(moto_url, bucket) as proxy``: ``proxy.url`` is the endpoint to give the node."""

    upstream: str
    bucket: str
    puts: list[Put] = field(default_factory=list)
    is_down: bool = False
    refused: int = 0
    _rejects: dict[str, tuple[int, str]] = field(default_factory=dict)

    async def __aenter__(self) -> S3Proxy:
        self._http = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()
        await self._http.close()

    def down(self) -> None:
        """S3 becomes unreachable."""
        self.is_down = True

    def up(self) -> None:
        """S3 answers again."""
        self.is_down = False

    def reject(self, key: str, status: int = 400, code: str = "InvalidArgument") -> None:
        """Refuse PUTs of ``key`` with ``status``/``code``."""
        self._rejects[key] = (status, code)

    def stored(self) -> list[str]:
        """Keys of the PUTs that stored, in the order they were stored."""
        return [put.key for put in self.puts if put.status == 200]

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if self.is_down:
            self.refused += 1
            assert request.transport is not None
            request.transport.abort()
            raise web.HTTPServiceUnavailable  # never sent: the connection is gone
        body = await request.read()
        prefix = f"/{self.bucket}/"
        key = request.path[len(prefix) :] if request.path.startswith(prefix) else ""
        if request.method == "PUT" and key in self._rejects:
            status, code = self._rejects[key]
            self.puts.append(Put(key, status, time.monotonic()))
            error = f"<Error><Code>{code}</Code><Message>refused by the test</Message></Error>"
            return web.Response(status=status, body=error.encode(), content_type="application/xml")
        headers = {name: value for name, value in request.headers.items() if name.lower() not in _HOP}
        async with self._http.request(
            request.method, self.upstream + request.raw_path, headers=headers, data=body
        ) as upstream:
            answer = await upstream.read()
            if request.method == "PUT" and key:
                playlist = body if key.endswith(".m3u8") else None
                self.puts.append(Put(key, upstream.status, time.monotonic(), playlist))
            out = {name: value for name, value in upstream.headers.items() if name.lower() not in _HOP}
            return web.Response(status=upstream.status, body=answer, headers=out)
