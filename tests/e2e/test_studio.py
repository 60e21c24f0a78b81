"""What the studio page reads, end to end inside one ``capturestream up``: live health from the ingest node
(ffmpeg → node → ``health.json`` in S3 → EventBridge → catalog → session item → REST), a rename that the live
card shows at once and the end of the broadcast does not undo, and the owner's list of past broadcasts."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.test_ingest import ffmpeg_args
from tests.support.system import System

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg"),
]

SECONDS = 24


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = System(tmp_path_factory.mktemp("studio") / "state", "--reconnect-window", "0")
    yield running
    running.stop()


def _until(system: System, path: str, done: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
    deadline, body = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        status, body = system.request("GET", path)
        if status == 200 and done(body):
            return body
        time.sleep(0.25)
    raise AssertionError(f"GET {path} never got there in {timeout} s; last: {body}")


def test_health_rename_and_past_broadcasts(system: System) -> None:
    status, created = system.request("POST", "/api/channels", {"name": "Studio e2e"})
    assert status == 201, created
    channel_id, playback_id = created["channel"]["channelId"], created["channel"]["playbackId"]
    url = f"{created['ingest']['server']}/{created['streamKey']}"
    publisher = subprocess.Popen(ffmpeg_args(url, SECONDS), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # The node samples every 5 s and stores health.json with its first sample, then every 10 s: a series
        # of three about 16 s after going live.
        health = _until(system, f"/api/streams/{playback_id}/health", lambda h: len(h.get("samples", [])) >= 2, 22)
        assert health["status"] == "live"
        for sample in health["samples"]:
            assert 25 <= sample["frameRate"] <= 35, sample  # 30 fps
            assert 0.9 <= sample["keyframeInterval"] <= 1.1, sample  # ffmpeg_args: 1 s GOP
            assert 300 <= sample["bitrateKbps"] <= 3000, sample  # 800k video + 128k audio
        assert health["media"]["videoCodec"].startswith("avc1.") and health["media"]["width"] == 640

        status, renamed = system.request("PATCH", f"/api/channels/{channel_id}", {"name": "Renamed live"})
        assert (status, renamed["name"]) == (200, "Renamed live")
        status, card = system.request("GET", f"/api/stream/{playback_id}", token=None)
        assert (status, card["title"]) == (200, "Renamed live")
        assert publisher.wait(timeout=SECONDS + 30) == 0, publisher.stderr.read().decode()[-2000:]
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()

    ended = _until(system, f"/api/stream/{playback_id}", lambda s: s.get("status") == "ended", 20)
    assert ended["title"] == "Renamed live"  # ended.json carried the old name; the rename stays
    final = _until(system, f"/api/streams/{playback_id}/health", lambda h: h["status"] == "ended", 10)
    assert len(final["samples"]) >= len(health["samples"])  # the last report landed before ended.json

    past = _until(system, f"/api/channels/{channel_id}/recordings", lambda page: bool(page.get("items")), 30)
    (recording,) = past["items"]
    assert recording["id"] == ended["sessionId"] and recording["status"] in ("building", "ready")
    ready = _until(system, f"/api/channels/{channel_id}/recordings", lambda p: p["items"][0]["status"] == "ready", 60)
    assert ready["items"][0]["stats"]["duration"] == pytest.approx(SECONDS, abs=1.5)
