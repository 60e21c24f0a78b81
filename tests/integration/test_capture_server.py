"""Browser go-live end to end: a real WebSocket client sends MediaRecorder-shaped chunks to the node's ``/capture``
listener, which runs in-process (CaptureServer + SessionRegistry + WatchedUploader + StreamKeyChecker) against the
moto server with a real ffmpeg; what lands in S3 is checked with ffprobe (BRIEF §3 "Browser go-live")."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import boto3
import pytest
from aiobotocore.session import get_session

from capturestream import keys
from capturestream.models import Channel
from ingest_node.publishers.capture_protocol import MAX_CHUNK_BYTES
from ingest_node.publishers.capture_server import CAPTURE_PATH, CaptureServer
from ingest_node.publishers.stream_keys import StreamKeyChecker
from ingest_node.sessions.broadcast import BroadcastState
from ingest_node.sessions.registry import SessionRegistry
from ingest_node.storage.upload_watch import WatchedUploader
from tests.integration.node_support import BUCKET, TABLE, PublishTarget
from tests.support.waiting import eventually
from tests.unit.ingest.capture_media import FFMPEG, FFPROBE, record, slices

pytestmark = pytest.mark.skipif(FFMPEG is None or FFPROBE is None, reason="needs ffmpeg and ffprobe")
SECONDS = 4.0


@dataclass
class Node:
    url: str
    channel: Channel
    key: str
    server: CaptureServer
    registry: SessionRegistry


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("browser")
    return {video: record(folder, video, SECONDS) for video in ("h264", "vp8")}


@pytest.fixture
async def node(publish_target: PublishTarget) -> AsyncIterator[Node]:
    async with WatchedUploader(BUCKET) as uploader, get_session().create_client("dynamodb") as ddb:
        registry = SessionRegistry(uploader, reconnect_window=30, segment_seconds=1.0, node_id="test")
        server = CaptureServer(
            registry, StreamKeyChecker(ddb, TABLE), uploads=uploader, idle_timeout=5, stats_interval=0.3
        )
        port = await server.start("127.0.0.1", 0)
        url = f"ws://127.0.0.1:{port}{CAPTURE_PATH}"
        yield Node(url, publish_target.channel, publish_target.key, server, registry)
        await server.close()
        await registry.close()


def _start(key: str, **config: object) -> str:
    return json.dumps({"type": "start_native_capture", "config": {"streamKey": key, **config}})


async def _json(ws: aiohttp.ClientWebSocketResponse, kind: str, stats: list[dict] | None = None) -> dict:
    """The next message of type ``kind``; ``capture_stats`` in between are skipped (or kept in ``stats``)."""
    while True:
        message = await ws.receive(timeout=10)
        assert message.type is aiohttp.WSMsgType.TEXT, (message.type, message.data, ws.close_code)
        body = json.loads(message.data)
        if body["type"] == kind:
            return body
        assert body["type"] == "capture_stats", body
        if stats is not None:
            stats.append(body)


async def _send(ws: aiohttp.ClientWebSocketResponse, chunks: list[bytes], pause: float = 0.01) -> None:
    for chunk in chunks:
        await ws.send_bytes(chunk)
        await asyncio.sleep(pause)


def _objects(prefix: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def _manifest(playback_id: str, session_id: str, kind: keys.ManifestKind) -> dict | None:
    key = keys.SessionManifest(playback_id=playback_id, session_id=session_id, kind=kind).key
    try:
        body = boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    except boto3.client("s3").exceptions.NoSuchKey:
        return None
    return json.loads(body)


def _probe(playback_id: str, session_id: str, folder: Path) -> list[dict]:
    """ffprobe of the init segment followed by the first media segment, as a player reads them."""
    s3 = boto3.client("s3")
    live = keys.session_prefix(keys.LIVE_PREFIX, playback_id, session_id)
    init = s3.get_object(Bucket=BUCKET, Key=f"{live}init_0.mp4")["Body"].read()
    first = next(k for k in _objects(live) if k.endswith(".m4s"))
    path = folder / "probe.mp4"
    path.write_bytes(init + s3.get_object(Bucket=BUCKET, Key=first)["Body"].read())
    argv = [FFPROBE, "-v", "error", "-of", "json", "-show_streams", str(path)]
    return json.loads(subprocess.run(argv, capture_output=True, check=True, text=True).stdout)["streams"]


async def test_wrong_key_is_refused_and_nothing_is_written(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    """A wrong key gets `unauthorized`, close 4401; no broadcast, no object, and the key is in no log line."""
    caplog.set_level(logging.DEBUG)
    wrong = node.key[:-3] + "XYZ"
    async with aiohttp.ClientSession() as http, http.ws_connect(node.url) as ws:
        await ws.send_str(_start(wrong))
        error = await _json(ws, "error")
        assert (await ws.receive()).type is aiohttp.WSMsgType.CLOSE
    assert error["code"] == "unauthorized" and ws.close_code == 4401
    assert node.registry.broadcasts == [] and _objects("") == []
    logged = "\n".join(record.getMessage() + str(vars(record)) for record in caplog.records)
    assert wrong not in logged and node.key not in logged


@pytest.mark.parametrize("video", ["h264", "vp8"])
async def test_capture_reaches_s3_as_avc1_and_aac_and_stop_ends_it(
    node: Node, recordings: dict[str, Path], video: str, tmp_path: Path
) -> None:
    """H.264 copied (Constrained Baseline survives) or VP8 encoded; Opus → AAC; `stop_capture` ends at once."""
    data = recordings[video].read_bytes()
    async with aiohttp.ClientSession() as http, http.ws_connect(node.url) as ws:
        await ws.send_str(_start(node.key, mimeType=f"video/webm;codecs={video},opus", width=1280))
        started = await _json(ws, "capture_started")
        await _send(ws, slices(data, SECONDS))
        stats: list[dict] = []
        while not stats or stats[-1]["segmentsUploaded"] < 2:
            stats.append(await _json(ws, "capture_stats"))
        await ws.send_str(json.dumps({"type": "stop_capture"}))
        await _json(ws, "capture_stopped", stats)
        assert (await ws.receive()).type is aiohttp.WSMsgType.CLOSE and ws.close_code == 1000
    playback_id, session_id = started["playbackId"], started["sessionId"]
    assert playback_id == node.channel.playback_id
    last = stats[-1]
    assert last["bytesReceived"] == len(data) and last["mediaSeconds"] > 2 and last["uploadLagSeconds"] < 5
    assert last["frameRate"] == pytest.approx(30, abs=1) and last["keyframeIntervalSeconds"] == pytest.approx(1, 0.1)
    ended = await eventually(lambda: _manifest(playback_id, session_id, keys.ManifestKind.ENDED), timeout=15)
    assert ended["reason"] == "publisher_stopped" and ended["duration"] == pytest.approx(SECONDS, abs=0.5)
    assert _manifest(playback_id, session_id, keys.ManifestKind.RECONNECTING) is None  # ended at once, no window
    live = keys.session_prefix(keys.LIVE_PREFIX, playback_id, session_id)
    assert len([k for k in _objects(live) if k.endswith(".m4s")]) >= SECONDS - 1
    playlist = boto3.client("s3").get_object(Bucket=BUCKET, Key=f"{live}index.m3u8")["Body"].read().decode()
    assert "#EXT-X-ENDLIST" in playlist
    streams = {s["codec_type"]: s for s in _probe(playback_id, session_id, tmp_path)}
    assert streams["video"]["codec_tag_string"] == "avc1" and streams["audio"]["codec_tag_string"] == "mp4a"
    assert streams["audio"]["profile"] == "LC" and streams["audio"]["sample_rate"] == "48000"
    expected_profile = "Constrained Baseline" if video == "h264" else "High"
    assert streams["video"]["profile"] == expected_profile  # copied as recorded, or encoded by libx264
    assert ended["media"]["video_codec"].startswith("avc1") and ended["media"]["audio_codec"] == "mp4a.40.2"


async def test_a_socket_closed_without_stop_is_a_drop_and_a_reconnect_continues(
    node: Node, recordings: dict[str, Path]
) -> None:
    """Closing the tab → `reconnecting`; a new connection in the window continues the same session; a second
    publisher with the key takes over and the first is told so (4409)."""
    chunks = slices(recordings["h264"].read_bytes(), SECONDS)
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(node.url) as ws:
            await ws.send_str(_start(node.key))
            first = await _json(ws, "capture_started")
            await _send(ws, chunks)
        playback_id, session_id = first["playbackId"], first["sessionId"]
        await eventually(lambda: _manifest(playback_id, session_id, keys.ManifestKind.RECONNECTING), timeout=15)
        (broadcast,) = node.registry.broadcasts
        assert broadcast.state is BroadcastState.RECONNECTING
        async with http.ws_connect(node.url) as old, http.ws_connect(node.url) as new:
            await old.send_str(_start(node.key))
            assert (await _json(old, "capture_started"))["sessionId"] == session_id  # same broadcast
            await new.send_str(_start(node.key))
            assert (await _json(new, "capture_started"))["sessionId"] == session_id
            assert (await _json(old, "error"))["code"] == "taken_over"
            assert (await old.receive()).type is aiohttp.WSMsgType.CLOSE and old.close_code == 4409
            await _send(new, chunks)
            await new.send_str(json.dumps({"type": "stop_capture"}))
            await _json(new, "capture_stopped")
    ended = await eventually(lambda: _manifest(playback_id, session_id, keys.ManifestKind.ENDED), timeout=15)
    assert ended["duration"] == pytest.approx(2 * SECONDS, abs=1.0)  # one broadcast, both recordings


@pytest.mark.parametrize(
    ("first", "then", "code", "close"),
    [
        (b"\x1a\x45\xdf\xa3", None, "invalid_message", 4400),  # media before the start
        ("not json", None, "invalid_message", 4400),
        (_start(""), None, "invalid_config", 4400),
        ("START", b"<html>", "unsupported_media", 4415),
        ("START", b"\x00" * (MAX_CHUNK_BYTES + 1), "message_too_large", 4413),
    ],
)
async def test_bad_input_gets_an_error_and_a_4xxx_close(
    node: Node, first: str | bytes, then: bytes | None, code: str, close: int
) -> None:
    """Each refusal names its code, closes with its 4xxx code, and leaves the node serving."""
    async with aiohttp.ClientSession() as http, http.ws_connect(node.url, max_msg_size=0) as ws:
        if first == "START":
            await ws.send_str(_start(node.key))
            await _json(ws, "capture_started")
        elif isinstance(first, bytes):
            await ws.send_bytes(first)
        else:
            await ws.send_str(first)
        if then is not None:
            await ws.send_bytes(then)
        error = await _json(ws, "error")
        assert (await ws.receive()).type is aiohttp.WSMsgType.CLOSE
    assert error["code"] == code and ws.close_code == close
    assert node.key not in error["message"]


async def test_an_ffmpeg_failure_is_reported_and_is_a_drop(node: Node, recordings: dict[str, Path]) -> None:
    """ffmpeg killed mid-stream: `media_error`, close 4500, and the broadcast waits for a reconnect."""
    chunks = slices(recordings["h264"].read_bytes(), SECONDS)
    async with aiohttp.ClientSession() as http, http.ws_connect(node.url) as ws:
        await ws.send_str(_start(node.key))
        started = await _json(ws, "capture_started")
        playback_id, session_id = started["playbackId"], started["sessionId"]
        await _send(ws, chunks[:8])
        await eventually(lambda: _manifest(playback_id, session_id, keys.ManifestKind.STARTED), timeout=15)
        (connection,) = node.server.connections
        os.kill(connection.ffmpeg_pid, signal.SIGKILL)
        error = await _json(ws, "error")
        assert (await ws.receive()).type is aiohttp.WSMsgType.CLOSE
    assert error["code"] == "media_error" and ws.close_code == 4500
    await eventually(lambda: _manifest(playback_id, session_id, keys.ManifestKind.RECONNECTING), timeout=15)
    assert _manifest(playback_id, session_id, keys.ManifestKind.ENDED) is None
