"""The ingest node's Prometheus metrics: every counter, gauge and histogram the node exposes at ``/metrics``.

Rules:
- One :class:`~prometheus_client.CollectorRegistry` per process (:data:`REGISTRY`), not the library's global
  one, so importing the node never adds the default process/platform collectors twice and tests can read it.
- Components increment the module-level metrics below; values that already live in an object (active streams,
  spool depth) are read when scraped, through :func:`watch`, instead of being mirrored on every change.
- Names follow Prometheus conventions: ``capturestream_ingest_`` prefix, base units (seconds, bytes), ``_total``
  on counters. Labels have small fixed value sets (never a stream id: one series per stream does not scale).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)
#: The ``Content-Type`` of :func:`render`'s output.
CONTENT_TYPE = CONTENT_TYPE_LATEST

_P = "capturestream_ingest_"


class Tally:
    """A counter for a hot path: ``TALLY.value += n`` is a plain addition (a prometheus ``Counter.inc`` takes a lock
    and checks its argument: ~1 % of the node's CPU when called on every read); the node's event loop is its only
    writer, and :class:`_TallyCollector` reads it at scrape."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


class _TallyCollector(Collector):
    def __init__(self, name: str, documentation: str, tally: Tally) -> None:
        self.name, self.documentation, self.tally = name, documentation, tally

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, value=self.tally.value)


def _tally(name: str, documentation: str) -> Tally:
    tally = Tally()
    REGISTRY.register(_TallyCollector(name, documentation, tally))
    return tally


ACTIVE_STREAMS = Gauge(
    _P + "active_streams", "Broadcasts on this node that have not ended", ["state"], registry=REGISTRY
)
CONNECTIONS = Gauge(_P + "connections", "Open publisher connections", ["protocol"], registry=REGISTRY)
CONNECTIONS_REFUSED = Counter(
    _P + "connections_refused_total", "Connections refused by a limit", ["reason"], registry=REGISTRY
)

RECEIVED_BYTES = _tally(_P + "received_bytes", "Media bytes received from publishers")
INGEST_BITRATE = Gauge(
    _P + "bitrate_bits_per_second",
    "Sum of the measured bitrates (audio + video payload, last ~10 s of media) of every live broadcast",
    registry=REGISTRY,
)
SESSION_EVENTS = Counter(
    _P + "session_events_total",
    "Publisher lifecycle events: publish, resume, takeover, drop, clean_stop, kicked, ended",
    ["event"],
    registry=REGISTRY,
)
REJECTED_KEYS = Counter(_P + "rejected_keys_total", "Publishes refused for a wrong stream key", registry=REGISTRY)
PROTOCOL_ERRORS = Counter(
    _P + "protocol_errors_total", "Connections closed for malformed input", ["protocol"], registry=REGISTRY
)
SEGMENTS_UPLOADED = Counter(_P + "segments_uploaded_total", "Live media segments stored", registry=REGISTRY)
OBJECTS_UPLOADED = Counter(_P + "objects_uploaded_total", "Objects stored, by kind", ["kind"], registry=REGISTRY)
UPLOAD_FAILURES = Counter(
    _P + "upload_failures_total", "PUT attempts that failed (retried or spooled)", registry=REGISTRY
)
UPLOAD_SECONDS = Histogram(
    _P + "upload_latency_seconds",
    "Seconds from an object being ready to it being stored",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
    registry=REGISTRY,
)
SPOOL_OBJECTS = Gauge(_P + "spool_objects", "Objects waiting in the disk spool", registry=REGISTRY)
SPOOL_BYTES = Gauge(_P + "spool_bytes", "Bytes waiting in the disk spool", registry=REGISTRY)
SPOOL_OLDEST_SECONDS = Gauge(
    _P + "spool_oldest_age_seconds", "Age of the oldest object in the disk spool (0 when empty)", registry=REGISTRY
)
SPOOL_DROPPED = Counter(
    _P + "spool_dropped_total", "Objects the spool gave up on (size or age limit)", ["reason"], registry=REGISTRY
)
PLAYBACK_VIEWERS = Gauge(
    _P + "playback_viewers",
    "Low-latency viewers connected now, by protocol: http_flv, ws_flv",
    ["protocol"],
    registry=REGISTRY,
)
LL_HLS_BLOCKING_REQUESTS = Gauge(
    _P + "ll_hls_blocking_requests",
    "LL-HLS playlist reloads held now (_HLS_msn): about one per LL-HLS viewer, each keeps one waiting",
    registry=REGISTRY,
)
for _protocol in ("http_flv", "ws_flv"):  # both series exist (at 0) before the first viewer
    PLAYBACK_VIEWERS.labels(protocol=_protocol)
BUFFERED_BYTES = Gauge(
    _P + "buffered_bytes", "Media bytes held in memory by the node (connections + upload queues)", registry=REGISTRY
)


def watch(gauge: Gauge, read: Callable[[], float], **labels: str) -> None:
    """Make ``gauge`` (with ``labels``) report ``read()`` at each scrape (the latest caller wins)."""
    (gauge.labels(**labels) if labels else gauge).set_function(read)


def render() -> bytes:
    """The text exposition of every metric (what ``GET /metrics`` answers)."""
    return generate_latest(REGISTRY)
