"""Benchmark: how long ``capturestream up`` takes to be ready from cold, and to stop (BRIEF §6: ready ≤ 5 s).

Method:
    Each run spawns ``.venv/bin/capturestream up --ports auto --state-dir <fresh temp dir>`` from the repo root
    (as ``./dev up`` does), in its own session, on loopback ports the kernel picks. *Ready* is spawn →
    ``<state-dir>/stack.json`` exists **and** ``GET <api_url>/api/status`` answers 200 (the REST function's
    first, cold invoke included); both are polled every 5 ms. After a short hold the process gets SIGTERM and
    *shutdown* lasts until it has exited and every process that was in its tree (found through ``/proc``; moto
    runs in its own session) is gone. Anything still alive after 15 s is SIGKILLed and the run counts as failed.

Reference, measured in the same invocation and interleaved run by run: a bare moto child, ``python -m
devstack.moto_process --port 0``, ready when it prints its JSON line; then SIGTERM until it exits. That is the
floor every embedded stack pays (interpreter, moto import, server start) before provisioning anything.

Usage: ``python -m bench.up [--runs N] [--warmup N] [--hold S] [--quick] [--results-dir DIR]``.
Exit status 0 when every run was measured (a missed target is reported in the table, not by the exit status);
1 when a run failed to start or to stop.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench._stats import (
    add_common_arguments,
    environment,
    environment_line,
    markdown_table,
    sec,
    shown,
    summarize,
    write_results,
)

READY_TARGET = 5.0
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
POLL_SECONDS = 0.005
STOP_POLL_SECONDS = 0.002
REPO_ROOT = Path(__file__).resolve().parents[1]
_BANNER = re.compile(r"CaptureStream is up \((?P<seconds>[0-9.]+) s\)")


@dataclass
class Run:
    """One cold start and stop of one subject (``up`` or the ``moto`` reference); times in seconds."""

    subject: str
    warmup: bool
    ready: float | None = None
    stack_json: float | None = None
    reported_start: float | None = None
    stop: float | None = None
    exit_code: int | None = None
    tree: int = 0
    error: str | None = None


# ---------------------------------------------------------------------------------------------- process tree


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, ppid, starttime)`` of ``pid`` from ``/proc/<pid>/stat``, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may contain spaces and parentheses
    return fields[0], int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """Every process below ``root`` (any session), as ``{pid: starttime}`` so a reused pid is not mistaken."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _proc_stat(int(entry))) is not None:
            children.setdefault(stat[1], []).append(int(entry))
            starts[int(entry)] = stat[2]
    found: dict[int, int] = {}
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found[child] = starts[child]
            pending.append(child)
    return found


def _alive(pid: int, start: int) -> bool:
    """True while ``pid`` is the same process and has not exited (a zombie has exited)."""
    stat = _proc_stat(pid)
    return stat is not None and stat[2] == start and stat[0] not in ("Z", "X")


def _kill_all(process: subprocess.Popen[Any], tree: dict[int, int]) -> None:
    """SIGKILL the subject's process group and every process of its recorded tree, then reap the subject."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for pid, start in tree.items():
        if _alive(pid, start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    process.wait()


def _stop(process: subprocess.Popen[Any], run: Run) -> None:
    """SIGTERM the subject; time until it and its whole recorded tree are gone (SIGKILL after the timeout)."""
    tree = descendants(process.pid)
    run.tree = 1 + len(tree)
    started = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    while True:
        gone = process.poll() is not None and not any(_alive(pid, start) for pid, start in tree.items())
        now = time.perf_counter()
        if gone:
            run.stop, run.exit_code = now - started, process.returncode
            return
        if now - started > STOP_TIMEOUT:
            _kill_all(process, tree)
            run.error = f"still running {STOP_TIMEOUT:.0f} s after SIGTERM; killed"
            return
        time.sleep(STOP_POLL_SECONDS)


# -------------------------------------------------------------------------------------------------- subjects


def _child_env(tmp: Path) -> dict[str, str]:
    """The caller's environment without anything that would redirect the subject (its own flags win)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPTURESTREAM_") and k != "AWS_ENDPOINT_URL"}
    env["TMPDIR"] = str(tmp)
    return env


def _capturestream() -> str:
    """The ``capturestream`` console script of the interpreter running this bench (the repo's .venv)."""
    script = Path(sys.executable).with_name("capturestream")
    if not script.exists():
        raise SystemExit(f"no capturestream script next to {sys.executable}; run ./dev setup")
    return str(script)


def _status_ok(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/api/status", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-up-") as name:
        yield Path(name)


def run_up(hold: float, warmup: bool) -> Run:
    """One cold start of ``capturestream up`` in a fresh state dir, then SIGTERM."""
    run = Run("up", warmup)
    with _scratch() as tmp:
        state = tmp / "state"
        stack_file = state / "stack.json"
        with (tmp / "stdout").open("wb") as out, (tmp / "stderr").open("wb") as err:
            started = time.perf_counter()
            process = subprocess.Popen(
                [_capturestream(), "up", "--ports", "auto", "--state-dir", str(state)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=_child_env(tmp),
                cwd=REPO_ROOT,  # as `./dev up` runs it
                start_new_session=True,
            )
        try:
            api_url: str | None = None
            while run.ready is None:
                elapsed = time.perf_counter() - started
                if process.poll() is not None:
                    run.error = f"exited with code {process.returncode} before ready"
                    break
                if elapsed > READY_TIMEOUT:
                    run.error = f"not ready after {READY_TIMEOUT:.0f} s"
                    break
                if api_url is None and stack_file.exists():
                    with contextlib.suppress(OSError, ValueError, KeyError):
                        api_url = json.loads(stack_file.read_text())["api_url"]
                        run.stack_json = elapsed
                if api_url is not None and _status_ok(api_url):
                    run.ready = time.perf_counter() - started
                    break
                time.sleep(POLL_SECONDS)
            if run.ready is not None:
                time.sleep(hold)
            if process.poll() is None:
                error = run.error
                _stop(process, run)
                run.error = error or run.error
        finally:
            if process.poll() is None:  # an exception above: never leave the stack running
                _kill_all(process, descendants(process.pid))
        match = _BANNER.search((tmp / "stdout").read_text(errors="replace"))
        run.reported_start = float(match["seconds"]) if match else None
        if run.error:  # the temp dir goes away: show the logs now
            print(f"capturestream up: {run.error}", file=sys.stderr)
            for log_file in [tmp / "stderr", *sorted((state / "logs").glob("*.log"))]:
                tail = log_file.read_text(errors="replace").strip().splitlines()[-10:]
                if tail:
                    print(f"  --- {log_file.name}\n  " + "\n  ".join(tail), file=sys.stderr)
    return run


def run_moto(hold: float, warmup: bool) -> Run:
    """One cold start of the reference: a bare moto child, ready at its JSON line, then SIGTERM."""
    run = Run("moto", warmup)
    with _scratch() as tmp, (tmp / "stderr").open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack.moto_process", "--host", "127.0.0.1", "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            env=_child_env(tmp),
            cwd=REPO_ROOT,  # as `./dev up` runs it
            start_new_session=True,
        )
        assert process.stdout is not None
        try:
            readable, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT)
            line = process.stdout.readline() if readable else b""
            try:
                json.loads(line)["port"]
                run.ready = time.perf_counter() - started
            except (ValueError, KeyError, TypeError):
                run.error = f"no ready line within {READY_TIMEOUT:.0f} s (got {line[:80]!r})"
            if run.ready is not None:
                time.sleep(hold)
            if process.poll() is None:
                error = run.error
                _stop(process, run)
                run.error = error or run.error
        finally:
            if process.poll() is None:
                _kill_all(process, descendants(process.pid))
            process.stdout.close()
    if run.error:
        print(f"moto reference: {run.error}", file=sys.stderr)
    return run


# ----------------------------------------------------------------------------------------------------- report


def _values(runs: list[Run], subject: str, attribute: str) -> list[float]:
    return [v for r in runs if r.subject == subject and not r.warmup and (v := getattr(r, attribute)) is not None]


def _row(label: str, values: list[float], target: str = "—") -> list[str]:
    s = summarize(values, quantiles=(50,))
    return [label, str(s["n"]), sec(s.get("min")), sec(s.get("p50")), sec(s.get("max")), target]


def report(runs: list[Run]) -> tuple[str, dict[str, Any]]:
    """The markdown table and the summaries for the results file."""
    ready = _values(runs, "up", "ready")
    met = bool(ready) and max(ready) <= READY_TARGET
    verdict = f"max ≤ {READY_TARGET:g} s: " + ("met" if met else "MISSED" if ready else "not measured")
    series = {
        "up_ready": ready,
        "up_stack_json": _values(runs, "up", "stack_json"),
        "up_reported_start": _values(runs, "up", "reported_start"),
        "moto_ready": _values(runs, "moto", "ready"),
        "up_stop": _values(runs, "up", "stop"),
        "moto_stop": _values(runs, "moto", "stop"),
    }
    rows = [
        _row("`capturestream up`: spawn → ready (stack.json + GET /api/status 200)", series["up_ready"], verdict),
        _row("  ↳ spawn → stack.json written", series["up_stack_json"]),
        _row("  ↳ LocalStack.start() as `up` reports it (banner)", series["up_reported_start"]),
        _row("reference: bare moto child: spawn → ready line", series["moto_ready"]),
        _row("`capturestream up`: SIGTERM → whole process tree gone", series["up_stop"]),
        _row("reference: bare moto child: SIGTERM → exited", series["moto_stop"]),
    ]
    table = markdown_table(["measure", "runs", "min", "p50", "max", "target"], rows)
    summaries = {name: summarize(values, quantiles=(50,)) for name, values in series.items()}
    return table, {"series": series, "summaries": summaries, "target_met": met}


def main(argv: list[str] | None = None) -> int:
    """Run the bench; print the table; write the raw results."""
    parser = argparse.ArgumentParser(prog="python -m bench.up", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured cold starts of each subject (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded runs of each subject first (default 1)")
    parser.add_argument("--hold", type=float, default=0.5, help="seconds to stay up before SIGTERM (default 0.5)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 run, no warm-up, short hold")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.warmup, args.hold = 1, 0, 0.1
    if args.runs < 1 or args.warmup < 0 or args.hold < 0:
        parser.error("--runs must be >= 1, --warmup and --hold >= 0")

    env = environment()
    runs: list[Run] = []
    plan = [True] * args.warmup + [False] * args.runs
    for index, warmup in enumerate(plan):  # interleaved, alternating which subject goes first
        order = (run_moto, run_up) if index % 2 == 0 else (run_up, run_moto)
        for subject in order:
            runs.append(subject(args.hold, warmup))
            print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    table, summary = report(runs)
    failed = [r for r in runs if r.error]
    print(f"## `capturestream up` readiness: {args.runs} cold start(s) of each, interleaved ({args.warmup} warm-up)\n")
    print(table)
    print()
    trees = sorted({r.tree for r in runs if r.subject == "up" and r.tree})
    print(f"Processes in `up`'s tree at SIGTERM: {', '.join(map(str, trees)) or '—'}. {environment_line(env)}.")
    if failed:
        print(f"\n{len(failed)} run(s) failed: " + "; ".join(f"{r.subject}: {r.error}" for r in failed))
    path = write_results(
        "up",
        {
            "bench": "up",
            "argv": sys.argv[1:] if argv is None else argv,
            "environment": env,
            "target_ready_seconds": READY_TARGET,
            "runs": [asdict(r) for r in runs],
            **summary,
        },
        args.results_dir,
    )
    print(f"\nRaw results: {shown(path)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
