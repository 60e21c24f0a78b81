"""The benchmarks run: ``python -m bench.up --quick`` and ``python -m bench.events --quick`` exit 0, print their
table and write their raw results.

A behaviour check only: no timing is asserted here (house rule: speed targets live in ``bench/``). Each bench is
a subprocess bounded by :data:`BOUND` seconds (a quick run takes about 5 s) and writes its results into a temp
dir, not ``bench/results/``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BOUND = 40


def _run_bench(name: str, results: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--quick", "--results-dir", str(results)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )


def _only_results_file(results: Path, name: str) -> dict:
    (path,) = results.glob(f"{name}-*.json")
    return json.loads(path.read_text())


@pytest.mark.e2e
def test_bench_up_quick_prints_its_table(tmp_path: Path) -> None:
    """bench.up starts and stops `capturestream up` and the moto reference, and reports both."""
    done = _run_bench("up", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| measure " in done.stdout and "| p50 " in done.stdout
    assert "`capturestream up`: spawn → ready" in done.stdout
    assert "reference: bare moto child" in done.stdout
    data = _only_results_file(tmp_path, "up")
    assert {run["subject"] for run in data["runs"]} == {"up", "moto"}
    assert all(run["error"] is None for run in data["runs"])


def test_bench_events_quick_prints_its_table(tmp_path: Path) -> None:
    """bench.events drives puts through both paths, loses none, and reports our rows next to the reference."""
    done = _run_bench("events", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| path (per put) " in done.stdout and "| p99 " in done.stdout
    assert "reference: S3 → SQS direct" in done.stdout
    assert "(a) put → CatalogFunction handler entered" in done.stdout
    data = _only_results_file(tmp_path, "events")
    assert not any(data["lost"].values())
    assert data["summaries"]["catalog_put_to_handler"]["n"] == 30
    assert data["summaries"]["visible_put_to_item_visible"]["n"] == 30
