"""bench.ingest's report: interleaved quiet runs are merged (CPU averaged, peak RSS the largest) and paired."""

from __future__ import annotations

from bench import ingest
from bench.ingest import CAPTURESTREAM, NGINX, OBSERVED, QUIET, Run


def _run(system: str, mode: str, node_cpu: float, rss: int) -> Run:
    run = Run(system, 30, mode, seconds=30.0, expected=29)
    run.cpu_node = run.cpu_tree = node_cpu
    run.cpu = {"node": node_cpu}
    run.rss_node = run.rss_tree = rss
    run.stored = [{"segments": 29}] * 30
    return run


def test_quiet_runs_are_averaged_and_paired_with_the_reference() -> None:
    runs = [
        _run(CAPTURESTREAM, QUIET, 9.0, 200),  # 1.0 %/stream
        _run(NGINX, QUIET, 6.0, 19),  # 0.67
        _run(CAPTURESTREAM, QUIET, 7.2, 210),  # 0.8
        _run(NGINX, QUIET, 5.4, 18),  # 0.6
        _run(CAPTURESTREAM, OBSERVED, 99.0, 999),  # never a cost source while quiet runs exist
        _run(NGINX, OBSERVED, 99.0, 999),
    ]
    ours, ref = ingest.row_summary(runs, CAPTURESTREAM, 30), ingest.row_summary(runs, NGINX, 30)
    assert round(ours["cpu_node_pct"], 3) == 0.9 and round(ref["cpu_node_pct"], 3) == 0.633
    assert ours["rss_node"] == 210 and ours["complete"]
    [line] = ingest.ratios([ours, ref])
    assert "CPU node 1.4× (paired runs 1.5×, 1.3×)" in line
    targets, result = ingest.verdicts([ours, ref])
    assert result["cpu_vs_reference"]["met"] is True and "÷ nginx-rtmp at 30 streams 1.42× ≤ 1.5×" in targets
    ours["cpu_node_pct"] = 1.0  # 1.58×
    assert ingest.verdicts([ours, ref])[1]["cpu_vs_reference"]["met"] is False


def test_a_short_quiet_run_makes_the_row_incomplete() -> None:
    runs = [_run(CAPTURESTREAM, QUIET, 9.0, 200), _run(CAPTURESTREAM, QUIET, 9.0, 200)]
    runs[0].stored = [{"segments": 28}] + [{"segments": 29}] * 29
    assert not ingest.row_summary(runs, CAPTURESTREAM, 30)["complete"]
