"""Helpers shared by the benchmarks: percentiles, markdown tables, the environment line, raw results files.

Rules:
- Percentiles interpolate linearly between closest ranks (numpy's default ``linear`` method), so p99 of 200
  samples is not simply the second-largest value.
- Durations are kept in seconds internally and formatted only when printed.
- Raw results go to ``bench/results/<name>-<UTC timestamp>.json`` (git-ignored), one file per invocation;
  ``--results-dir`` sends them elsewhere (the smoke test uses a temp dir).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linear interpolation between closest ranks.

    Raises:
        ValueError: ``values`` is empty or ``q`` is outside 0-100.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(values: Iterable[float], quantiles: Sequence[float] = (50, 95, 99)) -> dict[str, float | int]:
    """``n``, ``min``, ``max``, ``mean`` and ``p<q>`` for each quantile; only ``n`` when there are no values."""
    data = list(values)
    if not data:
        return {"n": 0}
    summary: dict[str, float | int] = {
        "n": len(data),
        "min": min(data),
        "max": max(data),
        "mean": sum(data) / len(data),
    }
    summary.update({f"p{q:g}": percentile(data, q) for q in quantiles})
    return summary


def ms(seconds: float | None) -> str:
    """Seconds as milliseconds for a table cell (``—`` when missing)."""
    if seconds is None:
        return "—"
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds * 1000:.0f} ms"


def sec(seconds: float | None) -> str:
    """Seconds for a table cell (``—`` when missing)."""
    return "—" if seconds is None else f"{seconds:.2f} s"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table with padded columns (readable in a terminal and pasteable into an issue)."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    separator = "| " + " | ".join("-" * width for width in widths) + " |"
    return "\n".join([line(headers), separator, *(line(row) for row in rows)])


def environment() -> dict[str, Any]:
    """Where the numbers were taken: CPU count, load, Python, platform."""
    try:
        load = [round(value, 2) for value in os.getloadavg()]
    except OSError:  # pragma: no cover - no load average on this platform
        load = []
    return {
        "cpus": os.cpu_count(),
        "loadavg": load,
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
    }


def add_common_arguments(parser: Any) -> None:
    """``--results-dir``, shared by every bench."""
    parser.add_argument(
        "--results-dir", type=Path, default=None, help=f"where to write the raw results (default {RESULTS_DIR})"
    )


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def environment_line(env: dict[str, Any]) -> str:
    """One line describing :func:`environment` under a table."""
    load = "/".join(f"{value:g}" for value in env.get("loadavg", [])) or "n/a"
    return f"{env['cpus']} CPUs, load {load} at start, Python {env['python']}, {env['platform']}"


def timestamp() -> str:
    """UTC timestamp for file names (``20261125T160142Z``)."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def write_results(name: str, data: dict[str, Any], directory: Path | None = None) -> Path:
    """Write ``data`` as JSON to ``<directory>/<name>-<timestamp>.json`` (default ``bench/results/``)."""
    directory = directory or RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{timestamp()}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path
