"""The figures and the printed report of :mod:`bench.glass_to_glass`: one :class:`Watch` per page load, pooled per
row, each CaptureStream row beside the reference and judged against its target on the p50 (a miss says MISSED)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._stats import environment_line, markdown_table, ms, percentile, sec, shown, summarize

CAPTURESTREAM, LL_HLS, FLV, REFERENCE = "CaptureStream", "CaptureStream LL-HLS", "CaptureStream HTTP-FLV", "reference"
#: p50 targets (seconds) of the rows that have one.
TARGETS = {CAPTURESTREAM: 2.0, LL_HLS: 1.5, FLV: 0.5}
#: The watch page's latency mode (web/js/latency-mode.js) of each CaptureStream row.
MODES = {CAPTURESTREAM: "standard", LL_HLS: "ll-hls", FLV: "flv"}
LABELS = {
    CAPTURESTREAM: "CaptureStream HLS (up → S3 → edge)",
    LL_HLS: "CaptureStream LL-HLS (node → hls.js lowLatencyMode)",
    FLV: "CaptureStream HTTP-FLV (node → mpegts.js)",
    REFERENCE: "reference: ffmpeg HLS → same edge",
}
REAL_TIME_SLACK = 0.03  # media s per capture-clock s further from 1: the publisher did not keep real time


@dataclass
class Watch:
    """One page load of one subject: the raw samples of its measuring window and what the page showed."""

    subject: str
    run: int
    view: int = 0
    page_url: str = ""
    samples: list[list[Any]] = field(default_factory=list)  # rows of _clock.SAMPLE_FIELDS
    unreadable: int = 0
    jumps: int = 0
    first_frame_seconds: float | None = None  # page opened → first readable frame
    live_seconds: float | None = None  # publisher spawned → page opened
    player: dict[str, Any] | None = None  # hls.js config/state when the page exposes capturestreamPlayer
    library: str | None = None  # what played the window: hls.js, mpegts.js, or neither (native)
    quality: dict[str, Any] = field(default_factory=dict)
    console: list[str] = field(default_factory=list)
    failure: str | None = None


def row_summary(watches: list[Watch], subject: str) -> dict[str, Any]:
    """Pooled figures of one subject over its runs (g2g in seconds)."""
    mine = [w for w in watches if w.subject == subject and w.failure is None and w.samples]
    samples = [s for w in mine for s in w.samples]
    g2g = [s[2] / 1000 for s in samples]
    latency = [s[6] for s in samples if s[6] is not None]
    playing = [s[5] / 1000 for s in samples if s[5] is not None]
    before_player = [s[2] / 1000 - s[6] for s in samples if s[6] is not None]
    libraries = sorted({w.library or ("hls.js" if w.player else "") for w in mine} - {""})
    return {
        "subject": subject,
        "runs": len(mine),
        "g2g": summarize(g2g, quantiles=(50, 95)),
        "hls_latency": summarize(latency, quantiles=(50,)),
        "hls_playing_date": summarize(playing, quantiles=(50,)),
        "g2g_minus_hls_latency": summarize(before_player, quantiles=(50,)),
        "unreadable": sum(w.unreadable for w in mine),
        "jumps": sum(w.jumps for w in mine),
        "dropped": sum(w.quality.get("dropped") or 0 for w in mine),
        "player": " + ".join(libraries) or ("—" if not mine else "no capturestreamPlayer"),
        "frames": sum(w.quality.get("frames") or 0 for w in mine),
        "callback_delay": summarize([s[7] / 1000 for s in samples], quantiles=(50, 95)),
        "view_p50s": [percentile([s[2] / 1000 for s in w.samples], 50) for w in mine if w.samples],
        "view_ahead": [w.quality.get("ahead") for w in mine],
        "publisher_speed": _ratio(
            sum(w.quality.get("media_seconds", 0) for w in mine), sum(w.quality.get("capture_seconds", 0) for w in mine)
        ),
    }


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per CaptureStream row: its ratio to the reference (p50 and p95) and its target verdict on the p50
    (``target_met`` None: the row was not measured); ``all_met`` when every row with a target met it."""
    by_name = {row["subject"]: row["g2g"] for row in rows}
    ref = by_name.get(REFERENCE, {"n": 0})
    verdicts = {}
    for name, target in TARGETS.items():
        ours = by_name.get(name, {"n": 0})
        verdicts[name] = {
            "ratio": {q: _ratio(ours[q], ref[q]) if ours["n"] and ref["n"] else None for q in ("p50", "p95")},
            "target_seconds": target,
            "target_met": (ours["p50"] <= target) if ours["n"] else None,
        }
    return {"verdicts": verdicts, "all_met": all(v["target_met"] for v in verdicts.values())}


def table(rows: list[dict[str, Any]], verdict: dict[str, Any]) -> str:
    """The markdown table: one line per subject."""
    lines = []
    for row in rows:
        g, mine = row["g2g"], verdict["verdicts"].get(row["subject"])
        target, ratio = "—", "1.00×" if row["subject"] == REFERENCE else "—"
        if mine is not None:
            met = mine["target_met"]
            target = f"p50 ≤ {mine['target_seconds']:g} s: " + ("—" if met is None else "met" if met else "MISSED")
            ratio = "—" if mine["ratio"]["p50"] is None else f"{mine['ratio']['p50']:.2f}×"
        lines.append(
            [
                LABELS.get(row["subject"], row["subject"]),
                row["player"],
                str(g["n"]),
                ms(g.get("p50")),
                ms(g.get("p95")),
                ms(g.get("max")),
                ratio,
                sec(row["hls_latency"].get("p50")),
                ms(row["g2g_minus_hls_latency"].get("p50")),
                ms(row["hls_playing_date"].get("p50")),
                f"{row['unreadable']} / {row['jumps']} / {row['dropped']}",
                target,
            ]
        )
    headers = [
        "row",
        "player",
        "n",
        "g2g p50",
        "p95",
        "max",
        "p50 × ref",
        "hls.latency p50",
        "g2g − hls.latency p50",
        "now − hls.playingDate p50",
        "unreadable / jumps / dropped",
        "target",
    ]
    return markdown_table(headers, lines)


def print_report(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    verdict: dict[str, Any],
    failed: list[Watch],
    env: dict[str, Any],
    path: Path,
) -> None:
    """The table, the targets line, per-row notes, the load average at both ends, the failures."""
    pages = "web/" if args.web_root is None else str(args.web_root)
    print(
        f"## Glass-to-glass: Chromium + hls.js / mpegts.js ({pages} watch.html), 720p30 x264 zerolatency GOP 1 s, "
        f"1 s segments; {args.views} page load(s) × ({args.warmup:g} s warm-up, {args.window:g} s window) per row, "
        f"{args.runs} run(s)\n"
    )
    print(table(rows, verdict))
    print()
    missed = [name for name, v in verdict["verdicts"].items() if v["target_met"] is False]
    unmeasured = [name for name, v in verdict["verdicts"].items() if v["target_met"] is None]
    met = [name for name, v in verdict["verdicts"].items() if v["target_met"]]
    parts = [f"met by {', '.join(met)}" if met else "", f"**MISSED** by {', '.join(missed)}" if missed else ""]
    parts.append(f"not measured: {', '.join(unmeasured)}" if unmeasured else "")
    print("- Targets (p50): " + "; ".join(part for part in parts if part) + ".")
    print(
        "- g2g = Date.now() at requestVideoFrameCallback − the capture ms burned into the frame; "
        "g2g − hls.latency = capture → that media listed in the playlist the player holds (segmenting, upload, "
        "edge, playlist poll); hls.latency = the player's hold-back behind the live edge."
    )
    for row in rows:
        speed = row["publisher_speed"]
        print(
            f"- {row['subject']}: {row['g2g']['n']} frames read of {row['frames']} decoded in the window; media time "
            f"per second of capture clock {'—' if speed is None else f'{speed:.3f}'} (1: the publisher kept real "
            f"time); frame callback after the frame's display time p50 {ms(row['callback_delay'].get('p50'))}, "
            f"p95 {ms(row['callback_delay'].get('p95'))} (in g2g); g2g p50 of each page load: "
            + ", ".join(sec(value) for value in row["view_p50s"])
            + "; media buffered ahead of the playhead at the end of each: "
            + ", ".join(sec(value) for value in row["view_ahead"])
            + "."
        )
        if speed is not None and abs(speed - 1) > REAL_TIME_SLACK:  # behind, or catching up after falling behind
            print("  **The publisher did not keep real time: the box is overloaded and this row measures the load.**")
    end = "/".join(f"{value:g}" for value in env.get("loadavg_end", []))
    print(f"- {environment_line(env)}; load {end or 'n/a'} at the end.")
    if failed:
        print(f"\n{len(failed)} subject run(s) failed:")
        for w in failed:
            print(f"- {w.subject} run {w.run} view {w.view}: {w.failure}")
    print(f"\nRaw results: {shown(path)}")
