"""The web app in headless Chromium against ``capturestream up``, as viewers and streamers use it.

Real publishers (ffmpeg and GStreamer's librtmp ``rtmpsink``, the RTMP family OBS uses), real pages served by the
CDN edge, the real WebSocket gateway. Each browser context is one person (its own ``localStorage``, so its own
viewer id). Screenshots of every page at 1440 px and 360 px go to ``test-artifacts/screenshots/`` (or
``$CAPTURESTREAM_SCREENSHOTS``): look at them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_ingest import ffmpeg_args, gst_publish
from tests.support.system import System

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg"),
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium"),
    pytest.mark.timeout(300),
]
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("CAPTURESTREAM_SCREENSHOTS", ROOT / "test-artifacts" / "screenshots"))
WIDE, NARROW = {"width": 1440, "height": 900}, {"width": 360, "height": 780}
CHROMIUM_ARGS = [
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-background-networking",
    "--no-first-run",
]
XSS = "<img src=x onerror=window.__pwned=1> & <b>bold</b>"
#: Resolves once the send button shows the rate-limit countdown ("Wait 2s").
COUNTDOWN_SEEN = """() => new Promise((resolve) => {
  const button = document.querySelector('.chat-form button');
  new MutationObserver(() => { if (button.textContent.startsWith('Wait')) resolve(true); })
    .observe(button, {childList: true, characterData: true, subtree: true});
})"""
#: Thirty messages as fast as a person mashing Enter could send them.
CHAT_FLOOD = """() => {
  const input = document.getElementById('chat-input');
  for (let n = 0; n < 30; n += 1) { input.value = `flood ${n}`; input.form.requestSubmit(); }
}"""


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = System(tmp_path_factory.mktemp("web") / "state", "--reconnect-window", "20")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


class Person:
    """One browser context (one person) with a page that records console errors and page crashes."""

    def __init__(self, context: Any, page: Any) -> None:
        self.context, self.page = context, page
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    @classmethod
    async def open(
        cls, browser: Any, url: str, *, token: str | None = None, viewport: dict = WIDE, latency_mode: str | None = None
    ) -> Person:
        context = await browser.new_context(viewport=viewport, color_scheme="dark")
        if token:
            await context.add_init_script(f"localStorage.setItem('capturestream.token', {json.dumps(token)})")
        if latency_mode:  # the watch page's remembered latency switch
            remember = f"localStorage.setItem('capturestream.latencyMode', {json.dumps(latency_mode)})"
            await context.add_init_script(remember)
        person = cls(context, await context.new_page())
        await person.page.goto(url)
        return person

    async def shot(self, folder: Path, name: str) -> None:
        await self.page.screenshot(path=str(folder / f"{name}.png"))

    async def video_time(self) -> float:
        return await self.page.evaluate("document.querySelector('video').currentTime")

    async def wait_playing(self, seconds: float = 2.0, timeout: float = 45) -> None:
        await self.page.wait_for_function(
            f"() => document.querySelector('video').currentTime > {seconds}", timeout=timeout * 1000
        )
        overlay = await self.page.evaluate("document.getElementById('overlay-title').textContent")
        assert overlay != "Playback stopped", overlay


class Publisher:
    """An ffmpeg RTMP publisher in the background (ends by itself after ``seconds``: a clean unpublish)."""

    def __init__(self, url: str, seconds: int) -> None:
        self.process = subprocess.Popen(ffmpeg_args(url, seconds), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait(self, timeout: float = 90) -> int:
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _channel(system: System, name: str) -> dict[str, Any]:
    status, created = system.request("POST", "/api/channels", {"name": name})
    assert status == 201, created
    return created


def _rtmp(created: dict[str, Any], key: str | None = None) -> str:
    return f"{created['ingest']['server']}/{key or created['streamKey']}"


async def _narrow_shots(browser: Any, system: System, urls: dict[str, str], folder: Path) -> dict[str, int]:
    """Screenshot each page at 360 px; return how far each one scrolls sideways (0 = it fits)."""
    overflow = {}
    for name, url in urls.items():
        person = await Person.open(browser, url, token=system.token, viewport=NARROW)
        await asyncio.sleep(3)
        await person.page.screenshot(path=str(folder / f"{name}-360.png"), full_page=True)
        overflow[name] = await person.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        await person.context.close()
    return overflow


async def test_live_watch_chat_ended_and_recording(system: System, browser: Any, shots: Path) -> None:
    """ffmpeg publishes; the grid shows the card; two viewers watch and chat; the end offers the VOD, which
    plays, previews the seek bar and replays the chat in sync; the library lists it."""
    web = system.stack["web_url"]
    created = _channel(system, "Web e2e: ffmpeg")
    playback_id = created["channel"]["playbackId"]
    publisher = Publisher(_rtmp(created), seconds=40)
    try:
        home = await Person.open(browser, f"{web}/")
        card = f".card[data-stream-id='{playback_id}']"
        await home.page.wait_for_selector(card, timeout=30000)
        await home.page.wait_for_selector(f"{card} .thumb img", timeout=30000)  # the live thumbnail arrived

        first = await Person.open(browser, f"{web}/watch.html?v={playback_id}")
        second = await Person.open(browser, f"{web}/watch.html?v={playback_id}")
        await first.wait_playing()
        await second.wait_playing()
        await first.page.wait_for_function(
            "() => document.getElementById('viewer-count').textContent.startsWith('2 ')", timeout=30000
        )
        latency = await first.page.evaluate("document.getElementById('latency').textContent")
        assert "behind live" in latency
        await home.page.wait_for_function(
            f"() => document.querySelector(\"{card} .badge.viewers\").textContent.startsWith('2 ')", timeout=30000
        )

        await first.page.fill("#chat-input", "hello from the first viewer")
        await first.page.press("#chat-input", "Enter")
        await second.page.wait_for_selector(".chat-log li:has-text('hello from the first viewer')", timeout=15000)
        await second.page.fill("#chat-input", XSS)
        await second.page.press("#chat-input", "Enter")
        shown = first.page.locator(".chat-log li .chat-text", has_text="onerror")
        await shown.wait_for(timeout=15000)
        assert await shown.text_content() == XSS  # rendered as text
        assert await first.page.locator(".chat-log img, .chat-log b").count() == 0
        assert await first.page.evaluate("window.__pwned") is None

        countdown = asyncio.create_task(second.page.evaluate(COUNTDOWN_SEEN))
        await second.page.evaluate(CHAT_FLOOD)  # the gateway refuses; the page counts down on the send button
        assert await asyncio.wait_for(countdown, 20)
        await second.shot(shots, "watch-chat-rate-limited-1440")

        await home.shot(shots, "home-live-1440")
        await first.shot(shots, "watch-live-1440")

        assert await asyncio.to_thread(publisher.wait) == 0
        ended = first.page.get_by_role("link", name="Watch the recording")
        await ended.wait_for(timeout=90000)
        assert await first.page.evaluate("document.getElementById('overlay-title').textContent") == (
            "This broadcast has ended"
        )
        await first.shot(shots, "watch-ended-1440")
        await ended.click()
        await first.page.wait_for_url("**/watch.html?r=*")
        await first.wait_playing(1.0)

        seek = first.page.locator("#seek")
        box = await seek.bounding_box()
        assert box is not None
        await first.page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
        preview = await first.page.evaluate(
            "(() => { const p = document.getElementById('scrub-preview');"
            " return {hidden: p.hidden, image: p.style.backgroundImage}; })()"
        )
        assert not preview["hidden"] and "storyboard_" in preview["image"], preview
        await first.shot(shots, "watch-vod-1440")

        await first.page.evaluate("document.querySelector('video').currentTime = 0")
        await first.page.wait_for_function(
            "() => document.querySelectorAll('.chat-log li').length === 0", timeout=10000
        )
        await first.page.evaluate("(v => { v.currentTime = v.duration; })(document.querySelector('video'))")
        await first.page.wait_for_selector(".chat-log li:has-text('hello from the first viewer')", timeout=15000)
        replayed = await first.page.locator(".chat-log li .chat-time").all_text_contents()
        assert all(":" in stamp for stamp in replayed)  # media time, the VOD's clock

        library = await Person.open(browser, f"{web}/library.html")
        await library.page.wait_for_selector(".card[data-recording-id]", timeout=15000)
        await library.shot(shots, "library-1440")
        for person in (home, first, second, library):
            assert not person.errors, person.errors
    finally:
        publisher.kill()


@pytest.mark.parametrize("mode", ["standard", "flv"])
async def test_a_dropped_publisher_reconnects_without_a_reload(system: System, browser: Any, mode: str) -> None:
    """SIGKILL the publisher: the page says "Reconnecting…" and keeps the last frame; a publisher that comes back
    inside the window continues the same broadcast and the same page plays again (in HTTP-FLV mode too, from the
    node's new GOP, without falling back to standard HLS)."""
    created = _channel(system, f"Web e2e: reconnect {mode}")
    watch = f"{system.stack['web_url']}/watch.html?v={created['channel']['playbackId']}"
    viewer = await Person.open(browser, watch, latency_mode=mode)
    publisher = Publisher(_rtmp(created), seconds=60)
    try:
        await viewer.wait_playing(2.0)
        publisher.kill()
        await viewer.page.wait_for_function(
            "() => !document.getElementById('overlay').hidden"
            " && document.getElementById('overlay-title').textContent === 'Reconnecting…'",
            timeout=30000,
        )
        paused_at = await viewer.video_time()
        publisher = Publisher(_rtmp(created), seconds=60)
        await viewer.page.wait_for_function(
            "t => document.querySelector('video').currentTime > t + 2 && document.getElementById('overlay').hidden",
            arg=paused_at,
            timeout=60000,
        )
        state = await _player(viewer)
        assert state["mode"] == mode and state["library"] == ("mpegts.js" if mode == "flv" else "hls.js"), state
        assert not viewer.errors, viewer.errors
    finally:
        publisher.kill()


async def test_gstreamer_rtmpsink_publisher_plays(system: System, browser: Any) -> None:
    """The librtmp family (what OBS uses) publishes; the watch page plays it."""
    if shutil.which("gst-launch-1.0") is None:
        pytest.skip("needs GStreamer")
    created = _channel(system, "Web e2e: rtmpsink")
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(done=gst_publish("rtmpsink", _rtmp(created), 25)))
    thread.start()
    try:
        watch = f"{system.stack['web_url']}/watch.html?v={created['channel']['playbackId']}"
        viewer = await Person.open(browser, watch)
        await viewer.wait_playing(2.0, timeout=40)
        assert not viewer.errors, viewer.errors
    finally:
        await asyncio.to_thread(thread.join, 60)
    assert result["done"].returncode == 0, result["done"].stderr[-2000:]


async def test_studio_key_reveal_copy_rotate_and_health(system: System, browser: Any, shots: Path) -> None:
    """The owner creates a channel in the studio, reveals and copies the key, rotates it (the old key is refused
    afterwards), and the health charts fill while streaming with the new key."""
    web = system.stack["web_url"]
    owner = await Person.open(browser, f"{web}/studio.html", token=system.token)
    await owner.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=web)
    await owner.page.fill("#create-name", "Studio e2e")
    await owner.page.click("#create-form button[type=submit]")
    await owner.page.wait_for_selector("#channel-tabs button[aria-pressed=true]:has-text('Studio e2e')")
    assert await owner.page.get_attribute("#stream-key", "type") == "password"
    await owner.page.click("#reveal-key")
    assert await owner.page.get_attribute("#stream-key", "type") == "text"
    old_key = await owner.page.input_value("#stream-key")
    assert len(old_key) >= 20
    await owner.page.click("#copy-key")
    assert await owner.page.evaluate("navigator.clipboard.readText()") == old_key

    await owner.page.click("#rotate-key")
    await owner.page.click("#confirm-ok")
    await owner.page.wait_for_function(
        "old => { const key = document.getElementById('stream-key').value; return key && key !== old; }", arg=old_key
    )
    new_key = await owner.page.input_value("#stream-key")
    server = await owner.page.input_value("#obs-server")
    refused = await asyncio.to_thread(
        subprocess.run, ffmpeg_args(f"{server}/{old_key}", 3), capture_output=True, timeout=30
    )
    assert refused.returncode != 0  # the old key is refused

    publisher = Publisher(f"{server}/{new_key}", seconds=30)
    try:
        await owner.page.wait_for_function(
            "() => document.getElementById('live-status').textContent.startsWith('Live')", timeout=30000
        )
        await owner.page.wait_for_function(
            "() => document.getElementById('value-bitrate').textContent.includes('Kbps')", timeout=40000
        )
        points = await owner.page.evaluate("document.querySelectorAll('#chart-bitrate canvas').length")
        assert points >= 1
        await owner.page.screenshot(path=str(shots / "studio-live-1440.png"), full_page=True)
        assert not owner.errors, owner.errors
    finally:
        publisher.kill()


async def test_browser_go_live_plays_and_ends_as_a_recording(system: System, browser: Any, shots: Path) -> None:
    """Chromium's fake camera goes live from the studio; another viewer plays it; stopping ends it as a VOD."""
    web = system.stack["web_url"]
    created = _channel(system, "Browser go-live")
    playback_id = created["channel"]["playbackId"]
    owner = await Person.open(browser, f"{web}/studio.html", token=system.token)
    await owner.page.click("#channel-tabs button:has-text('Browser go-live')")
    await owner.page.fill("#golive-key", created["streamKey"])
    await owner.page.select_option("#golive-quality", "854x480x30x1200")
    await owner.page.click("#golive-start")
    await owner.page.wait_for_function(
        "() => document.getElementById('golive-status').textContent.startsWith('LIVE')", timeout=30000
    )
    viewer = await Person.open(browser, f"{web}/watch.html?v={playback_id}")
    await viewer.wait_playing(2.0, timeout=60)
    await owner.page.screenshot(path=str(shots / "studio-golive-1440.png"), full_page=True)
    await viewer.shot(shots, "watch-golive-1440")
    await owner.page.click("#golive-stop")
    await viewer.page.get_by_role("link", name="Watch the recording").wait_for(timeout=90000)
    assert not owner.errors and not viewer.errors, (owner.errors, viewer.errors)


async def test_pages_at_360_px(system: System, browser: Any, shots: Path) -> None:
    """Every page renders at phone width without horizontal scrolling."""
    web = system.stack["web_url"]
    status, page = system.request("GET", "/api/recordings?limit=1", token=None)
    assert status == 200
    urls = {"home": f"{web}/", "library": f"{web}/library.html", "studio": f"{web}/studio.html"}
    if page["items"]:
        urls["watch-vod"] = f"{web}/watch.html?r={page['items'][0]['id']}"
    overflow = await _narrow_shots(browser, system, urls, shots)
    assert all(pixels <= 0 for pixels in overflow.values()), overflow


def test_web_origin_headers_and_private_prefixes(system: System) -> None:
    """Pages carry nosniff and a CSP; session manifests are not served; moto refuses a foreign origin."""
    web = system.stack["web_url"]
    with urllib.request.urlopen(f"{web}/watch.html", timeout=10) as response:
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert system.stack["ws_url"].rsplit("/", 1)[0] in policy
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{web}/sessions/anything/started.json", timeout=10)
    assert missing.value.code == 404
    reset = urllib.request.Request(
        system.stack["s3_endpoint"] + "/moto-api/reset", method="POST", headers={"Origin": "http://evil.example"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(reset, timeout=10)
    assert refused.value.code == 403
    status, _ = system.request("GET", "/api/streams", token=None)
    assert status == 200  # the stack was not reset


#: The page's player right now: which library plays what, frames decoded, what the switch and the pill show.
PLAYER_STATE = """() => {
  const v = document.querySelector('video'), hls = window.capturestreamPlayer, flv = window.capturestreamFlv;
  const q = v.getVideoPlaybackQuality();
  const details = hls && hls.levels && hls.levels[Math.max(hls.currentLevel, 0)]
    ? hls.levels[Math.max(hls.currentLevel, 0)].details : null;
  const checked = document.querySelector('#latency-mode input:checked');
  return {
    library: flv ? 'mpegts.js' : hls ? 'hls.js' : null, url: hls ? hls.url : null,
    lowLatencyMode: hls ? hls.config.lowLatencyMode : null,
    parts: details && details.partList ? details.partList.length : 0,
    currentTime: v.currentTime, frames: q.totalVideoFrames, width: v.videoWidth,
    mode: checked ? checked.value : null, stored: localStorage.getItem('capturestream.latencyMode'),
    pill: document.getElementById('latency').textContent, toast: (document.getElementById('toast') || {}).textContent,
  };
}"""
#: How far the newest frame shown is behind the capture clock burned into it (bench/_clock.py), median of the last 30.
G2G_MEDIAN = """() => {
  const s = (window.__g2g || {samples: []}).samples.slice(-30).map((x) => x[2]).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] / 1000 : null;
}"""


class ClockPublisher(Publisher):
    """The glass-to-glass bench's publisher: 720p30 with the wall clock burned into every frame (bench/_clock.py)."""

    def __init__(self, url: str, seconds: int, folder: Path) -> None:
        from bench import _clock

        script = folder / "clock.vf"
        script.write_text(_clock.filter_script(30))
        args = [*_clock.encoder_args(script), "-t", str(seconds), *_clock.rtmp_output(url)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def _player(person: Person) -> dict[str, Any]:
    return await person.page.evaluate(PLAYER_STATE)


async def _advances(person: Person, seconds: float = 1.5) -> bool:
    before = await person.video_time()
    await asyncio.sleep(seconds)
    return await person.video_time() > before + seconds / 2


async def test_low_latency_switch_flv_then_ll_hls_then_standard(
    system: System, browser: Any, shots: Path, tmp_path: Path
) -> None:
    """A viewer who chose "Ultra-low" plays the node's HTTP-FLV with mpegts.js under a second behind the capture
    clock; "Low" plays the node's LL-HLS with hls.js lowLatencyMode (parts, blocking reloads); "Standard" goes back
    to the CDN's playlist. The choice is remembered; the switch fits a 360 px screen."""
    from bench import _clock

    web = system.stack["web_url"]
    created = _channel(system, "Web e2e: low latency")
    playback_id = created["channel"]["playbackId"]
    publisher = ClockPublisher(_rtmp(created), 75, tmp_path)
    try:
        context = await browser.new_context(viewport=WIDE, color_scheme="dark")
        await context.add_init_script("localStorage.setItem('capturestream.latencyMode', 'flv')")
        await context.add_init_script(_clock.READER_JS)
        viewer = Person(context, await context.new_page())
        requests: list[str] = []
        viewer.page.on("request", lambda request: requests.append(request.url))
        await viewer.page.goto(f"{web}/watch.html?v={playback_id}")
        await viewer.wait_playing(2.0, timeout=45)
        state = await _player(viewer)
        assert state["library"] == "mpegts.js" and state["mode"] == "flv", f"toast {state['toast']!r}; {state}"
        assert state["frames"] > 30 and state["width"] == 1280, state
        assert any(url.endswith(f"/live/{playback_id}.flv") for url in requests)
        assert any("vendor/mpegts.js/mpegts.js" in url for url in requests)  # loaded on demand
        await asyncio.sleep(4)  # latency chasing settles
        assert await _advances(viewer)
        flv_g2g = await viewer.page.evaluate(G2G_MEDIAN)
        assert flv_g2g is not None and flv_g2g < 1.0, flv_g2g
        assert "behind live" in (await _player(viewer))["pill"]
        await viewer.shot(shots, "watch-live-ultra-low-1440")

        await viewer.page.get_by_role("radio", name="Low LL-HLS").click()
        await viewer.page.wait_for_function(
            "() => window.capturestreamPlayer && document.querySelector('video').currentTime > 1", timeout=30000
        )
        await asyncio.sleep(3)
        state = await _player(viewer)
        assert state["library"] == "hls.js" and state["mode"] == "ll-hls", f"toast {state['toast']!r}; {state}"
        assert state["lowLatencyMode"], state
        assert state["url"].endswith(f"/live/{playback_id}/ll.m3u8") and state["parts"] > 0, state
        assert state["stored"] == "ll-hls"
        assert any("_HLS_msn=" in url for url in requests), "no blocking playlist reload"
        assert await _advances(viewer)
        ll_g2g = await viewer.page.evaluate(G2G_MEDIAN)
        assert ll_g2g is not None and ll_g2g < 2.5, ll_g2g

        await viewer.page.get_by_role("radio", name="Standard").click()
        await viewer.page.wait_for_function(
            "() => window.capturestreamPlayer && !window.capturestreamPlayer.url.includes('/ll.m3u8')"
            " && document.querySelector('video').currentTime > 1",
            timeout=30000,
        )
        state = await _player(viewer)
        assert state["url"].startswith(system.stack["cdn_url"]) and state["stored"] == "standard", state
        assert await _advances(viewer)
        await viewer.page.get_by_role("radio", name="Standard").focus()
        await viewer.page.keyboard.press("ArrowRight")  # radios: the arrow keys move the choice
        assert (await _player(viewer))["mode"] == "ll-hls"
        assert not viewer.errors, viewer.errors

        await viewer.page.set_viewport_size(NARROW)
        await asyncio.sleep(1)
        await viewer.page.screenshot(path=str(shots / "watch-live-latency-switch-360.png"), full_page=True)
        assert await viewer.page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
        await context.close()
    finally:
        publisher.kill()


async def test_low_latency_falls_back_to_standard_when_the_node_fails(system: System, browser: Any) -> None:
    """The node's HTTP-FLV endpoint refuses (here: the request is aborted): the page says so in a toast and plays
    the standard HLS from the CDN; the viewer's choice stays remembered for next time."""
    web = system.stack["web_url"]
    created = _channel(system, "Web e2e: fallback")
    publisher = Publisher(_rtmp(created), seconds=40)
    try:
        context = await browser.new_context(viewport=WIDE, color_scheme="dark")
        await context.add_init_script("localStorage.setItem('capturestream.latencyMode', 'flv')")
        await context.route("**/live/*.flv", lambda route: route.abort())
        viewer = Person(context, await context.new_page())
        await viewer.page.goto(f"{web}/watch.html?v={created['channel']['playbackId']}")
        await viewer.wait_playing(2.0, timeout=45)
        state = await _player(viewer)
        assert state["library"] == "hls.js" and state["mode"] == "standard", state
        assert state["url"].startswith(system.stack["cdn_url"]) and state["stored"] == "flv", state
        assert "not available" in state["toast"], state
        assert not viewer.errors, viewer.errors
        await context.close()
    finally:
        publisher.kill()
