"""HTTP-FLV's sans-socket half: the FLV writer, the GOP cache, timestamp rebasing and the bounded viewer queue.

Media is a real ffmpeg publisher's FLV (H.264 1 s GOP + AAC), fed tag by tag as RTMP messages arrive; what a
viewer receives is checked with ffprobe and with the FLV reader the node's go-live path uses.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ingest_node.playback import flv
from ingest_node.playback.flv_stream import FlvStream, FlvViewer
from ingest_node.playback.gop_cache import Role, classify
from ingest_node.playback.timeline import GAP_MS, Timeline
from mediakit.cmaf.flv import FileTag, FlvReader
from tests.unit.ingest.playback_media import FPS, SECONDS, publisher_tags
from tests.unit.media.support import FFPROBE, Tag, amf0_metadata


@pytest.fixture(scope="module")
def tags(tmp_path_factory: pytest.TempPathFactory) -> list[Tag]:
    return publisher_tags(tmp_path_factory.mktemp("flv"))


def _feed(stream: FlvStream, tags: list[Tag], *, until_ms: int | None = None) -> None:
    for tag in tags:
        if until_ms is not None and tag.timestamp > until_ms:
            return
        if tag.kind == flv.SCRIPT:
            stream.on_metadata(amf0_metadata(tag.body))
        else:
            stream.on_tag(tag.kind, tag.timestamp, tag.body)


async def _drain(viewer: FlvViewer) -> bytes:
    viewer.close()
    out = bytearray()
    while (chunk := await viewer.next_chunk()) is not None:
        out += chunk
    return bytes(out)


def _read(data: bytes) -> list[FileTag]:
    reader = FlvReader()
    return [*reader.feed(data), *reader.feed(b"")]


def _probe(data: bytes, folder: Path) -> dict:
    path = folder / "out.flv"
    path.write_bytes(data)
    argv = [FFPROBE, "-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json", str(path)]
    result = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert result.stderr == "", result.stderr  # nothing wrong while decoding every frame
    return json.loads(result.stdout)


def _counts(tags: list[FileTag] | list[Tag]) -> tuple[int, int]:
    """Video frames (AVCPacketType 1: not the sequence header, not ffmpeg's end-of-sequence tag) and audio frames."""
    video = sum(t.kind == flv.VIDEO and t.body[1] == 1 for t in tags)
    audio = sum(t.kind == flv.AUDIO and classify(t.kind, t.body) is not Role.SEQUENCE_HEADER for t in tags)
    return video, audio


def test_tag_bytes_follow_annex_e() -> None:
    data = flv.tag(flv.VIDEO, 0x12345678, b"\x17\x01body")
    assert data[:11] == bytes([9, 0, 0, 6, 0x34, 0x56, 0x78, 0x12, 0, 0, 0])
    assert data[11:17] == b"\x17\x01body" and data[17:] == (11 + 6).to_bytes(4, "big")
    assert flv.file_header(audio=True, video=False) == b"FLV\x01\x04\x00\x00\x00\x09\x00\x00\x00\x00"
    assert flv.tag(flv.AUDIO, (1 << 32) + 5, b"x")[4:8] == bytes([0, 0, 5, 0])  # wraps like RTMP's clock
    with pytest.raises(ValueError):
        flv.tag(flv.AUDIO, -1, b"x")


def test_metadata_tag_keeps_scalars() -> None:
    data = flv.metadata_tag({"width": 320.0, "encoder": "obs", "stereo": True, "nested": {"a": 1}, "nan": float("nan")})
    (tag,) = _read(flv.file_header() + data)
    assert tag.kind == flv.SCRIPT
    assert amf0_metadata(tag.body) == {"width": 320.0, "encoder": "obs", "stereo": True}


@pytest.mark.parametrize(
    ("kind", "body", "role"),
    [
        (9, b"\x17\x00\x00\x00\x00\x01", Role.SEQUENCE_HEADER),  # AVC sequence header
        (9, b"\x17\x01\x00\x00\x00", Role.KEYFRAME),
        (9, b"\x27\x01\x00\x00\x00", Role.FRAME),
        (9, b"\x1c\x00\x00\x00\x00", Role.SEQUENCE_HEADER),  # HEVC codec id 12
        (9, b"\x90hvc1\x01", Role.SEQUENCE_HEADER),  # Enhanced RTMP: keyframe, SequenceStart
        (9, b"\x91hvc1\x00\x00\x00", Role.KEYFRAME),  # CodedFrames
        (9, b"\x93av01", Role.KEYFRAME),  # CodedFramesX
        (9, b"\xa1hvc1\x00\x00\x00", Role.FRAME),  # inter frame
        (9, b"\x92hvc1", Role.FRAME),  # SequenceEnd
        (8, b"\xaf\x00\x11\x90", Role.SEQUENCE_HEADER),  # AAC AudioSpecificConfig
        (8, b"\xaf\x01\x21", Role.FRAME),
        (8, b"\x90mp4a\x11", Role.SEQUENCE_HEADER),  # Enhanced audio SequenceStart
        (8, b"\x2f\xff", Role.FRAME),  # MP3 passes through
        (9, b"\x17\x02\x00\x00\x00", Role.FRAME),  # AVC end of sequence (ffmpeg writes one last)
        (9, b"\x14\x00", Role.KEYFRAME),  # VP6 keyframe (no AVCPacketType)
        (9, b"\x17", Role.FRAME),  # too short to say
    ],
)
def test_classify(kind: int, body: bytes, role: Role) -> None:
    assert classify(kind, body) is role


async def test_a_viewer_from_the_start_gets_every_frame(tags: list[Tag], tmp_path: Path) -> None:
    stream = FlvStream()
    viewer = stream.join()
    _feed(stream, tags)
    data = await _drain(viewer)
    probed = _probe(data, tmp_path)
    streams = {s["codec_type"]: s for s in probed["streams"]}
    video, audio = _counts(tags)
    assert int(streams["video"]["nb_read_frames"]) == video == FPS * SECONDS
    assert int(streams["audio"]["nb_read_frames"]) == audio
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    assert [t.body for t in _read(data)][1:] == [t.body for t in tags if t.kind != flv.SCRIPT]


async def test_a_late_viewer_starts_on_the_last_keyframe(tags: list[Tag], tmp_path: Path) -> None:
    """Joined at 2.5 s: header, onMetaData, both sequence headers, then the GOP from the 2 s keyframe."""
    stream = FlvStream()
    _feed(stream, tags, until_ms=2500)
    viewer = stream.join()
    start = _read(await _drain(stream.join()))  # a second viewer joined at the same time, read at once
    assert [t.kind for t in start[:3]] == [flv.SCRIPT, flv.VIDEO, flv.AUDIO]
    assert classify(start[1].kind, start[1].body) is Role.SEQUENCE_HEADER
    assert classify(start[2].kind, start[2].body) is Role.SEQUENCE_HEADER
    first_frame = next(t for t in start[3:] if t.kind == flv.VIDEO)
    assert classify(first_frame.kind, first_frame.body) is Role.KEYFRAME and first_frame.timestamp == 2000
    assert start[1].timestamp == start[2].timestamp == 2000  # headers stamped at the GOP start
    _feed(stream, [t for t in tags if t.timestamp > 2500])
    probed = _probe(await _drain(viewer), tmp_path)
    video = next(s for s in probed["streams"] if s["codec_type"] == "video")
    assert int(video["nb_read_frames"]) == FPS * (SECONDS - 2)  # the last two GOPs, nothing undecodable


async def test_timestamps_continue_across_a_publisher_restart(tags: list[Tag], tmp_path: Path) -> None:
    """OBS reconnects with timestamps from 0 (twice): the viewer's clock never goes back; the sequence headers
    are not repeated (unchanged), and ffprobe decodes all three runs as one stream."""
    stream = FlvStream()
    viewer = stream.join()
    for _ in range(3):
        stream.new_publisher()
        _feed(stream, tags)
    data = await _drain(viewer)
    received = _read(data)
    for kind in (flv.VIDEO, flv.AUDIO):
        times = [t.timestamp for t in received if t.kind == kind]
        assert all(b >= a for a, b in zip(times, times[1:], strict=False)), kind
    video_times = [t.timestamp for t in received if t.kind == flv.VIDEO]
    last = max(t.timestamp for t in tags)
    assert max(video_times) >= 2 * (last + GAP_MS)  # three runs laid end to end
    headers = [t for t in received if classify(t.kind, t.body) is Role.SEQUENCE_HEADER]
    assert len(headers) == 2
    probed = _probe(data, tmp_path)
    video = next(s for s in probed["streams"] if s["codec_type"] == "video")
    assert int(video["nb_read_frames"]) == 3 * FPS * SECONDS


def test_timeline_rebases_each_publisher_after_the_last_timestamp() -> None:
    timeline = Timeline()
    assert [timeline.map(ts) for ts in (0, 33, 21, 66)] == [0, 33, 21, 66]  # small regressions pass through
    timeline.new_publisher()
    assert [timeline.map(ts) for ts in (0, 33)] == [66 + GAP_MS, 99 + GAP_MS]
    assert timeline.map(5) == 66 + GAP_MS + 5  # same publisher: still its own clock
    assert timeline.map(9000) == 66 + GAP_MS + 9000
    assert timeline.map(100) == 9066 + 2 * GAP_MS  # 8.9 s backwards without a reconnect: a new clock
    assert timeline.publishers == 3


async def test_a_slow_viewer_skips_to_the_next_keyframe_and_others_get_everything(tags: list[Tag]) -> None:
    """A viewer that never reads holds at most its bound; a reading viewer beside it loses nothing."""
    stream = FlvStream(max_viewer_bytes=60_000)
    slow, fast = stream.join(), stream.join()
    fast_bytes = bytearray()
    for tag in tags:
        _feed(stream, [tag])
        assert slow.queued_bytes <= 60_000
        fast_bytes += await fast.next_chunk() or b""
    assert slow.skips >= 2
    fast_tags = _read(bytes(fast_bytes) + await _drain(fast))
    assert _counts(fast_tags) == _counts(tags)
    slow_tags = _read(flv.file_header() + await _drain(slow))
    media = [t for t in slow_tags if t.kind != flv.SCRIPT]
    if media:  # after a skip the queue restarts with the headers and a keyframe
        assert classify(media[0].kind, media[0].body) is Role.SEQUENCE_HEADER
        first_video = next(t for t in media if t.kind == flv.VIDEO and t.body[1] == 1)
        assert classify(first_video.kind, first_video.body) is Role.KEYFRAME


async def test_end_drains_then_closes_and_late_joiners_close_at_once(tags: list[Tag]) -> None:
    stream = FlvStream()
    viewer = stream.join()
    _feed(stream, tags[:20])
    stream.end()
    assert await viewer.next_chunk() and await viewer.next_chunk() is None
    late = stream.join()
    assert await late.next_chunk() is not None and await late.next_chunk() is None


async def test_flv_bytes_are_made_only_for_viewers_and_once_per_tag(
    tags: list[Tag], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No viewer: no tag is encoded (the GOP cache keeps references). A joining viewer has the GOP encoded once;
    a second one gets the same bytes objects; live tags are encoded once for all viewers. A viewer joining after
    the others left gets exactly what it would have from a stream that always had viewers."""
    encoded: list[int] = []  # kinds of the audio/video tags encoded (onMetaData is not counted)
    real_tag = flv.tag

    def counting_tag(kind: int, timestamp: int, body: bytes) -> bytes:
        if kind != flv.SCRIPT:
            encoded.append(kind)
        return real_tag(kind, timestamp, body)

    monkeypatch.setattr(flv, "tag", counting_tag)
    lazy, eager = FlvStream(), FlvStream()
    always = eager.join()
    _feed(lazy, tags, until_ms=1500)
    assert encoded == []
    _feed(eager, tags, until_ms=1500)
    encoded.clear()

    first = lazy.join()
    gop = lazy.cache.gop()
    assert len(encoded) == len(gop) + 2  # the GOP since the 1 s keyframe, and the two sequence headers
    encoded.clear()
    second = lazy.join()
    assert len(encoded) == 2 and all(a is b for a, b in zip(lazy.cache.gop(), gop, strict=True))
    encoded.clear()
    later = [t for t in tags if 1500 < t.timestamp <= 1800]
    _feed(lazy, later)
    assert len(encoded) == len(later)  # once per tag, two viewers
    assert _read(await _drain(first)) == _read(await _drain(second))
    lazy.leave(first)
    lazy.leave(second)

    _feed(eager, later)
    for until in (1950, 2500):  # the 1 s GOP half encoded (for the viewers gone), then the 2 s GOP not at all
        rest = [t for t in tags if lazy.timeline.now < t.timestamp <= until]
        assert not lazy.viewers
        _feed(lazy, rest)
        _feed(eager, rest)
        viewer, reference = lazy.join(), eager.join()
        assert _read(await _drain(viewer)) == _read(await _drain(reference))
        lazy.leave(viewer)
        eager.leave(reference)
    eager.leave(always)
