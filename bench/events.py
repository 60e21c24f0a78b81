"""Benchmark: the event path from a session manifest landing in S3 to the catalog's item in DynamoDB.

Path measured (built in-process the way ``devstack/stack.py`` builds it): S3 PutObject of
``sessions/<playback_id>/<session_id>/started.json`` → moto's EventBridge → CatalogRule → CatalogQueue (SQS) →
the devstack :class:`~devstack.event_sources.SqsEventSource` → the real ``CatalogFunction`` handler in a
:class:`~devstack.lambda_runtime.LocalFunction` → UpdateItem of the session item.

Method:
    One moto child (:mod:`devstack.moto_process` via :class:`~devstack.processes.ChildProcess`); the stack
    provisioned from template.yaml (``load_stack_spec`` + ``provision``); CatalogFunction's template environment
    put into ``os.environ``; its SQS source configured from the spec; uvloop, as ``up`` runs on it. The function's
    handler is wrapped (no devstack code changes): the wrapper takes ``time.perf_counter()`` on entry and on
    return and calls the real handler in between. Every put is timed from just before ``put_object`` to
      (a) the handler's entry for that key, and
      (b) the session item being visible: a watcher polls ``BatchGetItem`` (a GetItem for every outstanding put
          in one call, ``ConsistentRead``) for puts whose handler has been entered (the item cannot exist
          earlier), back to back with a 2 ms pause. The time is the arrival of the first answer holding the
          *complete* item (moto's UpdateItem is not atomic to readers), so (b) includes up to one poll round trip.
    Puts are sequential, spaced by a random 5-25 ms pause so nothing locks to a poll grid. Polling loads moto and
    slows the path it watches, so (a) and (b) come from separate blocks: blocks of puts rotate *reference /
    catalog / catalog + item polling*, each starting once the previous one has drained, so slow drift (CPU
    frequency, other processes) hits every row alike. A few warm-up puts per block type are discarded.

Reference, measured in the same invocation: the same kind of puts into a second bucket whose notification
configuration sends ``s3:ObjectCreated:*`` *directly* to an SQS queue (QueueConfigurations, no EventBridge), with
an aiobotocore receiver (2 loops, like the source's 2 pollers) already long-polling and no handler: the
emulator's floor (LOCAL_AWS.md measured p50 6.3 ms).

Targets: put → handler p50 ≤ 50 ms. For context, BRIEF §6 asks manifest in S3 → DynamoDB → WebSocket message at the
viewer for p50 ≤ 100 ms and p99 ≤ 300 ms; the DynamoDB row here is the first part of that.

Usage: ``python -m bench.events [--puts N] [--block N] [--quick] [--results-dir DIR]``.
Exit status 0 when every put was measured (a missed target is reported in the table); 1 when events were lost
or the run could not complete.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiobotocore.session import get_session

from bench import _fanout, _viewer
from bench._stats import (
    add_common_arguments,
    environment,
    environment_line,
    markdown_table,
    ms,
    shown,
    summarize,
    write_results,
)
from capturestream import catalog, keys, table
from capturestream.events import parse_objects
from capturestream.models import SessionManifestBody
from devstack.event_sources import EventSource, SourceStats, SqsEventSource
from devstack.event_sources._base import TRANSIENT_ERRORS, Backoff  # what every EventSource subclass uses
from devstack.event_sources.sqs import sqs_record
from devstack.lambda_runtime import LocalFunction, resolve_handler_path
from devstack.processes import ChildProcess
from devstack.provision import ProvisionedStack, provision
from devstack.template_spec import StackSpec, load_stack_spec

FUNCTION_ID = "CatalogFunction"
TARGET_HANDLER_P50 = 0.050
VIEWER_TARGET = (0.100, 0.300)  # BRIEF §6, S3 → DynamoDB → WebSocket message (context for row b)
JITTER = (0.005, 0.025)
WATCH_PAUSE = 0.002
DRAIN_TIMEOUT = 15.0
WARMUP_PUTS = 5
PLAYBACK_ID = "benchplayback"
REFERENCE = "reference"
CATALOG = "catalog"  # catalog path, nothing polling DynamoDB: measures (a)
VISIBLE = "visible"  # catalog path with the item watcher: measures (b)
PATHS = (REFERENCE, CATALOG, VISIBLE)
_FAKE_AWS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}

log = logging.getLogger("bench.events")


@dataclass
class Timings:
    """Every timestamp of the run (``time.perf_counter()`` seconds), by object key."""

    put_started: dict[str, float] = field(default_factory=dict)
    put_done: dict[str, float] = field(default_factory=dict)
    handler_entered: dict[str, float] = field(default_factory=dict)
    handler_returned: dict[str, float] = field(default_factory=dict)
    visible: dict[str, float] = field(default_factory=dict)
    received: dict[str, float] = field(default_factory=dict)
    measured: dict[str, list[str]] = field(default_factory=lambda: {path: [] for path in PATHS})

    def since_put(self, ends: dict[str, float], path: str) -> list[float]:
        """Seconds from put start to ``ends[key]`` for every measured key of ``path`` that has both."""
        return [ends[k] - self.put_started[k] for k in self.measured[path] if k in ends]

    def done(self, key: str, path: str) -> bool:
        """True once every measurement of ``key`` on ``path`` has been taken."""
        if path == REFERENCE:
            return key in self.received
        return key in self.handler_returned and (path != VISIBLE or key in self.visible)


def _keys_of(records: dict[str, Any]) -> list[str]:
    """The object keys in a Lambda SQS event (EventBridge or direct S3 notification bodies alike)."""
    return [obj.key for obj in parse_objects(records)]


class TimedHandler:
    """The real handler, with its entry and return timestamped per object key (for the benchmark only)."""

    def __init__(self, handler: Callable[[Any, Any], Any], timings: Timings) -> None:
        self._handler = handler
        self._timings = timings

    def __call__(self, event: Any, context: Any) -> Any:
        entered = time.perf_counter()
        object_keys = _keys_of(event)
        for key in object_keys:
            self._timings.handler_entered.setdefault(key, entered)
        try:
            return self._handler(event, context)
        finally:
            returned = time.perf_counter()
            for key in object_keys:
                self._timings.handler_returned.setdefault(key, returned)


class DirectReceiver(EventSource):
    """The reference consumer: long-poll a queue, timestamp what arrives, delete it; no handler."""

    def __init__(self, queue_url: str, queue_arn: str, timings: Timings, *, pollers: int = 2) -> None:
        self.region = queue_arn.split(":")[3]
        super().__init__("sqs", region_name=self.region, max_pool_connections=2 * pollers + 2)
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.pollers = pollers
        self._timings = timings
        self._stats = SourceStats()

    def __str__(self) -> str:
        return f"DirectReceiver({self.queue_arn.rsplit(':', 1)[-1]})"

    @property
    def stats(self) -> SourceStats:
        """Counters: ``records`` received."""
        return self._stats

    async def _prepare(self, stack: contextlib.AsyncExitStack) -> None:
        return None

    def _workers(self) -> list[Awaitable[None]]:
        return [self._loop() for _ in range(self.pollers)]

    async def _loop(self) -> None:
        backoff = Backoff()
        while not self.stopping:
            try:
                response = await self._until_stopped(
                    self.client.receive_message(
                        QueueUrl=self.queue_url,
                        MaxNumberOfMessages=10,
                        WaitTimeSeconds=20,
                        MessageSystemAttributeNames=["All"],
                        MessageAttributeNames=["All"],
                    )
                )
            except TRANSIENT_ERRORS as exc:
                await self._endpoint_error(backoff, "ReceiveMessage", exc)
                continue
            received = time.perf_counter()
            messages = (response or {}).get("Messages", [])
            if not messages:
                continue
            self._stats.records += len(messages)
            event = {"Records": [sqs_record(m, self.queue_arn, self.region) for m in messages]}
            for key in _keys_of(event):  # moto's s3:TestEvent carries no key
                self._timings.received.setdefault(key, received)
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            with contextlib.suppress(*TRANSIENT_ERRORS):
                await self.client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)


class ItemWatcher:
    """Polls DynamoDB for the session items of outstanding puts; records when each first becomes visible.

    A key is polled only once its handler has been entered (the item cannot exist earlier), so the polling
    load on the emulator stays as small as the measurement allows.
    """

    def __init__(self, dynamodb: Any, table_name: str, timings: Timings) -> None:
        self._dynamodb = dynamodb
        self._table = table_name
        self._timings = timings
        self._outstanding: dict[str, str] = {}  # session id -> object key
        self._wake = asyncio.Event()
        self.polls = 0
        self.partial_reads = 0
        #: Every attribute the catalog's started update sets: an item lacking one is not fully written yet.
        self.expected_attributes = frozenset(
            catalog.session_update(_manifest_body("probe"), keys.ManifestKind.STARTED)[
                "ExpressionAttributeNames"
            ].values()
        )

    def expect(self, session_id: str, key: str) -> None:
        """Watch for the item of ``session_id`` (written for the object ``key``)."""
        self._outstanding[session_id] = key
        self._wake.set()

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            if not self._outstanding:
                self._wake.clear()
                await self._wake.wait()
            entered = self._timings.handler_entered
            batch = [sid for sid, key in self._outstanding.items() if key in entered][:100]
            if not batch:
                await asyncio.sleep(0.001)
                continue
            request = {"Keys": [table.session_key(sid) for sid in batch], "ConsistentRead": True}
            try:
                response = await self._dynamodb.batch_get_item(RequestItems={self._table: request})
            except TRANSIENT_ERRORS as exc:
                log.warning("BatchGetItem failed: %s", exc)
                await asyncio.sleep(0.05)
                continue
            seen = time.perf_counter()
            self.polls += 1
            for item in response.get("Responses", {}).get(self._table, []):
                session_id = item[table.PK]["S"].removeprefix(table.SESSION_PREFIX)
                if not self.expected_attributes <= item.keys():
                    self.partial_reads += 1  # moto's UpdateItem is not atomic to readers (see the README)
                    continue
                key = self._outstanding.pop(session_id, None)
                if key is not None:
                    self._timings.visible.setdefault(key, seen)
            await asyncio.sleep(WATCH_PAUSE)


@dataclass
class Bench:
    """The running pieces of one invocation."""

    spec: StackSpec
    provisioned: ProvisionedStack
    function: LocalFunction
    catalog_source: SqsEventSource
    reference_source: DirectReceiver
    reference_bucket: str
    s3: Any
    watcher: ItemWatcher
    watch_task: asyncio.Task[None]
    timings: Timings
    run_tag: str


def _manifest_body(session_id: str) -> SessionManifestBody:
    return SessionManifestBody(
        channel_id="benchchannel",
        playback_id=PLAYBACK_ID,
        session_id=session_id,
        started_at=datetime.now(UTC),
        ingest_node="bench",
    )


def _manifest(session_id: str) -> tuple[str, bytes]:
    key = keys.SessionManifest(playback_id=PLAYBACK_ID, session_id=session_id, kind=keys.ManifestKind.STARTED).key
    return key, _manifest_body(session_id).model_dump_json().encode()


async def _put(bench: Bench, path: str, index: int, *, measured: bool) -> None:
    session_id = f"{bench.run_tag}-{path[0]}{'m' if measured else 'w'}{index:05d}"
    key, body = _manifest(session_id)
    bucket = bench.reference_bucket if path == REFERENCE else bench.provisioned.bucket
    t = bench.timings
    if measured:
        t.measured[path].append(key)
    t.put_started[key] = time.perf_counter()
    if path == VISIBLE:
        bench.watcher.expect(session_id, key)
    await bench.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    t.put_done[key] = time.perf_counter()


async def _drain(bench: Bench, path: str, pending: list[str]) -> list[str]:
    """Wait until every key of ``pending`` is fully measured; return the keys still missing at the deadline."""
    deadline = time.perf_counter() + DRAIN_TIMEOUT
    while time.perf_counter() < deadline:
        if bench.watch_task.done():  # the watcher crashed: fail now, not after the drain timeout
            bench.watch_task.result()
            raise RuntimeError("the item watcher stopped")
        missing = [k for k in pending if not bench.timings.done(k, path)]
        if not missing:
            return []
        await asyncio.sleep(0.005)
    return [k for k in pending if not bench.timings.done(k, path)]


async def _block(bench: Bench, path: str, start: int, count: int, *, measured: bool) -> list[str]:
    keys_before = set(bench.timings.put_started)
    for index in range(start, start + count):
        await _put(bench, path, index, measured=measured)
        await asyncio.sleep(random.uniform(*JITTER))
    return await _drain(bench, path, [k for k in bench.timings.put_started if k not in keys_before])


@contextlib.asynccontextmanager
async def _running(tmp: Path, timings: Timings) -> Any:
    """Start moto, provision template.yaml, wire both paths; yield a :class:`Bench`; stop it all."""
    async with contextlib.AsyncExitStack() as stack:
        moto = ChildProcess.python_module(
            "moto",
            "devstack.moto_process",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            env={**os.environ, "TMPDIR": str(tmp)},
            log_path=tmp / "moto.log",
        )
        stack.push_async_callback(moto.stop)
        endpoint = f"http://127.0.0.1:{(await moto.start())['port']}"
        os.environ.update(_FAKE_AWS)
        os.environ.pop("AWS_PROFILE", None)
        os.environ["AWS_ENDPOINT_URL"] = endpoint

        spec = load_stack_spec()
        provisioned = await asyncio.to_thread(provision, spec, endpoint)
        os.environ.update(provisioned.environment_for(FUNCTION_ID))  # as stack.py's _apply_environment does

        fn = spec.functions[FUNCTION_ID]
        module, attribute = resolve_handler_path(fn.code_uri, fn.handler)
        handler = getattr(importlib.import_module(module), attribute)
        function = LocalFunction(
            FUNCTION_ID,
            TimedHandler(handler, timings),
            code_uri=fn.code_uri,
            timeout=fn.timeout,
            memory_mb=fn.memory,
            region=spec.region,
            account_id=spec.account_id,
        )
        (sqs_spec,) = [source for source in fn.sqs_sources if source.queue_logical_id == "CatalogQueue"]  # manifests
        queue = provisioned.queues[sqs_spec.queue_logical_id]
        catalog_source = SqsEventSource(
            queue.url,
            queue.arn,
            function,
            batch_size=sqs_spec.batch_size,
            maximum_batching_window=sqs_spec.batching_window,
            report_batch_item_failures=sqs_spec.report_batch_item_failures,
        )

        session = get_session()
        s3 = await stack.enter_async_context(session.create_client("s3", region_name=spec.region))
        sqs = await stack.enter_async_context(session.create_client("sqs", region_name=spec.region))
        dynamodb = await stack.enter_async_context(session.create_client("dynamodb", region_name=spec.region))

        reference_bucket = f"{spec.stack_name}-bench-direct"
        await s3.create_bucket(Bucket=reference_bucket)
        direct_url = (await sqs.create_queue(QueueName=f"{spec.stack_name}-bench-direct"))["QueueUrl"]
        attributes = await sqs.get_queue_attributes(QueueUrl=direct_url, AttributeNames=["QueueArn"])
        direct_arn = attributes["Attributes"]["QueueArn"]
        await s3.put_bucket_notification_configuration(
            Bucket=reference_bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "Id": "direct",
                        "QueueArn": direct_arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": keys.SESSIONS_PREFIX}]}},
                    }
                ]
            },
        )
        reference_source = DirectReceiver(direct_url, direct_arn, timings)

        for source in (catalog_source, reference_source):
            await source.start()
            stack.push_async_callback(source.stop)
        watcher = ItemWatcher(dynamodb, provisioned.table.name, timings)
        watch_task = asyncio.create_task(watcher.run(), name="item-watcher")

        async def stop_watcher() -> None:
            watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch_task

        stack.push_async_callback(stop_watcher)
        yield Bench(
            spec=spec,
            provisioned=provisioned,
            function=function,
            catalog_source=catalog_source,
            reference_source=reference_source,
            reference_bucket=reference_bucket,
            s3=s3,
            watcher=watcher,
            watch_task=watch_task,
            timings=timings,
            run_tag=f"b{random.randrange(16**6):06x}",
        )


async def measure(puts: int, block_size: int) -> dict[str, Any]:
    """Run the whole measurement; return raw timings and counters."""
    timings = Timings()
    lost: dict[str, list[str]] = {path: [] for path in PATHS}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-events-") as name:
        async with _running(Path(name), timings) as bench:
            setup_seconds = time.perf_counter() - started
            for path in PATHS:  # first invocations (cold handler clients, first polls) are not measured
                lost[path] += await _block(bench, path, 0, WARMUP_PUTS, measured=False)
            done = 0
            while done < puts:
                count = min(block_size, puts - done)
                for path in PATHS:
                    lost[path] += await _block(bench, path, done, count, measured=True)
                done += count
            counters = {
                "catalog_source": bench.catalog_source.stats.as_dict(),
                "reference_receiver": bench.reference_source.stats.as_dict(),
                "function": vars(bench.function.stats),
                "item_polls": bench.watcher.polls,
                "item_partial_reads": bench.watcher.partial_reads,
            }
    return {"timings": timings, "lost": lost, "counters": counters, "setup_seconds": setup_seconds}


def _row(label: str, values: list[float], target: str = "—") -> list[str]:
    s = summarize(values)
    return [label, str(s["n"]), *(ms(s.get(q)) for q in ("p50", "p95", "p99", "max")), target]


def report(result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The markdown table and the series/summaries for the results file."""
    t: Timings = result["timings"]
    series = {
        "reference_put_to_received": t.since_put(t.received, REFERENCE),
        "catalog_put_to_handler": t.since_put(t.handler_entered, CATALOG),
        "catalog_put_to_handler_returned": t.since_put(t.handler_returned, CATALOG),
        "visible_put_to_item_visible": t.since_put(t.visible, VISIBLE),
        "visible_put_to_handler": t.since_put(t.handler_entered, VISIBLE),
        "reference_put_request": t.since_put(t.put_done, REFERENCE),
        "catalog_put_request": t.since_put(t.put_done, CATALOG),
    }
    handler = series["catalog_put_to_handler"]
    met = bool(handler) and summarize(handler)["p50"] <= TARGET_HANDLER_P50
    viewer = f"(§6, on to the viewer: p50 ≤ {VIEWER_TARGET[0] * 1000:.0f} / p99 ≤ {VIEWER_TARGET[1] * 1000:.0f} ms)"
    rows = [
        _row("reference: S3 → SQS direct, receiver long-polling, no handler", series["reference_put_to_received"]),
        _row(
            "(a) put → CatalogFunction handler entered (S3 → EventBridge → SQS → poller)",
            handler,
            f"p50 ≤ {TARGET_HANDLER_P50 * 1000:.0f} ms: {'met' if met else 'MISSED'}",
        ),
        _row("  ↳ put → handler returned (same puts)", series["catalog_put_to_handler_returned"]),
        _row(
            "(b) put → session item visible in DynamoDB (own blocks, polled)",
            series["visible_put_to_item_visible"],
            viewer,
        ),
        _row("  ↳ put → handler entered while polling (observer load)", series["visible_put_to_handler"]),
        _row("S3 PutObject request alone, reference bucket", series["reference_put_request"]),
        _row("S3 PutObject request alone, media bucket (EventBridge on)", series["catalog_put_request"]),
    ]
    headers = ["path (per put)", "n", "p50", "p95", "p99", "max", "target"]
    summaries = {name: summarize(values) for name, values in series.items()}
    return markdown_table(headers, rows), {"series": series, "summaries": summaries, "target_met": met}


def _event_loop_factory() -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    """uvloop when installed, as ``capturestream up`` runs on it; else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return None, "asyncio"
    return uvloop.new_event_loop, "uvloop"


def main(argv: list[str] | None = None) -> int:
    """Run the bench; print the table; write the raw results."""
    parser = argparse.ArgumentParser(prog="python -m bench.events", description=__doc__.split("\n\n")[0])
    parser.add_argument("--puts", type=int, default=200, help="measured puts per block type (default 200)")
    parser.add_argument("--block", type=int, default=50, help="puts per block; block types rotate (default 50)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 30 puts per block type, blocks of 15")
    parser.add_argument(
        "--viewer-events",
        type=int,
        default=200,
        help="S3 → WebSocket viewer events through `up` (default 200; 0 skips)",
    )
    parser.add_argument("--fanout-sizes", default="1000,10000", help="fan-out viewer counts (default 1000,10000)")
    parser.add_argument("--fanout-reps", type=int, default=3, help="fan-out rounds per size (default 3; 0 skips)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.puts, args.block = 30, 15
        args.viewer_events, args.fanout_sizes, args.fanout_reps = 20, "20", 1
    if args.puts < 1 or args.block < 1:
        parser.error("--puts and --block must be >= 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    env = environment()
    factory, loop_name = _event_loop_factory()
    budget = 90 + args.puts * 0.75
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            result = runner.run(asyncio.wait_for(measure(args.puts, args.block), budget))
    except TimeoutError:
        print(f"bench.events: did not finish within {budget:.0f} s", file=sys.stderr)
        return 1

    table_text, summary = report(result)
    lost = result["lost"]
    print(
        f"## Event path: {args.puts} puts per row group, blocks of {args.block} rotating "
        "(reference / catalog / catalog + item polling), 5-25 ms jitter between puts\n"
    )
    print(table_text)
    print()
    print(
        f"Setup (moto child + provision + wiring) {result['setup_seconds']:.2f} s; event loop {loop_name}; "
        f"{result['counters']['catalog_source']['invocations']} catalog invocations for "
        f"{result['counters']['catalog_source']['records']} records; {result['counters']['item_polls']} item polls, "
        f"{result['counters']['item_partial_reads']} of them saw a half-written item. {environment_line(env)}."
    )
    if any(lost.values()):
        print(
            f"\nLOST (not fully measured within {DRAIN_TIMEOUT:.0f} s): "
            + ", ".join(f"{path}: {len(missing)}" for path, missing in lost.items())
        )
    timings: Timings = result["timings"]
    path = write_results(
        "events",
        {
            "bench": "events",
            "argv": sys.argv[1:] if argv is None else argv,
            "environment": env,
            "event_loop": loop_name,
            "target_put_to_handler_p50_seconds": TARGET_HANDLER_P50,
            "setup_seconds": result["setup_seconds"],
            "counters": result["counters"],
            "lost": lost,
            **summary,
            "raw": dict(vars(timings)),
        },
        args.results_dir,
    )
    print(f"\nRaw results: {shown(path)}")
    failed = any(lost.values())
    if args.viewer_events > 0:
        failed |= _viewer_section(args, factory, env)
    if args.fanout_reps > 0:
        failed |= _fanout_section(args, factory, env)
    return 1 if failed else 0


def _viewer_section(args: argparse.Namespace, factory: Any, env: dict[str, Any]) -> bool:
    """S3 put → … → WebSocket viewer through a real ``capturestream up``; True when events were lost."""
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(asyncio.wait_for(_viewer.measure(args.viewer_events), 60 + args.viewer_events * 3.5))
    table_text, summary = _viewer.report(result)
    print(f"\n## S3 manifest → DynamoDB → notifier → WebSocket viewer, {args.viewer_events} sequential events\n")
    print(table_text)
    print(
        f"\n`up` subprocess ready in {result['setup_seconds']:.2f} s; lost {result['lost']}. {environment_line(env)}."
    )
    path = write_results("events-viewer", {"bench": "events-viewer", "environment": env, **summary, "raw": result},
                         args.results_dir)  # fmt: skip
    print(f"Raw results: {shown(path)}")
    return result["lost"] > 0


def _fanout_section(args: argparse.Namespace, factory: Any, env: dict[str, Any]) -> bool:
    """One notification to N emulator connections with the notifier's poster, beside aiobotocore."""
    sizes = [int(size) for size in args.fanout_sizes.split(",")]
    with asyncio.Runner(loop_factory=factory) as runner:
        summaries = runner.run(_fanout.run_fanout(sizes, args.fanout_reps, reference_sizes=[min(sizes)]))
    print("\n## Fan-out: one notification → N WebSocket viewers, one `@connections` POST each\n")
    print(_fanout.table(summaries))
    path = write_results("events-fanout", {"bench": "events-fanout", "environment": env, "summaries": summaries},
                         args.results_dir)  # fmt: skip
    print(f"\nRaw results: {shown(path)}")
    return any(s.get("fails") for s in summaries)


if __name__ == "__main__":
    sys.exit(main())
