"""Benchmark: one notification fanned out to N WebSocket viewers, one signed ``@connections`` POST each.

What: the notifier's :class:`~functions.notifier.connections.ConnectionPoster` (aiohttp keep-alive, SigV4 signed
by :mod:`capturestream.sigv4`) posting one 207-byte message to each of N connections of the devstack API Gateway
WebSocket emulator. Targets (``../shared/FANOUT.md``, 2 cores): 1k viewers ≤ 0.3 s, 10k ≤ 2 s.

Method (as in FANOUT.md), three processes sharing the machine, all on 127.0.0.1:
    * gateway: a :class:`~devstack.ws_gateway.WebSocketGateway` (uvloop, trivial ``$connect``/``$disconnect``
      routes) in a child process (``python -m bench._fanout --child gateway``, driven by JSON lines on its
      stdin/stdout, so importing this module from another bench starts nothing heavy);
    * viewers: another child holding max(N) aiohttp client WebSockets (``RLIMIT_NOFILE`` soft limit raised to the
      hard limit in both children), counting the round's message and keeping the ``CLOCK_MONOTONIC`` time of the
      last arrival;
    * notifier: this process (uvloop), one warm poster for the whole run. A round posts the message to the first
      N connection ids; wall = first post → the viewers' last arrival (the same monotonic clock in both
      processes). Notifier CPU = ``time.process_time()`` over ``post_many`` only (the send phase); gateway and
      viewer CPU = ``/proc/<pid>/stat`` deltas from the first post to the viewers' report.
    Both children collect and ``gc.freeze()`` once the viewers are connected: a full collection over 10k
    connections' objects takes ~0.2 s in either (measured), a few land inside rounds otherwise and the notifier
    waits them out; that is the emulator's cost, not the notifier's (``--no-gc-freeze`` measures with them).
    Per size, 1 discarded warm-up round then ``reps`` rounds, variants interleaved round by round; the table shows
    the median wall (min–max) and median CPU. Every round must deliver N/N; retries are off in the reference and
    left on (never needed) for the poster.

Reference, measured in the same invocation: aiobotocore ``post_to_connection`` with the same number in flight
(64 workers over one iterator, ``max_pool_connections=64``, one attempt), the SDK's floor, by default for sizes
≤ 1000 only (10k takes ~6 s; ``--reference-all`` measures every size).

Usage: ``python -m bench._fanout [--sizes 1000,10000] [--reps 3] [--in-flight 64] [--reference-all] [--no-reference]
[--no-gc-freeze] [--quick] [--results-dir DIR]``.
Exit status 0 when every round delivered every message (a missed target is reported in the table), else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import resource
import sys
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from bench._ingest_proc import read_stat
from bench._stats import (
    add_common_arguments,
    environment,
    environment_line,
    markdown_table,
    shown,
    summarize,
    write_results,
)

TARGETS = {1000: 0.3, 10000: 2.0}  # seconds, first post → last arrival (FANOUT.md, 2 cores)
MESSAGE_BYTES = 207
POSTER = "ConnectionPoster (aiohttp + own SigV4)"
REFERENCE = "reference: aiobotocore post_to_connection"
_FAKE_AWS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
REPO_ROOT = Path(__file__).resolve().parents[1]
_READY_TIMEOUT = 30.0
_CONNECT_CONCURRENCY = 256

log = logging.getLogger("bench.fanout")


# -- children: ``python -m bench._fanout --child gateway|viewers``, one JSON value per line on stdin/stdout -------


def _raise_open_files_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _reply(value: Any) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


async def _command() -> Any:
    """The next command from the parent; ``"stop"`` at end of input (the parent went away)."""
    line = await asyncio.to_thread(sys.stdin.readline)
    return json.loads(line) if line.strip() else "stop"


async def _route(event: dict[str, Any]) -> dict[str, int]:
    return {"statusCode": 200}


def _settle(freeze: bool) -> None:
    """Once the sockets are open: collect, then move every live object out of the collector's reach.

    A full collection over 10k connections' objects takes ~0.2 s in either child (measured); left alone, some land
    inside rounds and the notifier waits them out: a cost of the emulator and the test viewers, not of the notifier.
    """
    if freeze:
        gc.collect()
        gc.freeze()


async def _gateway_child(freeze: bool) -> None:
    """Run the WebSocket gateway; answer ``"ids"`` (the open connection ids) and ``"settle"``; stop on ``"stop"``."""
    from devstack.ws_gateway import GatewayLimits, WebSocketGateway

    _raise_open_files_limit()
    limits = GatewayLimits(idle_timeout=3600.0, close_timeout=1.0, integration_timeout=5.0)
    gateway = WebSocketGateway({"$connect": _route, "$disconnect": _route}, limits=limits)
    await gateway.start("127.0.0.1", 0)
    _reply({"ws_url": gateway.ws_url, "management_url": gateway.management_url})
    while (command := await _command()) != "stop":
        if command == "ids":
            _reply(list(gateway.connection_ids))
        elif command == "settle":
            _settle(freeze)
            _reply("settled")
    await gateway.close()


class _Viewers:
    """Counts the armed round's message over all sockets and remembers when the last one arrived."""

    def __init__(self) -> None:
        self.expected: str | None = None
        self.need = 0
        self.got = 0
        self.other = 0
        self.last = 0.0
        self.done = asyncio.Event()

    def arm(self, expected: str, need: int) -> None:
        self.expected, self.need, self.got, self.other, self.last = expected, need, 0, 0, 0.0
        self.done.clear()

    async def read(self, ws: Any) -> None:
        async for message in ws:
            arrived = time.monotonic()
            if message.data == self.expected:
                self.got += 1
                self.last = arrived
                if self.got == self.need:
                    self.done.set()
            else:
                self.other += 1


async def _viewers_child(ws_url: str, count: int, freeze: bool) -> None:
    """Hold ``count`` viewers; for each ``{"expect", "need", "timeout"}`` reply ``"armed"``, then the arrivals."""
    import aiohttp

    limit = _raise_open_files_limit()
    viewers = _Viewers()
    readers: list[asyncio.Task[None]] = []
    gate = asyncio.Semaphore(_CONNECT_CONCURRENCY)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def open_one() -> None:
            async with gate:
                ws = await session.ws_connect(ws_url)
            readers.append(asyncio.create_task(viewers.read(ws)))

        started = time.monotonic()
        await asyncio.gather(*(open_one() for _ in range(count)))
        seconds = time.monotonic() - started
        _settle(freeze)
        _reply({"open": len(readers), "seconds": seconds, "nofile": limit})
        while (command := await _command()) != "stop":
            viewers.arm(command["expect"], command["need"])
            _reply("armed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(viewers.done.wait(), command["timeout"])
            _reply({"got": viewers.got, "other": viewers.other, "last": viewers.last})
        for task in readers:
            task.cancel()


def child_main(role: str, ws_url: str | None, count: int, freeze: bool) -> None:
    """Entry point of a child process (uvloop when installed)."""
    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    logging.basicConfig(level=logging.WARNING, format=f"[{role}] %(levelname)s %(name)s: %(message)s")
    main = _gateway_child(freeze) if role == "gateway" else _viewers_child(ws_url or "", count, freeze)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


class _Child:
    """One child process of this bench, spoken to in JSON lines."""

    def __init__(self, role: str, *args: str) -> None:
        self.args = [sys.executable, "-m", "bench._fanout", "--child", role, *args]
        self.role = role
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float) -> Any:
        """Start the child and return its first line (its readiness report)."""
        self.process = await asyncio.create_subprocess_exec(
            *self.args,
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**24,  # the id list of 10k viewers is one ~200 KB line
            start_new_session=True,  # a Ctrl-C reaches the parent only; children stop when their stdin closes
        )
        return await self.recv(timeout)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def send(self, value: Any) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(json.dumps(value).encode() + b"\n")
        await self.process.stdin.drain()

    async def recv(self, timeout: float) -> Any:
        assert self.process is not None and self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except TimeoutError:
            raise RuntimeError(f"the {self.role} child gave no answer within {timeout:.0f} s") from None
        if not line:
            raise RuntimeError(f"the {self.role} child exited (code {await self.process.wait()})")
        return json.loads(line)

    async def stop(self, grace: float = 15.0) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ConnectionError):
            await self.send("stop")
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            process.kill()
            await process.wait()


class _Children:
    """The gateway and the viewers."""

    def __init__(self, viewers: int, *, gc_freeze: bool = True) -> None:
        self.count = viewers
        self.freeze = ["--gc-freeze"] if gc_freeze else []
        self.gateway = _Child("gateway", *self.freeze)
        self.viewers: _Child | None = None
        self.urls: dict[str, str] = {}
        self.opened: dict[str, Any] = {}

    async def start(self) -> None:
        self.urls = await self.gateway.start(_READY_TIMEOUT)
        self.viewers = _Child("viewers", "--ws-url", self.urls["ws_url"], "--count", str(self.count), *self.freeze)
        self.opened = await self.viewers.start(_READY_TIMEOUT + self.count / 500)
        if self.opened["open"] != self.count:
            raise RuntimeError(f"only {self.opened['open']} of {self.count} viewers connected")
        await self.gateway.send("settle")
        await self.gateway.recv(_READY_TIMEOUT)

    async def ids(self) -> list[str]:
        await self.gateway.send("ids")
        ids = await self.gateway.recv(_READY_TIMEOUT)
        if len(ids) != self.count:
            raise RuntimeError(f"the gateway holds {len(ids)} connections, expected {self.count}")
        return ids

    async def stop(self) -> None:
        if self.viewers is not None:
            await self.viewers.stop()
        await self.gateway.stop()


# -- notifier side ----------------------------------------------------------------------------------------------


def _cpu(pid: int) -> float:
    stat = read_stat(pid)
    return 0.0 if stat is None else stat[1] + stat[2]


def _message(round_no: int) -> bytes:
    head = f'{{"type":"viewers","playback_id":"benchplayback","count":10000,"round":{round_no},"pad":"'
    return (head + "x" * (MESSAGE_BYTES - len(head) - 2) + '"}').encode()


Sender = Callable[[list[str], bytes], Any]  # async: returns (delivered, gone, failed)


async def _round(children: _Children, send: Sender, ids: list[str], round_no: int) -> dict[str, Any]:
    """One round: arm the viewers, post to every id, wait for the viewers' report."""
    data = _message(round_no)
    viewers = children.viewers
    assert viewers is not None
    await viewers.send({"expect": data.decode(), "need": len(ids), "timeout": 30.0 + len(ids) / 200})
    if await viewers.recv(_READY_TIMEOUT) != "armed":
        raise RuntimeError("the viewers did not arm")
    gateway_cpu, viewer_cpu = _cpu(children.gateway.pid), _cpu(viewers.pid)
    started, cpu = time.monotonic(), time.process_time()
    delivered, gone, failed = await send(ids, data)
    notifier_cpu, sent = time.process_time() - cpu, time.monotonic() - started
    report = await viewers.recv(60.0 + len(ids) / 200)
    return {
        "wall": report["last"] - started if report["got"] == len(ids) else None,
        "send_phase": sent,
        "notifier_cpu": notifier_cpu,
        "gateway_cpu": _cpu(children.gateway.pid) - gateway_cpu,
        "viewer_cpu": _cpu(viewers.pid) - viewer_cpu,
        "delivered": delivered,
        "gone": gone,
        "failed": failed,
        "arrived": report["got"],
        "unexpected": report["other"],
    }


async def _workers(ids: list[str], in_flight: int, post: Callable[[str], Any]) -> tuple[int, int, int]:
    """Run ``post(id)`` over ``ids`` with ``in_flight`` workers; count ``True`` (delivered) / ``False`` / errors."""
    counts = [0, 0, 0]
    pending = iter(ids)

    async def worker() -> None:
        for connection_id in pending:
            counts[await post(connection_id)] += 1

    async with asyncio.TaskGroup() as group:
        for _ in range(min(in_flight, len(ids))):
            group.create_task(worker())
    return counts[0], counts[1], counts[2]


def _summary(n: int, variant: str, in_flight: int, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [r["wall"] for r in rounds if r["wall"] is not None]
    medians = {
        key: summarize([r[key] for r in rounds]).get("p50") for key in ("notifier_cpu", "gateway_cpu", "viewer_cpu")
    }
    target = TARGETS.get(n) if variant == POSTER else None
    wall = summarize(walls)
    complete = all(r["arrived"] == n and r["delivered"] == n for r in rounds)
    return {
        "n": n,
        "variant": variant,
        "in_flight": in_flight,
        "rounds": rounds,
        "wall_median": wall.get("p50"),
        "wall_min": wall.get("min"),
        "wall_max": wall.get("max"),
        **{f"{key}_median": value for key, value in medians.items()},
        "notifier_us_per_msg": None if medians["notifier_cpu"] is None else medians["notifier_cpu"] / n * 1e6,
        "fails": sum(r["failed"] + r["gone"] + (n - r["arrived"]) for r in rounds),
        "complete": complete,
        "target": target,
        "target_met": None if target is None else bool(complete and wall.get("p50", 1e9) <= target),
    }


async def run_fanout(
    sizes: Sequence[int] = (1000, 10000),
    reps: int = 3,
    *,
    in_flight: int = 64,
    reference_sizes: Collection[int] | None = None,
    warmup: int = 1,
    gc_freeze: bool = True,
) -> list[dict[str, Any]]:
    """Measure the fan-out (see the module docstring) and return one summary per (size, variant).

    Args:
        sizes: Viewer counts; max(sizes) viewers are connected once and each size posts to the first N ids.
        reps: Measured rounds per size and variant.
        in_flight: Requests in flight for both the poster and the aiobotocore reference.
        reference_sizes: Sizes to measure aiobotocore at; by default those ≤ 1000.
        warmup: Discarded rounds per size and variant before the measured ones.
        gc_freeze: Freeze the children's heaps once the viewers are connected (see :func:`_settle`).

    Returns:
        Dicts with ``n``, ``variant``, ``wall_median``/``wall_min``/``wall_max`` (s), ``*_cpu_median`` (s),
        ``notifier_us_per_msg``, ``fails``, ``complete``, ``target``, ``target_met``, the raw ``rounds`` and
        ``viewers_connected`` (how many viewers connected, in how many seconds).

    Raises:
        RuntimeError: A child did not start or not every viewer connected.
    """
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session
    from botocore.exceptions import BotoCoreError, ClientError

    from functions.notifier.connections import ConnectionPoster

    os.environ.update(_FAKE_AWS)
    os.environ.pop("AWS_PROFILE", None)
    reference_sizes = {n for n in sizes if n <= 1000} if reference_sizes is None else set(reference_sizes)
    children = _Children(max(sizes), gc_freeze=gc_freeze)
    summaries: list[dict[str, Any]] = []
    try:
        await children.start()
        all_ids = await children.ids()
        endpoint = children.urls["management_url"]
        config = AioConfig(max_pool_connections=in_flight, retries={"total_max_attempts": 1})
        async with (
            ConnectionPoster(endpoint, in_flight=in_flight) as poster,
            get_session().create_client(
                "apigatewaymanagementapi", endpoint_url=endpoint, region_name="us-east-1", config=config
            ) as client,
        ):

            async def with_poster(ids: list[str], data: bytes) -> tuple[int, int, int]:
                result = await poster.post_many(ids, data)
                return result.delivered, len(result.gone), len(result.failed)

            async def with_aiobotocore(ids: list[str], data: bytes) -> tuple[int, int, int]:
                async def post(connection_id: str) -> int:
                    try:
                        await client.post_to_connection(ConnectionId=connection_id, Data=data)
                    except client.exceptions.GoneException:
                        return 1
                    except (ClientError, BotoCoreError):  # counted, not fatal
                        return 2
                    return 0

                return await _workers(ids, in_flight, post)

            await with_poster(all_ids[:1], _message(0))  # clients created and warmed by one call
            await with_aiobotocore(all_ids[:1], _message(0))
            round_no = 1
            for n in sizes:
                ids = all_ids[:n]
                variants = {POSTER: with_poster} | ({REFERENCE: with_aiobotocore} if n in reference_sizes else {})
                rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
                for rep in range(warmup + reps):
                    for name, send in variants.items():
                        measured = await _round(children, send, ids, round_no)
                        round_no += 1
                        if rep >= warmup:
                            rounds[name].append(measured)
                for name in variants:
                    summary = _summary(n, name, in_flight, rounds[name])
                    summaries.append({**summary, "viewers_connected": children.opened})
    finally:
        await children.stop()
    return summaries


# -- report -----------------------------------------------------------------------------------------------------


def _s(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _label(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def table(summaries: Sequence[dict[str, Any]]) -> str:
    """The markdown table of :func:`run_fanout`'s summaries."""
    rows = []
    for s in summaries:
        target = "—"
        if s["target"] is not None:
            target = f"≤ {s['target']:g} s: {'met' if s['target_met'] else 'MISSED'}"
        rows.append(
            [
                _label(s["n"]),
                s["variant"],
                str(s["in_flight"]),
                f"{_s(s['wall_median'])} ({_s(s['wall_min'])}–{_s(s['wall_max'])})",
                _s(s["notifier_cpu_median"]),
                _s(s["gateway_cpu_median"], 2),
                _s(s["viewer_cpu_median"], 2),
                str(s["fails"]),
                _s(s["notifier_us_per_msg"], 0),
                target,
            ]
        )
    headers = ["N", "variant", "in flight", "wall s (min–max)", "notifier CPU s", "gateway CPU s", "viewer CPU s"]
    return markdown_table([*headers, "fails", "notifier µs/msg", "target"], rows)


def main(argv: list[str] | None = None) -> int:
    """Run the bench; print the table; write the raw results."""
    parser = argparse.ArgumentParser(prog="python -m bench._fanout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="viewer counts, comma-separated (default 1000,10000)")
    parser.add_argument("--reps", type=int, default=3, help="measured rounds per size and variant (default 3)")
    parser.add_argument("--in-flight", type=int, default=64, help="requests in flight (default 64)")
    parser.add_argument("--reference-all", action="store_true", help="measure aiobotocore at every size")
    parser.add_argument("--no-reference", action="store_true", help="skip the aiobotocore reference")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 viewers, 1 round")
    parser.add_argument("--child", choices=("gateway", "viewers"), help=argparse.SUPPRESS)
    parser.add_argument("--ws-url", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--gc-freeze", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-gc-freeze", action="store_true", help="leave the gateway's and viewers' garbage collector alone"
    )
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child, args.ws_url, args.count, args.gc_freeze)
        return 0
    sizes = [20] if args.quick else [int(size) for size in args.sizes.split(",")]
    reps = 1 if args.quick else args.reps
    if reps < 1 or min(sizes) < 1 or args.in_flight < 1:
        parser.error("--reps, --sizes and --in-flight must be >= 1")
    reference = () if args.no_reference else sizes if args.reference_all or args.quick else None
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    env = environment()
    try:
        import uvloop
    except ImportError:
        factory, loop_name = None, "asyncio"
    else:
        factory, loop_name = uvloop.new_event_loop, "uvloop"
    started = time.monotonic()
    with asyncio.Runner(loop_factory=factory) as runner:
        summaries = runner.run(
            run_fanout(
                sizes, reps, in_flight=args.in_flight, reference_sizes=reference, gc_freeze=not args.no_gc_freeze
            )
        )
    connected = summaries[0]["viewers_connected"]
    print(f"## Fan-out: one {MESSAGE_BYTES}-byte message → N viewers, one @connections POST each\n")
    print(table(summaries))
    print(
        f"\nMedian of {reps} rounds after 1 warm-up; wall = first post → last arrival at the viewers. Gateway, viewers "
        f"and notifier share the machine; event loop {loop_name}; {connected['open']} viewers connected in "
        f"{connected['seconds']:.1f} s; children's heaps {'left alone' if args.no_gc_freeze else 'frozen'} after "
        f"connecting; whole run {time.monotonic() - started:.1f} s. "
        f"{environment_line(env)}."
    )
    path = write_results(
        "fanout",
        {
            "bench": "fanout",
            "argv": sys.argv[1:] if argv is None else argv,
            "environment": env,
            "gc_freeze": not args.no_gc_freeze,
            "runs": summaries,
        },
        args.results_dir,
    )
    print(f"\nRaw results: {shown(path)}")
    return 0 if all(s["complete"] for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
