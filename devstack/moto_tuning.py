"""What the embedded moto child costs per request, cut down: keep-alive, O(1) SQS hot paths, stream-change waits.

Measured with py-spy on ``capturestream up`` under 30 publishers (``./dev bench ingest --streams 30``), moto's
process was the tree's largest consumer (~2.7 % of a core per stream), and idle ``up`` polled it ~10 times a second:

- **Keep-alive** (:class:`KeepAliveRequestHandler`). werkzeug's development server sends ``Connection: close`` on
  every response, so every SDK call (the node's segment PUTs, each poller's receive) paid a TCP connect, a new
  server thread and the client's connection setup (aiohappyeyeballs was ~20 % of idle ``up``'s samples). The
  handler keeps HTTP/1.1 connections open: it drops werkzeug's forced ``Connection: close`` and limits what the
  request may read to its ``Content-Length`` (werkzeug drains "whatever is left" after each response, which on a
  kept-alive connection would swallow the next request). Chunked requests still close the connection.
- **SQS hot paths** (:func:`patch_moto`). moto 5.2.5 answers ``Queue.attributes`` (read by every ``SendMessage``,
  so by every S3 → EventBridge → SQS delivery) by scanning every message of the queue three times, and checks
  the retention period of each received message by building all attributes again (O(n²) per receive); each
  check calls ``unix_time()``, which builds two ``datetime`` objects. Under load those were ~40 % of moto's
  samples. The patches read the retention period directly and take the time from ``time.time()`` (the same
  value: moto's ``utcnow()`` is the wall clock). moto's routing also lists its own package folder on every
  request (~11 % of a small PUT); the list is computed once.
- **Stream-change waits** (:class:`StreamChanges`). The devstack's DynamoDB stream consumers polled GetRecords every
  40 ms (every 250 ms once idle) to learn of a write. ``GET /_devstack/stream-changes?after=N&timeout=S`` answers
  ``{"version": V}`` as soon as any table's stream has a record beyond version ``N`` (or after ``S`` seconds):
  one parked request replaces ~10 polls a second. It is not an AWS API; consumers fall back to polling when it
  answers 404 (LocalStack, an external moto).
- **GetRecords answers** (:func:`get_records_json`). moto serializes every stream record through its generic,
  model-driven serializer, attribute by attribute: ~6 ms of CPU per record of a ~1.3 KB item with both images,
  ~26 % of moto's CPU at 30 streams (each of the table's two consumers reads every record). Stream records are
  already in wire form but for two types, so the answer is written with ``json.dumps``: the same JSON document.
- **Stream records nobody asked for** (:func:`get_records_json`). Each of the table's stream consumers read every
  record and dropped, on its side, those its ``FilterCriteria`` match not (most of them: session items change
  with every segment and health report). A consumer may send its patterns with GetRecords
  (:data:`FILTER_HEADER`, a JSON list); the answer then leaves out the records none matches, judged by the same
  matcher on the same Lambda-shaped record, and says how many it left out and the sequence number of the last
  record read (:data:`FILTERED_HEADER`, :data:`LAST_SEQUENCE_HEADER`). Only the key and image attributes a
  pattern names are shaped and matched (the same answer: a pattern looks at nothing else). Not an AWS API:
  Lambda filters in its own pollers, so a consumer still applies the patterns itself (a no-op here, the filter
  where the endpoint ignores the header).
- **PutObject's notifications** (:func:`patch_moto`). moto sends every PutObject to EventBridge twice: as
  ``Object Created`` and, because it stores the (empty) tag set through its ``PutObjectTagging`` code, as
  ``Object Tags Added``, which S3 does not send for a PutObject that sets no tags; each event is matched against
  every rule, and its detail type is looked up by scanning moto's event list three times. Half of a PutObject's
  CPU went there (~37 % of moto's at 30 streams were PutObjects). A PutObject without tags now sends only
  ``Object Created``, and the detail type of an event name is computed once.
- **PutObject's metadata** (:func:`patch_moto`). moto stores a PutObject's key (and sends its events) before it
  sets the request's metadata on it, ``Content-Type`` included: a GET in between (the CDN edge, a function woken
  by the event) read ``binary/octet-stream`` with no user metadata, a few times per bench run. The key now carries
  the request's metadata from its creation.
- **SendMessage to a standard queue** (:func:`patch_moto`). moto reads ``queue.attributes`` to learn whether
  content-based deduplication is on, which builds every attribute, message counts included (three scans of the
  queue's messages); a standard queue has no such attribute, so during its SendMessage the read answers an empty
  dict. It was ~18 % of a PutObject (each S3 event is sent on to SQS inside the PutObject request).
- **UpdateItem's expression** (:func:`patch_moto`). moto parses the ``UpdateExpression`` twice per call (request
  validation, then the update) and the devstack's functions send the same few expressions again and again; the
  parse is cached by expression text (the tree is only read, and deep-copied before it is evaluated).
- **What each kind of request costs** (:class:`RequestCosts`, a diagnostic, off by default): with
  ``DEVSTACK_MOTO_COSTS=<file>`` in its environment the moto child counts the requests of each kind (the
  ``X-Amz-Target`` action, else the S3 method on a bucket or an object) and the CPU their server threads spent on
  them (``time.thread_time``: reading the request, moto's work, writing the answer), and writes them to the file
  as JSON when it stops. py-spy says where the time goes; this says which requests bring it.
"""

from __future__ import annotations

import base64
import calendar
import functools
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from werkzeug.serving import WSGIRequestHandler

#: The path of the stream-change wait (under a prefix no AWS service uses).
STREAM_CHANGES_PATH = "/_devstack/stream-changes"
#: Longest wait a client may ask for, seconds.
MAX_WAIT = 30.0
#: The environment variable naming the file :class:`RequestCosts` is written to (unset: not measured).
COSTS_ENV = "DEVSTACK_MOTO_COSTS"
#: GetRecords request header: the consumer's FilterCriteria patterns, a JSON list of strings.
FILTER_HEADER = "X-Devstack-Filter-Patterns"
#: GetRecords response headers when the patterns were applied: records left out, and the last sequence number
#: read (filtered or not; absent when nothing was read).
FILTERED_HEADER = "X-Devstack-Filtered"
LAST_SEQUENCE_HEADER = "X-Devstack-Last-Sequence"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _BodyReader(io.RawIOBase):
    """The request's body and nothing past it: ``Content-Length`` bytes of the connection's buffered reader."""

    def __init__(self, raw: Any, length: int) -> None:
        self.raw = raw
        self.remaining = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.remaining <= 0:
            return 0
        view = memoryview(buffer)[: self.remaining]
        count = self.raw.readinto(view) or 0
        self.remaining -= count
        return count

    def readline(self, size: int | None = -1) -> bytes:
        limit = self.remaining if size is None or size < 0 else min(size, self.remaining)
        line = self.raw.readline(limit) if limit > 0 else b""
        self.remaining -= len(line)
        return line


class RequestCosts:
    """Requests and server-thread CPU seconds per kind of request (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.kinds: dict[str, list[float]] = {}  # kind -> [requests, cpu seconds]

    @staticmethod
    def kind(method: str, path: str, headers: Any) -> str:
        """``DynamoDB_20120810.UpdateItem``-style for JSON protocols, ``S3 PUT object``-style for S3."""
        target = headers.get("X-Amz-Target")
        if target:
            return str(target)
        route, _, query = path.partition("?")
        if route.startswith("/_devstack/") or route.startswith("/moto-api/"):
            return f"{method} {route}"
        parts = [part for part in route.split("/") if part]
        what = "object" if len(parts) > 1 else "bucket"
        flags = sorted({item.partition("=")[0] for item in query.split("&") if item})
        return f"S3 {method} {what}" + (f" ?{'&'.join(flags)}" if flags else "")

    def add(self, kind: str, seconds: float) -> None:
        with self._lock:
            entry = self.kinds.setdefault(kind, [0, 0.0])
            entry[0] += 1
            entry[1] += seconds

    def report(self) -> dict[str, dict[str, float]]:
        """``{kind: {"requests": n, "cpu_s": s, "cpu_ms_each": ms}}``, the costliest first."""
        with self._lock:
            ordered = sorted(self.kinds.items(), key=lambda item: -item[1][1])
            return {
                kind: {"requests": n, "cpu_s": round(cpu, 4), "cpu_ms_each": round(cpu / n * 1000, 3)}
                for kind, (n, cpu) in ordered
            }


class KeepAliveRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler (moto's, when given as ``base``) with HTTP/1.1 keep-alive."""

    protocol_version = "HTTP/1.1"
    _keep_alive = False
    #: Where requests are accounted when the diagnostic is on (:class:`RequestCosts`).
    costs: RequestCosts | None = None

    def handle_one_request(self) -> None:
        if self.costs is None:
            super().handle_one_request()
            return
        started = time.thread_time()
        super().handle_one_request()
        if getattr(self, "command", None):  # a request was read (not an idle keep-alive connection closing)
            self.costs.add(RequestCosts.kind(self.command, self.path, self.headers), time.thread_time() - started)
            self.command = ""

    def setup(self) -> None:
        super().setup()
        # http.server sends the headers and the body in separate writes: on a kept-alive connection Nagle's
        # algorithm would hold the body until the client's delayed ACK (~40 ms per small response).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def run_wsgi(self) -> None:
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length, chunked = 0, True
        self._keep_alive = not chunked and not self.close_connection
        if not self._keep_alive:
            super().run_wsgi()
            return
        raw = self.rfile
        body = _BodyReader(raw, length)
        self.rfile = body  # type: ignore[assignment]
        try:
            super().run_wsgi()
        finally:
            self.rfile = raw
            while body.remaining > 0:  # the application did not read the whole body: skip the rest of it
                data = raw.read(min(body.remaining, 1 << 20))
                if not data:
                    self.close_connection = True
                    break
                body.remaining -= len(data)

    def send_header(self, keyword: str, value: str) -> None:
        if self._keep_alive and keyword.lower() == "connection" and value.lower() == "close":
            return  # werkzeug closes every connection; this one stays open
        super().send_header(keyword, value)


def keep_alive_handler(base: type[WSGIRequestHandler]) -> type[WSGIRequestHandler]:
    """A keep-alive subclass of ``base`` (moto's ``MotoRequestHandler`` keeps its header handling)."""
    return type(f"KeepAlive{base.__name__}", (KeepAliveRequestHandler, base), {})


class StreamChanges:
    """A version number bumped on every DynamoDB stream record moto stores, and a WSGI wait on it."""

    def __init__(self) -> None:
        self.version = 0
        self._changed = threading.Condition()

    def bump(self) -> None:
        """A stream record was stored: wake every waiter."""
        with self._changed:
            self.version += 1
            self._changed.notify_all()

    def wait(self, after: int, timeout: float) -> int:
        """The version once it is beyond ``after``, or the current one after ``timeout`` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self.version > after, timeout)
            return self.version

    def middleware(self, app: WsgiApp) -> WsgiApp:
        """``app`` with :data:`STREAM_CHANGES_PATH` answered here."""

        def serve(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            if environ.get("PATH_INFO") != STREAM_CHANGES_PATH:
                return app(environ, start_response)
            query = parse_qs(environ.get("QUERY_STRING", ""))
            try:
                after = int(query.get("after", ["-1"])[0])
                timeout = min(MAX_WAIT, max(0.0, float(query.get("timeout", ["20"])[0])))
            except ValueError:
                start_response("400 Bad Request", [("Content-Length", "0")])
                return [b""]
            body = json.dumps({"version": self.wait(after, timeout)}).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]

        return serve


def _attribute_json(value: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB attribute value as moto holds it (binary as ``bytes``) in wire form (binary as base64)."""
    (kind, inner), *_ = value.items()
    if kind == "B":
        return {kind: base64.b64encode(inner).decode()}
    if kind == "BS":
        return {kind: [base64.b64encode(item).decode() for item in inner]}
    if kind == "M":
        return {kind: {name: _attribute_json(item) for name, item in inner.items()}}
    if kind == "L":
        return {kind: [_attribute_json(item) for item in inner]}
    return value


def _timestamp_json(value: datetime) -> int | float:
    """A UTC timestamp as the JSON protocol writes it: epoch seconds, truncated to milliseconds."""
    seconds = calendar.timegm(value.timetuple())
    return seconds + (value.microsecond // 1000) / 1000.0 if value.microsecond else seconds


def stream_record_json(record: dict[str, Any]) -> dict[str, Any]:
    """One of moto's stream records (``StreamRecord.to_json()``) as GetRecords puts it on the wire."""
    stream = dict(record["dynamodb"])
    stream["ApproximateCreationDateTime"] = _timestamp_json(stream["ApproximateCreationDateTime"])
    for image in ("Keys", "NewImage", "OldImage"):
        if image in stream:
            stream[image] = {name: _attribute_json(value) for name, value in stream[image].items()}
    return {**record, "dynamodb": stream}


_IMAGES = ("Keys", "NewImage", "OldImage")


def _projected(record: dict[str, Any], pattern: dict[str, Any]) -> dict[str, Any]:
    """``record`` with only the key and image attributes ``pattern`` names (an EventBridge pattern looks at the
    paths it names and nothing else, so the match is the same; shaping and matching whole images is not free)."""
    stream = record["dynamodb"]
    wanted = pattern.get("dynamodb")
    wanted = wanted if isinstance(wanted, dict) else {}
    projected = {name: value for name, value in stream.items() if name not in _IMAGES}
    for image in _IMAGES:
        if image in stream and image in wanted:
            names = wanted[image]
            attributes = stream[image]
            projected[image] = (
                {name: attributes[name] for name in names if name in attributes}
                if isinstance(names, dict)
                else attributes
            )
    return {**record, "dynamodb": projected}


class _PatternFilter:
    """A consumer's FilterCriteria applied to wire-form stream records: each pattern by the devstack's own matcher
    (:class:`devstack.event_sources.filters.RecordFilter`) on the Lambda-shaped record, projected onto what the
    pattern names."""

    def __init__(self, patterns: list[str]) -> None:
        from devstack.event_sources.filters import RecordFilter

        self._tests = [(json.loads(pattern), RecordFilter((pattern,))) for pattern in patterns]

    def __call__(self, record: dict[str, Any], stream_arn: str) -> bool:
        from devstack.event_sources.stream_records import stream_record

        if not self._tests:
            return True
        region = stream_arn.split(":")[3]
        return any(
            matches(stream_record(_projected(record, shape), stream_arn, region)) for shape, matches in self._tests
        )


@functools.lru_cache(maxsize=64)
def _record_filter(patterns: str) -> _PatternFilter | None:
    """The matcher for a :data:`FILTER_HEADER` value (None: not a list of patterns moto's matcher accepts)."""
    try:
        loaded = json.loads(patterns)
        if not isinstance(loaded, list) or not all(isinstance(item, str) for item in loaded):
            return None
        return _PatternFilter(loaded)
    except ValueError:  # not JSON, or a pattern moto's EventBridge matcher refuses
        return None


def get_records_json(self: Any) -> tuple[str, dict[str, str]]:
    """``DynamoDBStreamsHandler.get_records`` answering with ``json.dumps`` (errors are moto's, unchanged), and
    leaving out the records a consumer's :data:`FILTER_HEADER` patterns do not match."""
    limit = self._get_param("Limit")
    iterator = self._get_param("ShardIterator")
    result = self.backend.get_records(iterator, 1000 if limit is None else limit)
    records = [stream_record_json(record) for record in result["Records"]]
    headers = {"Content-Type": "application/x-amz-json-1.0"}
    keep = _record_filter(self.headers.get(FILTER_HEADER) or "null")
    if keep is not None:
        stream_arn = iterator.split("|", 1)[0]  # the iterator is "<stream ARN>|1|<id>"
        kept = [record for record in records if keep(record, stream_arn)]
        headers[FILTERED_HEADER] = str(len(records) - len(kept))
        if records:
            headers[LAST_SEQUENCE_HEADER] = records[-1]["dynamodb"]["SequenceNumber"]
        records = kept
    body = json.dumps({"Records": records, "NextShardIterator": result["NextShardIterator"]})
    return body, headers


def patch_moto(changes: StreamChanges) -> None:
    """Apply the O(1) SQS patches, cache moto's service list, hook ``changes`` into moto's DynamoDB stream shards
    and answer GetRecords with ``json.dumps`` (moto 5.2.x)."""
    from moto import backends
    from moto.dynamodb.models.table import StreamShard
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
    from moto.s3 import notifications
    from moto.s3.models import FakeKey, S3Backend
    from moto.s3.responses import S3Response
    from moto.sqs import models as sqs

    # Every request's routing lists moto's package folder (os.listdir + an isdir per entry): ~11 % of a small
    # PUT's CPU. The folder does not change while the server runs.
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules

    def unix_time(dt: Any = None, _original: Any = sqs.unix_time) -> float:
        return time.time() if dt is None else _original(dt)

    def unix_time_millis(dt: Any = None, _original: Any = sqs.unix_time_millis) -> float:
        return time.time() * 1000.0 if dt is None else _original(dt)

    def retention_ok(self: Any, queue_name: str, message: Any) -> bool:
        period = int(self.get_queue(queue_name).message_retention_period)
        return period + message.sent_timestamp / 1000 > time.time()

    sqs.unix_time = unix_time
    sqs.unix_time_millis = unix_time_millis
    sqs.SQSBackend.is_message_valid_based_on_retention_period = retention_ok  # type: ignore[method-assign]
    _patch_standard_queue_sends(sqs)

    add = StreamShard.add

    def add_and_bump(self: Any, old: Any, new: Any) -> None:
        add(self, old, new)
        changes.bump()

    StreamShard.add = add_and_bump  # type: ignore[method-assign]
    DynamoDBStreamsHandler.get_records = get_records_json  # type: ignore[assignment,method-assign]
    _patch_put_object_events(S3Response, S3Backend, FakeKey, notifications)
    UpdateExpressionParser.make = classmethod(  # type: ignore[assignment,method-assign]
        functools.lru_cache(maxsize=256)(UpdateExpressionParser.make.__func__)  # type: ignore[attr-defined]
    )


def _patch_standard_queue_sends(sqs: Any) -> None:
    """SendMessage to a standard queue without building its attributes (module docstring). moto reads
    ``queue.attributes`` there only as ``.get("ContentBasedDeduplication")``, a key only FIFO queues have, and
    otherwise only for FIFO queues; queues with moto Lambda mappings are left alone."""
    sending = threading.local()
    attributes = sqs.Queue.attributes.fget
    send_message = sqs.SQSBackend.send_message

    def attributes_unless_sending(self: Any) -> dict[str, Any]:
        if getattr(sending, "queue", None) is self:
            return {}
        return attributes(self)

    def send_message_cheaply(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        queue = self.get_queue(queue_name)
        if queue.fifo_queue or queue.lambda_event_source_mappings:
            return send_message(self, queue_name, *args, **kwargs)
        sending.queue = queue
        try:
            return send_message(self, queue_name, *args, **kwargs)
        finally:
            sending.queue = None

    sqs.Queue.attributes = property(attributes_unless_sending)
    sqs.SQSBackend.send_message = send_message_cheaply


def _patch_put_object_events(response: Any, backend: Any, key_class: Any, notifications: Any) -> None:
    """PutObject without tags: no ``Object Tags Added`` event; detail types computed once; the request's metadata
    on the key from its creation (module docstring)."""
    from moto.s3.utils import metadata_from_headers

    in_put_object = threading.local()
    put_object, put_object_tagging, key_init = response.put_object, backend.put_object_tagging, key_class.__init__

    def put_object_marked(self: Any, *args: Any, **kwargs: Any) -> Any:
        metadata = metadata_from_headers(self.headers)
        metadata.update(metadata_from_headers(self.querystring))
        in_put_object.active, in_put_object.metadata = True, metadata
        try:
            return put_object(self, *args, **kwargs)
        finally:
            in_put_object.active, in_put_object.metadata = False, None

    def key_init_with_request_metadata(self: Any, *args: Any, **kwargs: Any) -> None:
        key_init(self, *args, **kwargs)
        metadata = getattr(in_put_object, "metadata", None)
        if metadata is not None:  # the one key this PutObject creates (moto sets the same metadata again later)
            in_put_object.metadata = None
            self.set_metadata(dict(metadata))

    def put_object_tagging_quietly(self: Any, key: Any, tags: Any, *args: Any, **kwargs: Any) -> Any:
        if tags or not getattr(in_put_object, "active", False):
            return put_object_tagging(self, key, tags, *args, **kwargs)
        self.tagger.delete_all_tags_for_resource(key.arn)  # what storing no tags does, without the event
        return key

    response.put_object = put_object_marked
    backend.put_object_tagging = put_object_tagging_quietly
    key_class.__init__ = key_init_with_request_metadata
    notifications._detail_type = functools.cache(notifications._detail_type)
