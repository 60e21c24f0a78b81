"""The benchmarks run: ``python -m bench.up --quick``, ``python -m bench.events --quick``, ``python -m bench.ingest
--quick`` and ``python -m bench.recordings --quick`` exit 0, print their table and write their raw results.

A behaviour check only: no timing is asserted here (house rule: speed targets live in ``bench/``). Each bench is
a subprocess bounded by :data:`BOUND` seconds (a quick run takes about 5 s; bench.ingest: :data:`INGEST_BOUND`;
bench.recordings: :data:`RECORDINGS_BOUND`) and writes its results into a temp dir, not ``bench/results/``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import nginx_rtmp

REPO_ROOT = Path(__file__).resolve().parents[2]
BOUND = 80  # bench.events --quick also starts `up` and the fan-out children: ~25 s
INGEST_BOUND = 90  # bench.ingest --quick: 4 runs of 8 s (CaptureStream starts `up` for each), ~55 s


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
    (path,) = results.glob(f"{name}-[0-9]*.json")
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
    assert "S3 put → DynamoDB → notifier → WebSocket viewer" in done.stdout  # through a real `up`
    viewer = _only_results_file(tmp_path, "events-viewer")
    assert viewer["lost"] == 0 and viewer["summaries"]["pipeline"]["n"] == 20
    assert "reference: @connections POST → viewer" in done.stdout
    fanout = _only_results_file(tmp_path, "events-fanout")
    assert fanout["summaries"] and not any(s["fails"] for s in fanout["summaries"])


@pytest.mark.e2e
@pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None or nginx_rtmp.missing() is not None,
    reason="needs ffmpeg and nginx with libnginx-mod-rtmp",
)
@pytest.mark.timeout(INGEST_BOUND + 30)
def test_ingest_bench_quick(tmp_path: Path) -> None:
    """bench.ingest publishes to CaptureStream and nginx-rtmp in turn, sees every segment, and reports both."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.ingest", "--quick", "--results-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=INGEST_BOUND,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "| system " in done.stdout and "| lag p50 " in done.stdout and "| CPU %/stream: node " in done.stdout
    assert "reference: nginx-rtmp" in done.stdout and "Targets (BRIEF §6)" in done.stdout
    data = _only_results_file(tmp_path, "ingest")
    assert {(run["system"], run["n"]) for run in data["runs"]} == {
        (system, n) for system in ("CaptureStream", "nginx-rtmp") for n in (1, 2)
    }
    assert all(not run["failures"] for run in data["runs"])
    assert all(row["seen"] == row["expected"] > 0 for row in data["rows"])


RECORDINGS_BOUND = 150  # bench.recordings --quick: 20 s and 60 s builds, then `up` with 1 publisher × 15 s: ~50 s


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="needs ffmpeg")
@pytest.mark.timeout(RECORDINGS_BOUND + 30)
def test_bench_recordings_quick_prints_its_tables(tmp_path: Path) -> None:
    """bench.recordings builds two short recordings with the real handler beside the ffmpeg remux, verifies both,
    measures thumbnail freshness through `up`, and reports ours next to the references."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.recordings", "--quick", "--results-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=RECORDINGS_BOUND,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "| broadcast " in done.stdout and "| build " in done.stdout and "| peak RSS " in done.stdout
    assert "ours: RecordingFunction handler" in done.stdout
    assert "reference: ffmpeg -c copy +faststart" in done.stdout and "Lambda limits" in done.stdout
    assert "segment listed in S3 → `thumbnail` at the lobby viewer" in done.stdout
    assert "reference: live_thumbnail ffmpeg alone" in done.stdout
    data = _only_results_file(tmp_path, "recordings")
    assert [build["label"] for build in data["builds"]] == ["20 s", "60 s"]
    assert all(build["ours_verified"]["ok"] and build["reference_verified"]["ok"] for build in data["builds"])
    assert data["thumbnails"]["summaries"]["listed_to_viewer"]["n"] > 0
