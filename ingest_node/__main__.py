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
metrics); logs go to stderr.

Graceful shutdown on SIGTERM/SIGINT, one log line per step with its duration (:func:`shutdown`):
1. stop accepting: ``/healthz`` answers 503, the RTMP listener closes, every publisher connection (RTMP and
   go-live) is closed; the registry is told first, so these are not drops (no ``reconnecting.json``, no window);
2. end every broadcast: the segment in progress is cut and queued, then the final playlist (``EXT-X-ENDLIST``)
   and ``ended.json``; each broadcast's uploads get ``UPLOAD_CLOSE_TIMEOUT`` seconds, what is left moves to the
   spool;
3. close the HTTP listener (FLV viewers' responses end, LL-HLS playlists carry ``EXT-X-ENDLIST``);
4. flush the uploads: the spool drains for up to ``UPLOAD_CLOSE_TIMEOUT`` more seconds; what S3 did not take by
   then stays in the spool, and the next node started on ``SPOOL_DIR`` stores it first.
Every step is bounded (:data:`STEP_TIMEOUT` beyond its upload time: a put waiting for storage with the spool full
or disabled would otherwise wait for ever), so the node exits with code 0 within 2 x ``UPLOAD_CLOSE_TIMEOUT`` +
20 s of the signal at worst, with S3 unreachable; with S3 up it takes about one upload round. Give its container a
stop timeout above the worst case (Docker's default of 10 s is not).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import sys
import time
from collections.abc import Coroutine
from typing import Any

import uvloop
from aiobotocore.session import get_session

from capturestream.logs import configure_logging
from capturestream.parent_death import end_with_parent
from capturestream.settings import IngestSettings, get_settings

from .http_app import NodeHttp
from .playback.hub import PlaybackHub
from .publishers.capture_server import CAPTURE_PATH, CaptureServer
from .publishers.key_watch import KeyWatch
from .publishers.rtmp_server import ConnectionLimits, RtmpServer
from .publishers.stream_keys import StreamKeyChecker
from .sessions.registry import SessionRegistry
from .storage.spool import Spool, SpoolInUse
from .storage.upload_watch import WatchedUploader

log = logging.getLogger("ingest_node")

#: Seconds a shutdown step may take beyond the upload time it is given (``UPLOAD_CLOSE_TIMEOUT``).
STEP_TIMEOUT = 5.0


async def serve(settings: IngestSettings) -> None:
    """Run until SIGTERM/SIGINT, then shut down gracefully (see the module docstring)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    node_id = socket.gethostname()
    spool = (
        Spool(settings.spool_dir, max_bytes=settings.spool_max_bytes, max_age=settings.spool_max_age)
        if settings.spool_enabled
        else None
    )
    async with (
        WatchedUploader(
            settings.media_bucket,
            spool=spool,
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
            read_coalesce=settings.read_coalesce_ms / 1000,
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
        started = time.monotonic()
        log.info("shutting down", extra={"broadcasts": len(registry.broadcasts)})
        await shutdown(
            watch=watch,
            server=server,
            capture=capture,
            registry=registry,
            http=http,
            close_timeout=settings.upload_close_timeout,
        )
        flushing = time.monotonic()
    log.info(
        "shutdown: uploads flushed",
        extra={"seconds": _rounded(flushing), "spooled": len(spool) if spool is not None else 0},
    )
    log.info("shut down", extra={"seconds": _rounded(started)})


async def shutdown(
    *,
    watch: KeyWatch,
    server: RtmpServer,
    capture: CaptureServer,
    registry: SessionRegistry,
    http: NodeHttp,
    close_timeout: float,
) -> None:
    """Steps 1-3 of the graceful shutdown (step 4 is leaving the uploader's context), each bounded and logged."""
    http.draining = True
    registry.begin_shutdown()
    connections = len(server.connections) + len(capture.connections)

    async def stop_accepting() -> None:
        await watch.close()
        await server.close()
        await capture.close()

    await _step("stopped accepting", stop_accepting(), STEP_TIMEOUT, connections=connections)
    broadcasts = len(registry.broadcasts)
    await _step("broadcasts ended", registry.close(), close_timeout + STEP_TIMEOUT, broadcasts=broadcasts)
    await _step("HTTP closed", http.close(), STEP_TIMEOUT + http.shutdown_timeout)


async def _step(name: str, step: Coroutine[Any, Any, None], timeout: float, **fields: object) -> None:
    """Run one shutdown step for at most ``timeout`` seconds (a publisher or a queue stuck on storage must not
    keep the node from exiting), then log it with its duration rounded to 0.01 s."""
    started = time.monotonic()
    try:
        await asyncio.wait_for(step, timeout)
    except TimeoutError:
        log.error("shutdown: %s: not done within %g s, going on", name, timeout, extra=fields)
    log.info("shutdown: %s", name, extra={**fields, "seconds": _rounded(started)})


def _rounded(since: float) -> float:
    return round(time.monotonic() - since, 2)


def main() -> int:
    """Entry point."""
    end_with_parent()  # started by `capturestream up`: never outlive it
    settings = get_settings(IngestSettings)
    configure_logging(settings.log_level, settings.log_format)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(settings))
    except SpoolInUse as error:
        log.error("cannot start: %s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
