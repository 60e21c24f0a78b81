"""``capturestream up``: the whole CaptureStream cloud on one machine, no Docker (BRIEF §5).

Start order (stop is the reverse):
1. the AWS endpoint: moto in a child process (or ``--aws-endpoint`` for LocalStack / MinIO+moto);
2. resources provisioned **from template.yaml** (:mod:`devstack.template_spec`, :mod:`devstack.provision`);
3. the functions of the template as :class:`~devstack.lambda_runtime.LocalFunction`\\ s, their environment
   filled from the provisioned stack; their event sources (SQS, DynamoDB Streams) and the TTL sweeper;
4. the WebSocket API emulator (``ws_port``) routed to its functions;
5. one HTTP server (``http_port``): the HTTP API adapter for the REST function's routes, the MinIO webhook
   receiver (``POST /_local/minio/events``), and the CDN edge for everything else (media from the bucket, the
   web app from ``web/``);
6. the ingest node (``python -m ingest_node``: RTMP, its HTTP listener for low-latency playback and ``/metrics``,
   browser go-live on that listener when ``capture_port`` is not 0) as a child process, with the same endpoint and
   table;
7. ``<state-dir>/stack.json`` with every endpoint, written atomically only when all of the above is ready.

Rules:
- Functions run in this process and share its environment, as the template's variables are the same for all
  of them; two functions that want different values for one variable is a configuration error at start.
- A local JWT secret is generated once per state dir (``secrets.json``, mode 0600) and a developer token for
  the local owner is written next to it (``dev-token``); neither is ever logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import uvloop
from aiobotocore.session import get_session
from aiohttp import web

from capturestream import tokens
from capturestream.logs import configure_logging

from .cdn_edge import CdnEdge
from .cli import STACK_FILE, TOKEN_FILE
from .config import StackConfig, requested_ports
from .event_sources import (
    DynamoDbStreamEventSource,
    EventSource,
    ScheduledInvoker,
    SqsEventSource,
    TtlSweeper,
)
from .http_api import HttpApiAdapter
from .lambda_runtime import LocalFunction
from .minio_webhook import PATH as MINIO_WEBHOOK_PATH
from .minio_webhook import MinioWebhook
from .processes import ChildProcess
from .provision import ProvisionedStack, provision
from .table_snapshot import TableSnapshotter
from .template_spec import StackSpec, load_stack_spec
from .ws_gateway import WebSocketGateway

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
WEB_ROOT = REPO_ROOT / "web"
DEV_OWNER = "local-owner"
DEV_TOKEN_TTL = 30 * 24 * 3600
_FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


@dataclass
class Endpoints:
    """What ``stack.json`` tells clients (BRIEF §4 names)."""

    s3_endpoint: str
    region: str
    bucket: str
    rtmp_url: str
    api_url: str
    ws_url: str
    web_url: str
    cdn_url: str
    #: The ingest node's browser go-live WebSocket (``ws://host:port/capture``); ``None`` when it is off.
    capture_ws_url: str | None = None
    #: The ingest node's HTTP origin (``http://host:port``): low-latency playback under ``/live/``, ``/metrics``.
    #: It listens whether go-live is on or off (then on a port of its own).
    ingest_http_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON document written to ``stack.json``."""
        data = {k: v for k, v in vars(self).items() if k != "extra"}
        return {**data, **self.extra}


def web_runtime_config(endpoints: Endpoints) -> dict[str, Any]:
    """The web app's ``/config.json``: where its pages find the API, the WebSocket gateway and ingest.

    ``playbackUrl`` is the ingest node's HTTP origin, where the watch page's low-latency modes play
    ``/live/<playbackId>.flv`` and ``/live/<playbackId>/ll.m3u8``; it does not depend on go-live (``captureWsUrl``
    is ``None`` with ``--capture-port 0``, and the node still serves playback on its own HTTP port).
    """
    return {
        "apiUrl": endpoints.api_url,
        "wsUrl": endpoints.ws_url,
        "captureWsUrl": endpoints.capture_ws_url,
        "playbackUrl": endpoints.ingest_http_url,
        "rtmpUrl": endpoints.rtmp_url,
    }


@dataclass(frozen=True)
class _IngestEndpoints:
    """Where the ingest node child listens (its ready line)."""

    rtmp_port: int
    #: ``None`` when go-live is off.
    capture_ws_url: str | None
    #: Its one HTTP listener: ``/live/`` playback, ``/metrics`` (and ``/capture`` when go-live is on).
    http_url: str


class LocalStack:
    """The running local system; ``async with LocalStack(config) as stack`` starts and stops it."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.state_dir = config.state_dir.resolve()
        self.functions: dict[str, LocalFunction] = {}
        self.sources: list[EventSource] = []
        self.children: list[ChildProcess] = []
        self.gateway: WebSocketGateway | None = None
        self.endpoints: Endpoints | None = None
        self.ready_seconds: float | None = None
        self.snapshotter: TableSnapshotter | None = None
        self._exit = contextlib.AsyncExitStack()
        self._runner: web.AppRunner | None = None
        self.cdn: CdnEdge | None = None

    async def __aenter__(self) -> LocalStack:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> Endpoints:
        """Start everything; return the endpoints once ``stack.json`` is written."""
        started = time.perf_counter()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / STACK_FILE).unlink(missing_ok=True)
        ports = requested_ports(self.config)
        endpoint = self.config.aws_endpoint or await self._start_moto(ports.aws)
        for name, value in {**_FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": "us-east-1"}.items():
            os.environ.setdefault(name, value)
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        if self.config.s3_endpoint:  # MinIO mode: the SDKs send S3 calls there, everything else to `endpoint`
            os.environ["AWS_ENDPOINT_URL_S3"] = self.config.s3_endpoint
        spec = load_stack_spec(
            parameters={
                "StageName": self.config.stage,
                "ReconnectWindow": str(self.config.reconnect_window),
                "ReaperMargin": str(self.config.reaper_margin),
            }
        )
        provisioned = await asyncio.to_thread(provision, spec, endpoint, s3_endpoint_url=self.config.s3_endpoint)
        self.functions = {fid: _local_function(spec, fid) for fid in spec.functions}
        http_port = await self._start_http(spec, provisioned, ports.http)
        ws_url = await self._start_gateway(spec, ports.ws)
        base = f"http://{self.config.host}:{http_port}"
        ingest = await self._start_ingest(provisioned, ports.rtmp, ports.capture)
        rtmp_url = f"rtmp://{self.config.host}:{ingest.rtmp_port}/live"
        secret = self._jwt_secret()
        _apply_environment(spec, provisioned, self._env_overrides(base, rtmp_url, secret))
        if not self.config.aws_endpoint:  # moto forgets everything on exit; an external endpoint keeps its data
            await self._start_snapshots(spec, provisioned)
        await self._start_event_sources(spec, provisioned)
        self.endpoints = Endpoints(
            s3_endpoint=endpoint,
            region=spec.region,
            bucket=provisioned.bucket,
            rtmp_url=rtmp_url,
            api_url=base,
            ws_url=ws_url,
            web_url=base,
            cdn_url=base,
            capture_ws_url=ingest.capture_ws_url,
            ingest_http_url=ingest.http_url,
            extra={"table": provisioned.table.name, "aws_endpoint": endpoint, "pid": os.getpid()},
        )
        if self.cdn is not None:
            self.cdn.configure(web_runtime_config(self.endpoints))
        self._write_private(TOKEN_FILE, tokens.issue_token(secret, DEV_OWNER, DEV_TOKEN_TTL, name="Local owner"))
        self._write_private(STACK_FILE, json.dumps(self.endpoints.as_dict(), indent=2))
        self.ready_seconds = time.perf_counter() - started
        return self.endpoints

    async def stop(self) -> None:
        """Stop everything in reverse order; safe to call twice or after a failed start.

        The ingest node goes first, while the pipeline still runs: it ends its broadcasts by storing the final
        playlists and ``ended.json``, and those events should reach the catalog before the pollers stop.
        """
        (self.state_dir / STACK_FILE).unlink(missing_ok=True)
        for child in [c for c in self.children if c.name == "ingest"]:
            await child.stop()
            self.children.remove(child)
            await self._drain_queues()
        await asyncio.gather(*(source.stop() for source in self.sources), return_exceptions=True)
        self.sources.clear()
        if self.gateway is not None:
            await self.gateway.close()
            self.gateway = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.snapshotter is not None:
            await self.snapshotter.stop()
            self.snapshotter = None
        await self._exit.aclose()
        for child in reversed(self.children):
            await child.stop()
        self.children.clear()

    async def _drain_queues(self, timeout: float = 3.0) -> None:
        """Wait (bounded) until the SQS sources have nothing visible or in flight."""
        pollers = [source for source in self.sources if isinstance(source, SqsEventSource)]
        queues = [source.queue_url for source in pollers]
        if not queues:
            return
        for poller in pollers:  # e.g. segments batched for 5 s: deliver what is gathered now
            poller.hurry()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with get_session().create_client("sqs") as sqs:
            while loop.time() < deadline:
                pending = 0
                for url in queues:
                    attributes = await sqs.get_queue_attributes(
                        QueueUrl=url,
                        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
                    )
                    pending += sum(int(value) for value in attributes["Attributes"].values())
                if not pending:
                    return
                await asyncio.sleep(0.1)
        log.warning("stopping with events still queued (they stay in the queue)")

    async def _start_moto(self, port: int) -> str:
        moto_tmp = self.state_dir / "moto-tmp"
        moto_tmp.mkdir(exist_ok=True)
        child = ChildProcess.python_module(
            "moto",
            "devstack.moto_process",
            "--host",
            self.config.host,
            "--port",
            str(port),
            env={**os.environ, "TMPDIR": str(moto_tmp)},
            log_path=self.state_dir / "logs" / "moto.log",
        )
        self.children.append(child)
        ready = await child.start()
        return f"http://{self.config.host}:{ready['port']}"

    async def _start_ingest(
        self, provisioned: ProvisionedStack, port: int, capture_port: int | None
    ) -> _IngestEndpoints:
        """The ingest node as a child process (its own GIL: media never waits for a Lambda handler); returns where
        it listens, from the JSON line it prints once ready (:mod:`ingest_node.__main__`)."""
        env = {
            **os.environ,
            "TABLE_NAME": provisioned.table.name,
            "MEDIA_BUCKET": provisioned.bucket,
            "RTMP_HOST": self.config.host,
            "RTMP_PORT": str(port),
            "CAPTURE_HOST": self.config.host,
            "CAPTURE_PORT": str(capture_port or 0),
            "CAPTURE_ENABLED": str(capture_port is not None).lower(),
            "SEGMENT_SECONDS": str(self.config.segment_seconds),
            "RECONNECT_WINDOW": str(self.config.reconnect_window),
            "REMUXER": self.config.remuxer,
            "LOG_LEVEL": self.config.log_level,
            "LOG_FORMAT": self.config.log_format,
            # the stack's own spool: what S3 (moto) did not take survives an `up` restart with this state dir
            "SPOOL_DIR": str(self.state_dir / "spool"),
        }
        child = ChildProcess.python_module(
            "ingest", "ingest_node", env=env, log_path=self.state_dir / "logs" / "ingest.log", echo=True
        )
        self.children.append(child)
        ready = await child.start()
        capture = ready.get("capture_port")
        return _IngestEndpoints(
            rtmp_port=ready["port"],
            capture_ws_url=None if capture is None else f"ws://{self.config.host}:{capture}{ready['capture_path']}",
            http_url=f"http://{self.config.host}:{ready['http_port']}",
        )

    async def _start_http(self, spec: StackSpec, provisioned: ProvisionedStack, port: int) -> int:
        routes = [(r.method, r.path, self.functions[r.function].invoke) for r in spec.http_api.routes]
        adapter = HttpApiAdapter(routes)
        session = get_session()
        s3 = await self._exit.enter_async_context(session.create_client("s3", region_name=spec.region))
        events = await self._exit.enter_async_context(session.create_client("events", region_name=spec.region))
        cdn = self.cdn = CdnEdge(s3, provisioned.bucket, WEB_ROOT)
        minio = MinioWebhook(events)

        async def dispatch(request: web.Request) -> web.StreamResponse:
            if adapter.match(request.method, request.path):
                return await adapter.handle(request)
            if request.path == MINIO_WEBHOOK_PATH and request.method == "POST":
                return await minio.handle(request)
            return await cdn.handle(request)

        app = web.Application(client_max_size=adapter.max_payload_bytes + 1)
        app.router.add_route("*", "/{tail:.*}", dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, port)
        await site.start()
        return self._runner.addresses[0][1]

    async def _start_gateway(self, spec: StackSpec, port: int) -> str:
        ws = spec.websocket
        routes = {route: self.functions[function].invoke for route, function in ws.routes.items()}
        self.gateway = WebSocketGateway(
            routes, route_selection_expression=ws.route_selection_expression, stage=ws.stage
        )
        await self.gateway.start(self.config.host, port)
        return self.gateway.ws_url

    async def _start_snapshots(self, spec: StackSpec, provisioned: ProvisionedStack) -> None:
        dynamodb = await self._exit.enter_async_context(
            get_session().create_client("dynamodb", region_name=spec.region)
        )
        self.snapshotter = TableSnapshotter(dynamodb, provisioned.table.name, self.state_dir)
        await self.snapshotter.start()

    async def _start_event_sources(self, spec: StackSpec, provisioned: ProvisionedStack) -> None:
        for fid, fn_spec in spec.functions.items():
            function = self.functions[fid]
            for sqs in fn_spec.sqs_sources:
                queue = provisioned.queues[sqs.queue_logical_id]
                self.sources.append(
                    SqsEventSource(
                        queue.url,
                        queue.arn,
                        function,
                        batch_size=sqs.batch_size,
                        maximum_batching_window=sqs.batching_window,
                        report_batch_item_failures=sqs.report_batch_item_failures,
                    )
                )
            for stream in fn_spec.stream_sources:
                on_failure = provisioned.queues.get(stream.on_failure_queue_logical_id or "")
                self.sources.append(
                    DynamoDbStreamEventSource(
                        provisioned.tables[stream.table_logical_id].stream_arn,
                        function,
                        batch_size=stream.batch_size,
                        starting_position=stream.starting_position,
                        maximum_retry_attempts=stream.maximum_retry_attempts,
                        bisect_on_function_error=stream.bisect_batch_on_error,
                        report_batch_item_failures=stream.report_batch_item_failures,
                        on_failure_queue_url=on_failure.url if on_failure else None,
                        filter_patterns=stream.filter_patterns,
                        maximum_batching_window=stream.batching_window,
                    )
                )
            for schedule in (s for s in fn_spec.schedules if s.enabled):
                self.sources.append(
                    ScheduledInvoker(
                        function,
                        schedule.expression,
                        rule_arn=f"arn:aws:events:{spec.region}:{spec.account_id}:rule/{spec.stack_name}-{fid}-"
                        f"{schedule.name}",
                        period=self.config.schedule_period,
                        input=schedule.input,
                        region_name=spec.region,
                        account_id=spec.account_id,
                    )
                )
        for table in spec.tables.values():
            if table.ttl_attribute:
                self.sources.append(TtlSweeper(table.name, table.ttl_attribute, interval=5.0))
        await asyncio.gather(*(source.start() for source in self.sources))

    def _env_overrides(self, base: str, rtmp_url: str, secret: str) -> dict[str, str]:
        assert self.gateway is not None
        return {
            # FfmpegLayer's binary in AWS (/opt/bin/ffmpeg); here the same static build from its PyPI wheel, niced.
            "FFMPEG_BINARY": self._ffmpeg_wrapper(),
            "WS_ENDPOINT": self.gateway.management_url,
            "JWT_SECRET": secret,
            "RTMP_INGEST_URL": rtmp_url,
            "CDN_BASE_URL": base,
            "WEB_BASE_URL": base,
            "CORS_ALLOW_ORIGINS": base,
        }

    def _ffmpeg_wrapper(self) -> str:
        """``<state-dir>/bin/ffmpeg``: the static ffmpeg at a lower CPU priority. In AWS every function has its own
        CPU; here thumbnails and storyboards share two cores with the ingest node, which must never wait for them."""
        wrapper = self.state_dir / "bin" / "ffmpeg"
        wrapper.parent.mkdir(exist_ok=True)
        binary = imageio_ffmpeg.get_ffmpeg_exe()
        wrapper.write_text(f'#!/bin/sh\nexec nice -n 10 "{binary}" "$@"\n')
        wrapper.chmod(0o755)
        return str(wrapper)

    def _jwt_secret(self) -> str:
        path = self.state_dir / "secrets.json"
        if path.exists():
            return json.loads(path.read_text())["jwt_secret"]
        secret = secrets.token_urlsafe(48)
        self._write_private("secrets.json", json.dumps({"jwt_secret": secret}))
        return secret

    def _write_private(self, name: str, text: str) -> None:
        """Write a state file atomically with mode 0600 (readers never see half a file)."""
        target = self.state_dir / name
        temporary = target.with_suffix(target.suffix + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temporary, target)


def _local_function(spec: StackSpec, logical_id: str) -> LocalFunction:
    fn = spec.functions[logical_id]
    return LocalFunction(
        logical_id,
        fn.handler,
        code_uri=fn.code_uri,
        timeout=fn.timeout,
        memory_mb=fn.memory,
        region=spec.region,
        account_id=spec.account_id,
    )


def _apply_environment(spec: StackSpec, provisioned: ProvisionedStack, overrides: dict[str, str]) -> None:
    """Put every function's template environment into this process (they share it; conflicts are errors)."""
    merged: dict[str, tuple[str, str]] = {}
    for fid in spec.functions:
        for name, value in provisioned.environment_for(fid, overrides).items():
            if name in merged and merged[name][1] != value:
                raise RuntimeError(f"{fid} and {merged[name][0]} need different values for {name}")
            merged[name] = (fid, value)
    os.environ.update({name: value for name, (_, value) in merged.items()})


def banner(endpoints: Endpoints, ready_seconds: float, state_dir: Path, token: str) -> str:
    """What ``up`` prints once ready."""
    lines = [
        f"CaptureStream is up ({ready_seconds:.2f} s). Ctrl-C stops it.",
        f"  Web app        {endpoints.web_url}/",
        f"  REST API       {endpoints.api_url}/api   (docs {endpoints.api_url}/docs)",
        f"  WebSocket      {endpoints.ws_url}",
        f"  OBS server     {endpoints.rtmp_url}",
        f"  Go-live WS     {endpoints.capture_ws_url or 'off (--capture-port 0)'}   (studio's browser go-live)",
        f"  Low latency    {endpoints.ingest_http_url}/live/<playbackId>.flv and /live/<playbackId>/ll.m3u8"
        "   (watch page's switch; node /metrics there too)",
        f"  AWS endpoint   {endpoints.s3_endpoint}   (bucket {endpoints.bucket})",
        f"  State          {state_dir}/stack.json   (logs of the moto and ingest children in {state_dir}/logs/)",
        '  Next: capturestream channel create "My channel"   (prints your stream key)',
        f"  Dev token      {token}",
        "                 (bearer token of the local owner, valid 30 days; `capturestream token` prints it again)",
    ]
    return "\n".join(lines)


async def _serve(config: StackConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal running `up` closed
        loop.add_signal_handler(signum, stop.set)
    async with LocalStack(config) as stack:
        assert stack.endpoints is not None and stack.ready_seconds is not None
        token = (stack.state_dir / TOKEN_FILE).read_text().strip()
        print(banner(stack.endpoints, stack.ready_seconds, stack.state_dir, token), flush=True)
        await stop.wait()
        log.info("stopping")


def run(config: StackConfig) -> int:
    """Run the local system in the foreground until SIGINT/SIGTERM/SIGHUP; return the exit code."""
    configure_logging(config.log_level, config.log_format)
    try:
        # uvloop: the WebSocket fan-out floor in FANOUT.md (81 µs/message in the gateway) was measured on it.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(config))
    except (OSError, RuntimeError) as error:
        log.error("capturestream up failed: %s", error)
        return 1
    return 0
