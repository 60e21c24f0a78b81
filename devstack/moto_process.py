"""The embedded AWS endpoint: moto's server in a child process of ``capturestream up``.

moto runs in its own process rather than a thread of the stack so that S3 uploads from the ingest node, moto's
request handling and the stack's event loop (WebSocket gateway, pollers, in-process Lambda handlers) don't
share one GIL. The parent starts ``python -m devstack.moto_process --port N`` and reads one JSON line
``{"port": <bound port>}`` from stdout once the server accepts requests; SIGTERM stops it.

Rules:
- S3 objects larger than ``MOTO_S3_DEFAULT_KEY_BUFFER_SIZE`` spill to temp files (under ``TMPDIR``, which the
  parent points into the state dir) instead of living in RAM: a 2.5 Mbps stream would otherwise grow moto by
  ~1.1 GB per hour (LOCAL_AWS.md quirk 7).
- moto's Lambda is switched to its no-Docker backend; CaptureStream never invokes Lambda through moto.
- Only local SDK clients are served (:class:`LocalClientsOnly`): any web page the developer opens could otherwise
  reset or read the stack (``POST /moto-api/reset`` is a "simple" cross-site request: no preflight, so turning
  moto's global CORS off, which is also done, only hides the answer). Browsers announce themselves with
  ``Origin``/``Sec-Fetch-Site``; SDKs never send them. A ``Host`` other than a loopback name or address (or
  the address bound) on this server's port is a DNS-rebinding page and is refused too.
- moto keeps every DynamoDB Streams shard iterator it ever issued (~1.9 KB per GetRecords call, ~150 MB/hour for
  one consumer polling every 40 ms). Iterators are expired :data:`ITERATOR_LIFETIME` seconds after they were
  first seen (AWS: 15 minutes); the devstack stream consumer asks for a fresh one when that happens.
- Connections are kept alive, moto's O(n) SQS attribute reads are patched to O(1) work per message, and
  ``GET /_devstack/stream-changes`` lets stream consumers wait for a write instead of polling
  (:mod:`devstack.moto_tuning`, which says what each one saved).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from capturestream.parent_death import end_with_parent
from devstack.moto_tuning import COSTS_ENV, RequestCosts, StreamChanges, keep_alive_handler, patch_moto

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

#: Objects above this size spill to disk inside moto (playlists and manifests stay in memory).
SPILL_BYTES = 64 * 1024
#: Seconds a DynamoDB Streams shard iterator lives here (shorter than AWS's 15 minutes to bound memory).
ITERATOR_LIFETIME = 60.0
#: ``Sec-Fetch-Site`` values only a browser request started by another site's page carries.
FOREIGN_FETCH_SITES = ("cross-site", "same-site")
_FORBIDDEN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>the local AWS endpoint serves local SDK clients only (no browsers, no foreign Host)</Message>"
    b"</Error>"
)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class LocalClientsOnly:
    """WSGI middleware: 403 for browser requests (``Origin``, foreign ``Sec-Fetch-Site``) and foreign ``Host``s.

    A request passes when it carries no ``Origin`` header, no ``Sec-Fetch-Site: cross-site|same-site``, and a
    ``Host`` naming this server's port (``SERVER_PORT``; implicit only for 80) on ``localhost``, a
    ``*.localhost`` name (RFC 6761: always loopback, so S3 virtual-hosted ``bucket.localhost`` works), a loopback
    address, or the address the server is bound to (``SERVER_NAME``, unless it is 0.0.0.0/::).
    """

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self.allows(environ):
            return self.app(environ, start_response)
        start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(_FORBIDDEN)))])
        return [_FORBIDDEN]

    @staticmethod
    def allows(environ: dict[str, Any]) -> bool:
        """True for a request from a local, non-browser client addressed to this server by a loopback name."""
        if "HTTP_ORIGIN" in environ or environ.get("HTTP_SEC_FETCH_SITE", "").lower() in FOREIGN_FETCH_SITES:
            return False
        name, port = _split_host(environ.get("HTTP_HOST", ""))
        if name is None or port != environ.get("SERVER_PORT"):
            return False
        return _is_loopback_name(name) or name == _bound_name(environ.get("SERVER_NAME", ""))


def _split_host(host: str) -> tuple[str | None, str]:
    """(lower-case name without IPv6 brackets, port) of a ``Host`` header; port 80 when absent."""
    if not host or any(c in host for c in "/?#@\\ "):
        return None, ""
    try:
        parts = urlsplit(f"//{host}")
        return parts.hostname, str(parts.port or 80)
    except ValueError:  # a port that is not a number
        return None, ""


def _is_loopback_name(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _bound_name(address: str) -> str | None:
    """How a Host header names the bound address; None for a wildcard bind (any name would match)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address.lower() or None
    return None if ip.is_unspecified else str(ip)


def expire_shard_iterators(stop: threading.Event, lifetime: float = ITERATOR_LIFETIME) -> None:
    """Forget shard iterators older than ``lifetime`` until ``stop`` is set (runs in a daemon thread)."""
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    first_seen: dict[str, float] = {}
    while not stop.wait(lifetime / 4):
        now = time.monotonic()
        for account in list(dynamodbstreams_backends.values()):
            for backend in list(account.values()):
                iterators = backend.shard_iterators
                for arn in list(iterators):
                    if now - first_seen.setdefault(arn, now) > lifetime:
                        iterators.pop(arn, None)
                        first_seen.pop(arn, None)


def configure_moto() -> None:
    """Set moto's switches; call before moto is imported (it reads them at import time)."""
    os.environ.setdefault("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(SPILL_BYTES))
    os.environ["MOTO_DISABLE_GLOBAL_CORS"] = "true"  # read as bool(value): any non-empty string


def moto_app(changes: StreamChanges | None = None) -> WsgiApp:
    """moto's WSGI application (the one ``ThreadedMotoServer`` serves) behind :class:`LocalClientsOnly`, with the
    stream-change wait of ``changes`` when given (:mod:`devstack.moto_tuning`).

    Raises:
        RuntimeError: when moto was imported before :func:`configure_moto` (its global CORS would be on).
    """
    from moto import settings
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    if not getattr(settings, "DISABLE_GLOBAL_CORS", False):
        raise RuntimeError("moto's global CORS is on: call configure_moto() before importing moto")
    app: WsgiApp = DomainDispatcherApplication(create_backend_app)
    return LocalClientsOnly(changes.middleware(app) if changes is not None else app)


def serve(host: str, port: int) -> BaseWSGIServer:
    """Start :func:`moto_app` on ``host:port`` (0: a free port) in a daemon thread; ``shutdown()`` stops it.

    Connections are kept alive and moto's SQS hot paths patched (:mod:`devstack.moto_tuning`).
    """
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    changes = StreamChanges()
    patch_moto(changes)
    handler = keep_alive_handler(MotoRequestHandler)
    if os.environ.get(COSTS_ENV):
        handler.costs = RequestCosts()
    server = make_server(host, port, moto_app(changes), threaded=True, request_handler=handler)
    threading.Thread(target=server.serve_forever, name="moto", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    """Run moto's server until SIGTERM/SIGINT; print the bound port as one JSON line when ready."""
    parser = argparse.ArgumentParser(prog="python -m devstack.moto_process")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566, help="0 picks a free port")
    args = parser.parse_args(argv)
    end_with_parent()

    configure_moto()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = serve(args.host, args.port)
    address, port = server.server_address[:2]
    local = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(address, address)  # a wildcard bind: ask over loopback
    request = urllib.request.Request(
        f"http://{f'[{local}]' if ':' in local else local}:{port}/moto-api/config",
        data=json.dumps({"lambda": {"use_docker": False}}).encode(),
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).close()

    stop = threading.Event()
    threading.Thread(target=expire_shard_iterators, args=(stop,), name="iterator-expiry", daemon=True).start()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(json.dumps({"port": port}), flush=True)
    stop.wait()
    server.shutdown()
    costs = server.RequestHandlerClass.costs  # type: ignore[attr-defined]
    if costs is not None:
        with open(os.environ[COSTS_ENV], "w") as out:
            json.dump(costs.report(), out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
