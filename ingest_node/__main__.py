"""``python -m ingest_node``: run the ingest node alone (RTMP, browser go-live, low-latency playback), configured from
the environment.

Settings are :class:`capturestream.settings.IngestSettings` (``TABLE_NAME``,
``MEDIA_BUCKET``, ``RTMP_HOST``, ``RTMP_PORT``, ``SEGMENT_SECONDS``, ``RECONNECT_WINDOW``, ...) plus the browser
go-live WebSocket listener (``CAPTURE_HOST``, ``CAPTURE_PORT``, ``CAPTURE_ENABLED``); AWS endpoints come from the
standard SDK environment (``AWS_ENDPOINT_URL``). The node's one HTTP listener (:mod:`ingest_node.http_app`, on
``CAPTURE_HOST``:``CAPTURE_PORT``) serves ``/capture``, the low-latency playback under ``/live/``
(:mod:`ingest_node.playback`), ``/metrics`` and ``/healthz``. When listening, it prints one JSON line on stdout,
``{"port": N, "capture_port": M, "capture_path": "/capture", "http_port": M}`` (how ``capturestream up`` learns
where it listens; ``capture_port`` is ``null`` when go-live is off, the HTTP port still serves playback and
metrics); logs go to stderr. SIGTERM/SIGINT end every broadcast cleanly
(final playlists and ``ended.json`` stored) before exiting.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import sys

import uvloop
from aiobotocore.session import get_session

from capturestream.logs import configure_logging
from capturestream.settings import IngestSettings, get_settings

from .http_app import NodeHttp
from .playback.hub import PlaybackHub
from .publishers.capture_server import CAPTURE_PATH, CaptureServer
from .publishers.key_watch import KeyWatch
from .publishers.rtmp_server import ConnectionLimits, RtmpServer
from .publishers.stream_keys import StreamKeyChecker
from .sessions.registry import SessionRegistry
from .storage.spool import Spool
from .storage.upload_watch import WatchedUploader

log = logging.getLogger("ingest_node")


async def serve(settings: IngestSettings) -> None:
    """Run until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    node_id = socket.gethostname()
    async with (
        WatchedUploader(
            settings.media_bucket,
            spool=Spool(settings.spool_dir, max_bytes=settings.spool_max_bytes, max_age=settings.spool_max_age)
            if settings.spool_enabled
            else None,
            stream_memory_bytes=settings.upload_stream_memory_bytes,
            node_memory_bytes=settings.upload_node_memory_bytes,
            close_timeout=settings.upload_close_timeout,
        ) as uploader,
        get_session().create_client("dynamodb") as dynamodb,
    ):
        hub = PlaybackHub(segment_seconds=settings.segment_seconds)
        registry = SessionRegistry(
            uploader,
            reconnect_window=settings.reconnect_window,
            segment_seconds=settings.segment_seconds,
            node_id=node_id,
            remuxer=settings.remuxer,
            observer=hub,
        )
        keys = StreamKeyChecker(
            dynamodb, settings.table_name, live_channels=lambda: [b.channel for b in registry.broadcasts]
        )
        limits = ConnectionLimits(
            max_connections=settings.max_connections,
            max_preauth_per_address=settings.max_preauth_per_address,
            preauth_bytes=settings.preauth_bytes,
            setup_timeout=settings.setup_timeout,
            idle_timeout=settings.idle_timeout,
            max_queued_bytes=settings.connection_buffer_bytes,
        )
        server = RtmpServer(registry, keys, limits=limits)
        watch = KeyWatch(registry, keys, interval=settings.key_watch_interval)
        watch.start()
        port = await server.start(settings.rtmp_host, settings.rtmp_port)
        log.info("RTMP ingest listening on %s:%d", settings.rtmp_host, port)
        capture = CaptureServer(registry, keys, uploads=uploader, idle_timeout=settings.idle_timeout)
        http = NodeHttp(hub=hub, capture=capture if settings.capture_enabled else None)
        http_port = await http.start(settings.capture_host, settings.capture_port)
        log.info("HTTP (playback /live/, /metrics) listening on %s:%d", settings.capture_host, http_port)
        capture_port = http_port if settings.capture_enabled else None
        if capture_port is not None:
            log.info("browser go-live listening on ws://%s:%d%s", settings.capture_host, capture_port, CAPTURE_PATH)
        ready = {"port": port, "capture_port": capture_port, "capture_path": CAPTURE_PATH, "http_port": http_port}
        print(json.dumps(ready), flush=True)
        await stop.wait()
        log.info("shutting down")
        await watch.close()
        await server.close()
        await capture.close()
        await registry.close()
        await http.close()


def main() -> int:
    """Entry point."""
    settings = get_settings(IngestSettings)
    configure_logging(settings.log_level, settings.log_format)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
