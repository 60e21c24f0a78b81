"""Benchmark: glass-to-glass latency of a live viewer in headless Chromium + hls.js, CaptureStream against ffmpeg's own
HLS on the same edge in the same run (BRIEF §6: ≤ 2.0 s for standard HLS through S3 and the CDN edge, 1 s segments).

Method:
    Publisher, the same for both subjects (``bench/_clock.py``): ``ffmpeg -re`` lavfi ``testsrc2`` 1280x720@30 +
    ``sine``, a filter that burns wall-clock ms mod 2^24 into every frame as 24 black/white boxes (CHROMIUM.md),
    libx264 veryfast zerolatency, GOP 30 (``-keyint_min 30 -sc_threshold 0``), 2500k, AAC 128k.
    Subjects, one at a time, never both at once (``--runs`` alternates which goes first):
      - CaptureStream: ``capturestream up --ports auto`` (state dir in a temp dir), ``capturestream channel create
        --json``, the publisher to ``rtmp://…/<stream key>``; once ``GET /api/stream/<playbackId>`` says live and
        the playlist at the CDN edge lists 3 segments, Chromium opens the channel's watch URL
        (``<web_url>/watch.html?v=<playbackId>``): hls.js through the edge, S3 (moto) behind it, 1 s segments.
      - reference: the publisher writes its own HLS (``-f hls -hls_time 1 -hls_list_size 6 -hls_segment_type fmp4
        -hls_flags delete_segments+program_date_time+independent_segments``) into ``ref/`` of a temp web root that
        also holds a copy of ``web/``; the same edge class (``devstack.cdn_edge.CdnEdge``) serves it from an aiohttp
        app in this process; the same page plays it as ``<edge>/watch.html?src=/ref/index.m3u8``.
    Viewer: Playwright's Chromium (``/usr/bin/chromium``, ``--autoplay-policy=no-user-gesture-required``), a fresh
    context per page load with the clock reader injected by ``add_init_script`` (``bench._clock.READER_JS``): for every
    presented frame (``requestVideoFrameCallback``) it draws the clock band of the video at its intrinsic resolution
    onto a 1280x76 canvas, reads the stamp and records ``Date.now() − stamp``, and, when the page exposes its hls.js
    as ``window.capturestreamPlayer``, ``Date.now() − hls.playingDate`` and ``hls.latency`` beside it.
    Samples are taken for ``--window`` seconds after ``--warmup`` seconds counted from the first readable frame.
    Each subject's page is loaded ``--views`` times, one after the other, on the same publisher: hls.js reloads the
    live playlist about once per segment, so the phase between a segment being listed and the player seeing it is
    drawn once per page load (0 to 1 s) and then holds for the whole view; one view is one draw of it.

Usage: ``python -m bench.glass_to_glass [--warmup 10] [--window 20] [--views 3] [--runs 1] [--web-root DIR] [--json]
[--quick] [--results-dir DIR]``; ``--quick``: one 5 s view after 3 s. ``--web-root`` serves the pages from another
folder (the CaptureStream row then plays the ``playbackUrl`` the API reports, as ``watch.html?src=<absolute URL>``,
through ``up``'s edge).
Exit status 0 when both subjects were measured (a missed target is in the table); 1 when one failed (nothing started,
the publisher died, no frame decoded); 2 when something it needs is missing (ffmpeg, Chromium, ``watch.html``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import _clock
from bench._g2g_subjects import FPS, LIVE_TIMEOUT, READY_SEGMENTS, Encoder, Failed, PageServer, capturestream, reference
from bench._stats import (
    add_common_arguments,
    environment,
    environment_line,
    markdown_table,
    ms,
    percentile,
    sec,
    shown,
    summarize,
    write_results,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
WEB_ROOT = REPO_ROOT / "web"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TARGET_SECONDS = 2.0
FIRST_FRAME_TIMEOUT = 30.0
REAL_TIME_SLACK = 0.03  # media s per capture-clock s further from 1: the publisher did not keep real time
JUMP_MS = 200  # consecutive stamps further apart than this (or going back) are a skip in the media
CAPTURESTREAM, REFERENCE = "CaptureStream", "reference"


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
    quality: dict[str, Any] = field(default_factory=dict)
    console: list[str] = field(default_factory=list)
    failure: str | None = None


# ------------------------------------------------------------------------------------------------------- viewer

_PAGE_STATE = """() => {
  const v = document.querySelector('video'), g = window.__g2g || {}, p = window.capturestreamPlayer;
  const q = v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
  return {
    video: !!v, readyState: v ? v.readyState : null, currentTime: v ? v.currentTime : null,
    videoWidth: v ? v.videoWidth : null, videoHeight: v ? v.videoHeight : null,
    error: v && v.error ? v.error.message || String(v.error.code) : null,
    samples: (g.samples || []).length, unreadable: g.unreadable || 0, attached: g.attached || 0,
    readerErrors: (g.errors || []).slice(0, 5),
    frames: q ? q.totalVideoFrames : null, dropped: q ? q.droppedVideoFrames : null,
    player: p ? {liveSyncDuration: p.config.liveSyncDuration, liveMaxLatencyDuration: p.config.liveMaxLatencyDuration,
                 lowLatencyMode: p.config.lowLatencyMode, maxLiveSyncPlaybackRate: p.config.maxLiveSyncPlaybackRate,
                 targetLatency: p.targetLatency} : null,
  };
}"""


async def watch(browser: Any, result: Watch, encoder: Encoder, args: argparse.Namespace) -> Watch:
    """Open the page in a fresh context, wait for the first readable frame, warm up, then sample ``args.window`` s."""
    url = result.page_url
    result.live_seconds = time.monotonic() - encoder.spawned_at
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        await context.add_init_script(_clock.READER_JS)
        page = await context.new_page()
        page.on("console", lambda m: m.type in ("error", "warning") and result.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: result.console.append(f"pageerror: {e}"))
        opened = time.monotonic()
        await page.goto(url)
        while not await page.evaluate("(window.__g2g || {samples: []}).samples.length"):
            encoder.check()
            if time.monotonic() - opened > FIRST_FRAME_TIMEOUT:
                state = await page.evaluate(_PAGE_STATE)
                raise Failed(
                    f"no frame decoded within {FIRST_FRAME_TIMEOUT:.0f} s of opening {url}: page {state}; "
                    f"console {result.console[-5:]}"
                )
            await asyncio.sleep(0.1)
        result.first_frame_seconds = time.monotonic() - opened
        await _sleep_watching(args.warmup, encoder)
        before = await page.evaluate(_PAGE_STATE)
        await _sleep_watching(args.window, encoder)
        result.samples = await page.evaluate(f"window.__g2g.samples.slice({before['samples']})")
        after = await page.evaluate(_PAGE_STATE)
    finally:
        await context.close()
    result.unreadable = after["unreadable"] - before["unreadable"]
    result.player = after["player"]
    result.quality = {key: after[key] for key in ("videoWidth", "videoHeight", "readyState", "error")}
    for key in ("frames", "dropped"):  # over the window
        result.quality[key] = None if after[key] is None else after[key] - (before[key] or 0)
    result.jumps = count_jumps([sample[1] for sample in result.samples])
    if len(result.samples) > 1:  # ffmpeg keeping real time: media seconds played per second of capture clock
        first, last = result.samples[0], result.samples[-1]
        result.quality["media_seconds"] = last[3] - first[3]
        result.quality["capture_seconds"] = _clock.age_ms(last[1], first[1]) / 1000
    if not result.samples:
        raise Failed(f"no frame decoded in the {args.window:g} s window: page {after}; console {result.console[-5:]}")
    return result


def count_jumps(stamps: list[int]) -> int:
    """Consecutive stamps that go back or skip more than :data:`JUMP_MS` (a skip in the media, or a misread)."""
    return sum(not 0 <= (b - a) % _clock.MODULUS <= JUMP_MS for a, b in zip(stamps, stamps[1:], strict=False))


async def _sleep_watching(seconds: float, encoder: Encoder) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        encoder.check()
        await asyncio.sleep(min(left, 0.5))


async def measure(args: argparse.Namespace, scratch: Path) -> list[Watch]:
    """Every run: both subjects, one at a time, alternating which goes first."""
    from playwright.async_api import Error as PlaywrightError  # imported here: only this bench needs Playwright
    from playwright.async_api import async_playwright

    watches: list[Watch] = []
    pages = PageServer(scratch, args.web_root or WEB_ROOT)
    await pages.start()
    try:
        async with aiohttp.ClientSession() as http, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            for run in range(args.runs):
                order = (REFERENCE, CAPTURESTREAM) if run % 2 == 0 else (CAPTURESTREAM, REFERENCE)
                for name in order:
                    folder = scratch / f"{name}-{run}"
                    folder.mkdir()
                    subject = (
                        reference(pages, http, folder)
                        if name == REFERENCE
                        else capturestream(pages if args.web_root else None, http, folder)
                    )
                    print(f"[{run + 1}/{args.runs}] {name}: {args.views} view(s) …", file=sys.stderr, flush=True)
                    views = [Watch(name, run, view) for view in range(args.views)]
                    watches.extend(views)
                    try:
                        async with subject as (url, encoder):
                            for view in views:  # one page load each: a fresh draw of the playlist poll's phase
                                view.page_url = url
                                await watch(browser, view, encoder, args)
                    except (Failed, PlaywrightError) as error:
                        for view in views:
                            view.failure = view.failure or (str(error) if not view.samples else None)
                        print(f"bench.glass_to_glass: {name}: {error}", file=sys.stderr)
            await browser.close()
    finally:
        await pages.stop()
    return watches


# ------------------------------------------------------------------------------------------------------- report


def row_summary(watches: list[Watch], subject: str) -> dict[str, Any]:
    """Pooled figures of one subject over its runs (g2g in seconds)."""
    mine = [w for w in watches if w.subject == subject and w.failure is None and w.samples]
    samples = [s for w in mine for s in w.samples]
    g2g = [s[2] / 1000 for s in samples]
    latency = [s[6] for s in samples if s[6] is not None]
    playing = [s[5] / 1000 for s in samples if s[5] is not None]
    before_player = [s[2] / 1000 - s[6] for s in samples if s[6] is not None]
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
        "player": "hls.js" if any(w.player for w in mine) else "no capturestreamPlayer",
        "frames": sum(w.quality.get("frames") or 0 for w in mine),
        "callback_delay": summarize([s[7] / 1000 for s in samples], quantiles=(50, 95)),
        "view_p50s": [percentile([s[2] / 1000 for s in w.samples], 50) for w in mine if w.samples],
        "publisher_speed": _ratio(
            sum(w.quality.get("media_seconds", 0) for w in mine), sum(w.quality.get("capture_seconds", 0) for w in mine)
        ),
    }


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The ratio CaptureStream / reference (p50 and p95) and the target verdict on CaptureStream's p50."""
    ours, ref = (next(r for r in rows if r["subject"] == name)["g2g"] for name in (CAPTURESTREAM, REFERENCE))
    ratio = {q: _ratio(ours[q], ref[q]) if ours["n"] and ref["n"] else None for q in ("p50", "p95")}
    met = bool(ours["n"]) and ours["p50"] <= TARGET_SECONDS
    return {"ratio": ratio, "target_seconds": TARGET_SECONDS, "target_met": met}


def table(rows: list[dict[str, Any]], verdict: dict[str, Any]) -> str:
    """The markdown table: one line per subject."""
    lines = []
    for row in rows:
        g = row["g2g"]
        ours = row["subject"] == CAPTURESTREAM
        label = "CaptureStream (up → S3 → edge)" if ours else "reference: ffmpeg HLS → same edge"
        ratio = verdict["ratio"]["p50"]
        target = f"p50 ≤ {TARGET_SECONDS:g} s: " + ("met" if verdict["target_met"] else "MISSED" if g["n"] else "—")
        lines.append(
            [
                label,
                row["player"],
                str(g["n"]),
                ms(g.get("p50")),
                ms(g.get("p95")),
                ms(g.get("max")),
                (f"{ratio:.2f}×" if ratio is not None else "—") if ours else "1.00×",
                sec(row["hls_latency"].get("p50")),
                ms(row["g2g_minus_hls_latency"].get("p50")),
                ms(row["hls_playing_date"].get("p50")),
                f"{row['unreadable']} / {row['jumps']} / {row['dropped']}",
                target if ours else "—",
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


def missing(args: argparse.Namespace) -> str | None:
    """What the bench needs and does not find, or None."""
    if shutil.which("ffmpeg") is None:
        return "ffmpeg is not installed"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed (apt-get install chromium)"
    pages = args.web_root or WEB_ROOT
    if not (pages / "watch.html").is_file():
        return f"{pages}/watch.html does not exist (pass --web-root DIR with a watch.html)"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the bench; print the table (or JSON); write the raw results."""
    parser = argparse.ArgumentParser(prog="python -m bench.glass_to_glass", description=__doc__.split("\n\n")[0])
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds after the first frame (default 10)")
    parser.add_argument("--window", type=float, default=20.0, help="seconds of samples per page load (default 20)")
    parser.add_argument("--views", type=int, default=3, help="page loads per subject and run (default 3)")
    parser.add_argument("--runs", type=int, default=1, help="runs of both subjects, alternating order (default 1)")
    parser.add_argument("--web-root", type=Path, default=None, help=f"pages to serve (default {WEB_ROOT})")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of the table")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 s warm-up, 5 s window")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.window, args.views = 3.0, 5.0, 1
    if args.warmup < 0 or args.window <= 0 or args.runs < 1 or args.views < 1:
        parser.error("--warmup must be >= 0, --window > 0, --runs and --views >= 1")
    if args.web_root is not None:
        args.web_root = args.web_root.resolve()
    reason = missing(args)
    if reason:
        print(f"bench.glass_to_glass: cannot run: {reason}", file=sys.stderr)
        return 2

    env = environment()
    budget = args.runs * 2 * (LIVE_TIMEOUT + 60 + args.views * (FIRST_FRAME_TIMEOUT + args.warmup + args.window))
    with tempfile.TemporaryDirectory(prefix="bench-g2g-") as name:
        try:
            watches = asyncio.run(_bounded(measure(args, Path(name)), budget))
        except TimeoutError:
            print(f"bench.glass_to_glass: did not finish within {budget:.0f} s", file=sys.stderr)
            return 1
        except (KeyboardInterrupt, asyncio.CancelledError):
            print("bench.glass_to_glass: interrupted; every process it started is stopped", file=sys.stderr)
            return 130

    env["loadavg_end"] = environment()["loadavg"]
    rows = [row_summary(watches, subject) for subject in (CAPTURESTREAM, REFERENCE)]
    verdict = report(rows)
    failed = [w for w in watches if w.failure or not w.samples]
    failures = [f"{w.subject} run {w.run} view {w.view}: {w.failure}" for w in failed]
    summary = {"rows": rows, **verdict, "failures": failures}
    path = write_results(
        "glass_to_glass",
        {
            "bench": "glass_to_glass",
            "argv": sys.argv[1:] if argv is None else argv,
            "environment": env,
            "parameters": {
                "warmup": args.warmup,
                "window": args.window,
                "runs": args.runs,
                "views": args.views,
                "web_root": str(args.web_root or WEB_ROOT),
                "fps": FPS,
                "ready_segments": READY_SEGMENTS,
                "sample_fields": _clock.SAMPLE_FIELDS,
            },
            **summary,
            "watches": [asdict(w) for w in watches],
        },
        args.results_dir,
    )
    if args.json:
        print(json.dumps({**summary, "results": str(path)}, indent=2))
    else:
        _print_report(args, rows, verdict, failed, env, path)
    return 1 if failed else 0


def _print_report(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    verdict: dict[str, Any],
    failed: list[Watch],
    env: dict[str, Any],
    path: Path,
) -> None:
    pages = "web/" if args.web_root is None else str(args.web_root)
    print(
        f"## Glass-to-glass: Chromium + hls.js ({pages} watch.html), 720p30 x264 zerolatency GOP 1 s, 1 s segments; "
        f"{args.views} page load(s) × ({args.warmup:g} s warm-up, {args.window:g} s window) per subject, "
        f"{args.runs} run(s)\n"
    )
    print(table(rows, verdict))
    print()
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


async def _bounded(work: Any, budget: float) -> list[Watch]:
    """``work`` within ``budget`` seconds; SIGTERM cancels it like Ctrl-C does (every process is stopped)."""
    task = asyncio.ensure_future(asyncio.wait_for(work, budget))
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await task


if __name__ == "__main__":
    sys.exit(main())
