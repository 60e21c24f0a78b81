"""Benchmark: the RTMP ingest node against nginx-rtmp in the same run (BRIEF §6): segment availability lag, CPU per
stream, peak memory and time to first playlist for N copy-mode 720p30 2.5 Mbps publishers (GOP 1 s).

Method:
    Fixture, made once and cached (``bench/results/cache/``): 60 s 720p30 CBR 2.5 Mbps H.264 High + AAC-LC from
    ffmpeg lavfi ``testsrc2`` + ``sine``, GOP 30, ``sc_threshold 0`` (the command of INGEST_COST.md). Publishers:
    N at once (their starts spread evenly over one GOP, so the streams' segment boundaries don't coincide;
    ``--aligned`` starts them together), each ``ffmpeg -re -stream_loop -1 -i fixture.flv -c copy -t S
    -progress pipe:1 -f flv rtmp://127.0.0.1:PORT/live/KEY``.
    Subjects, one at a time, never both at once, a fresh instance per run:
      - CaptureStream: ``capturestream up --ports auto --state-dir <tmp>`` (moto, the functions, the CDN edge and
        the ingest node child), one channel and stream key per publisher;
      - nginx-rtmp (reference): Debian nginx + libnginx-mod-rtmp, one worker, ``hls_fragment 1s``,
        ``hls_playlist_length 6s``, HLS to disk (``bench/nginx_rtmp.py``).
    Lag (``bench/_ingest_hls.py``): media end of segment k = anchor (the instant media t=0 left the publisher,
    from ``-progress``) + first keyframe time + the segments' cumulative EXTINF; lag = arrival of the first playlist
    response listing segment k, read right after successfully, minus that. CaptureStream's playlist and segments
    are read through the CDN edge (``GET {cdn_url}/<key>``, keys from ``capturestream.keys``); nginx-rtmp's from its
    HLS folder on disk (the reference writes to disk and uploads nothing). Windowed polling at 20-50 ms jitter
    around each expected segment end; up to ``--observe`` streams per run are observed (every stream's stored
    segments are counted at the end of every run, observed or not).
    CPU and memory (``bench/_ingest_proc.py``): the subject's whole process tree from ``/proc`` (CaptureStream:
    ``up`` + moto + the ingest node; nginx: master + worker + cache manager), CPU = Δ(utime+stime) from just
    before the first publisher starts until 2 s after the last one exits; **%/stream = CPU-s / S / N × 100** (% of
    one core); peak RSS = the largest sum of VmRSS over the tree, sampled every 0.5 s. The ingest node process is
    also reported alone: it is what competes with nginx-rtmp (moto stands in for S3, ``up`` hosts the functions and
    the edge). A playlist read through the edge costs CaptureStream ~6 ms of CPU (edge + S3 GetObject), so CPU and
    memory come from separate *quiet* runs per (system, N) with no observer; lag, first playlist and segments
    seen come from an *observed* run. ``--single-run`` (implied by ``--quick``) takes everything from the observed run.
    Quiet runs are repeated (``--cpu-repeats``, default 2) and interleaved, CaptureStream and nginx-rtmp taking turns
    (C N C N, the next level N C N C): this box's speed drifts by ±20 % over minutes (the same 30-stream node run
    measured 0.68-1.04 %/stream within 10 minutes, moto's CPU moving with it), so one quiet run per system, a minute
    apart, gave a ratio that swung with the drift. CPU figures are the mean over the repeats, peak RSS the largest;
    the paired ratios (each CaptureStream run ÷ the nginx-rtmp run beside it) are printed too.

Idle: the tree's CPU over 5 s, once it has been ready for 5 s (the settled idle, not the start-up work), in quiet
runs (and single runs unless ``--quick``). Missing segments: when a stream has fewer stored than expected, the node's
``/metrics`` are read (upload/spool/buffered gauges; "none" when it answers 404) and the count is taken again 10 s
later, so the report says how many were still queued and how many were lost, and how far each publisher's media fell
behind real time (the node stopped reading). SIGTERM stops the running subject before the bench exits.

Targets (BRIEF §6, issue 11) for CaptureStream: lag p50 ≤ 0.15 s and p95 ≤ 0.30 s at 10 streams; lag p95 ≤ 1 s with
every segment stored at 30 streams; CPU ≤ 1.0 %/stream (stretch 0.7) at 30 streams, judged on the ingest node (as
INGEST_COST.md's totals, which leave moto out); peak RSS ≤ 300 MB at 30 streams, judged on the ingest node, which
has no child processes (the whole ``up`` tree is shown beside it).

Usage: ``python -m bench.ingest [--streams 1,10,30] [--seconds 30] [--observe 10] [--single-run] [--aligned]
[--no-reference] [--quick] [--cache-dir DIR] [--results-dir DIR]``; ``--quick`` = 1 and 2 streams for 8 s.
Exit status 0 when every run was measured (missed targets are reported in the table); 1 when a subject failed: it
did not start or stop, a publisher failed, or segments were lost; 2 when nginx-rtmp is missing (install ``nginx
libnginx-mod-rtmp`` or pass ``--no-reference``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from bench import nginx_rtmp
from bench._ingest_capturestream import CaptureStreamSubject
from bench._ingest_hls import HlsSource, Publisher, StreamObserver, first_keyframe_seconds
from bench._ingest_proc import TreeSampler
from bench._stats import (
    RESULTS_DIR,
    add_common_arguments,
    environment,
    environment_line,
    markdown_table,
    sec,
    shown,
    summarize,
    write_results,
)

CAPTURESTREAM = "CaptureStream"
NGINX = "nginx-rtmp"
QUIET = "quiet"
OBSERVED = "observed"
GOP_SECONDS = 1.0
TAIL_SECONDS = 2.0
IDLE_SETTLE_SECONDS = 5.0
IDLE_SECONDS = 5.0
LATE_SECONDS = 10.0
FIXTURE_SECONDS = 60
QUICK_FIXTURE_SECONDS = 10
TARGET_LAG = (0.15, 0.30)
TARGET_LAG_STREAMS = 10
TARGET_LAG_P95_AT_30 = 1.0
TARGET_CPU, STRETCH_CPU = 1.0, 0.7
#: Issue 11: the ingest node's CPU per stream at most this many times nginx-rtmp's, measured in the same run.
TARGET_CPU_FACTOR = 1.5
TARGET_CPU_STREAMS = 30
TARGET_RSS_MB = 300
TARGET_RSS_STREAMS = 30
MB = 1_000_000


class Subject(Protocol):
    """What a run needs from a system under test (``CaptureStreamSubject``, ``nginx_rtmp.NginxSubject``)."""

    name: str
    node_roles: frozenset[str]
    start_seconds: float | None
    stop_seconds: float | None
    list_calls: int

    @property
    def pid(self) -> int: ...
    def classify(self, pid: int, cmdline: str) -> str: ...
    async def start(self, n: int) -> None: ...
    def url(self, index: int) -> str: ...
    def source(self, index: int) -> HlsSource: ...
    async def discover(self, deadline: float, rng: random.Random) -> None: ...
    async def stored(self) -> list[dict[str, int]]: ...
    async def diagnostics(self) -> dict[str, Any]: ...
    async def stop(self) -> str | None: ...
    def log_tail(self, lines: int = 15) -> str: ...
    def findings(self) -> dict[str, Any]: ...


@dataclass
class Run:
    """One run of one subject with N publishers; CPU in seconds, memory in bytes, times in seconds."""

    system: str
    n: int
    mode: str
    seconds: float
    expected: int
    observed: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    start_seconds: float | None = None
    stop_seconds: float | None = None
    window_seconds: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    cpu_kernel: dict[str, float] = field(default_factory=dict)
    cpu_tree: float | None = None
    cpu_node: float | None = None
    rss_tree: int | None = None
    rss_node: int | None = None
    rss_by_role: dict[str, int] = field(default_factory=dict)
    rss_samples: int = 0
    idle_tree_pct: float | None = None
    publisher_cpu: float | None = None
    list_calls: int = 0
    publishers: list[dict[str, Any]] = field(default_factory=list)
    observers: list[dict[str, Any]] = field(default_factory=list)
    stored: list[dict[str, int]] = field(default_factory=list)
    #: When streams were short at the end: the subject's own view then (node /metrics) and the count LATE_SECONDS on.
    diagnostics: dict[str, Any] = field(default_factory=dict)
    stored_late: list[dict[str, int]] = field(default_factory=list)
    findings: dict[str, Any] = field(default_factory=dict)

    def pct(self, cpu_seconds: float | None) -> float | None:
        """CPU seconds as % of one core per stream (per stream-second of media)."""
        return None if cpu_seconds is None else cpu_seconds / self.seconds / self.n * 100

    def lags(self, key: str = "lag") -> list[float]:
        return [s[key] for o in self.observers for s in o["segments"] if s[key] is not None]


# --------------------------------------------------------------------------------------------------- fixture


def fixture(cache_dir: Path, seconds: int) -> Path:
    """The cached fixture of ``seconds`` (made on first use; INGEST_COST.md's command)."""
    path = cache_dir / f"ingest-fixture-720p30-2500k-g30-{seconds}s.flv"
    if path.exists() and path.stat().st_size > 0:
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    print(f"making the {seconds} s fixture {shown(path)} (once) ...", file=sys.stderr, flush=True)
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p",
         "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "2500k", "-x264-params", "nal-hrd=cbr",
         "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-c:a", "aac", "-b:a", "128k", "-ac", "2",
         "-f", "flv", str(partial)],
        check=True, timeout=600,
    )  # fmt: skip
    os.replace(partial, path)
    return path


# ------------------------------------------------------------------------------------------------------- runs


def observed_indices(n: int, observe: int) -> list[int]:
    """Which publishers are observed: all of them, or ``observe`` spread evenly over the start order."""
    if observe >= n:
        return list(range(n))
    return sorted({i * n // observe for i in range(observe)})


@dataclass
class Plan:
    """Everything every run shares."""

    seconds: float
    observe: int
    aligned: bool
    fixture: Path
    first_keyframe: float
    rng: random.Random
    scratch: Path
    http: aiohttp.ClientSession
    #: Measure the settled idle tree in single runs too (``--quick`` skips it: 10 s per run).
    idle_in_single_run: bool = False

    @property
    def expected(self) -> int:
        """Segments closed by a keyframe while publishing (the last one is closed only by the stream's end)."""
        return max(1, int(self.seconds / GOP_SECONDS + 1e-9) - 1)


def _subject(system: str, scratch: Path, plan: Plan) -> Subject:
    if system == CAPTURESTREAM:
        return CaptureStreamSubject(scratch, plan.http)
    return nginx_rtmp.NginxSubject(scratch, traverse_root=plan.scratch)


async def measure_run(system: str, n: int, mode: str, plan: Plan) -> Run:
    """One fresh subject, N publishers for ``plan.seconds``, measured; the subject stopped again."""
    run = Run(system, n, mode, plan.seconds, plan.expected)
    scratch = Path(tempfile.mkdtemp(prefix=f"{system.lower()}-{n}-{mode}-", dir=plan.scratch))
    subject = _subject(system, scratch, plan)
    publishers: list[Publisher] = []
    observers: list[StreamObserver] = []
    tasks: list[asyncio.Task[None]] = []
    sampler: TreeSampler | None = None
    try:
        await subject.start(n)
        run.start_seconds = subject.start_seconds
        sampler = TreeSampler(subject.pid, subject.classify)
        sampler.start()
        if mode == QUIET or plan.idle_in_single_run:  # settled idle: after the first seconds' start-up work
            await asyncio.sleep(IDLE_SETTLE_SECONDS)
            before, began = sampler.cpu_now(), time.monotonic()
            await asyncio.sleep(IDLE_SECONDS)
            run.idle_tree_pct = (sampler.cpu_now() - before) / (time.monotonic() - began) * 100
        run.observed = observed_indices(n, plan.observe) if mode == OBSERVED else []
        sources = {index: subject.source(index) for index in run.observed}
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        stagger = 0.0 if plan.aligned else GOP_SECONDS
        sampler.begin()
        began = time.monotonic()
        deadline = began + stagger + plan.seconds + 30
        if sources:
            tasks.append(asyncio.create_task(subject.discover(deadline, plan.rng)))
        for index in range(n):
            await asyncio.sleep(max(0.0, began + index * stagger / n - time.monotonic()))
            publisher = Publisher(index, subject.url(index), plan.fixture, plan.seconds)
            publishers.append(publisher)
            await publisher.start()
            if index in sources:
                observer = StreamObserver(
                    f"{system}/{index}",
                    publisher,
                    sources[index],
                    expected=plan.expected,
                    gop=GOP_SECONDS,
                    first_keyframe=plan.first_keyframe,
                    rng=random.Random(plan.rng.random()),
                )
                observers.append(observer)
                tasks.append(asyncio.create_task(observer.run(deadline)))
        await asyncio.gather(*(p.wait(plan.seconds + 30) for p in publishers))
        await asyncio.sleep(TAIL_SECONDS)
        run.window_seconds = time.monotonic() - began
        run.cpu = sampler.end()
        run.cpu_kernel = dict(sampler.kernel)
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        run.publisher_cpu = (children_after.ru_utime + children_after.ru_stime) - (
            children_before.ru_utime + children_before.ru_stime
        )
        if tasks:
            await asyncio.wait(tasks, timeout=max(1.0, deadline - time.monotonic()))
        run.stored = await subject.stored()
        if any(s["segments"] < run.expected for s in run.stored):  # lost, or still queued? look, then count again
            run.diagnostics = await subject.diagnostics()
            await asyncio.sleep(LATE_SECONDS)
            run.stored_late = await subject.stored()
    except Exception as error:  # the subject failed (or the bench did): report it, keep the other runs
        run.failures.append(f"{type(error).__name__}: {error}")
        print(f"{system} N={n} {mode}: {error}\n{subject.log_tail()}", file=sys.stderr)
    finally:
        for publisher in publishers:
            publisher.kill()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if sampler is not None:
            await sampler.stop()
        try:
            stop_error = await subject.stop()
        except Exception as error:
            stop_error = f"stopping failed: {type(error).__name__}: {error}"
        if stop_error:
            run.failures.append(stop_error)
        run.stop_seconds = subject.stop_seconds
        run.list_calls = subject.list_calls
        with contextlib.suppress(OSError):
            run.findings = subject.findings()
    _collect(run, subject, sampler, publishers, observers)
    return run


def _collect(
    run: Run,
    subject: Subject,
    sampler: TreeSampler | None,
    publishers: list[Publisher],
    observers: list[StreamObserver],
) -> None:
    """Fill in the figures and the failures of a finished run."""
    if run.cpu:
        run.cpu_tree = sum(run.cpu.values())
        run.cpu_node = sum(v for role, v in run.cpu.items() if role in subject.node_roles)
    if sampler is not None and sampler.samples:
        run.rss_tree = sampler.peak_rss
        run.rss_by_role = dict(sampler.peak_rss_by_role)
        run.rss_samples = sampler.samples
        node = [v for role, v in sampler.peak_rss_by_role.items() if role in subject.node_roles]
        run.rss_node = sampler.peak_rss if subject.node_roles >= set(sampler.peak_rss_by_role) else sum(node)
    run.publishers = [p.summary() for p in publishers]
    run.observers = [o.summary() for o in observers]
    for p in publishers:
        if p.returncode not in (0, None) or (p.returncode is None and not run.failures):
            run.failures.append(f"publisher {p.index} exited with {p.returncode}: {p.stderr_tail[-300:]!r}")
    late = run.stored_late or run.stored
    for index, (stored, after) in enumerate(zip(run.stored, late, strict=False)):
        if stored["segments"] < run.expected:
            run.failures.append(
                f"stream {index}: {stored['segments']} of {run.expected} segments stored {TAIL_SECONDS:g} s after "
                f"its publisher stopped, {after['segments']} after {TAIL_SECONDS + LATE_SECONDS:g} s"
            )
    for o in run.observers:
        if o["seen"] < o["expected"]:
            run.failures.append(f"stream {o['publisher']}: saw {o['seen']} of {o['expected']} segments")
        run.failures.extend(f"stream {o['publisher']}: {error}" for error in o["errors"])


# ---------------------------------------------------------------------------------------------------- report


def _pick(runs: list[Run], system: str, n: int, mode: str) -> Run | None:
    return next((r for r in runs if r.system == system and r.n == n and r.mode == mode), None)


def _cell_pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} %"


def _cell_mb(value: int | None) -> str:
    return "—" if value is None else f"{value / MB:.0f} MB"


def _quiet_runs(runs: list[Run], system: str, n: int) -> list[Run]:
    return [r for r in runs if r.system == system and r.n == n and r.mode == QUIET]


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _mean_by_role(maps: list[dict[str, float]]) -> dict[str, float]:
    return {role: sum(m.get(role, 0.0) for m in maps) / len(maps) for role in sorted({k for m in maps for k in m})}


def _costs(quiet: list[Run], observed: Run | None) -> Run | None:
    """The run CPU and memory are read from: the quiet runs merged (CPU seconds averaged, peak RSS the largest,
    stored counts from the last), else the observed run."""
    if not quiet:
        return observed
    if len(quiet) == 1:
        return quiet[0]
    merged = dataclasses.replace(quiet[-1])
    merged.cpu_tree = _mean([r.cpu_tree for r in quiet])
    merged.cpu_node = _mean([r.cpu_node for r in quiet])
    merged.cpu = _mean_by_role([r.cpu for r in quiet])
    merged.cpu_kernel = _mean_by_role([r.cpu_kernel for r in quiet])
    merged.publisher_cpu = _mean([r.publisher_cpu for r in quiet])
    merged.idle_tree_pct = _mean([r.idle_tree_pct for r in quiet])
    merged.rss_tree = max((r.rss_tree for r in quiet if r.rss_tree is not None), default=None)
    merged.rss_node = max((r.rss_node for r in quiet if r.rss_node is not None), default=None)
    merged.rss_by_role = {
        role: max(r.rss_by_role.get(role, 0) for r in quiet) for role in {k for r in quiet for k in r.rss_by_role}
    }
    return merged


def row_summary(runs: list[Run], system: str, n: int) -> dict[str, Any]:
    """The figures of one table row: lag and first playlist from the observed run, CPU/RSS from the quiet ones."""
    observed = _pick(runs, system, n, OBSERVED)
    quiet = _quiet_runs(runs, system, n)
    costs = _costs(quiet, observed)
    lags = observed.lags() if observed else []
    first = [o["first_playlist"] for o in observed.observers if o["first_playlist"] is not None] if observed else []
    return {
        "system": system,
        "n": n,
        "lag": summarize(lags, quantiles=(50, 95, 99)),
        "fetched_lag": summarize(observed.lags("fetched_lag"), quantiles=(50, 95, 99)) if observed else {"n": 0},
        "first_playlist": summarize(first, quantiles=(50,)),
        "seen": sum(o["seen"] for o in observed.observers) if observed else 0,
        "expected": sum(o["expected"] for o in observed.observers) if observed else 0,
        "observed_streams": len(observed.observers) if observed else 0,
        "first_poll_hits": sum(o["first_poll_hits"] for o in observed.observers) if observed else 0,
        "read_errors": sum(o["read_errors"] for o in observed.observers) if observed else 0,
        "cpu_from": costs.mode if costs else None,
        "cpu_tree_pct": costs.pct(costs.cpu_tree) if costs else None,
        "cpu_node_pct": costs.pct(costs.cpu_node) if costs else None,
        "cpu_by_role_pct": {role: costs.pct(v) for role, v in costs.cpu.items()} if costs else {},
        "cpu_kernel_by_role_pct": {role: costs.pct(v) for role, v in costs.cpu_kernel.items()} if costs else {},
        "rss_tree": costs.rss_tree if costs else None,
        "rss_node": costs.rss_node if costs else None,
        "rss_by_role": costs.rss_by_role if costs else {},
        "idle_tree_pct": costs.idle_tree_pct if costs else None,
        "publisher_pct": costs.pct(costs.publisher_cpu) if costs else None,
        "stored": sum(s["segments"] for s in costs.stored) if costs else 0,
        "stored_expected": costs.expected * costs.n if costs else 0,
        "complete": all(
            len(r.stored) == r.n and all(s["segments"] >= r.expected for s in r.stored) for r in (*quiet, observed) if r
        ),
        "cpu_node_pct_runs": [r.pct(r.cpu_node) for r in quiet],
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table: one row per (N, system), CaptureStream next to the reference."""
    headers = [
        "system",
        "N",
        "lag p50",
        "lag p95",
        "CPU %/stream: tree",
        "CPU %/stream: node",
        "peak RSS: tree",
        "peak RSS: node",
        "first playlist p50 (max)",
        "segments seen/expected",
    ]
    cells = []
    for r in rows:
        lag, first = r["lag"], r["first_playlist"]
        name = r["system"] if r["system"] == CAPTURESTREAM else f"reference: {r['system']}"
        cells.append(
            [
                name,
                str(r["n"]),
                sec(lag.get("p50")),
                sec(lag.get("p95")),
                _cell_pct(r["cpu_tree_pct"]),
                _cell_pct(r["cpu_node_pct"]),
                _cell_mb(r["rss_tree"]),
                _cell_mb(r["rss_node"]),
                f"{sec(first.get('p50'))} ({sec(first.get('max'))})" if first["n"] else "—",
                f"{r['seen']}/{r['expected']}"
                + (f" ({r['observed_streams']} of {r['n']} streams)" if r["observed_streams"] < r["n"] else ""),
            ]
        )
    return markdown_table(headers, cells)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def verdicts(rows: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The targets line (CaptureStream rows only) and the verdicts for the results file."""
    ours = {r["n"]: r for r in rows if r["system"] == CAPTURESTREAM}
    parts, result = [], {}
    held = ours.get(TARGET_CPU_STREAMS)
    if held and held["lag"]["n"]:
        p95, complete = held["lag"]["p95"], held["complete"]
        result["holds_30"] = {"lag_p95": p95, "complete": complete, "met": p95 <= TARGET_LAG_P95_AT_30 and complete}
        parts.append(
            f"{TARGET_CPU_STREAMS} streams held: lag p95 {p95:.3f} s ≤ {TARGET_LAG_P95_AT_30:g} s: "
            f"{verdict(p95 <= TARGET_LAG_P95_AT_30)}, every segment stored: {verdict(complete)}"
        )

    lag_row = ours.get(TARGET_LAG_STREAMS)
    if lag_row and lag_row["lag"]["n"]:
        p50, p95 = lag_row["lag"]["p50"], lag_row["lag"]["p95"]
        result["lag"] = {"p50": p50, "p95": p95, "met": p50 <= TARGET_LAG[0] and p95 <= TARGET_LAG[1]}
        parts.append(
            f"lag at {TARGET_LAG_STREAMS} streams p50 {p50:.3f} s ≤ {TARGET_LAG[0]:g} s: "
            f"{verdict(p50 <= TARGET_LAG[0])}, p95 {p95:.3f} s ≤ {TARGET_LAG[1]:g} s: {verdict(p95 <= TARGET_LAG[1])}"
        )
    else:
        parts.append(f"lag at {TARGET_LAG_STREAMS} streams: not measured")
    cpu_row = ours.get(TARGET_CPU_STREAMS)
    if cpu_row and cpu_row["cpu_node_pct"] is not None:
        node, tree = cpu_row["cpu_node_pct"], cpu_row["cpu_tree_pct"]
        result["cpu"] = {"node_pct": node, "tree_pct": tree, "met": node <= TARGET_CPU, "stretch": node <= STRETCH_CPU}
        parts.append(
            f"CPU at {TARGET_CPU_STREAMS} streams, ingest node {node:.2f} %/stream ≤ {TARGET_CPU:g}: "
            f"{verdict(node <= TARGET_CPU)} (stretch ≤ {STRETCH_CPU:g}: {verdict(node <= STRETCH_CPU)}); "
            f"whole `up` tree {tree:.2f} %/stream"
        )
    else:
        parts.append(f"CPU at {TARGET_CPU_STREAMS} streams: not measured")
    reference = next((r for r in rows if r["system"] == NGINX and r["n"] == TARGET_CPU_STREAMS), None)
    if cpu_row and reference and cpu_row["cpu_node_pct"] is not None and reference["cpu_node_pct"]:
        factor = cpu_row["cpu_node_pct"] / reference["cpu_node_pct"]
        result["cpu_vs_reference"] = {"factor": factor, "met": factor <= TARGET_CPU_FACTOR}
        parts.append(
            f"ingest node ÷ nginx-rtmp at {TARGET_CPU_STREAMS} streams {factor:.2f}× ≤ {TARGET_CPU_FACTOR:g}× "
            f"(issue 11): {verdict(factor <= TARGET_CPU_FACTOR)}"
        )
    rss_row = ours.get(TARGET_RSS_STREAMS)
    if rss_row and rss_row["rss_node"] is not None:
        node_mb, tree_mb = rss_row["rss_node"] / MB, rss_row["rss_tree"] / MB
        result["rss"] = {"node_mb": node_mb, "tree_mb": tree_mb, "met": node_mb <= TARGET_RSS_MB}
        parts.append(
            f"peak RSS at {TARGET_RSS_STREAMS} streams, ingest node {node_mb:.0f} MB ≤ {TARGET_RSS_MB} MB: "
            f"{verdict(node_mb <= TARGET_RSS_MB)}; whole `up` tree {tree_mb:.0f} MB "
            f"({'within' if tree_mb <= TARGET_RSS_MB else 'over'} {TARGET_RSS_MB} MB)"
        )
    else:
        parts.append(f"peak RSS at {TARGET_RSS_STREAMS} streams: not measured")
    return "Targets (BRIEF §6): " + "; ".join(parts) + ".", result


def ratios(rows: list[dict[str, Any]]) -> list[str]:
    """CaptureStream ÷ nginx-rtmp per level, both measured in this invocation."""
    by = {(r["system"], r["n"]): r for r in rows}
    out = []
    for (system, n), ours in sorted(by.items(), key=lambda item: item[0][1]):
        ref = by.get((NGINX, n))
        if system != CAPTURESTREAM or ref is None:
            continue

        def ratio(a: float | None, b: float | None) -> str:
            return "—" if a is None or not b or b <= 0 else f"{a / b:.1f}×"

        pairs = list(zip(ours["cpu_node_pct_runs"], ref["cpu_node_pct_runs"], strict=False))
        paired = f" (paired runs {', '.join(ratio(a, b) for a, b in pairs)})" if len(pairs) > 1 else ""
        out.append(
            f"N={n}: lag p50 {ratio(ours['lag'].get('p50'), ref['lag'].get('p50'))}, "
            f"p95 {ratio(ours['lag'].get('p95'), ref['lag'].get('p95'))}; CPU node "
            f"{ratio(ours['cpu_node_pct'], ref['cpu_node_pct'])}{paired}, "
            f"tree {ratio(ours['cpu_tree_pct'], ref['cpu_tree_pct'])}"
        )
    return out


def failure_mode(run: Run) -> str | None:
    """Where the missing segments of a run went: still queued (stored late), lost, what the node and the publishers
    say; None when nothing was missing."""
    short = [(i, s["segments"]) for i, s in enumerate(run.stored) if s["segments"] < run.expected]
    if not short:
        return None
    late = run.stored_late or run.stored
    missing = sum(run.expected - count for _, count in short)
    still = sum(max(0, run.expected - late[i]["segments"]) for i, _ in short if i < len(late))
    per_stream = ", ".join(f"#{i} {count}/{run.expected}" for i, count in short[:12])
    text = (
        f"{run.system} N={run.n} {run.mode}: {len(short)} of {run.n} streams short ({per_stream}"
        f"{' …' if len(short) > 12 else ''}): {missing} segments missing {TAIL_SECONDS:g} s after the publishers "
        f"stopped, {still} still missing {LATE_SECONDS:g} s later ({missing - still} were queued, not lost)"
    )
    metrics = run.diagnostics.get("metrics") if run.diagnostics else None
    if metrics:
        keys_shown = [k for k in sorted(metrics) if any(w in k for w in ("upload", "spool", "buffered", "active"))]
        text += "; node /metrics then: " + ", ".join(
            f"{k.removeprefix('capturestream_ingest_')} {metrics[k]:g}" for k in keys_shown
        )
    elif run.diagnostics:
        text += f"; node /metrics: none ({run.diagnostics.get('why')})"
    behind = [p["behind_realtime_max"] for p in run.publishers if p.get("behind_realtime_max") is not None]
    if behind:
        text += (
            f"; publishers' media behind real time at worst: max {max(behind):.2f} s, median "
            f"{sorted(behind)[len(behind) // 2]:.2f} s (above ~0.5 s the node stopped reading: backpressure)"
        )
    return text


def notes(runs: list[Run], rows: list[dict[str, Any]], single_run: bool) -> list[str]:
    """Lines under the table: where each figure comes from, the side costs, what the subjects logged."""
    lines = []
    source = "the observed run (observer load included)" if single_run else "quiet runs (no observer)"
    lines.append(
        f"CPU and RSS from {source}; lag, first playlist and segments seen from observed runs. Lag = first "
        "playlist response listing the segment (segment read right after) − (publisher's media t=0 + cumulative "
        "EXTINF); CaptureStream via the CDN edge (S3 upload included), nginx-rtmp from its HLS folder on disk. "
        "First playlist: publisher spawn → first playlist listing a segment."
    )
    by_system: dict[str, list[str]] = {}
    for r in rows:
        kernel = r["cpu_kernel_by_role_pct"]
        roles = ", ".join(
            f"{role} {v:.2f} (sys {kernel.get(role) or 0:.2f})"
            for role, v in sorted(r["cpu_by_role_pct"].items())
            if v is not None
        )
        mem = ", ".join(f"{role} {v / MB:.0f}" for role, v in sorted(r["rss_by_role"].items()))
        fetched = r["fetched_lag"]
        extra = ""
        if fetched["n"]:
            extra = f"; lag to segment fully read p50/p95 {sec(fetched['p50'])}/{sec(fetched['p95'])}"
        by_system.setdefault(r["system"], []).append(
            f"N={r['n']}: %/stream {roles}; MB {mem}; settled idle tree {_cell_pct(r['idle_tree_pct'])} of a core; "
            f"publishers {_cell_pct(r['publisher_pct'])}/stream{extra}; stored {r['stored']}/{r['stored_expected']}"
            + ("" if r["complete"] else " (INCOMPLETE)")
        )
    for system, items in by_system.items():
        lines.append(f"{system} by role — " + " | ".join(items))
    polls = [
        (r.system, r.n, sum(o["polls"] for o in r.observers) / (r.window_seconds or 1) / max(1, len(r.observers)))
        for r in runs
        if r.mode == OBSERVED and r.observers
    ]
    if polls:
        hits = sum(r["first_poll_hits"] for r in rows)
        errors = sum(r["read_errors"] for r in rows)
        lines.append(
            "Observer playlist reads per observed stream per second: "
            + ", ".join(f"{system} N={n} {rate:.1f}" for system, n, rate in polls)
            + f"; window hits on the first poll (lag is then an upper bound): {hits}; reads that raised "
            f"(retried): {errors}."
        )
    compared = ratios(rows)
    if compared:
        lines.append("CaptureStream ÷ nginx-rtmp, same invocation — " + " | ".join(compared) + ".")
    lost = [text for r in runs if (text := failure_mode(r))]
    lines.extend(f"MISSING SEGMENTS — {text}." for text in lost)
    flagged = []
    for r in runs:
        for name, info in r.findings.items():
            if info.get("flagged"):
                flagged.append(f"{r.system} N={r.n} {r.mode} {name}: {info['flagged']} warning/error lines")
    lines.append("Logged warnings/errors: " + ("; ".join(flagged) if flagged else "none") + ".")
    return lines


# ------------------------------------------------------------------------------------------------------ main


async def measure(args: argparse.Namespace, fixture_path: Path, first_keyframe: float) -> list[Run]:
    """Every run, sequentially: per level, each system (alternating which goes first), quiet then observed."""
    runs: list[Run] = []
    # SIGTERM (`timeout`, a CI step ending) cancels the run like Ctrl-C does, so the running subject is stopped:
    # `up` runs in its own session and would otherwise be left behind, holding its ports and two cores.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    systems = [CAPTURESTREAM] + ([] if args.no_reference else [NGINX])
    quiet_repeats = 0 if args.single_run else args.cpu_repeats
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http:
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
            plan = Plan(
                seconds=args.seconds,
                observe=args.observe,
                aligned=args.aligned,
                fixture=fixture_path,
                first_keyframe=first_keyframe,
                rng=random.Random(args.seed),
                scratch=Path(tmp),
                http=http,
                idle_in_single_run=args.single_run and not args.quick,
            )
            for level, n in enumerate(args.streams):
                order = systems if level % 2 == 0 else systems[::-1]
                schedule = [(system, QUIET) for _ in range(quiet_repeats) for system in order]
                schedule += [(system, OBSERVED) for system in order]
                for system, mode in schedule:
                    started = time.monotonic()
                    run = await measure_run(system, n, mode, plan)
                    runs.append(run)
                    state = "ok" if not run.failures else f"FAILED ({len(run.failures)})"
                    print(
                        f"{system} N={n} {mode}: {state} ({time.monotonic() - started:.0f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
    return runs


def _levels(text: str) -> list[int]:
    levels = [int(part) for part in text.split(",") if part.strip()]
    if not levels or any(n < 1 for n in levels):
        raise argparse.ArgumentTypeError("a comma-separated list of stream counts >= 1")
    return levels


def main(argv: list[str] | None = None) -> int:
    """Run the bench; print the table; write the raw results."""
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=_levels, default=[1, 10, 30], help="publisher counts (default 1,10,30)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds each publisher streams (default 30)")
    parser.add_argument("--observe", type=int, default=10, help="streams observed per run, at most (default 10)")
    parser.add_argument("--single-run", action="store_true", help="CPU/RSS from the observed run (no quiet run)")
    parser.add_argument(
        "--cpu-repeats", type=int, default=2, help="quiet runs per system and level, interleaved (default 2)"
    )
    parser.add_argument("--aligned", action="store_true", help="start all publishers at once (default: over 1 GOP)")
    parser.add_argument("--no-reference", action="store_true", help="skip nginx-rtmp")
    parser.add_argument("--seed", type=int, default=None, help="seed of the pollers' jitter (default: random)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 and 2 streams for 8 s, single runs")
    parser.add_argument(
        "--cache-dir", type=Path, default=RESULTS_DIR / "cache", help="where the fixture is kept (default %(default)s)"
    )
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.streams, args.seconds, args.single_run = [1, 2], 8.0, True
    if args.seconds < 3 or args.observe < 1 or args.cpu_repeats < 1:
        parser.error("--seconds must be >= 3, --observe >= 1 and --cpu-repeats >= 1")
    if args.seed is None:
        args.seed = random.randrange(2**32)
    reason = None if args.no_reference else nginx_rtmp.missing()
    if reason:
        print(f"bench.ingest: the reference cannot run: {reason} (or pass --no-reference)", file=sys.stderr)
        return 2

    env = environment()
    fixture_seconds = QUICK_FIXTURE_SECONDS if args.quick else FIXTURE_SECONDS
    fixture_path = fixture(args.cache_dir, fixture_seconds)
    first_keyframe = first_keyframe_seconds(fixture_path)
    runs_count = len(args.streams) * (1 if args.no_reference else 2) * (1 if args.single_run else 1 + args.cpu_repeats)
    budget = runs_count * (args.seconds + 120)
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        factory = None
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runs = runner.run(asyncio.wait_for(measure(args, fixture_path, first_keyframe), budget))
    except TimeoutError:
        print(f"bench.ingest: did not finish within {budget:.0f} s", file=sys.stderr)
        return 1
    except (asyncio.CancelledError, KeyboardInterrupt):
        print("bench.ingest: interrupted; the running subject was stopped", file=sys.stderr)
        return 1

    systems = [CAPTURESTREAM] + ([] if args.no_reference else [NGINX])
    rows = [row_summary(runs, system, n) for n in args.streams for system in systems]
    targets_line, verdict = verdicts(rows)
    failed = [r for r in runs if r.failures]
    stagger = "all at once" if args.aligned else "starts spread over 1 s"
    print(
        f"## Ingest: N copy-mode publishers (720p30 2.5 Mbps, GOP 1 s, {stagger}) for {args.seconds:g} s, "
        f"CaptureStream vs nginx-rtmp in the same run\n"
    )
    print(table(rows))
    print()
    print(targets_line)
    print()
    for line in notes(runs, rows, args.single_run):
        print(f"- {line}")
    print(f"- {environment_line(env)}.")
    if failed:
        print(f"\n{len(failed)} run(s) failed:")
        for r in failed:
            print(f"- {r.system} N={r.n} {r.mode}: " + "; ".join(r.failures[:5]))
    path = write_results(
        "ingest",
        {
            "bench": "ingest",
            "argv": sys.argv[1:] if argv is None else argv,
            "environment": env,
            "parameters": {
                "streams": args.streams,
                "seconds": args.seconds,
                "observe": args.observe,
                "single_run": args.single_run,
                "aligned": args.aligned,
                "seed": args.seed,
                "fixture": str(fixture_path),
                "fixture_first_keyframe": first_keyframe,
                "gop_seconds": GOP_SECONDS,
            },
            "targets": {
                "lag_p50_seconds": TARGET_LAG[0],
                "lag_p95_seconds": TARGET_LAG[1],
                "lag_streams": TARGET_LAG_STREAMS,
                "cpu_pct_per_stream": TARGET_CPU,
                "cpu_stretch_pct_per_stream": STRETCH_CPU,
                "cpu_streams": TARGET_CPU_STREAMS,
                "rss_mb": TARGET_RSS_MB,
                "rss_streams": TARGET_RSS_STREAMS,
            },
            "verdicts": verdict,
            "rows": rows,
            "runs": [asdict(r) for r in runs],
        },
        args.results_dir,
    )
    print(f"\nRaw results: {shown(path)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
