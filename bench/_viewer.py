"""Benchmark: a session manifest landing in S3 → DynamoDB → the notifier → a message at a WebSocket viewer.

The whole path of BRIEF §6 ("event pipeline"), measured through a real ``capturestream up`` (a subprocess, exactly
as a developer runs it): S3 PutObject of ``sessions/<playback_id>/<session_id>/{started,ended}.json`` → moto's
EventBridge → CatalogRule → CatalogQueue → the SQS poller → CatalogFunction → UpdateItem of the stream item →
DynamoDB Streams → the stream poller (FilterCriteria applied) → NotifierFunction → SigV4 ``@connections`` POST →
the API Gateway emulator → an aiohttp WebSocket viewer registered in the lobby.

Method: one viewer connects and sends ``register``; each event is a manifest put by this process (boto3 in a
worker thread) for a fresh playback id, alternating ``started`` (→ ``streamLive``) and ``ended`` (→
``streamEnded``) so every put changes state. Events are sequential: the clock starts just before PutObject and
stops when the viewer's reader task receives the matching message; then a random 20–60 ms pause, so nothing locks
to a poll grid. A few warm-up events are discarded.

Reference, same run and same viewer: the last hop alone — an unsigned aiohttp POST to the gateway's
``@connections/{id}`` (the FANOUT.md floor path) → arrival; and the S3 PutObject request alone.

Target: p50 ≤ 100 ms, p99 ≤ 300 ms (BRIEF §6).
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import boto3

from bench._stats import markdown_table, ms, summarize
from bench.up import REPO_ROOT, _capturestream, _child_env, _kill_all, descendants
from capturestream import keys, table

TARGET = (0.100, 0.300)
WARMUP = 6
READY_TIMEOUT = 30.0


async def _start_up(state: Path, tmp: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    process = subprocess.Popen(
        [_capturestream(), "up", "--ports", "auto", "--state-dir", str(state), "--log-level", "WARNING"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "stderr").open("wb"),
        env=_child_env(tmp),
        cwd=REPO_ROOT,
        start_new_session=True,
    )
    deadline = time.monotonic() + READY_TIMEOUT
    while not (state / "stack.json").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"capturestream up did not start: {(tmp / 'stderr').read_text()[-2000:]}")
        await asyncio.sleep(0.05)
    return process, json.loads((state / "stack.json").read_text())


def _manifest(playback_id: str, session_id: str, ended: bool) -> bytes:
    body: dict[str, Any] = {
        "channel_id": "benchchannel",
        "playback_id": playback_id,
        "session_id": session_id,
        "started_at": "2026-11-25T15:00:00+00:00",
        "title": "bench",
    }
    if ended:
        body.update({"ended_at": "2026-11-25T15:00:10+00:00", "duration": 10.0, "revision": 1})
    return json.dumps(body).encode()


class _Viewer:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.waiting: dict[tuple[str, str], asyncio.Future[float]] = {}
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            arrived = time.perf_counter()
            message = json.loads(frame.data)
            stream_id = message.get("streamId") or message.get("stream", {}).get("streamId", "")
            future = self.waiting.pop((message["type"], stream_id), None)
            if future is not None and not future.done():
                future.set_result(arrived)

    def expect(self, kind: str, stream_id: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[(kind, stream_id)] = future
        return future


async def measure(events: int) -> dict[str, Any]:
    """Run ``events`` measured manifest puts (plus warm-up) and as many last-hop references."""
    with tempfile.TemporaryDirectory(prefix="bench-viewer-") as name:
        tmp = Path(name)
        started = time.perf_counter()
        process, stack = await _start_up(tmp / "state", tmp)
        try:
            return await _measure(stack, events, time.perf_counter() - started)
        finally:
            _kill_all(process, descendants(process.pid))


async def _measure(stack: dict[str, Any], events: int, setup: float) -> dict[str, Any]:
    s3 = boto3.client(
        "s3", endpoint_url=stack["s3_endpoint"], region_name=stack["region"],
        aws_access_key_id="test", aws_secret_access_key="test",
    )  # fmt: skip
    management = stack["ws_url"].replace("ws://", "http://").rstrip("/")
    pipeline, last_hop, put_request, lost = [], [], [], 0
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{stack['ws_url']}?viewer=bench")
        viewer = _Viewer(ws)
        await ws.send_str(json.dumps({"type": "register", "role": "viewer"}))
        await asyncio.sleep(0.3)
        connection_id = await asyncio.to_thread(_own_connection_id, stack)
        for index in range(WARMUP + events):
            playback_id, ended = f"bench{index // 2:05d}", index % 2 == 1
            session_id = "20261125T150000Z-bench0"
            key = keys.SessionManifest(
                playback_id=playback_id, session_id=session_id,
                kind=keys.ManifestKind.ENDED if ended else keys.ManifestKind.STARTED,
            ).key  # fmt: skip
            arrival = viewer.expect("streamEnded" if ended else "streamLive", playback_id)
            body = _manifest(playback_id, session_id, ended)
            t0 = time.perf_counter()
            await asyncio.to_thread(s3.put_object, Bucket=stack["bucket"], Key=key, Body=body)
            t1 = time.perf_counter()
            try:
                arrived = await asyncio.wait_for(arrival, 3.0)
            except TimeoutError:
                lost += 1
                continue
            if index >= WARMUP:
                pipeline.append(arrived - t0)
                put_request.append(t1 - t0)
                last_hop.append(await _last_hop(http, viewer, management, connection_id, index))
            await asyncio.sleep(random.uniform(0.02, 0.06))
        await ws.close()
    return {"setup_seconds": setup, "pipeline": pipeline, "last_hop": last_hop, "put": put_request, "lost": lost}


def _own_connection_id(stack: dict[str, Any]) -> str:
    """The viewer's connection id: API Gateway never tells a client its id, so read its registered item."""
    dynamodb = boto3.client(
        "dynamodb", endpoint_url=stack["s3_endpoint"], region_name=stack["region"],
        aws_access_key_id="test", aws_secret_access_key="test",
    )  # fmt: skip
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        items = dynamodb.query(TableName=stack["table"], **table.lobby_query())["Items"]
        if items:
            return items[0]["connection_id"]["S"]
        time.sleep(0.05)
    raise RuntimeError("the bench viewer never registered")


async def _last_hop(http: aiohttp.ClientSession, viewer: _Viewer, management: str, connection_id: str, n: int) -> float:
    """One unsigned POST to the gateway's @connections endpoint → arrival at the viewer."""
    stream_id = f"lasthop{n:05d}"
    arrival = viewer.expect("viewerCount", stream_id)
    body = json.dumps({"type": "viewerCount", "streamId": stream_id, "count": 1}).encode()
    started = time.perf_counter()
    async with http.post(f"{management}/@connections/{quote(connection_id, safe='')}", data=body) as response:
        response.raise_for_status()
    return await asyncio.wait_for(arrival, 3.0) - started


def report(result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The markdown table and the summary for the results file."""
    summaries = {name: summarize(result[name]) for name in ("pipeline", "last_hop", "put")}
    pipe = summaries["pipeline"]
    met = pipe.get("n", 0) > 0 and pipe["p50"] <= TARGET[0] and pipe["p99"] <= TARGET[1]

    def row(label: str, summary: dict[str, Any], target: str = "—") -> list[str]:
        if not summary.get("n"):
            return [label, "0", "–", "–", "–", "–", target]
        return [label, str(summary["n"]), *(ms(summary[k]) for k in ("p50", "p95", "p99", "max")), target]

    rows = [
        row("S3 put → DynamoDB → notifier → WebSocket viewer", pipe, "p50 ≤ 100 ms, p99 ≤ 300 ms"),
        row("reference: @connections POST → viewer (last hop alone)", summaries["last_hop"]),
        row("reference: S3 PutObject request alone", summaries["put"]),
    ]
    table = markdown_table(["path (per event)", "n", "p50", "p95", "p99", "max", "target"], rows)
    return table, {"summaries": summaries, "target_met": met, "lost": result["lost"]}
