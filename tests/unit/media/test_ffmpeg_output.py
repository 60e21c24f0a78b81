"""End to end with real encoders: ffmpeg-made FLV (and Enhanced RTMP HEVC/AV1) → segmenter → files that ffprobe and
ffmpeg read without a word, with the source's frame counts, keyframe-first segments (checked in the boxes, not by
ffprobe: CMAF_COST pitfall 7), EXTINF matching the media, and parts that concatenate to their segment.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mediakit import hls
from mediakit.cmaf import Segmenter
from tests.unit.media.conftest import requires_ffmpeg
from tests.unit.media.support import (
    FFMPEG,
    FFPROBE,
    Tag,
    Written,
    enhanced_video_tags,
    feed_tags,
    ffprobe_streams,
    mp4_video_track,
    read_flv,
    run,
    segment_runs,
    timescales,
    write_hls,
)

pytestmark = requires_ffmpeg
ANCHOR = datetime(2025, 1, 1, tzinfo=UTC)


def mux(tags: list[Tag], folder: Path, *, part_target: float | None = None, target: float = 1.0) -> Written:
    """Feed every tag, finish, write the HLS folder."""
    segmenter = Segmenter(target_duration=target, part_target=part_target, anchor=ANCHOR)
    outputs = feed_tags(segmenter, tags) + segmenter.finish()
    return write_hls(outputs, folder, part_target=part_target)


def decode_silently(playlist: Path) -> None:
    """``ffmpeg -v error -i index.m3u8 -f null -`` prints nothing and exits 0."""
    result = run(
        [FFMPEG or "ffmpeg", "-hide_banner", "-nostats", "-v", "error", "-i", str(playlist), "-f", "null", "-"]
    )
    assert (result.returncode, result.stderr) == (0, "")


def frame_counts(path: Path) -> dict[str, int]:
    """codec_type → decoded frame count (``ffprobe -count_frames``)."""
    return {s["codec_type"]: int(s.get("nb_read_frames", 0)) for s in ffprobe_streams(path, count_frames=True)}


def probe_each_segment(written: Written) -> None:
    """ffprobe reads init + each segment on its own, silently."""
    for segment in written.segments:
        single = written.folder / f"probe_{segment.sequence}.mp4"
        single.write_bytes(written.inits[-1 if segment.epoch else 0].data + segment.data)
        result = run(
            [FFPROBE or "ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv", str(single)]
        )
        assert result.returncode == 0 and result.stderr == "", result.stderr
        single.unlink()


def check_segments(written: Written, tags: list[Tag], *, video_track: int = 1) -> list[float]:
    """Box-level checks: keyframe-first flags, sync-sample count, EXTINF vs media, parts == segment bytes.

    Returns the segment durations measured from the boxes.
    """
    source_keyframes = sum(1 for t in tags if t.kind == 9 and t.body[0] >> 4 & 0x07 == 1 and _is_frame(t.body))
    sync_flags, starts, ends = 0, [], []
    scale = timescales(written.inits[0].data)[video_track]
    for segment in written.segments:
        video = [r for r in segment_runs(segment.data) if r.track_id == video_track]
        assert video[0].flags[0] == 0x02000000, f"segment {segment.sequence} does not start with a sync sample"
        assert all(f in (0x02000000, 0x01010000) for r in video for f in r.flags)
        sync_flags += sum(f == 0x02000000 for r in video for f in r.flags)
        starts.append(video[0].base_time / scale)
        ends.append((video[-1].base_time + sum(video[-1].durations)) / scale)
        parts = [p for p in written.parts if p.sequence == segment.sequence]
        if parts:
            assert b"".join(p.data for p in parts) == segment.data
            assert [p.index for p in parts] == list(range(len(parts)))
    assert sync_flags == source_keyframes
    measured = [b - a for a, b in zip(starts, [*starts[1:], ends[-1]], strict=True)]
    frame = 1 / 30
    for segment, actual in zip(written.segments, measured, strict=True):
        assert abs(segment.duration - actual) <= frame, (segment.sequence, segment.duration, actual)
    extinf = [entry.duration for entry in hls.parse_media_playlist(written.playlist).segments]
    assert extinf == pytest.approx([round(s.duration, 5) for s in written.segments], abs=1e-5)
    return measured


def _is_frame(body: bytes) -> bool:
    if body[0] & 0x80:
        return body[0] & 0x0F in (1, 3)
    return len(body) > 1 and body[1] == 1


def test_720p30_high_bframes_gop30(flv_720p30: Path, tmp_path: Path) -> None:
    """(a) 6 segments of 1.000 s with 3 parts each; decodes silently with the source's 180/283 frames."""
    tags = read_flv(flv_720p30)
    written = mux(tags, tmp_path / "hls", part_target=0.333)
    init = written.inits[0]
    assert (init.codecs, init.width, init.height) == ("avc1.64001f,mp4a.40.2", 1280, 720)
    assert [round(s.duration, 3) for s in written.segments] == [1.0] * 6
    assert all(len(s.parts) == 3 for s in written.segments)
    assert max(p.duration for p in written.parts) <= 0.334 + 1e-9
    measured = check_segments(written, tags)
    assert [round(m, 3) for m in measured[:5]] == [1.0] * 5
    init_streams = ffprobe_streams(_write(tmp_path / "first.mp4", init.data + written.segments[0].data))
    assert [(s["codec_name"], s.get("profile"), s.get("width"), s.get("sample_rate")) for s in init_streams] == [
        ("h264", "High", 1280, None),
        ("aac", "LC", None, "48000"),
    ]
    probe_each_segment(written)
    decode_silently(written.folder / "index.m3u8")
    assert frame_counts(written.folder / "index.m3u8") == frame_counts(flv_720p30) == {"video": 180, "audio": 283}


def test_samples_and_timestamps_pass_through_exactly(flv_720p30: Path, tmp_path: Path) -> None:
    """Every video sample is the FLV NALU payload byte for byte, DTS = ts×90, CTO = cts×90; audio is sample-exact."""
    tags = read_flv(flv_720p30)
    written = mux(tags, tmp_path / "hls")
    video = [t for t in tags if t.kind == 9 and t.body[1] == 1]
    audio = [t for t in tags if t.kind == 8 and t.body[1] == 1]
    runs = [r for s in written.segments for r in segment_runs(s.data)]
    v_samples = [
        (r.base_time + sum(r.durations[:i]), r.offsets[i], r.samples[i])
        for r in runs
        if r.track_id == 1
        for i in range(len(r.samples))
    ]
    expected = [(t.timestamp * 90, int.from_bytes(t.body[2:5], "big", signed=True) * 90, t.body[5:]) for t in video]
    assert v_samples == expected
    a_samples = [
        (r.base_time + sum(r.durations[:i]), r.samples[i])
        for r in runs
        if r.track_id == 2
        for i in range(len(r.samples))
    ]
    assert [s for _, s in a_samples] == [t.body[2:] for t in audio]
    first_audio = audio[0].timestamp * 48  # 46 ms at 48 kHz
    assert [d for d, _ in a_samples] == [first_audio + 1024 * i for i in range(len(audio))]


def test_1080p60_gop120_makes_two_second_segments(flv_1080p60: Path, tmp_path: Path) -> None:
    """(b) GOP 2 s with a 1 s target: the GOP forces 2 s segments; parts stay ~1/3 s; 44.1 kHz audio timescale."""
    tags = read_flv(flv_1080p60)
    written = mux(tags, tmp_path / "hls", part_target=0.333)
    init = written.inits[0]
    assert (init.width, init.height, init.codecs.split(",")[1]) == (1920, 1080, "mp4a.40.2")
    assert timescales(init.data) == {1: 90000, 2: 44100}
    assert [round(s.duration, 2) for s in written.segments] == [2.0, 2.0, 0.5]
    assert {round(p.duration, 3) for p in written.parts[:-1]} <= {0.333, 0.334}
    check_segments(written, tags)
    decode_silently(written.folder / "index.m3u8")
    assert frame_counts(written.folder / "index.m3u8") == frame_counts(flv_1080p60)


def test_audio_only(flv_audio: Path, tmp_path: Path) -> None:
    """(c) AAC only: one mp4a track, ~1 s segments cut by audio, every frame decoded."""
    tags = read_flv(flv_audio)
    written = mux(tags, tmp_path / "hls", part_target=0.333)
    assert written.inits[0].codecs == "mp4a.40.2"
    assert all(0.99 <= s.duration <= 1.03 for s in written.segments[:-1])
    assert all(s.keyframe for s in written.segments) and all(p.independent for p in written.parts)
    decode_silently(written.folder / "index.m3u8")
    assert frame_counts(written.folder / "index.m3u8") == frame_counts(flv_audio)


def test_video_only_main_profile(flv_video: Path, tmp_path: Path) -> None:
    """(d) H.264 Main (OBS' profile) with B-frames, no audio: 1 s segments at 25 fps GOP 25."""
    tags = read_flv(flv_video)
    written = mux(tags, tmp_path / "hls")
    assert (written.inits[0].codecs, written.inits[0].width) == ("avc1.4d401e", 640)
    assert [round(s.duration, 2) for s in written.segments] == [1.0, 1.0, 1.0]
    check_segments(written, tags)
    probe_each_segment(written)
    decode_silently(written.folder / "index.m3u8")
    assert frame_counts(written.folder / "index.m3u8") == {"video": 75}


@pytest.mark.parametrize(
    ("fixture", "fourcc", "codec"), [("mp4_hevc", b"hvc1", "hvc1.1.6.L60.90"), ("mp4_av1", b"av01", "av01.0.00M.08")]
)
def test_enhanced_rtmp_hevc_and_av1(
    fixture: str, fourcc: bytes, codec: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """(e) Enhanced RTMP tag bodies built from an x265/SVT-AV1 encode: decodes with all 60 frames."""
    entry, config, samples = mp4_video_track(request.getfixturevalue(fixture))
    assert entry == fourcc
    tags = enhanced_video_tags(fourcc, config, samples)
    written = mux(tags, tmp_path / "hls", part_target=0.333)
    init = written.inits[0]
    assert (init.codecs, init.width, init.height) == (codec, 320, 240)
    assert init.data.count(fourcc) == 1  # the sample entry type
    assert len(written.segments) == 2
    check_segments(written, tags)
    decode_silently(written.folder / "index.m3u8")
    assert frame_counts(written.folder / "index.m3u8") == {"video": 60}


def test_reconnect_keeps_one_timeline(flv_720p30: Path, tmp_path: Path) -> None:
    """The same file published twice, timestamps restarting at 0: tfdt continues, one init, EXT-X-DISCONTINUITY,
    and ffmpeg decodes all 2 × 180 video frames silently."""
    tags = read_flv(flv_720p30)
    segmenter = Segmenter(target_duration=1.0, part_target=None, anchor=ANCHOR)
    outputs = feed_tags(segmenter, tags) + segmenter.discontinuity() + feed_tags(segmenter, tags) + segmenter.finish()
    written = write_hls(outputs, tmp_path / "hls")
    assert [i.epoch for i in written.inits] == [0]
    assert [s.discontinuity for s in written.segments] == [False] * 6 + [True] + [False] * 5
    assert written.playlist.count("#EXT-X-DISCONTINUITY\n") == 1 and written.playlist.count("#EXT-X-MAP") == 1
    runs = [segment_runs(s.data) for s in written.segments]
    video = [[r for r in seg if r.track_id == 1] for seg in runs]
    audio = [[r for r in seg if r.track_id == 2] for seg in runs]
    video_end = (video[5][-1].base_time + sum(video[5][-1].durations)) / 90
    audio_end = (audio[5][-1].base_time + sum(audio[5][-1].durations)) / 48
    # The new session starts where the output ended: after the longer track (AAC ran 84 ms past the video).
    assert video[6][0].base_time == math.ceil(max(video_end, audio_end)) * 90
    assert audio[6][0].base_time >= audio_end * 48
    bases = [v[0].base_time for v in video]
    assert bases == sorted(bases)
    decode_silently(written.folder / "index.m3u8")
    assert frame_counts(written.folder / "index.m3u8") == {"video": 360, "audio": 566}


def test_reconnect_with_new_resolution_switches_init(flv_720p30: Path, flv_video: Path, tmp_path: Path) -> None:
    """720p A/V, then a reconnect as 360p video-only: a second init (epoch 1) and EXT-X-MAP; ffmpeg decodes both."""
    segmenter = Segmenter(target_duration=1.0, part_target=None, anchor=ANCHOR)
    outputs = feed_tags(segmenter, read_flv(flv_720p30)) + segmenter.discontinuity()
    outputs += feed_tags(segmenter, read_flv(flv_video)) + segmenter.finish()
    written = write_hls(outputs, tmp_path / "hls")
    assert [(i.epoch, i.codecs) for i in written.inits] == [(0, "avc1.64001f,mp4a.40.2"), (1, "avc1.4d401e,mp4a.40.2")]
    assert written.playlist.count("#EXT-X-MAP") == 2
    assert '#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init_1.mp4"' in written.playlist
    # ffmpeg 5.1's HLS demuxer does not hand the new avcC to the decoder when EXT-X-MAP changes (hls.js re-inits
    # its SourceBuffer on a new init), so each epoch is checked as init + its own segments.
    video_frames = 0
    for init in written.inits:
        epoch = _write(
            tmp_path / f"epoch_{init.epoch}.mp4",
            init.data + b"".join(s.data for s in written.segments if s.epoch == init.epoch),
        )
        decode_silently(epoch)
        video_frames += frame_counts(epoch)["video"]
    assert video_frames == 180 + 75


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
