"""Browser go-live through ``capturestream up``: stack.json names the node's ``/capture`` WebSocket, and a recording
sent there the way the studio page sends it becomes a live stream in the stack's bucket, ended by ``stop_capture``."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import boto3
import pytest

from capturestream import keys
from tests.support.system import System
from tests.support.waiting import eventually
from tests.unit.ingest.capture_media import FFMPEG, record, slices

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(FFMPEG is None, reason="needs ffmpeg")]


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = System(tmp_path_factory.mktemp("up") / "state")
    yield running
    running.stop()


def test_stack_json_names_the_go_live_socket(system: System) -> None:
    """``capture_ws_url`` is there beside the endpoints every client already reads."""
    for name in ("s3_endpoint", "bucket", "rtmp_url", "api_url", "ws_url", "web_url", "cdn_url"):
        assert system.stack[name], name
    assert system.stack["capture_ws_url"].startswith("ws://127.0.0.1:")
    assert system.stack["capture_ws_url"].endswith("/capture")


async def test_a_recording_sent_to_the_socket_goes_live_and_ends(system: System, tmp_path: Path) -> None:
    """Channel from the CLI, chunks over the socket, segments and ``ended.json`` in the stack's bucket."""
    created = json.loads(system.cli("channel", "create", "Go live", "--json").stdout)
    recording = record(tmp_path, "h264", 3.0)
    async with aiohttp.ClientSession() as http, http.ws_connect(system.stack["capture_ws_url"]) as ws:
        config = {"streamKey": created["streamKey"], "mimeType": "video/x-matroska;codecs=avc1,opus"}
        await ws.send_str(json.dumps({"type": "start_native_capture", "config": config}))
        started = json.loads((await ws.receive(timeout=15)).data)
        assert started["type"] == "capture_started", started
        for chunk in slices(recording.read_bytes(), 3.0):
            await ws.send_bytes(chunk)
        await ws.send_str(json.dumps({"type": "stop_capture"}))
        while (message := json.loads((await ws.receive(timeout=15)).data))["type"] == "capture_stats":
            pass
        assert message["type"] == "capture_stopped", message
    s3 = boto3.client("s3", endpoint_url=system.stack["s3_endpoint"])
    ended = keys.SessionManifest(
        playback_id=started["playbackId"], session_id=started["sessionId"], kind=keys.ManifestKind.ENDED
    )

    def listed(prefix: str) -> list[str]:
        return [o["Key"] for o in s3.list_objects_v2(Bucket=system.stack["bucket"], Prefix=prefix).get("Contents", [])]

    await eventually(lambda: ended.key in listed(ended.session_prefix), timeout=20)
    live = keys.session_prefix(keys.LIVE_PREFIX, started["playbackId"], started["sessionId"])
    assert sum(key.endswith(".m4s") for key in listed(live)) >= 2


def test_playback_origin_without_go_live(tmp_path: Path) -> None:
    """``--capture-port 0`` turns go-live off, not the node's HTTP listener: ``/config.json`` still gives the watch
    page a ``playbackUrl`` (the node's origin, serving ``/live/`` and ``/metrics``), so the low-latency switch stays."""
    off = System(tmp_path / "state", "--capture-port", "0")
    try:
        assert off.stack["capture_ws_url"] is None
        config = json.loads(_get(off.stack["web_url"] + "/config.json")[1])
        assert config["captureWsUrl"] is None
        origin = config["playbackUrl"]
        assert origin is not None and origin.startswith("http://127.0.0.1:")
        assert off.stack["ingest_http_url"] == origin
        assert b"capturestream_ingest_active_streams" in _get(origin + "/metrics")[1]
        # the node's playback route answers (404: no such broadcast)
        assert _get(origin + "/live/nosuchid.flv") == (404, b"no live broadcast with this playback id\n")
    finally:
        off.stop()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
