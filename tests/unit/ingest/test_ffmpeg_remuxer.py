"""The ffmpeg fallback remuxer against the real ffmpeg, and the Broadcast switching to it.

Inputs are FLV files generated once per module with ffmpeg (nothing binary is committed) and split into tags by the
media tests' FLV reader, so each tag body is exactly what an RTMP audio/video message would carry:

| fixture    | what                                                                              |
| ---------- | --------------------------------------------------------------------------------- |
| ``flv_mp3``| 4 s 320x240 30 fps H.264 (GOP 30) + MP3 44.1 kHz: the in-process segmenter rejects it |
| ``flv_aac``| 4 s 320x240 30 fps H.264 (GOP 30) + AAC 48 kHz: copied untouched                   |
"""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from capturestream.models import Channel
from ingest_node.muxing.ffmpeg_remuxer import FfmpegRemuxer, RemuxerError
from ingest_node.sessions.broadcast import Broadcast
from mediakit.cmaf import InitSegment, Output, Segment, Segmenter, UnsupportedMedia
from tests.unit.ingest.memory_storage import MemoryUploader
from tests.unit.media.support import FFMPEG, FFPROBE, Tag, amf0_metadata, ffprobe_streams, publish, read_flv, run

pytestmark = pytest.mark.skipif(FFMPEG is None or FFPROBE is None, reason="ffmpeg/ffprobe not installed")

LAVFI = ["-f", "lavfi", "-i", "testsrc2=s=320x240:r=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
H264_GOP30 = ["-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0"]
# First bytes of an RTMP video sequence header and an MP3 frame: enough for the remuxer to decide and start ffmpeg.
AVC_SEQUENCE_HEADER = bytes.fromhex("1700000000") + bytes.fromhex("014d401effe10004674d401e01000468ef3c80")
MP3_FRAME = bytes.fromhex("2fff") + bytes(200)


def _encode(folder: Path, name: str, audio: list[str]) -> list[Tag]:
    path = folder / name
    argv = [FFMPEG or "ffmpeg", "-hide_banner", "-v", "error", *LAVFI, "-t", "4", *H264_GOP30, *audio, "-f", "flv"]
    result = run([*argv, str(path)])
    assert result.returncode == 0, result.stderr
    return read_flv(path)


@pytest.fixture(scope="module")
def flv_mp3(tmp_path_factory: pytest.TempPathFactory) -> list[Tag]:
    """4 s H.264 + MP3 (44.1 kHz) as FLV tags."""
    return _encode(tmp_path_factory.mktemp("remux"), "mp3.flv", ["-c:a", "libmp3lame", "-ar", "44100", "-b:a", "96k"])


@pytest.fixture(scope="module")
def flv_aac(tmp_path_factory: pytest.TempPathFactory) -> list[Tag]:
    """4 s H.264 + AAC-LC (48 kHz stereo) as FLV tags."""
    return _encode(tmp_path_factory.mktemp("remux"), "aac.flv", ["-c:a", "aac", "-ac", "2", "-b:a", "128k"])


async def feed(remuxer: FfmpegRemuxer, tags: list[Tag], *, speed: float | None = None) -> list[Output]:
    """Feed tags as RTMP messages; with ``speed``, paced at that multiple of real time (yielding to the loop)."""
    outputs: list[Output] = []
    start = asyncio.get_running_loop().time()
    for tag in tags:
        if speed is not None:
            await asyncio.sleep(max(0.0, start + tag.timestamp / 1000 / speed - asyncio.get_running_loop().time()))
        if tag.kind == 9:
            outputs += await remuxer.feed_video(tag.timestamp, tag.body)
        elif tag.kind == 8:
            outputs += await remuxer.feed_audio(tag.timestamp, tag.body)
        elif tag.kind == 18:
            outputs += await remuxer.feed_metadata(amf0_metadata(tag.body))
    return outputs


def split(outputs: list[Output]) -> tuple[list[InitSegment], list[Segment]]:
    return [o for o in outputs if isinstance(o, InitSegment)], [o for o in outputs if isinstance(o, Segment)]


def check_playable(folder: Path, init: InitSegment, segments: list[Segment]) -> list[dict[str, Any]]:
    """init + segments as one file: ffprobe reads it, ``ffmpeg -f null`` decodes every frame without an error."""
    path = folder / "joined.mp4"
    path.write_bytes(init.data + b"".join(segment.data for segment in segments))
    decoded = run([FFMPEG or "ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"])
    assert decoded.returncode == 0 and decoded.stderr == "", decoded.stderr
    for segment in segments:  # each segment stands alone with its init too (what a player fetches)
        one = folder / f"one_{segment.sequence}.mp4"
        one.write_bytes(init.data + segment.data)
        assert {s["codec_type"] for s in ffprobe_streams(one)} == {"video", "audio"}
    return ffprobe_streams(path, count_frames=True)


# ---------------------------------------------------------------------------------------------- remuxing


async def test_mp3_input_comes_out_as_cmaf_with_aac_audio(flv_mp3: list[Tag], tmp_path: Path) -> None:
    """MP3 audio is encoded to AAC; an init, then ~4 one-second segments, decodable, files removed afterwards."""
    anchor = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    remuxer = FfmpegRemuxer(segment_seconds=1.0, anchor=anchor)
    live = await feed(remuxer, flv_mp3, speed=4.0)
    assert remuxer._watch is not None and remuxer._watch.evented, "inotify should report the playlist renames"
    outputs = live + await remuxer.finish()
    assert split(live)[1], "segments must come out while media flows, not only at finish()"

    (init,), segments = split(outputs)
    assert outputs[0] is init
    assert (init.epoch, init.width, init.height) == (0, 320, 240)
    assert init.video_codec is not None and init.video_codec.startswith("avc1.")
    assert init.audio_codec == "mp4a.40.2"
    assert init.codecs == f"{init.video_codec},mp4a.40.2"
    assert [s.sequence for s in segments] == [0, 1, 2, 3]
    assert all(s.duration == pytest.approx(1.0, abs=0.05) for s in segments)
    assert sum(s.duration for s in segments) == pytest.approx(4.0, abs=0.1)
    assert all(s.keyframe and s.epoch == 0 and not s.discontinuity and s.parts == () for s in segments)
    assert [s.program_date_time for s in segments] == [anchor + timedelta(seconds=n) for n in range(4)]

    streams = check_playable(tmp_path, init, segments)
    assert {s["codec_type"]: s["codec_name"] for s in streams} == {"video": "h264", "audio": "aac"}
    video = next(s for s in streams if s["codec_type"] == "video")
    assert int(video["nb_read_frames"]) == 120
    assert not remuxer.workdir.exists(), "finish() removes the private working folder"


async def test_aac_input_is_copied_not_reencoded(flv_aac: list[Tag], tmp_path: Path) -> None:
    """With AAC input the AAC frames come out byte for byte (``-c copy``)."""
    remuxer = FfmpegRemuxer(segment_seconds=1.0)
    (init,), segments = split(await feed(remuxer, flv_aac) + await remuxer.finish())
    assert init.audio_codec == "mp4a.40.2" and len(segments) == 4
    media = b"".join(s.data for s in segments)
    frames = [t.body[2:] for t in flv_aac if t.kind == 8 and t.body[:2] == b"\xaf\x01"]
    assert len(frames) > 100 and all(frame in media for frame in frames[10:20])
    check_playable(tmp_path, init, segments)


async def test_reconnect_starts_a_new_epoch_and_continues_the_sequence(flv_aac: list[Tag], tmp_path: Path) -> None:
    """discontinuity(): ffmpeg is flushed; the next session gets init epoch 1, sequences go on, first one flagged."""
    remuxer = FfmpegRemuxer(segment_seconds=1.0)
    first = await feed(remuxer, flv_aac)
    later = datetime.now(UTC) + timedelta(minutes=1)
    first += await remuxer.discontinuity(anchor=later)
    second = await feed(remuxer, flv_aac) + await remuxer.finish()
    (init0,), segments0 = split(first)
    (init1,), segments1 = split(second)
    assert (init0.epoch, init1.epoch) == (0, 1)
    assert [s.sequence for s in segments0 + segments1] == list(range(8))
    assert [s.discontinuity for s in segments1] == [True, False, False, False]
    assert {s.epoch for s in segments1} == {1}
    assert segments1[0].program_date_time == later
    check_playable(tmp_path, init1, segments1)


async def test_stream_shorter_than_the_grace_window_still_comes_out(flv_mp3: list[Tag]) -> None:
    """Video only for 0.5 s (ffmpeg not started yet: no audio seen): finish() starts it and flushes."""
    remuxer = FfmpegRemuxer(segment_seconds=1.0)
    video = [t for t in flv_mp3 if t.kind == 9 and t.timestamp < 500]
    assert await feed(remuxer, video) == []
    (init,), segments = split(await remuxer.finish())
    assert init.audio_codec is None and init.codecs == init.video_codec
    assert len(segments) == 1 and segments[0].duration == pytest.approx(0.5, abs=0.05)


# ---------------------------------------------------------------------------------------------- failures


async def test_missing_ffmpeg_is_a_clear_error() -> None:
    """The executable is not there: RemuxerError at the feed that starts it, again afterwards, and from finish()."""
    remuxer = FfmpegRemuxer(ffmpeg_bin="/nonexistent/ffmpeg")
    assert await remuxer.feed_video(0, AVC_SEQUENCE_HEADER) == []
    with pytest.raises(RemuxerError, match="cannot start '/nonexistent/ffmpeg'"):
        await remuxer.feed_audio(0, MP3_FRAME)
    with pytest.raises(RemuxerError, match="cannot start"):
        await remuxer.feed_audio(26, MP3_FRAME)
    with pytest.raises(RemuxerError, match="cannot start") as raised:
        await remuxer.finish()
    assert raised.value.outputs == []
    assert not remuxer.workdir.exists()


async def test_real_ffmpeg_refusing_the_input_is_a_clear_error(tmp_path: Path) -> None:
    """Sorenson H.263 video cannot go into fMP4: ffmpeg exits 1 and its own reason is in the error."""
    argv = [FFMPEG or "ffmpeg", "-hide_banner", "-v", "error", *LAVFI, "-t", "2", "-c:v", "flv1"]
    result = run([*argv, "-c:a", "libmp3lame", "-f", "flv", str(tmp_path / "h263.flv")])
    assert result.returncode == 0, result.stderr
    remuxer = FfmpegRemuxer()
    with pytest.raises(RemuxerError, match="codec not currently supported in container") as raised:
        async with asyncio.timeout(10):
            await feed(remuxer, read_flv(tmp_path / "h263.flv"))
            await remuxer.finish()
    assert raised.value.returncode == 1
    await remuxer.aclose()
    assert not remuxer.workdir.exists()


def _fake_ffmpeg(folder: Path, script: str) -> str:
    path = folder / "ffmpeg"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


async def test_ffmpeg_exiting_while_fed_surfaces_its_stderr(flv_mp3: list[Tag], tmp_path: Path) -> None:
    """ffmpeg dies at once: the next feeds raise with its exit status and stderr instead of hanging."""
    remuxer = FfmpegRemuxer(ffmpeg_bin=_fake_ffmpeg(tmp_path, "echo 'Invalid data found' >&2; exit 3"))
    with pytest.raises(RemuxerError, match="Invalid data found") as raised:
        async with asyncio.timeout(10):
            await feed(remuxer, flv_mp3)
    assert raised.value.returncode == 3
    with pytest.raises(RemuxerError):
        await remuxer.poll()
    with pytest.raises(RemuxerError):
        await remuxer.finish()


async def test_ffmpeg_exiting_between_feeds_is_seen_by_poll(flv_mp3: list[Tag], tmp_path: Path) -> None:
    """ffmpeg dies while no media comes: poll() reports it."""
    script = "cat > /dev/null & sleep 0.2; echo 'Conversion failed!' >&2; kill $!; exit 1"
    remuxer = FfmpegRemuxer(ffmpeg_bin=_fake_ffmpeg(tmp_path, script))
    await feed(remuxer, flv_mp3[:10])
    await asyncio.sleep(0.6)
    with pytest.raises(RemuxerError, match="exited before finish.*Conversion failed") as raised:
        await remuxer.poll()
    assert raised.value.returncode == 1
    await remuxer.aclose()


async def test_a_stuck_ffmpeg_is_killed(flv_mp3: list[Tag], tmp_path: Path) -> None:
    """ffmpeg alive but reading nothing: back-pressure waits up to stall_timeout, then an error, not a hang."""
    remuxer = FfmpegRemuxer(ffmpeg_bin=_fake_ffmpeg(tmp_path, "exec sleep 30"), stall_timeout=0.3)
    with pytest.raises(RemuxerError, match="read nothing for 0.3 s"):
        async with asyncio.timeout(10):
            await feed(remuxer, flv_mp3 * 3)
    await remuxer.aclose()


# ---------------------------------------------------------------------------------------------- Broadcast


async def _broadcast(tags: list[Tag], **options: Any) -> tuple[Broadcast, MemoryUploader]:
    uploader = MemoryUploader()
    channel, _ = Channel.create(name="fallback", owner="o")
    broadcast = Broadcast(channel, uploader, segment_seconds=1.0, node_id="test", **options)  # type: ignore[arg-type]
    await publish(broadcast, tags)
    await broadcast.end("test")
    return broadcast, uploader


def _by_suffix(objects: dict[str, bytes], suffix: str) -> list[str]:
    return sorted(key for key in objects if key.endswith(suffix))


async def test_broadcast_falls_back_to_ffmpeg_on_mp3(flv_mp3: list[Tag], caplog: pytest.LogCaptureFixture) -> None:
    """The segmenter rejects MP3 before any init: the broadcast switches once, replays, and publishes AAC HLS."""
    segmenter = Segmenter()
    with pytest.raises(UnsupportedMedia, match="MP3"):  # the premise: the in-process segmenter rejects this stream
        for tag in (t for t in flv_mp3 if t.kind in (8, 9)):
            (segmenter.feed_audio if tag.kind == 8 else segmenter.feed_video)(tag.timestamp, tag.body)
    with caplog.at_level(logging.INFO, logger="ingest_node"):
        broadcast, uploader = await _broadcast(flv_mp3)
    switches = [r for r in caplog.records if r.getMessage() == "switching to the ffmpeg remuxer"]
    assert len(switches) == 1 and "MP3" in switches[0].reason  # type: ignore[attr-defined]
    assert len(_by_suffix(uploader.objects, ".mp4")) == 1
    assert len(_by_suffix(uploader.objects, ".m4s")) == 4
    (playlist,) = (uploader.objects[key].decode() for key in _by_suffix(uploader.objects, ".m3u8"))
    assert playlist.count("#EXTINF:") == 4 and playlist.rstrip().endswith("#EXT-X-ENDLIST")
    assert '#EXT-X-MAP:URI="init_0.mp4"' in playlist
    started = json.loads(uploader.objects[_by_suffix(uploader.objects, "started.json")[0]])
    assert started["media"]["audio_codec"] == "mp4a.40.2" and started["media"]["width"] == 320
    ended = json.loads(uploader.objects[_by_suffix(uploader.objects, "ended.json")[0]])
    assert ended["duration"] == pytest.approx(4.0, abs=0.1)
    assert broadcast.media.video_codec is not None and broadcast.media.video_codec.startswith("avc1.")


async def test_broadcast_keeps_the_inprocess_segmenter_for_aac(
    flv_aac: list[Tag], caplog: pytest.LogCaptureFixture
) -> None:
    """AAC needs no fallback: no ffmpeg is started."""
    with caplog.at_level(logging.INFO, logger="ingest_node"):
        _, uploader = await _broadcast(flv_aac)
    assert not [r for r in caplog.records if r.name == "ingest_node.muxing.ffmpeg_remuxer"]
    assert len(_by_suffix(uploader.objects, ".m4s")) == 4


async def test_broadcast_with_remuxer_ffmpeg_always_uses_it(
    flv_aac: list[Tag], caplog: pytest.LogCaptureFixture
) -> None:
    """``remuxer="ffmpeg"``: ffmpeg from the first message, even for media the segmenter takes."""
    with caplog.at_level(logging.INFO, logger="ingest_node"):
        _, uploader = await _broadcast(flv_aac, remuxer="ffmpeg")
    assert [r.getMessage() for r in caplog.records].count("ffmpeg remuxer started") == 1
    assert not [r for r in caplog.records if r.getMessage() == "switching to the ffmpeg remuxer"]
    assert len(_by_suffix(uploader.objects, ".m4s")) == 4


async def test_broadcast_rejects_an_unknown_remuxer() -> None:
    """Only "inprocess" and "ffmpeg"."""
    channel, _ = Channel.create(name="x", owner="o")
    with pytest.raises(ValueError, match="remuxer must be one of"):
        Broadcast(channel, MemoryUploader(), segment_seconds=1.0, node_id="t", remuxer="gstreamer")  # type: ignore[arg-type]


async def test_broadcast_ends_cleanly_when_ffmpeg_fails(
    flv_mp3: list[Tag], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing fallback raises to the connection (which drops the publisher); end() still finishes cleanly."""
    fake = _fake_ffmpeg(tmp_path, "echo 'Conversion failed!' >&2; exit 1")
    original = FfmpegRemuxer.__init__

    def with_fake_ffmpeg(self: FfmpegRemuxer, **options: Any) -> None:
        original(self, **options, ffmpeg_bin=fake)

    monkeypatch.setattr(FfmpegRemuxer, "__init__", with_fake_ffmpeg)
    uploader = MemoryUploader()
    channel, _ = Channel.create(name="failing", owner="o")
    broadcast = Broadcast(channel, uploader, segment_seconds=1.0, node_id="test")  # type: ignore[arg-type]
    with pytest.raises(RemuxerError, match="Conversion failed"):
        async with asyncio.timeout(10):
            for tag in flv_mp3:
                await (broadcast.on_audio if tag.kind == 8 else broadcast.on_video)(tag.timestamp, tag.body)
    with caplog.at_level(logging.ERROR, logger="ingest_node.sessions.broadcast"):
        await broadcast.end("publisher_left")
    assert broadcast.state == "ended"
    assert any(r.getMessage().startswith("ffmpeg remuxer failed") for r in caplog.records)
    assert uploader.objects == {}  # nothing was announced, so nothing to end
