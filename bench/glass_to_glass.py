"""Benchmark: glass-to-glass latency of a live viewer in headless Chromium, CaptureStream's three ways of watching
(standard HLS, LL-HLS, HTTP-FLV) against ffmpeg's own HLS on the same edge, in one run. Targets on each row's p50:
standard HLS through S3 and the CDN edge with 1 s segments ≤ 2.0 s (BRIEF §6); LL-HLS from the ingest node with
hls.js ``lowLatencyMode`` ≤ 1.5 s; HTTP-FLV from the node with mpegts.js ≤ 0.5 s (issue 11, item 6).

Method:
    Publisher, the same for both subjects (``bench/_clock.py``): ``ffmpeg -re`` lavfi ``testsrc2`` 1280x720@30 +
    ``sine``, a filter that burns wall-clock ms mod 2^24 into every frame as 24 black/white boxes (CHROMIUM.md),
    libx264 veryfast zerolatency, GOP 30 (``-keyint_min 30 -sc_threshold 0``), 2500k, AAC 128k.
    Subjects, one at a time, never both at once (``--runs`` alternates which goes first):
      - CaptureStream: ``capturestream up --ports auto`` (state dir in a temp dir), ``capturestream channel create
        --json``, the publisher to ``rtmp://…/<stream key>``; once ``GET /api/stream/<playbackId>`` says live and
        the playlist at the CDN edge lists 3 segments, Chromium opens the channel's watch URL
        (``<web_url>/watch.html?v=<playbackId>``) in each of the page's latency modes (set as a viewer's remembered
        choice in ``localStorage`` before the page loads), one row each, on the same ``up`` and publisher:
        "CaptureStream" = Standard: hls.js through the edge, S3 (moto) behind it, 1 s segments;
        "CaptureStream LL-HLS" = Low: hls.js ``lowLatencyMode`` on the node's ``/live/<playbackId>/ll.m3u8``;
        "CaptureStream HTTP-FLV" = Ultra-low: mpegts.js on the node's ``/live/<playbackId>.flv``.
        A page that fell back to standard HLS (its switch says so) fails that view: it measured the wrong thing.
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
    drawn once per page load (0 to 1 s) and then holds for the whole view; one view is one draw of it. CaptureStream's
    three modes take turns (HLS, LL-HLS, FLV, HLS, …) so a change in the box's load falls on all three.

Usage: ``python -m bench.glass_to_glass [--warmup 10] [--window 20] [--views 3] [--runs 1] [--web-root DIR] [--json]
[--quick] [--results-dir DIR]``; ``--quick``: one 5 s view after 3 s. ``--web-root`` serves the pages from another
folder (the CaptureStream row then plays the ``playbackUrl`` the API reports, as ``watch.html?src=<absolute URL>``,
through ``up``'s edge).
With ``--web-root`` only the standard row of CaptureStream is measured (the low-latency modes need ``up``'s pages).
Exit status 0 when every row was measured (a missed target is in the table, marked MISSED); 1 when one failed
(nothing started, the publisher died, no frame decoded, the page fell back to standard HLS); 2 when something it
needs is missing (ffmpeg, Chromium, ``watch.html``).
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
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp

from bench import _clock
from bench._g2g_report import (
    CAPTURESTREAM,
    MODES,
    REFERENCE,
    Watch,
    print_report,
    report,
    row_summary,
)
from bench._g2g_subjects import FPS, LIVE_TIMEOUT, READY_SEGMENTS, Encoder, Failed, PageServer, capturestream, reference
from bench._stats import (
    add_common_arguments,
    environment,
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
FIRST_FRAME_TIMEOUT = 30.0
JUMP_MS = 200  # consecutive stamps further apart than this (or going back) are a skip in the media


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
                 targetLatency: p.targetLatency, url: p.url} : null,
    library: window.capturestreamFlv ? 'mpegts.js' : p ? 'hls.js' : null,
    ahead: v && v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : null,
    mode: (document.querySelector('#latency-mode input:checked') || {}).value || null,
    toast: (document.getElementById('toast') || {}).textContent || null,
  };
}"""


async def watch(browser: Any, result: Watch, encoder: Encoder, args: argparse.Namespace) -> Watch:
    """Open the page in a fresh context, wait for the first readable frame, warm up, then sample ``args.window`` s."""
    url = result.page_url
    result.live_seconds = time.monotonic() - encoder.spawned_at
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        await context.add_init_script(_clock.READER_JS)
        if result.subject in MODES:  # the viewer's remembered choice, as the page's switch stores it
            mode = MODES[result.subject]
            await context.add_init_script(f"localStorage.setItem('capturestream.latencyMode', '{mode}')")
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
    result.library = after["library"]
    if result.subject in MODES and after["mode"] not in (None, MODES[result.subject]):
        raise Failed(f"the page played {after['mode']} instead of {MODES[result.subject]} (toast: {after['toast']})")
    result.quality = {key: after[key] for key in ("videoWidth", "videoHeight", "readyState", "error", "ahead")}
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
    """Every run: both subjects (CaptureStream's rows share one ``up``), one at a time, alternating which goes first."""
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
                    rows = (REFERENCE,) if name == REFERENCE else (CAPTURESTREAM,) if args.web_root else tuple(MODES)
                    views = [Watch(row, run, view) for view in range(args.views) for row in rows]
                    print(f"[{run + 1}/{args.runs}] {name}: {len(views)} view(s) …", file=sys.stderr, flush=True)
                    watches.extend(views)
                    try:
                        async with subject as (url, encoder):
                            for view in views:  # one page load each: a fresh draw of the playlist poll's phase
                                view.page_url = url
                                try:
                                    await watch(browser, view, encoder, args)
                                except (Failed, PlaywrightError) as error:  # this view only, unless ffmpeg died
                                    view.failure = str(error)
                                    print(f"bench.glass_to_glass: {view.subject}: {error}", file=sys.stderr)
                                    encoder.check()
                    except (Failed, PlaywrightError) as error:
                        for view in views:
                            view.failure = view.failure or (str(error) if not view.samples else None)
                        print(f"bench.glass_to_glass: {name}: {error}", file=sys.stderr)
            await browser.close()
    finally:
        await pages.stop()
    return watches


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
    per_view = FIRST_FRAME_TIMEOUT + args.warmup + args.window
    budget = args.runs * (2 * (LIVE_TIMEOUT + 60) + (1 + len(MODES)) * args.views * per_view)
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
    rows = [row_summary(watches, subject) for subject in (*MODES, REFERENCE)]
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
        print_report(args, rows, verdict, failed, env, path)
    return 1 if failed else 0


async def _bounded(work: Any, budget: float) -> list[Watch]:
    """``work`` within ``budget`` seconds; SIGTERM cancels it like Ctrl-C does (every process is stopped)."""
    task = asyncio.ensure_future(asyncio.wait_for(work, budget))
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await task


if __name__ == "__main__":
    sys.exit(main())
