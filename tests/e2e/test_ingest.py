"""End to end: real RTMP publishers (ffmpeg, GStreamer rtmpsink/librtmp, rtmp2sink) into ``capturestream up``.

Each publisher streams ~10 s of 640x360 H.264 (1 s GOP, B-frames for ffmpeg) + AAC; the test then checks what a
viewer gets from S3 through the CDN edge: init + segments + a playlist ending in ENDLIST, decodable by ffmpeg with
no error, every segment starting on a keyframe (box-level check), durations matching EXTINF, and the headers.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime

import boto3
import pytest

from capturestream import keys, table
from mediakit import bmff, hls
from tests.support.system import System

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not shutil.which("ffmpeg") or not shutil.which("gst-launch-1.0"), reason="needs ffmpeg+gst"),
]

SECONDS = 10
FPS = 30
WINDOW = 8  # the reconnect window of this module's system


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = System(tmp_path_factory.mktemp("ingest") / "state", "--reconnect-window", str(WINDOW))
    yield running
    running.stop()


def _channel(system: System, name: str) -> dict:
    status, created = system.request("POST", "/api/channels", {"name": name})
    assert status == 201, created
    return created


def ffmpeg_args(url: str, seconds: int = SECONDS) -> list[str]:
    """An OBS-like ffmpeg publisher: H.264 High with B-frames, 1 s GOP, AAC 48 kHz, real-time paced."""
    return [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate={FPS}",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-bf", "2",
        "-g", str(FPS), "-keyint_min", str(FPS), "-sc_threshold", "0", "-b:v", "800k",
        "-c:a", "aac", "-b:a", "128k", "-f", "flv", url,
    ]  # fmt: skip


def ffmpeg_publish(url: str, seconds: int = SECONDS) -> subprocess.CompletedProcess:
    return subprocess.run(ffmpeg_args(url, seconds), capture_output=True, text=True, timeout=seconds + 30)


def gst_publish(sink: str, url: str, seconds: int = SECONDS) -> subprocess.CompletedProcess:
    location = f"{url} live=1" if sink == "rtmpsink" else url
    frames, audio_buffers = seconds * FPS, seconds * 48000 // 1024
    pipeline = (
        f"videotestsrc is-live=true num-buffers={frames} pattern=smpte ! "
        f"video/x-raw,width=640,height=360,framerate={FPS}/1 ! "
        f"x264enc tune=zerolatency speed-preset=veryfast key-int-max={FPS} bitrate=800 ! h264parse ! queue ! "
        f'flvmux name=mux streamable=true ! {sink} location="{location}" '
        f"audiotestsrc is-live=true num-buffers={audio_buffers} samplesperbuffer=1024 ! "
        "audio/x-raw,rate=48000,channels=2 ! audioconvert ! avenc_aac ! aacparse ! queue ! mux."
    )
    return subprocess.run(
        ["gst-launch-1.0", "-q", "-e", *pipeline.split(" ")], capture_output=True, text=True, timeout=seconds + 30
    )


def _session_objects(system: System, playback_id: str, timeout: float = 15) -> tuple[str, dict[str, bytes]]:
    """Wait for the session's final playlist (ENDLIST); return its session id and every object."""
    s3 = boto3.client("s3", endpoint_url=system.stack["s3_endpoint"])
    bucket = system.stack["bucket"]
    prefix = keys.playback_prefix(keys.LIVE_PREFIX, playback_id)
    deadline = time.monotonic() + timeout
    while True:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        playlists = [o["Key"] for o in listed if o["Key"].endswith(".m3u8")]
        if playlists:
            text = s3.get_object(Bucket=bucket, Key=playlists[0])["Body"].read().decode()
            if "#EXT-X-ENDLIST" in text or time.monotonic() > deadline:
                break
        assert time.monotonic() < deadline, f"no final playlist under {prefix}"
        time.sleep(0.2)
    session_id = keys.decode(playlists[0]).session_id
    return session_id, {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def _runs(segment: bytes) -> list[bmff.TrackRun]:
    return [run for fragment in bmff.read_fragments(segment) for run in fragment.runs]


def _video_seconds(segment: bytes, video: bmff.TrackInfo) -> float:
    return sum(r.duration for r in _runs(segment) if r.track_id == video.track_id) / video.timescale


def _check_stream(
    system: System, playback_id: str, *, expect_seconds: float, exact_gop: float | None, fps: int = FPS
) -> str:
    """Everything a viewer relies on; ``exact_gop``: the publisher's exact GOP in seconds (None: not exact)."""
    session_id, objects = _session_objects(system, playback_id)
    playlist_key = keys.LivePlaylist(playback_id=playback_id, session_id=session_id).key
    playlist_url = f"{system.stack['cdn_url']}/{playlist_key}"
    with urllib.request.urlopen(playlist_url, timeout=10) as response:
        text = response.read().decode()
        assert response.headers["Content-Type"] == "application/vnd.apple.mpegurl"
        assert "no-cache" in response.headers["Cache-Control"]
    assert text.startswith("#EXTM3U") and "#EXT-X-ENDLIST" in text and "#EXT-X-PROGRAM-DATE-TIME" in text
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", playlist_url, "-f", "null", "-"], capture_output=True, text=True, timeout=60
    )
    assert decoded.returncode == 0 and decoded.stderr.strip() == "", decoded.stderr[-2000:]

    init_key = keys.LiveInit(playback_id=playback_id, session_id=session_id).key
    tracks = bmff.read_init(objects[init_key])
    video = next(t for t in tracks.values() if t.handler == "vide")
    assert any(t.handler == "soun" for t in tracks.values())
    listed = hls.parse_media_playlist(text).segments
    extinf = [entry.duration for entry in listed]
    segment_uris = [entry.uri for entry in listed]
    assert len(segment_uris) == len(extinf) >= 3  # a sliding live window: the last segments of the broadcast
    for uri, duration in zip(segment_uris, extinf, strict=True):
        segment_key = playlist_key.rsplit("/", 1)[0] + "/" + uri
        actual = _video_seconds(objects[segment_key], video)
        assert abs(actual - duration) <= 1.0 / fps + 1e-3, (uri, actual, duration)
    total = 0.0
    segments = sorted(k for k in objects if isinstance(keys.decode(k), keys.LiveSegment))
    for segment_key in segments:  # every segment of the broadcast, in order
        video_runs = [r for r in _runs(objects[segment_key]) if r.track_id == video.track_id]
        flags = [f for r in video_runs for f in r.flags]
        assert bmff.is_sync(flags[0]), f"{segment_key} does not start on a keyframe"
        # cut at the first keyframe once the 1 s target is reached: no later keyframe past the target inside
        starts = list(itertools.accumulate([d for r in video_runs for d in r.durations], initial=0))
        late = [starts[i] / video.timescale for i, f in enumerate(flags) if i and bmff.is_sync(f)]
        assert all(t < 1.0 + 1.0 / fps for t in late), (segment_key, late)
        total += _video_seconds(objects[segment_key], video)
    assert abs(total - expect_seconds) < 1.5, total
    durations = [round(_video_seconds(objects[k], video), 3) for k in segments]
    assert all(d >= 1.0 - 1.0 / fps for d in durations[:-1]), durations
    if exact_gop:  # exact timestamps: 1 s GOP → 1.000 s segments; a longer GOP forces longer ones
        assert all(abs(d - max(exact_gop, 1.0)) < 0.01 for d in durations[:-1]), durations
    with urllib.request.urlopen(f"{system.stack['cdn_url']}/{segment_key}", timeout=10) as response:
        assert response.headers["Content-Type"] == "video/mp4" and "immutable" in response.headers["Cache-Control"]
    return session_id


@pytest.mark.parametrize("publisher", ["ffmpeg", "rtmpsink", "rtmp2sink"])
def test_publisher_to_hls(system: System, publisher: str) -> None:
    """Each RTMP client family publishes 10 s; S3 gets a valid CMAF HLS broadcast and session manifests."""
    created = _channel(system, f"{publisher} channel")
    url = f"{created['ingest']['server']}/{created['streamKey']}"
    result = ffmpeg_publish(url) if publisher == "ffmpeg" else gst_publish(publisher, url)
    assert result.returncode == 0, result.stderr[-2000:]
    playback_id = created["channel"]["playbackId"]
    session_id = _check_stream(
        system, playback_id, expect_seconds=SECONDS, exact_gop=1.0 if publisher == "ffmpeg" else None
    )
    s3 = boto3.client("s3", endpoint_url=system.stack["s3_endpoint"])
    for kind in ("started", "ended"):
        key = keys.SessionManifest(playback_id=playback_id, session_id=session_id, kind=kind).key
        body = json.loads(s3.get_object(Bucket=system.stack["bucket"], Key=key)["Body"].read())
        assert body["session_id"] == session_id and body["media"]["width"] == 640
        assert body["media"]["video_codec"].startswith("avc1.") and body["media"]["audio_codec"] == "mp4a.40.2"
    media = body["media"]  # ended.json: what was measured over the broadcast
    assert abs(media["frame_rate"] - FPS) < 2 and media["bitrate_kbps"] > 100
    if publisher == "ffmpeg":  # GStreamer's x264enc also inserts keyframes on scene cuts: no exact GOP there
        assert media["keyframe_interval"] == pytest.approx(1.0, abs=0.05)
    else:
        assert 0 < media["keyframe_interval"] <= 1.0


def test_1080p60_6mbps_bframes_2s_gop(system: System, tmp_path) -> None:
    """A heavy OBS-like stream: 1080p60, 6 Mbps CBR, B-frames, 2 s GOP → 2 s segments, all decodable."""
    fixture = tmp_path / "1080p60.flv"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=60",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "8", "-c:v", "libx264",
         "-preset", "superfast", "-profile:v", "high", "-bf", "3", "-g", "120", "-keyint_min", "120",
         "-sc_threshold", "0", "-b:v", "6M", "-maxrate", "6M", "-bufsize", "6M", "-x264-params", "nal-hrd=cbr",
         "-c:a", "aac", "-b:a", "160k", "-f", "flv", str(fixture)],
        check=True, timeout=180,
    )  # fmt: skip
    created = _channel(system, "1080p60")
    url = f"{created['ingest']['server']}/{created['streamKey']}"
    result = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(fixture), "-c", "copy", "-f", "flv", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    _check_stream(system, created["channel"]["playbackId"], expect_seconds=8, exact_gop=2.0, fps=60)


def test_wrong_key_is_rejected_and_never_logged(system: System) -> None:
    created = _channel(system, "victim")
    wrong = created["streamKey"][:-4] + "AAAA"
    result = ffmpeg_publish(f"{created['ingest']['server']}/{wrong}", seconds=3)
    assert result.returncode != 0
    s3 = boto3.client("s3", endpoint_url=system.stack["s3_endpoint"])
    prefix = keys.playback_prefix(keys.LIVE_PREFIX, created["channel"]["playbackId"])
    assert not s3.list_objects_v2(Bucket=system.stack["bucket"], Prefix=prefix).get("Contents")
    logs = "".join(p.read_text() for p in (system.state_dir / "logs").glob("*.log"))
    assert wrong not in logs and created["streamKey"] not in logs


PLAYER_PAGE = """<!doctype html><html><body>
<video id="v" muted autoplay playsinline width="640" height="360"></video>
<script src="{cdn}/vendor/hls.js/hls.min.js"></script>
<script>
  const v = document.getElementById('v');
  window.hls = new Hls({{lowLatencyMode: true, liveSyncDuration: 1, liveMaxLatencyDuration: 3,
                         maxLiveSyncPlaybackRate: 1.5}});
  window.hlsErrors = [];
  hls.on(Hls.Events.ERROR, (e, d) => {{ if (d.fatal) window.hlsErrors.push(d.details); }});
  hls.loadSource('{playlist}');
  hls.attachMedia(v);
  v.play().catch(() => {{}});
</script></body></html>"""


STATE_JS = (
    "() => { const v = document.getElementById('v'); const q = v.getVideoPlaybackQuality();"
    " return {t: v.currentTime, w: v.videoWidth, h: v.videoHeight, frames: q.totalVideoFrames,"
    " ready: v.readyState, errors: window.hlsErrors, latency: window.hls.latency}; }"
)


async def _wait_for_live_playlist(system: System, playback_id: str, timeout: float = 15) -> str:
    import asyncio

    s3 = boto3.client("s3", endpoint_url=system.stack["s3_endpoint"])
    prefix = keys.playback_prefix(keys.LIVE_PREFIX, playback_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = s3.list_objects_v2(Bucket=system.stack["bucket"], Prefix=prefix).get("Contents", [])
        playlists = [o["Key"] for o in listed if o["Key"].endswith(".m3u8")]
        segments = [o for o in listed if o["Key"].endswith(".m4s")]
        if playlists and len(segments) >= 2:
            return f"{system.stack['cdn_url']}/{playlists[0]}"
        await asyncio.sleep(0.2)
    raise AssertionError("the live playlist never appeared")


async def test_chromium_plays_the_live_stream(system: System) -> None:
    """hls.js in headless Chromium plays the stream live from the CDN edge while ffmpeg publishes."""
    import asyncio

    from playwright.async_api import async_playwright

    created = _channel(system, "chromium channel")
    url = f"{created['ingest']['server']}/{created['streamKey']}"
    publisher = await asyncio.to_thread(
        subprocess.Popen,
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=640x360:rate={FPS}",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "20",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-g",
            str(FPS),
            "-keyint_min",
            str(FPS),
            "-sc_threshold",
            "0",
            "-b:v",
            "800k",
            "-c:a",
            "aac",
            "-f",
            "flv",
            url,
        ],
    )
    try:
        playlist = await _wait_for_live_playlist(system, created["channel"]["playbackId"])
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path="/usr/bin/chromium",
                headless=True,
                args=[
                    "--autoplay-policy=no-user-gesture-required",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                ],
            )
            page = await browser.new_page()
            await page.set_content(PLAYER_PAGE.format(cdn=system.stack["cdn_url"], playlist=playlist))
            await page.wait_for_function("window.hls && document.getElementById('v').currentTime > 0", timeout=20000)
            before = await page.evaluate(STATE_JS)
            await asyncio.sleep(3)
            state = await page.evaluate(STATE_JS)
            await page.screenshot(path=str(system.state_dir.parent / "chromium-live.png"))
            await browser.close()
        assert state["w"] == 640 and state["h"] == 360 and state["ready"] >= 3
        assert state["t"] - before["t"] > 2.0, (before, state)  # it plays in real time, not stuck on one frame
        assert state["frames"] - before["frames"] > 2 * FPS, (before, state)
        assert state["errors"] == []
    finally:
        publisher.terminate()
        await asyncio.to_thread(publisher.wait, 10)


def test_second_publisher_takes_over_the_same_broadcast(system: System) -> None:
    """OBS reconnecting while its old connection is half-open: the new publisher takes over at once, the old one
    is dropped, and the output continues as ONE session with a discontinuity."""
    created = _channel(system, "takeover")
    url = f"{created['ingest']['server']}/{created['streamKey']}"
    # same encoder settings on both sides, like one OBS reconnecting (ffmpeg's HLS reader, unlike hls.js, does
    # not switch to a new EXT-X-MAP, so a changed init would be this checker's limit, not the stream's)
    first = subprocess.Popen(ffmpeg_args(url, 30), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)
        second = ffmpeg_publish(url, seconds=3)
        assert second.returncode == 0, second.stderr[-2000:]
        assert first.wait(timeout=10) != 0, "the first publisher should have been disconnected"
    finally:
        first.kill()
        first.wait()
    playback_id = created["channel"]["playbackId"]
    session_id, objects = _session_objects(system, playback_id)
    sessions = {keys.decode(k).session_id for k in objects}
    assert sessions == {session_id}, "one broadcast, not two"
    playlist = objects[keys.LivePlaylist(playback_id=playback_id, session_id=session_id).key].decode()
    assert "#EXT-X-DISCONTINUITY" in playlist and "#EXT-X-ENDLIST" in playlist
    decoded = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            f"{system.stack['cdn_url']}/{keys.LivePlaylist(playback_id=playback_id, session_id=session_id).key}",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert decoded.returncode == 0 and not decoded.stderr.strip(), decoded.stderr[-2000:]


def _wait_for(system: System, prefix: str, suffix: str, count: int = 1, timeout: float = 20) -> list[str]:
    """Keys under ``prefix`` ending with ``suffix`` once there are at least ``count`` of them."""
    s3 = boto3.client("s3", endpoint_url=system.stack["s3_endpoint"])
    deadline = time.monotonic() + timeout
    while True:
        listed = s3.list_objects_v2(Bucket=system.stack["bucket"], Prefix=prefix).get("Contents", [])
        found = sorted(o["Key"] for o in listed if o["Key"].endswith(suffix))
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"fewer than {count} {suffix} under {prefix}: {found}"
        time.sleep(0.1)


def _manifest(system: System, key: str) -> dict:
    s3 = boto3.client("s3", endpoint_url=system.stack["s3_endpoint"])
    return json.loads(s3.get_object(Bucket=system.stack["bucket"], Key=key)["Body"].read())


def _killed_after(url: str, system: System, prefix: str, segments: int) -> float:
    """Publish until ``segments`` segments are stored, then SIGKILL the publisher (a drop, no unpublish);
    returns the wall-clock time of the kill."""
    publisher = subprocess.Popen(ffmpeg_args(url, 60), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(system, prefix, ".m4s", segments)
    finally:
        publisher.kill()
        publisher.wait()
    return time.time()


def test_drop_reconnect_clean_stop_and_window(system: System) -> None:
    """A dropped publisher (SIGKILL) back after 5 s continues the same broadcast with one discontinuity; a clean
    stop (ffmpeg's FCUnpublish/deleteStream at its end) ends it within 2 s; a drop with no reconnect ends it after
    the window. "When the node decided" is the ``ended_at`` of ended.json, against the publisher's exit."""
    created = _channel(system, "reconnects")
    url = f"{created['ingest']['server']}/{created['streamKey']}"
    playback_id = created["channel"]["playbackId"]
    live = keys.playback_prefix(keys.LIVE_PREFIX, playback_id)
    sessions = keys.playback_prefix(keys.SESSIONS_PREFIX, playback_id)

    _killed_after(url, system, live, 3)
    _wait_for(system, sessions, "reconnecting.json")  # viewers are told at once
    time.sleep(5)
    assert ffmpeg_publish(url, seconds=4).returncode == 0  # back after 5 s, then a clean stop
    stopped = time.time()
    session_id, objects = _session_objects(system, playback_id)
    assert {keys.decode(k).session_id for k in objects} == {session_id}, "one broadcast"
    playlist = objects[keys.LivePlaylist(playback_id=playback_id, session_id=session_id).key].decode()
    assert playlist.count("#EXT-X-DISCONTINUITY\n") == 1 and "#EXT-X-ENDLIST" in playlist
    ended = _manifest(system, _wait_for(system, sessions, "ended.json")[0])
    assert ended["reason"] == "publisher_unpublished"
    assert datetime.fromisoformat(ended["ended_at"]).timestamp() - stopped < 2.0

    killed = _killed_after(url, system, live, 1 + len([k for k in objects if k.endswith(".m4s")]))
    second = _wait_for(system, sessions, "ended.json", 2, timeout=WINDOW + 20)
    ended = _manifest(system, next(k for k in second if keys.decode(k).session_id != session_id))
    waited = datetime.fromisoformat(ended["ended_at"]).timestamp() - killed
    assert ended["reason"] == "publisher_left" and WINDOW - 0.5 < waited < WINDOW + 5, waited


def test_shutdown_ends_live_broadcasts_through_the_catalog(system: System) -> None:
    """Stopping `up` mid-stream: the ingest node ends the broadcast first, and its ended.json still reaches the
    catalog before the pipeline stops (the saved table shows the session ended). Runs last: it stops the system."""
    created = _channel(system, "shutdown")
    url = f"{created['ingest']['server']}/{created['streamKey']}"
    publisher = subprocess.Popen(ffmpeg_args(url, 30), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        s3 = boto3.client("s3", endpoint_url=system.stack["s3_endpoint"])
        prefix = keys.playback_prefix(keys.SESSIONS_PREFIX, created["channel"]["playbackId"])
        deadline = time.monotonic() + 15
        while not s3.list_objects_v2(Bucket=system.stack["bucket"], Prefix=prefix).get("Contents"):
            assert time.monotonic() < deadline, "the broadcast never started"
            time.sleep(0.2)
        assert system.stop() == 0
    finally:
        publisher.kill()
        publisher.wait()
    items = json.loads((system.state_dir / "table.json").read_text())["items"]
    sessions = [table.from_item(i) for i in items if i["pk"]["S"].startswith(table.SESSION_PREFIX)]
    mine = [s for s in sessions if s["playback_id"] == created["channel"]["playbackId"]]
    assert mine and mine[0]["status"] == "ended" and mine[0]["end_reason"] == "node_shutdown"
