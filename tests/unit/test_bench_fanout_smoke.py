"""The fan-out bench runs: ``python -m bench._fanout --quick`` exits 0, prints its table and writes its raw results.

A behaviour check only, like ``test_bench_smoke.py``: 20 viewers, one round, both variants; no timing is asserted
(speed targets live in ``bench/``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BOUND = 40


def test_bench_fanout_quick_prints_its_table(tmp_path: Path) -> None:
    """Gateway and viewer children start, every message arrives through both clients, and the children stop."""
    done = subprocess.run(
        [sys.executable, "-m", "bench._fanout", "--quick", "--results-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| wall s (min–max) " in done.stdout and "reference: aiobotocore post_to_connection" in done.stdout
    (path,) = tmp_path.glob("fanout-*.json")
    runs = json.loads(path.read_text())["runs"]
    assert [run["n"] for run in runs] == [20, 20]
    assert all(run["complete"] and run["fails"] == 0 for run in runs)
    assert all(rounds["arrived"] == 20 and rounds["unexpected"] == 0 for run in runs for rounds in run["rounds"])
