"""Segmenter behaviour on synthetic RTMP streams: cut rules, timing, reconnects, config changes, bounds, errors.

Frames are opaque to the segmenter (it never decodes slices), so these streams use real codec configs and
placeholder frame bytes; the ffmpeg-backed tests in ``test_ffmpeg_output.py`` check decodability.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from mediakit.cmaf import (
    InitSegment,
    MalformedMedia,
    MediaUsageError,
    Output,
    Part,
    Segment,
    Segmenter,
    UnsupportedMedia,
)
from mediakit.cmaf.hevc import NAL_VPS, parse_hvcc
from tests.unit.media.support import AVCC_360P_MAIN, AVCC_720P_HIGH, Run, root, segment_runs, timescales

ANCHOR = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
AVC_CONFIG = b"\x17\x00\x00\x00\x00" + AVCC_360P_MAIN
AAC_CONFIG = b"\xaf\x00" + bytes.fromhex("119056e500")
METADATA = {"width": 640.0, "height": 360.0, "framerate": 30.0, "videocodecid": 7.0, "audiocodecid": 10.0}


def avc_frame(keyframe: bool, cts_ms: int = 0, size: int = 200) -> bytes:
    """An AVC NALU packet with a ``size``-byte placeholder NAL unit."""
    return bytes([0x17 if keyframe else 0x27, 1]) + cts_ms.to_bytes(3, "big", signed=True) + bytes(size)


def aac_frame(size: int = 50) -> bytes:
    """A raw AAC frame placeholder."""
    return b"\xaf\x01" + bytes(size)


@dataclass(frozen=True)
class Msg:
    """One RTMP media message."""

    video: bool
    ts: int
    body: bytes


def stream(
    seconds: float,
    *,
    fps: float = 30,
    gop: int = 30,
    audio: bool = True,
    video: bool = True,
    start: int = 0,
    frame_size: int = 200,
) -> Iterator[Msg]:
    """Sequence headers, then video (B-frame style CTS 67 ms) and AAC 48 kHz frames interleaved by timestamp."""
    if audio:
        yield Msg(False, start, AAC_CONFIG)
    if video:
        yield Msg(True, start, AVC_CONFIG)
    frames = []
    if video:
        frames += [
            Msg(True, start + round(i * 1000 / fps), avc_frame(i % gop == 0, 67, frame_size))
            for i in range(int(seconds * fps))
        ]
    if audio:
        frames += [
            Msg(False, start + round(j * 1024_000 / 48000), aac_frame()) for j in range(int(seconds * 48000 / 1024))
        ]
    yield from sorted(frames, key=lambda m: m.ts)


def feed(segmenter: Segmenter, messages: Iterator[Msg] | list[Msg]) -> list[Output]:
    """Feed messages in order and collect the outputs."""
    out: list[Output] = []
    for msg in messages:
        out += (segmenter.feed_video if msg.video else segmenter.feed_audio)(msg.ts, msg.body)
    return out


def of(kind: type, outputs: list[Output]) -> list:  # type: ignore[type-arg]
    """Outputs of one type."""
    return [o for o in outputs if isinstance(o, kind)]


def runs(segment: Segment, track_id: int) -> list[Run]:
    """The traf runs of one track in a segment."""
    return [run for run in segment_runs(segment.data) if run.track_id == track_id]


class TestCutRules:
    """CMAF_COST cut rules: keyframe after ≥ target, parts after ≥ part target, audio by arrival."""

    def test_one_second_gop_gives_one_second_segments_of_three_parts(self) -> None:
        """GOP 30 @ 30 fps → 1.000 s segments, each starting with a keyframe, 3 parts of 0.333/0.334 s."""
        seg = Segmenter(anchor=ANCHOR)
        out = feed(seg, stream(5)) + seg.finish()
        segments = of(Segment, out)
        assert [s.sequence for s in segments] == [0, 1, 2, 3, 4]
        assert [round(s.duration, 2) for s in segments] == [1.0, 1.0, 1.0, 1.0, 1.0]  # last: estimated end
        assert all(s.keyframe and len(s.parts) == 3 for s in segments)
        assert {round(p.duration, 3) for s in segments for p in s.parts} <= {0.333, 0.334}
        assert [s.program_date_time for s in segments] == [ANCHOR + timedelta(seconds=i) for i in range(5)]
        first_video_flags = [runs(s, 1)[0].flags[0] for s in segments]
        assert first_video_flags == [0x02000000] * 5

    def test_gop_longer_than_target_makes_longer_segments(self) -> None:
        """GOP 60 @ 30 fps with a 1 s target: the GOP forces 2 s segments."""
        seg = Segmenter(target_duration=1.0, part_target=None)
        segments = of(Segment, feed(seg, stream(6, gop=60)) + seg.finish())
        assert [round(s.duration, 2) for s in segments] == [2.0, 2.0, 2.0]
        assert all(len(s.parts) == 1 for s in segments)

    def test_part_outputs_come_before_their_segment_and_concatenate_to_it(self) -> None:
        """Order: InitSegment, then parts, then the segment whose bytes are the parts joined."""
        seg = Segmenter()
        out = feed(seg, stream(3)) + seg.finish()
        assert isinstance(out[0], InitSegment)
        parts: list[Part] = []
        for output in out[1:]:
            if isinstance(output, Part):
                parts.append(output)
            else:
                assert isinstance(output, Segment)
                assert [p.sequence for p in parts] == [output.sequence] * len(parts)
                assert b"".join(p.data for p in parts) == output.data
                assert [(i.offset, i.size) for i in output.parts] == [
                    (sum(len(p.data) for p in parts[:n]), len(parts[n].data)) for n in range(len(parts))
                ]
                assert parts[0].data.startswith(b"\x00\x00\x00\x10styp") or parts[0].data[4:8] == b"styp"
                assert all(p.data[4:8] == b"moof" for p in parts[1:])
                parts = []

    def test_audio_is_cut_by_arrival(self) -> None:
        """Audio that arrives before the cutting keyframe stays in the closing segment, even if stamped later."""
        seg = Segmenter(part_target=None)
        msgs = [Msg(False, 0, AAC_CONFIG), Msg(True, 0, AVC_CONFIG)]
        msgs += [Msg(True, i * 100, avc_frame(i % 10 == 0)) for i in range(10)]
        msgs += [Msg(False, 1010, aac_frame()), Msg(True, 1000, avc_frame(True)), Msg(True, 1100, avc_frame(False))]
        out = feed(seg, msgs)
        (first,) = of(Segment, out)
        assert len(runs(first, 2)[0].samples) == 1  # the audio frame stamped 1010 ms arrived before the keyframe

    def test_force_cut_without_keyframes(self) -> None:
        """No keyframe for 12 s: the segment is force-cut at 10 s and the next one is not independent."""
        seg = Segmenter(max_segment_duration=10.0, part_target=None)
        segments = of(Segment, feed(seg, stream(12, gop=10_000, audio=False)) + seg.finish())
        assert [round(s.duration, 2) for s in segments] == [10.0, 2.0]
        assert [s.keyframe for s in segments] == [True, False]
        assert runs(segments[1], 1)[0].flags[0] == 0x01010000

    def test_force_cut_by_bytes_bounds_memory(self) -> None:
        """A segment never grows past ``max_segment_bytes`` (plus one frame)."""
        seg = Segmenter(max_segment_bytes=100_000, part_target=None)
        segments = of(Segment, feed(seg, stream(4, gop=10_000, audio=False, frame_size=10_000)) + seg.finish())
        assert len(segments) > 1
        assert max(len(s.data) for s in segments) < 100_000 + 10_000 + 2_000

    def test_video_before_first_keyframe_and_before_config_is_dropped(self) -> None:
        """Inter frames before the first IDR cannot be decoded; frames before a sequence header neither."""
        seg = Segmenter(part_target=None)
        msgs = [Msg(True, 0, avc_frame(True)), Msg(True, 0, AVC_CONFIG), Msg(True, 33, avc_frame(False))]
        msgs += [Msg(True, 33 * i, avc_frame(i % 30 == 2)) for i in range(2, 40)]
        out = feed(seg, msgs) + seg.finish()
        first = of(Segment, out)[0]
        video = runs(first, 1)[0]
        assert video.flags[0] == 0x02000000 and video.base_time == 0  # the timeline starts at the first kept frame


class TestTiming:
    """Timescales, sample-count audio timing, composition offsets, PDT."""

    def test_audio_timestamps_come_from_sample_counts(self) -> None:
        """ms-rounded FLV audio timestamps still give 1024-sample durations and tfdt = frames × 1024."""
        seg = Segmenter(part_target=None)
        segments = of(Segment, feed(seg, stream(3)) + seg.finish())
        audio_runs = [r for s in segments for r in runs(s, 2)]
        assert {d for r in audio_runs for d in r.durations} == {1024}
        counts = [len(r.durations) for r in audio_runs]
        assert [r.base_time for r in audio_runs] == [1024 * sum(counts[:i]) for i in range(len(counts))]
        assert seg.timeline.resyncs == 0

    def test_audio_gap_resyncs(self) -> None:
        """Audio that jumps 200 ms ahead (dropped frames) resyncs to the timestamp instead of drifting."""
        seg = Segmenter(part_target=None)
        msgs = [Msg(False, 0, AAC_CONFIG)] + [Msg(False, round(j * 21.333), aac_frame()) for j in range(20)]
        msgs += [Msg(False, 626 + round(j * 21.333), aac_frame()) for j in range(60)]
        segments = of(Segment, feed(seg, msgs) + seg.finish())
        audio = [r for s in segments for r in runs(s, 2)]
        dts = [r.base_time + sum(r.durations[:i]) for r in audio for i in range(len(r.durations))]
        assert seg.timeline.resyncs == 1
        assert dts[20] == 626 * 48  # 626 ms at 48 kHz
        assert dts[19] == 19 * 1024

    def test_video_dts_and_composition_offsets(self) -> None:
        """DTS = ms × 90 and CTO = CTS × 90 (trun v0, non-negative)."""
        seg = Segmenter(part_target=None)
        segments = of(Segment, feed(seg, stream(2, audio=False)) + seg.finish())
        video = runs(segments[0], 1)[0]
        assert video.base_time == 0
        assert video.durations[:3] == [2970, 3060, 2970]  # 0, 33, 67, 100 ms
        assert set(video.offsets) == {67 * 90}

    def test_timeline_starts_at_zero_whatever_the_first_timestamp(self) -> None:
        """A publisher whose clock starts at 5 s still yields tfdt 0 and PDT = anchor."""
        seg = Segmenter(anchor=ANCHOR, part_target=None)
        segments = of(Segment, feed(seg, stream(2, start=5000)) + seg.finish())
        assert runs(segments[0], 1)[0].base_time == 0
        assert segments[0].program_date_time == ANCHOR

    def test_backwards_jump_inside_a_session_rebases(self) -> None:
        """An encoder clock restart without a reconnect keeps tfdt increasing (no discontinuity tag)."""
        seg = Segmenter(part_target=None)
        msgs = list(stream(2, audio=False)) + [m for m in stream(2, audio=False) if m.body != AVC_CONFIG]
        segments = of(Segment, feed(seg, msgs) + seg.finish())
        bases = [runs(s, 1)[0].base_time for s in segments]
        assert bases == sorted(bases) and len(set(bases)) == len(bases)
        assert seg.timeline.rebases == 1 and not any(s.discontinuity for s in segments)


class TestSessions:
    """discontinuity(): publisher reconnects with timestamps from 0; config changes make new epochs."""

    def test_reconnect_with_same_config_continues_timeline_without_new_init(self) -> None:
        """Same sequence headers → still epoch 0; first segment after is flagged; tfdt continues."""
        seg = Segmenter(anchor=ANCHOR, part_target=None)
        out = feed(seg, stream(2)) + seg.discontinuity() + feed(seg, stream(2)) + seg.finish()
        assert [i.epoch for i in of(InitSegment, out)] == [0]
        segments = of(Segment, out)
        assert [s.discontinuity for s in segments] == [False, False, True, False]
        assert [s.epoch for s in segments] == [0, 0, 0, 0]
        video = [runs(s, 1)[0].base_time for s in segments]
        last = runs(segments[1], 1)[0]
        end_first = video[1] + sum(last.durations)
        # presentation end of the first session: B-frames are shown after later DTSs (composition offsets)
        starts = [video[1] + sum(last.durations[:i]) for i in range(len(last.durations))]
        shown_until = max(t + cto + 3000 for t, cto in zip(starts, last.offsets, strict=True))
        assert video[2] >= shown_until  # no frame of the new session is presented before the old one ended
        assert 0 <= video[2] - end_first <= 3000 + max(last.offsets)  # otherwise continuous
        audio_end = runs(segments[1], 2)[-1]
        assert runs(segments[2], 2)[0].base_time >= audio_end.base_time + sum(audio_end.durations)
        assert segments[2].program_date_time == ANCHOR + timedelta(seconds=video[2] / 90000)

    def test_reconnect_with_new_config_starts_new_epoch(self) -> None:
        """A different SPS after the reconnect → InitSegment epoch 1 before the first new segment."""
        seg = Segmenter(part_target=None)
        out = feed(seg, stream(2)) + seg.discontinuity()
        second = [
            Msg(m.video, m.ts, b"\x17\x00\x00\x00\x00" + AVCC_720P_HIGH if m.body == AVC_CONFIG else m.body)
            for m in stream(2)
        ]
        out += feed(seg, second) + seg.finish()
        inits = of(InitSegment, out)
        assert [(i.epoch, i.width, i.height) for i in inits] == [(0, 640, 360), (1, 1280, 720)]
        assert out.index(inits[1]) < out.index(next(s for s in of(Segment, out) if s.epoch == 1))
        assert [(s.epoch, s.discontinuity) for s in of(Segment, out)] == [(0, False), (0, False), (1, True), (1, False)]

    def test_reconnect_anchor_sets_new_program_date_time(self) -> None:
        """``discontinuity(anchor=...)``: PDT of the new session's first segment is that wall clock."""
        later = ANCHOR + timedelta(seconds=30)
        seg = Segmenter(anchor=ANCHOR, part_target=None)
        out = feed(seg, stream(2)) + seg.discontinuity(anchor=later) + feed(seg, stream(2)) + seg.finish()
        assert [s.program_date_time for s in of(Segment, out)] == [
            ANCHOR,
            ANCHOR + timedelta(seconds=1),
            later,
            later + timedelta(seconds=1),
        ]

    def test_mid_session_config_change(self) -> None:
        """A new SPS without a reconnect closes the segment and starts epoch 1 with a discontinuity."""
        seg = Segmenter(part_target=None)
        out = feed(seg, stream(1.5, audio=False))
        out += seg.feed_video(1500, b"\x17\x00\x00\x00\x00" + AVCC_720P_HIGH)
        out += seg.feed_video(1500, avc_frame(True)) + seg.feed_video(1533, avc_frame(False)) + seg.finish()
        assert [type(o).__name__ for o in out] == ["InitSegment", "Segment", "Segment", "InitSegment", "Segment"]
        assert [(s.epoch, s.discontinuity) for s in of(Segment, out)] == [(0, False), (0, False), (1, True)]

    def test_identical_sequence_header_resent_changes_nothing(self) -> None:
        """Encoders resend SPS/ASC; identical bytes are a no-op."""
        seg = Segmenter(part_target=None)
        out = seg.feed_metadata(METADATA) + feed(seg, stream(1))
        assert seg.feed_video(1000, AVC_CONFIG) == [] and seg.feed_audio(1000, AAC_CONFIG) == []
        assert len(of(InitSegment, out)) == 1

    def test_waits_for_every_track_announced_by_metadata(self) -> None:
        """onMetaData announces audio: video frames wait until the late AAC header, then one A/V init."""
        seg = Segmenter(part_target=None)
        out = seg.feed_metadata(METADATA) + seg.feed_video(0, AVC_CONFIG)
        out += seg.feed_video(0, avc_frame(True)) + seg.feed_video(33, avc_frame(False))
        assert out == []
        out += seg.feed_audio(40, AAC_CONFIG)
        (init,) = of(InitSegment, out)
        assert init.codecs == "avc1.4d401e,mp4a.40.2"
        assert (init.video_codec, init.audio_codec) == ("avc1.4d401e", "mp4a.40.2")

    def test_without_metadata_a_grace_window_decides(self) -> None:
        """No onMetaData and no audio header: after 1 s of buffered video, commit video-only."""
        seg = Segmenter(part_target=None)
        out = feed(seg, stream(0.9, audio=False))
        assert out == []
        out += feed(seg, [Msg(True, 1000 + i * 33, avc_frame(False)) for i in range(3)])
        (init,) = of(InitSegment, out)
        assert init.codecs == "avc1.4d401e"
        assert len(timescales(init.data)) == 1

    def test_late_audio_track_starts_a_new_epoch(self) -> None:
        """Committed video-only (no metadata, grace over), then an AAC header: new init with both tracks."""
        seg = Segmenter(part_target=None)
        out = feed(seg, stream(2, audio=False))
        out += seg.feed_audio(2000, AAC_CONFIG) + seg.feed_audio(2000, aac_frame())
        out += seg.feed_video(2000, avc_frame(True)) + seg.finish()
        assert [(i.epoch, i.codecs) for i in of(InitSegment, out)] == [(0, "avc1.4d401e"), (1, "avc1.4d401e,mp4a.40.2")]
        assert [(s.epoch, s.discontinuity) for s in of(Segment, out)][-1] == (1, True)
        assert timescales(of(InitSegment, out)[1].data) == {1: 90000, 2: 48000}

    def test_empty_frames_are_dropped(self) -> None:
        """A NALU packet or raw AAC frame with no payload adds no sample."""
        seg = Segmenter(part_target=None)
        out = seg.feed_metadata(METADATA) + feed(seg, stream(0.5))
        out += seg.feed_video(500, b"\x27\x01\x00\x00\x00") + seg.feed_audio(500, b"\xaf\x01") + seg.finish()
        (segment,) = of(Segment, out)
        assert all(size > 0 for run in segment_runs(segment.data) for size in run.sizes)

    def test_audio_only_and_video_only(self) -> None:
        """Single-track streams: init with one trak; audio-only segments cut by audio, independent."""
        seg = Segmenter(part_target=None)
        out = feed(seg, stream(3.2, video=False)) + seg.finish()
        (init,) = of(InitSegment, out)
        assert (init.codecs, init.width, init.height) == ("mp4a.40.2", None, None)
        assert timescales(init.data) == {2: 48000}
        segments = of(Segment, out)
        assert all(s.keyframe for s in segments) and [round(s.duration, 2) for s in segments[:3]] == [1.0, 1.0, 1.0]


class TestHevcSamples:
    """Enhanced RTMP HEVC: in-band parameter sets equal to the hvcC are stripped for ``hvc1``."""

    def test_in_band_vps_is_removed_from_keyframes(self, hvcc: bytes) -> None:
        """A keyframe carrying the record's VPS before its slice is stored as the slice alone."""
        vps = parse_hvcc(hvcc).arrays[NAL_VPS][0]
        idr = bytes([19 << 1, 1]) + bytes(30)
        sample = len(vps).to_bytes(4, "big") + vps + len(idr).to_bytes(4, "big") + idr
        seg = Segmenter(part_target=None)
        out = seg.feed_video(0, b"\x90hvc1" + hvcc) + seg.feed_video(0, b"\x93hvc1" + sample)
        out += seg.finish()
        (segment,) = of(Segment, out)
        assert runs(segment, 1)[0].samples == [len(idr).to_bytes(4, "big") + idr]
        assert of(InitSegment, out)[0].codecs == "hvc1.1.6.L60.90"


class TestErrors:
    """UnsupportedMedia for what we cannot mux; MediaUsageError for caller bugs."""

    def test_mp3_audio_is_unsupported(self) -> None:
        """MP3 (SoundFormat 2) → UnsupportedMedia, so the session can fall back to ffmpeg."""
        with pytest.raises(UnsupportedMedia, match="MP3"):
            Segmenter().feed_audio(0, b"\x2f\xff\xfb\x90\x00")

    def test_malformed_sequence_header(self) -> None:
        """A truncated avcC raises MalformedMedia, a subclass of UnsupportedMedia."""
        with pytest.raises(MalformedMedia):
            Segmenter().feed_video(0, AVC_CONFIG[:12])
        assert issubclass(MalformedMedia, UnsupportedMedia)

    def test_codec_mismatch_between_header_and_frames(self) -> None:
        """HEVC frames after an AVC sequence header cannot be muxed."""
        seg = Segmenter()
        seg.feed_video(0, AVC_CONFIG)
        with pytest.raises(MalformedMedia, match="does not match"):
            seg.feed_video(0, b"\x93hvc1" + bytes(10))

    def test_use_after_finish_and_bad_arguments(self) -> None:
        """Feeding after finish(), negative timestamps, naive anchors and bad durations are caller errors."""
        seg = Segmenter()
        seg.finish()
        with pytest.raises(MediaUsageError):
            seg.feed_video(0, AVC_CONFIG)
        with pytest.raises(MediaUsageError):
            Segmenter().feed_audio(-1, AAC_CONFIG)
        with pytest.raises(MediaUsageError):
            Segmenter(anchor=datetime(2025, 1, 1))  # noqa: DTZ001 - naive on purpose
        with pytest.raises(MediaUsageError):
            Segmenter(target_duration=1.0, part_target=2.0)

    def test_finish_flushes_and_reuses_last_duration(self) -> None:
        """The last video sample gets the previous sample's duration."""
        seg = Segmenter(part_target=None)
        segments = of(Segment, feed(seg, stream(1.5, audio=False)) + seg.finish())
        last = runs(segments[-1], 1)[-1]
        assert last.durations[-1] == last.durations[-2]
        assert root(segments[-1].data).children[0].kind == b"styp"
