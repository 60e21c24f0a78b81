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
- moto keeps every DynamoDB Streams shard iterator it ever issued (~1.9 KB per GetRecords call, ~150 MB/hour for
  one consumer polling every 40 ms). Iterators are expired :data:`ITERATOR_LIFETIME` seconds after they were
  first seen (AWS: 15 minutes); the devstack stream consumer asks for a fresh one when that happens.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.request

#: Objects above this size spill to disk inside moto (playlists and manifests stay in memory).
SPILL_BYTES = 64 * 1024
#: Seconds a DynamoDB Streams shard iterator lives here (shorter than AWS's 15 minutes to bound memory).
ITERATOR_LIFETIME = 60.0


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


def main(argv: list[str] | None = None) -> int:
    """Run moto's server until SIGTERM/SIGINT; print the bound port as one JSON line when ready."""
    parser = argparse.ArgumentParser(prog="python -m devstack.moto_process")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566, help="0 picks a free port")
    args = parser.parse_args(argv)

    os.environ.setdefault("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(SPILL_BYTES))
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer  # imported late: the env above must be set first

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    base = f"http://{host}:{port}"
    request = urllib.request.Request(
        f"{base}/moto-api/config", data=json.dumps({"lambda": {"use_docker": False}}).encode(), method="POST"
    )
    urllib.request.urlopen(request, timeout=10).close()

    stop = threading.Event()
    threading.Thread(target=expire_shard_iterators, args=(stop,), name="iterator-expiry", daemon=True).start()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(json.dumps({"port": port}), flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
