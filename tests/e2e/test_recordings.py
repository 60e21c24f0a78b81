"""Every broadcast becomes a VOD, end to end through ``capturestream up``: live thumbnails at a WebSocket viewer while
ffmpeg publishes, then a recording in ``GET /api/recordings`` whose MP4 plays and seeks in Chromium, whose VOD
playlist plays in hls.js and whose storyboard covers it; a reconnect inside the window stitched into one
recording; an ingest node killed mid-stream ended by the reaper and still recorded."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest

from capturestream import keys
from mediakit import bmff, hls
from tests.e2e.test_ingest import ffmpeg_args
from tests.e2e.test_live_events import Viewer
from tests.support.system import System, descendants

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg"),
]
WINDOW = "4"
#: The reaper runs every 2 s here (every minute in AWS) and steps in 10 s after the window (the least it allows:
#: last-segment times reach the catalog in 5 s batches).
UP_FLAGS = ("--schedule-period", "2", "--reaper-margin", "10")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    # A reconnect 3 s after a kill must land inside the window even on a busy 2-core box (ffmpeg's start-up).
    running = System(tmp_path_factory.mktemp("vod") / "state", "--reconnect-window", "10", *UP_FLAGS)
    yield running
    running.stop()


def _channel(system: System, name: str) -> tuple[str, str]:
    status, created = system.request("POST", "/api/channels", {"name": name})
    assert status == 201, created
    return created["channel"]["playbackId"], f"{created['ingest']['server']}/{created['streamKey']}"


def _recording(system: System, playback_id: str, timeout: float = 60) -> dict[str, Any]:
    """The ready recording of a playback id's broadcast, once the API lists it (and exactly one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, page = system.request("GET", "/api/recordings?limit=50", token=None)
        assert status == 200, page
        mine = [r for r in page["items"] if r["playbackId"] == playback_id]
        if mine:
            assert len(mine) == 1, mine
            status, detail = system.request("GET", f"/api/recordings/{mine[0]['id']}", token=None)
            assert status == 200 and detail["status"] == "ready", detail
            return detail
        time.sleep(0.5)
    raise AssertionError(f"no recording of {playback_id} listed within {timeout} s")


def _download(url: str, path: Path) -> Path:
    with urllib.request.urlopen(url, timeout=30) as response:
        path.write_bytes(response.read())
    return path


def _probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name,codec_type",
         "-of", "json", str(path)], capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return json.loads(out.stdout)


def _silent_decode(path: Path) -> None:
    result = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr[-2000:]


def _check_mp4(detail: dict[str, Any], folder: Path, *, seconds: float, tolerance: float) -> Path:
    mp4 = _download(detail["mp4Url"], folder / f"{detail['id']}.mp4")
    kinds = [ref.kind for ref in bmff.iter_boxes(mp4.read_bytes())]
    assert kinds.index(b"moov") < kinds.index(b"mdat"), kinds  # faststart
    probe = _probe(mp4)
    assert sorted(s["codec_name"] for s in probe["streams"]) == ["aac", "h264"]
    assert abs(float(probe["format"]["duration"]) - seconds) <= tolerance, (probe["format"], seconds)
    _silent_decode(mp4)
    return mp4


class SegmentWatch:
    """When each live segment of a playback id first became readable (S3 listed every 50 ms, in a thread)."""

    def __init__(self, system: System, playback_id: str) -> None:
        self.seen: dict[int, float] = {}
        self._s3 = boto3.client("s3", endpoint_url=system.stack["s3_endpoint"])
        self._bucket, self._prefix = system.stack["bucket"], keys.playback_prefix(keys.LIVE_PREFIX, playback_id)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for item in self._s3.list_objects_v2(Bucket=self._bucket, Prefix=self._prefix).get("Contents", []):
                decoded = keys.decode(item["Key"])
                if isinstance(decoded, keys.LiveSegment):
                    self.seen.setdefault(decoded.sequence, time.monotonic())
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


SEEK_PAGE = """<!doctype html><html><body>
<video id="v" muted playsinline crossorigin="anonymous" preload="auto" src="{mp4}"></video>
<canvas id="c" width="64" height="36"></canvas>
<script>
  const v = document.getElementById('v');
  window.seekResult = new Promise((resolve) => {{
    v.addEventListener('loadedmetadata', () => {{ v.currentTime = v.duration / 2; }}, {{once: true}});
    v.addEventListener('seeked', () => {{
      const c = document.getElementById('c').getContext('2d');
      c.drawImage(v, 0, 0, 64, 36);
      const px = c.getImageData(0, 0, 64, 36).data;
      let lit = 0; for (let i = 0; i < px.length; i += 4) if (px[i] + px[i + 1] + px[i + 2] > 60) lit++;
      resolve({{t: v.currentTime, d: v.duration, w: v.videoWidth, h: v.videoHeight, lit}});
    }}, {{once: true}});
    v.addEventListener('error', () => resolve({{error: v.error && v.error.message}}));
  }});
</script></body></html>"""

VOD_PAGE = """<!doctype html><html><body>
<video id="v" muted autoplay playsinline></video>
<script src="{cdn}/vendor/hls.js/hls.min.js"></script>
<script>
  const v = document.getElementById('v');
  window.hls = new Hls();
  window.hlsErrors = [];
  hls.on(Hls.Events.ERROR, (e, d) => {{ if (d.fatal) window.hlsErrors.push(d.details); }});
  hls.loadSource('{playlist}');
  hls.attachMedia(v);
  v.play().catch(() => {{}});
</script></body></html>"""


async def _chromium_checks(system: System, detail: dict[str, Any], shots: Path) -> tuple[dict, dict]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--autoplay-policy=no-user-gesture-required", "--disable-background-networking", "--no-first-run"],
        )
        page = await browser.new_page()
        await page.set_content(SEEK_PAGE.format(mp4=detail["mp4Url"]))
        seek = await asyncio.wait_for(page.evaluate("window.seekResult"), 30)
        await page.screenshot(path=str(shots / "chromium-vod-seek.png"))
        page = await browser.new_page()
        await page.set_content(VOD_PAGE.format(cdn=system.stack["cdn_url"], playlist=detail["playlistUrl"]))
        await page.wait_for_function("document.getElementById('v').currentTime > 2", timeout=20000)
        state = await page.evaluate(
            "() => ({t: document.getElementById('v').currentTime, errors: window.hlsErrors,"
            " w: document.getElementById('v').videoWidth})"
        )
        await browser.close()
    return seek, state


def _check_storyboard(detail: dict[str, Any]) -> None:
    board = detail["storyboard"]
    with urllib.request.urlopen(board["vttUrl"], timeout=10) as response:
        vtt = response.read().decode()
    assert vtt.startswith("WEBVTT")
    cues = re.findall(r"(\d+):(\d\d):(\d\d\.\d+) --> (\d+):(\d\d):(\d\d\.\d+)\s+(\S+)", vtt)
    assert cues, vtt[:500]
    seconds = [(int(h) * 3600 + int(m) * 60 + float(s), int(h2) * 3600 + int(m2) * 60 + float(s2), ref)
               for h, m, s, h2, m2, s2, ref in cues]  # fmt: skip
    assert seconds[0][0] == 0 and abs(seconds[-1][1] - detail["duration"]) < 0.01
    assert all(a[1] == b[0] for a, b in zip(seconds, seconds[1:], strict=False))  # no gaps
    base = board["vttUrl"].rsplit("/", 1)[0]
    for sprite in {ref.split("#")[0] for _, _, ref in seconds}:
        request = urllib.request.Request(f"{base}/{sprite}", method="HEAD")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200 and response.headers["Content-Type"] == "image/jpeg"
    assert all(re.fullmatch(r"[^#]+#xywh=\d+,\d+,\d+,\d+", ref) for _, _, ref in seconds)


async def test_a_broadcast_with_live_thumbnails_becomes_a_recording(system: System, tmp_path: Path) -> None:
    """20 s at 1 s GOP: a thumbnail message right after the first sampled segment lands, then every ≤ 10 s; after
    the end one recording: MP4 (H.264 + AAC, ±0.5 s, moov first) plays and seeks in Chromium, the VOD playlist
    plays in hls.js, the storyboard names tiles that exist and cover the duration."""
    playback_id, url = _channel(system, "VOD e2e")
    watch = SegmentWatch(system, playback_id)
    async with aiohttp.ClientSession() as http:
        lobby = await Viewer(http, f"{system.stack['ws_url']}?viewer=vod-lobby").open()
        await lobby.send(type="register", role="viewer")
        publisher = await asyncio.to_thread(subprocess.run, ffmpeg_args(url, 20), capture_output=True, timeout=60)
        assert publisher.returncode == 0, publisher.stderr[-2000:]
        await asyncio.sleep(1.5)  # the last sampled segment's thumbnail
        thumbnails = [(t, m) for t, m in lobby.received if m["type"] == "thumbnail" and m["streamId"] == playback_id]
        await lobby.close()
    watch.stop()
    assert thumbnails, [m for _, m in lobby.received][-10:]
    sequences = [int(re.search(r"live_(\d+)\.jpg", m["url"])[1]) for _, m in thumbnails]
    assert sequences[0] in (0, 5) and all(s % 5 == 0 for s in sequences), sequences
    # The ≤ 1 s freshness target is measured by `./dev bench recordings` (p50/p95); here, on a 2-core box busy
    # with the publisher and the whole stack, the behaviour: each thumbnail follows its segment within seconds.
    first_delay = thumbnails[0][0] - watch.seen[sequences[0]]
    assert first_delay <= 3.0, f"first thumbnail {first_delay:.2f} s after its segment landed"
    gaps = [b[0] - a[0] for a, b in zip(thumbnails, thumbnails[1:], strict=False)]
    assert len(thumbnails) >= 3 and max(gaps) <= 10.0, gaps
    with urllib.request.urlopen(thumbnails[-1][1]["url"], timeout=10) as response:
        assert response.headers["Content-Type"] == "image/jpeg" and len(response.read()) > 1000
    webp = thumbnails[-1][1]["url"].replace(".jpg", ".webp")
    with urllib.request.urlopen(webp, timeout=10) as response:
        assert response.headers["Content-Type"] == "image/webp"

    detail = _recording(system, playback_id)
    assert detail["stats"]["reconnects"] == 0 and detail["storyboard"]["tiles"] >= 19, detail
    assert detail["chat"] == {"session": detail["id"], "from": 0.0, "to": detail["duration"]}
    _check_mp4(detail, tmp_path, seconds=20.0, tolerance=0.5)
    seek, state = await _chromium_checks(system, detail, system.state_dir.parent)
    assert "error" not in seek and abs(seek["t"] - seek["d"] / 2) < 1.0 and seek["w"] == 640, seek
    assert seek["lit"] > 500, seek  # a decoded testsrc2 frame, not a black canvas
    assert state["errors"] == [] and state["w"] == 640, state
    _check_storyboard(detail)


def test_a_reconnect_inside_the_window_is_one_recording(system: System, tmp_path: Path) -> None:
    """Publisher SIGKILLed, back after 3 s (window 10 s): one recording of both parts, continuous, ±1 s."""
    playback_id, url = _channel(system, "VOD reconnect")
    first = subprocess.Popen(ffmpeg_args(url, 30), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(8)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    time.sleep(3)
    second = subprocess.run(ffmpeg_args(url, 6), capture_output=True, timeout=60)
    assert second.returncode == 0, second.stderr[-2000:]
    detail = _recording(system, playback_id)
    assert detail["stats"]["reconnects"] == 1, detail["stats"]
    published = detail["duration"]
    assert 12.0 <= published <= 15.5, published  # ~7-8 s stored before the kill + 6 s
    _check_mp4(detail, tmp_path, seconds=published, tolerance=1.0)
    playlist = hls.parse_media_playlist(urllib.request.urlopen(detail["playlistUrl"], timeout=10).read().decode())
    assert sum(s.discontinuity for s in playlist.segments) == 1 and playlist.ended


def _ingest_pid(system: System) -> int:
    for pid in descendants(system.process.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"ingest_node" in cmdline:
            return pid
    raise AssertionError("no ingest node process under up")


def test_a_killed_ingest_node_is_reaped_and_recorded(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The node SIGKILLed mid-stream writes nothing more; the reaper ends the session after the window and the
    recording is built from what S3 holds (missing at most the segment in flight)."""
    system = System(tmp_path_factory.mktemp("reaper") / "state", "--reconnect-window", WINDOW, *UP_FLAGS)
    try:
        playback_id, url = _channel(system, "VOD reaper")
        publisher = subprocess.Popen(ffmpeg_args(url, 60), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        s3 = boto3.client("s3", endpoint_url=system.stack["s3_endpoint"])
        prefix = keys.playback_prefix(keys.LIVE_PREFIX, playback_id)
        deadline = time.monotonic() + 30
        stored: list[str] = []
        while len(stored) < 8 and time.monotonic() < deadline:
            time.sleep(0.2)
            listed = s3.list_objects_v2(Bucket=system.stack["bucket"], Prefix=prefix).get("Contents", [])
            stored = [o["Key"] for o in listed if o["Key"].endswith(".m4s")]
        assert len(stored) >= 8, stored
        status, live = system.request("GET", f"/api/stream/{playback_id}", token=None)
        assert status == 200 and live["status"] == "live", live  # not reaped while its node is alive
        killed_at = time.monotonic()
        os.kill(_ingest_pid(system), signal.SIGKILL)
        publisher.wait(15)
        listed = s3.list_objects_v2(Bucket=system.stack["bucket"], Prefix=prefix).get("Contents", [])
        stored_segments = [o for o in listed if o["Key"].endswith(".m4s")]
        detail = _recording(system, playback_id, timeout=60)
        assert time.monotonic() - killed_at >= float(WINDOW)  # not before the reconnect window ran out
        status, stream = system.request("GET", f"/api/stream/{playback_id}", token=None)
        assert status == 200 and stream["status"] == "ended", stream
        _check_mp4(detail, tmp_path_factory.mktemp("reaped"), seconds=detail["duration"], tolerance=0.5)
        assert detail["duration"] >= len(stored_segments) - 1.5, (detail["duration"], len(stored_segments))
    finally:
        system.stop()
