"""The ingest node's one HTTP listener (``CAPTURE_HOST``:``CAPTURE_PORT``): one aiohttp app for every HTTP route.

- ``GET /capture``: browser go-live (WebSocket), :class:`~ingest_node.publishers.capture_server.CaptureServer`.
- ``GET /live/...``: low-latency playback (HTTP-FLV, WS-FLV, LL-HLS), :mod:`ingest_node.playback.routes`.
- ``GET /metrics``: Prometheus text exposition of :mod:`ingest_node.metrics`.
- ``GET /healthz``: 200 while the process serves; 503 once it shuts down (:attr:`NodeHttp.draining`), so a load
  balancer stops sending new viewers and publishers while the node finishes its broadcasts.

Rules:
- Each component registers its own routes on the shared app; this module only listens and cleans up.
- Shutdown order is the caller's: close the publishers and end the broadcasts first (FLV responses then end on
  their own), then :meth:`NodeHttp.close`, which waits up to ``shutdown_timeout`` for the handlers still running.
"""

from __future__ import annotations

from aiohttp import web

from . import metrics
from .playback.hub import PlaybackHub
from .playback.routes import PlaybackRoutes
from .publishers.capture_server import CaptureServer


class NodeHttp:
    """The node's HTTP app and its listener."""

    def __init__(
        self, *, hub: PlaybackHub | None = None, capture: CaptureServer | None = None, shutdown_timeout: float = 5.0
    ) -> None:
        self.hub = hub
        self.capture = capture
        self.shutdown_timeout = shutdown_timeout
        #: True once the node shuts down: ``/healthz`` answers 503 (everything else is still served).
        self.draining = False
        self.app = web.Application()
        self.app.router.add_get("/metrics", _metrics)
        self.app.router.add_get("/healthz", self._healthz)
        if capture is not None:
            capture.register(self.app)
        if hub is not None:
            PlaybackRoutes(hub).register(self.app)
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen; return the bound port (``port=0`` picks a free one)."""
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=self.shutdown_timeout
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port, reuse_address=True).start()
        return self._runner.addresses[0][1]

    async def close(self) -> None:
        """Stop listening, end what is still being served (FLV viewers included) and wait for the handlers."""
        if self.hub is not None:
            self.hub.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        if self.draining:
            return web.Response(status=503, text="shutting down\n")
        return web.Response(text="ok\n")


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(body=metrics.render(), headers={"Content-Type": metrics.CONTENT_TYPE})
