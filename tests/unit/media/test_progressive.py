"""ProgressiveMp4 (mediakit.progressive): one faststart MP4 planned from live CMAF segments, checked two ways.

- With the real tools: ffmpeg-made FLV → Segmenter (~250 ms fragments) → SegmentScanner → plan → file written as
  header + copied ranges. ffmpeg decodes it without a word, ffprobe sees the codecs, durations, frame counts and
  start times, the samples are byte for byte the segments' samples, and a second build is the same object.
- On synthetic StoredSegments (no payload at all): the tables the plan writes, read back with ``mediakit.bmff``:
  gaps and overlaps, timescale changes, sample entries across epochs, edit lists, co64/largesize/version 1.
"""

from __future__ import annotations

import json
import struct
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from mediakit import bmff
from mediakit.cmaf import InitSegment, Output, Segment, Segmenter
from mediakit.cmaf.fragment import NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS
from mediakit.cmaf.init import build_init
from mediakit.cmaf.tracks import audio_track, video_track
from mediakit.progressive import ProgressiveMp4, RecordingError
from mediakit.progressive_tables import mdat_header
from mediakit.segment_scan import scan_whole
from mediakit.stored import StoredSegment
from tests.unit.media.conftest import requires_ffmpeg
from tests.unit.media.support import (
    AVCC_360P_MAIN,
    AVCC_720P_HIGH,
    FFMPEG,
    FFPROBE,
    feed_tags,
    ffprobe_streams,
    mp4_video_track,
    read_flv,
    root,
    run,
)

ASC_48K = bytes.fromhex("1190")  # AAC-LC 48 kHz stereo
ASC_44K = bytes.fromhex("1210")  # AAC-LC 44.1 kHz stereo
INIT = build_init(video=video_track("avc1", AVCC_720P_HIGH), audio=audio_track(ASC_48K, 2))
INIT_360P = build_init(video=video_track("avc1", AVCC_360P_MAIN), audio=audio_track(ASC_48K, 2))
INIT_44K = build_init(video=video_track("avc1", AVCC_720P_HIGH), audio=audio_track(ASC_44K, 2))
INIT_VIDEO_ONLY = build_init(video=video_track("avc1", AVCC_720P_HIGH), audio=None)


# ---------------------------------------------------------------------------------------------- helpers


@dataclass
class Broadcast:
    """Segmenter outputs as the recording function sees them: inits, scanned segments, and the objects' bytes."""

    inits: dict[int, bytes]
    segments: list[StoredSegment]
    objects: dict[int, bytes]

    def samples(self, track_id: int) -> int:
        """Samples of a track over every segment."""
        return sum(len(r.sizes) for s in self.segments for f in s.fragments for r in f.runs if r.track_id == track_id)


def broadcast(outputs: list[Output]) -> Broadcast:
    """Wrap outputs as StoredSegments, fragments from :func:`scan_whole` with their epoch's trex defaults."""
    inits = {o.epoch: o.data for o in outputs if isinstance(o, InitSegment)}
    defaults = {e: {t: i.defaults for t, i in bmff.read_init(d).items()} for e, d in inits.items()}
    segments = [o for o in outputs if isinstance(o, Segment)]
    stored = [
        StoredSegment(s.sequence, s.epoch, s.discontinuity, len(s.data), scan_whole(s.data, defaults[s.epoch]))
        for s in segments
    ]
    return Broadcast(inits, stored, {s.sequence: s.data for s in segments})


def write(plan: ProgressiveMp4, objects: dict[int, bytes], path: Path) -> Path:
    """The file as the recording function streams it: header, then every range."""
    with path.open("wb") as out:
        out.write(plan.header)
        for sequence, start, end in plan.copy_ranges():
            out.write(objects[sequence][start:end])
    assert path.stat().st_size == plan.size
    return path


def mux(tmp_path: Path, *publishes: list, part_target: float = 0.25) -> tuple[Broadcast, ProgressiveMp4, Path]:
    """Publish FLV tag lists back to back (a reconnect between each), plan and write the MP4."""
    segmenter = Segmenter(part_target=part_target)
    outputs: list[Output] = []
    for n, tags in enumerate(publishes):
        outputs += (segmenter.discontinuity() if n else []) + feed_tags(segmenter, tags)
    media = broadcast(outputs + segmenter.finish())
    plan = ProgressiveMp4(media.inits, media.segments)
    return media, plan, write(plan, media.objects, tmp_path / "recording.mp4")


def decode_silently(path: Path, *extra: str) -> None:
    """``ffmpeg -v error -i file -f null -`` prints nothing and exits 0."""
    argv = [FFMPEG or "ffmpeg", "-hide_banner", "-nostats", "-v", "error", "-i", str(path), *extra, "-f", "null", "-"]
    result = run(argv)
    assert (result.returncode, result.stderr) == (0, "")


def probe(path: Path, entries: str) -> dict[str, Any]:
    """``ffprobe -show_entries`` as JSON."""
    result = run([FFPROBE or "ffprobe", "-v", "error", "-of", "json", "-show_entries", entries, str(path)])
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return json.loads(result.stdout)


def top_level(path: Path) -> list[bytes]:
    """Kinds of the file's top-level boxes."""
    return [ref.kind for ref in bmff.iter_boxes(path.read_bytes())]


def header_boxes(plan: ProgressiveMp4) -> tuple[bytes, bmff.BoxRef]:
    """``ftyp`` + ``moov`` bytes of the plan, and its mdat box (sized against the whole file)."""
    ftyp, moov, mdat = islice(bmff.iter_boxes(plan.header, 0, plan.size), 3)
    assert (ftyp.kind, moov.kind, mdat.kind, mdat.end) == (b"ftyp", b"moov", b"mdat", plan.size)
    assert mdat.payload == len(plan.header)
    return plan.header[: moov.end], mdat


def tables(plan: ProgressiveMp4) -> dict[int, dict[bytes, bytes]]:
    """track id → {box type: payload} for tkhd, elst, mdhd and every stbl child."""
    moov_bytes, _ = header_boxes(plan)
    found = {}
    for trak in root(moov_bytes).find(b"moov").find_all(b"trak"):
        tkhd = trak.find(b"tkhd").payload
        track_id = int.from_bytes(tkhd[20:24] if tkhd[0] == 1 else tkhd[12:16], "big")
        boxes = {child.kind: child.payload for child in trak.find(b"mdia", b"minf", b"stbl").children}
        boxes[b"tkhd"], boxes[b"mdhd"] = tkhd, trak.find(b"mdia", b"mdhd").payload
        elst = trak.find_all(b"edts", b"elst")
        if elst:
            boxes[b"elst"] = elst[0].payload
        found[track_id] = boxes
    return found


def entries(payload: bytes, fmt: str) -> list[tuple[int, ...]]:
    """The entries of a FullBox table (``entry_count`` then fixed-size entries)."""
    count = int.from_bytes(payload[4:8], "big")
    size = struct.calcsize(fmt)
    return [struct.unpack_from(fmt, payload, 8 + i * size) for i in range(count)]


def expand(pairs: list[tuple[int, ...]]) -> list[int]:
    """stts/ctts run-length pairs → one value per sample."""
    return [value for count, value in pairs for _ in range(count)]


def video(base: int, count: int = 8, *, size: int = 1000, cto: int = 6030, duration: int = 3000) -> tuple:
    """A video run spec: GOP start first, constant composition offset."""
    flags = [SYNC_SAMPLE_FLAGS] + [NON_SYNC_SAMPLE_FLAGS] * (count - 1)
    return (1, base, [duration] * count, [size] * count, flags, [cto] * count)


def audio(base: int, count: int = 12, *, size: int = 300, duration: int = 1024) -> tuple:
    """An audio run spec (every sample sync)."""
    return (2, base, [duration] * count, [size] * count, [SYNC_SAMPLE_FLAGS] * count, [0] * count)


def stored(sequence: int, *fragments: list[tuple], epoch: int = 0, spacing: int = 0) -> StoredSegment:
    """A StoredSegment without payload: styp, then per fragment a 200-byte moof, an mdat header, the runs
    back to back (``spacing`` bytes between runs)."""
    position, built = 24, []
    for runs in fragments:
        moof, cursor = position, position + 208
        track_runs = []
        for track_id, base, durations, sizes, flags, offsets in runs:
            track_runs.append(bmff.TrackRun(track_id, base, 1, durations, sizes, flags, offsets, cursor))
            cursor += sum(sizes) + spacing
        built.append(bmff.Fragment(moof, moof + 200, tuple(track_runs), (moof + 208, cursor)))
        position = cursor
    return StoredSegment(sequence, epoch, False, position, tuple(built))


# ---------------------------------------------------------------------------------------------- real media


@requires_ffmpeg
class TestRealMedia:
    """ffmpeg-made FLV through the segmenter, the scanner and the plan; checked with ffmpeg and ffprobe."""

    def test_720p_recording_plays_and_matches_its_segments(self, flv_720p30: Path, tmp_path: Path) -> None:
        """H.264 + AAC, faststart, silent decode, counts, durations, start times, samples byte for byte."""
        media, plan, path = mux(tmp_path, read_flv(flv_720p30))
        assert top_level(path) == [b"ftyp", b"moov", b"mdat"]
        decode_silently(path)
        streams = {s["codec_type"]: s for s in ffprobe_streams(path, count_frames=True)}
        assert (streams["video"]["codec_name"], streams["audio"]["codec_name"]) == ("h264", "aac")
        assert int(streams["video"]["nb_read_frames"]) == media.samples(1) == 180
        assert int(streams["audio"]["nb_read_frames"]) == media.samples(2)
        scales = {t: i.timescale for t, i in bmff.read_init(media.inits[0]).items()}
        summed = sum(s.duration(scales) for s in media.segments)
        reported = float(probe(path, "format=duration")["format"]["duration"])
        assert abs(reported - summed) <= 0.1 and abs(reported - plan.duration) <= 0.05
        assert max(float(streams[kind]["start_time"]) for kind in ("video", "audio")) <= 1 / 30
        assert [(t.handler, t.fourccs, t.timescale, t.sample_count) for t in plan.tracks] == [
            ("vide", ("avc1",), 90000, 180),
            ("soun", ("mp4a",), 48000, media.samples(2)),
        ]
        _, _, samples = mp4_video_track(path)
        source = [
            (data, bmff.is_sync(flag))
            for s in media.segments
            for f in s.fragments
            for r in f.runs
            if r.track_id == 1
            for data, flag in zip(bmff.sample_bytes(media.objects[s.sequence], r), r.flags, strict=True)
        ]
        assert [(sample.data, sample.keyframe) for sample in samples] == source
        assert sum(sample.keyframe for sample in samples) == 6  # GOP 30 → stss lists exactly the IDRs

    def test_second_build_is_the_same_object(self, flv_720p30: Path, tmp_path: Path) -> None:
        """Same inputs, same bytes (no clock, no ordering accident)."""
        media, plan, path = mux(tmp_path, read_flv(flv_720p30))
        again = ProgressiveMp4(dict(media.inits), list(media.segments))
        assert again.header == plan.header and list(again.copy_ranges()) == list(plan.copy_ranges())
        assert write(again, media.objects, tmp_path / "again.mp4").read_bytes() == path.read_bytes()

    def test_reconnect_keeps_one_continuous_timeline(self, flv_720p30: Path, tmp_path: Path) -> None:
        """Two publishes stitched by ``discontinuity()``: silent decode, 2× the frames, PTS increasing per
        stream with ≤ 2-frame steps except the one hole the segmenter's timeline left at the reconnect (held by
        stretching the last sample before it), and A/V sync after the reconnect as before it."""
        tags = read_flv(flv_720p30)
        media, plan, path = mux(tmp_path, tags, tags)
        assert [s.discontinuity for s in media.segments].count(True) == 1 and len(media.inits) == 1
        decode_silently(path)
        assert {s["codec_type"]: int(s["nb_read_frames"]) for s in ffprobe_streams(path, count_frames=True)} == {
            "video": 360,
            "audio": media.samples(2),
        }
        packets = probe(path, "packet=stream_index,pts_time")["packets"]
        pts = {i: [float(p["pts_time"]) for p in packets if p["stream_index"] == i] for i in (0, 1)}
        assert pts[1] == sorted(pts[1])  # audio: decode order is presentation order
        # Where the second publish starts in the file: its first tfdt (+ composition offset for video), moved
        # like everything else by the earliest presentation (the first audio tfdt, 46 ms).
        first_runs = {r.track_id: r for r in media.segments[0].fragments[0].runs}
        restart = next(s for s in media.segments if s.discontinuity)
        runs = {r.track_id: r for r in restart.fragments[0].runs}
        shift = first_runs[2].base_time / 48000
        expected = {
            0: (runs[1].base_time + runs[1].composition_offsets[0]) / 90000 - shift,
            1: runs[2].base_time / 48000 - shift,
        }
        for index, frame in ((0, 1 / 30), (1, 1024 / 48000)):
            ordered = sorted(pts[index])
            steps = {b: b - a for a, b in zip(ordered, ordered[1:], strict=False)}
            assert min(steps.values()) > 0
            junction = min(steps, key=lambda t: abs(t - expected[index]))
            assert junction == pytest.approx(expected[index], abs=1e-3)
            assert steps[junction] <= 4 * frame  # the hole the segmenter left, held by the last sample before it
            assert all(step <= 2 * frame + 1e-6 for at, step in steps.items() if at != junction)
        assert expected[0] - expected[1] == pytest.approx(min(pts[0]) - min(pts[1]), abs=1e-3) == 0.021

    def test_codec_change_adds_a_sample_entry(self, flv_video: Path, flv_720p30: Path, tmp_path: Path) -> None:
        """360p video-only, then a reconnect as 720p A/V: epoch 1; the video track gets a second stsd entry and
        stsc switches to it; audio starts late behind an empty edit; ffmpeg decodes both sizes silently."""
        media, plan, path = mux(tmp_path, read_flv(flv_video), read_flv(flv_720p30))
        assert sorted(media.inits) == [0, 1]
        video_track_, audio_track_ = plan.tracks
        assert (video_track_.sample_entries, video_track_.fourccs, audio_track_.sample_entries) == (2, ("avc1",), 1)
        stsc = entries(tables(plan)[1][b"stsc"], ">III")
        assert [index for _, _, index in stsc] == sorted(index for _, _, index in stsc)
        assert {index for _, _, index in stsc} == {1, 2}
        # ffmpeg's null muxer stamps frames in 1/(first frame rate) = 1/25; the 30 fps part would then collide
        # ("non monotonically increasing dts", a CLI artefact, not the file's): keep the demuxer's time base.
        decode_silently(path, "-enc_time_base", "-1")
        frames = probe(path, "frame=width,height")["frames"]
        sizes = [(f["width"], f["height"]) for f in frames if "width" in f]
        assert (sizes.count((640, 360)), sizes.count((1280, 720))) == (75, 180)
        starts = {s["codec_type"]: float(s["start_time"]) for s in ffprobe_streams(path)}
        assert starts["video"] == 0 and starts["audio"] == pytest.approx(3.0 + 0.046, abs=0.05)


# ---------------------------------------------------------------------------------------------- errors


class TestErrors:
    """Inputs that cannot make one MP4 raise RecordingError naming the culprit."""

    def test_no_segments(self) -> None:
        """Nothing to build."""
        with pytest.raises(RecordingError, match="no segments"):
            ProgressiveMp4({0: INIT}, [])
        with pytest.raises(RecordingError, match="no samples"):
            ProgressiveMp4({0: INIT}, [stored(0, [])])

    def test_missing_segment(self) -> None:
        """A hole in the sequence numbers."""
        segments = [stored(n, [video(n * 24000)]) for n in (40, 42)]
        with pytest.raises(RecordingError, match="segment 41 is missing"):
            ProgressiveMp4({0: INIT}, segments)
        with pytest.raises(RecordingError, match="segment 40 is repeated"):
            ProgressiveMp4({0: INIT}, [segments[0], segments[0]])

    def test_unknown_epoch(self) -> None:
        """A segment needing an init that was not given."""
        segments = [stored(0, [video(0)]), stored(1, [video(24000)], epoch=1)]
        with pytest.raises(RecordingError, match="segment 1 needs init epoch 1"):
            ProgressiveMp4({0: INIT}, segments)

    def test_track_not_in_its_init(self) -> None:
        """Audio samples in a segment whose init has no audio track."""
        with pytest.raises(RecordingError, match="track 2 is not in init epoch 0"):
            ProgressiveMp4({0: INIT_VIDEO_ONLY}, [stored(0, [video(0), audio(0)])])

    def test_fragment_without_tfdt(self) -> None:
        """A traf without tfdt cannot be placed on the timeline."""
        segment = stored(0, [video(0)])
        fragment = segment.fragments[0]
        broken = replace(fragment, runs=(replace(fragment.runs[0], base_time=None),))
        with pytest.raises(RecordingError, match="track 1 has no tfdt"):
            ProgressiveMp4({0: INIT}, [replace(segment, fragments=(broken,))])

    def test_samples_outside_their_mdat_and_corrupt_init(self) -> None:
        """A run pointing past its mdat; an init that is not one."""
        segment = stored(0, [video(0)])
        fragment = segment.fragments[0]
        broken = replace(fragment, mdat=(fragment.mdat[0], fragment.mdat[1] - 1) if fragment.mdat else None)
        with pytest.raises(RecordingError, match="outside their mdat"):
            ProgressiveMp4({0: INIT}, [replace(segment, fragments=(broken,))])
        with pytest.raises(RecordingError, match="init epoch 0 is not an init segment"):
            ProgressiveMp4({0: b"\x00\x00\x00\x08free"}, [segment])


# ---------------------------------------------------------------------------------------------- tables


class TestTables:
    """What the plan writes, read back from its header."""

    def test_layout_chunks_and_ranges(self) -> None:
        """One chunk per run at its file offset; stsc run-length encoded; ranges exactly the runs, the video and
        audio runs of a fragment merged; stss only for video; ctts for video only."""
        segments = [stored(n, [video(n * 48000), audio(n * 12288)], [video(n * 48000 + 24000)]) for n in range(3)]
        plan = ProgressiveMp4({0: INIT}, segments)
        ranges = list(plan.copy_ranges())
        f = segments[1].fragments
        assert ranges[2:4] == [(1, f[0].runs[0].data_position, f[0].mdat[1]), (1, f[1].mdat[0], f[1].mdat[1])]
        assert plan.size == len(plan.header) + sum(end - start for _, start, end in ranges)
        boxes = tables(plan)
        header = len(plan.header)
        offsets = [header + n * 19600 + k for n in range(3) for k in (0, 11600)]
        assert [o for (o,) in entries(boxes[1][b"stco"], ">I")] == offsets
        assert [o for (o,) in entries(boxes[2][b"stco"], ">I")] == [header + n * 19600 + 8000 for n in range(3)]
        assert entries(boxes[1][b"stsc"], ">III") == [(1, 8, 1)]
        assert entries(boxes[2][b"stsc"], ">III") == [(1, 12, 1)]
        assert [n for (n,) in entries(boxes[1][b"stss"], ">I")] == [1, 9, 17, 25, 33, 41]
        assert b"stss" not in boxes[2] and b"ctts" not in boxes[2]
        assert entries(boxes[1][b"ctts"], ">II") == [(48, 6030)]
        assert entries(boxes[1][b"stts"], ">II") == [(48, 3000)]
        assert struct.unpack(">II", boxes[1][b"stsz"][4:12]) == (0, 48)

    def test_gaps_are_held_and_overlaps_trimmed(self) -> None:
        """A later tfdt stretches the previous sample; an earlier one shortens it, never below 1 tick."""
        segments = [
            stored(0, [video(0, 4), audio(0, 4)]),
            stored(1, [video(12000 + 900, 4), audio(4096 - 1000, 4)]),
            stored(2, [video(24900 - 9000, 4), audio(7192, 4)]),
        ]
        boxes = tables(ProgressiveMp4({0: INIT}, segments))
        assert expand(entries(boxes[1][b"stts"], ">II")) == [3000] * 3 + [3900] + [3000] * 3 + [1] + [3000] * 4
        assert expand(entries(boxes[2][b"stts"], ">II")) == [1024] * 3 + [24] + [1024] * 8

    def test_new_audio_rate_is_rescaled_without_drift(self) -> None:
        """An epoch at 44.1 kHz in a track that started at 48 kHz: 1024-sample frames become 1114/1115 ticks,
        and the total is the exact rescaled duration (rounded once, not per sample)."""
        frames = 430
        segments = [
            stored(0, [video(0, 2), audio(0, 10)]),
            stored(1, [video(6000, 2), audio(441 * 24, frames)], epoch=1),
        ]
        plan = ProgressiveMp4({0: INIT, 1: INIT_44K}, segments)
        durations = expand(entries(tables(plan)[2][b"stts"], ">II"))
        assert plan.tracks[1].timescale == 48000 and len(durations) == 10 + frames
        assert set(durations[10:-1]) == {1114, 1115}
        exact = Fraction(441 * 24 + frames * 1024, 44100) * 48000
        assert sum(durations) == round(exact)

    def test_sample_entries_are_shared_or_added(self) -> None:
        """Identical sample entries across epochs are one; a different one is appended and stsc switches."""
        same = [stored(0, [video(0)]), stored(1, [video(24000)], epoch=1)]
        assert ProgressiveMp4({0: INIT, 1: bytes(INIT)}, same).tracks[0].sample_entries == 1
        changed = [stored(0, [video(0), audio(0)]), stored(1, [video(24000), audio(12288)], epoch=1)]
        plan = ProgressiveMp4({0: INIT, 1: INIT_360P}, changed)
        boxes = tables(plan)
        assert entries(boxes[1][b"stsc"], ">III") == [(1, 8, 1), (2, 8, 2)]
        assert entries(boxes[2][b"stsc"], ">III") == [(1, 12, 1)]
        stsd = boxes[1][b"stsd"]
        avcc = [
            bmff.SampleEntry(ref.kind, stsd[ref.start : ref.end]).child(b"avcC") for ref in bmff.iter_boxes(stsd, 8)
        ]
        assert avcc == [AVCC_720P_HIGH, AVCC_360P_MAIN]

    def test_edit_lists_start_the_earliest_presentation_at_zero(self) -> None:
        """Video composition offset 6030 (67 ms), audio tfdt 2208 (46 ms): audio presents first and has no edit;
        video gets an empty edit of 21 ms, then media from time 6030 — the fixture's A/V offset, kept."""
        plan = ProgressiveMp4({0: INIT}, [stored(0, [video(0, 30), audio(2208, 47)])])
        boxes = tables(plan)
        assert b"elst" not in boxes[2]
        assert entries(boxes[1][b"elst"], ">IihH") == [(21, -1, 1, 0), (1000, 6030, 1, 0)]
        assert struct.unpack(">I", boxes[1][b"tkhd"][20:24])[0] == 1021
        assert plan.duration == pytest.approx(max(0.021 + 1.0, (2208 + 47 * 1024) / 48000 - 0.046))

    def test_co64_and_largesize_past_4_gib(self) -> None:
        """Three 2 GiB segments: chunk offsets pass 2^32 → co64, the mdat gets a 64-bit largesize."""
        gib = 1 << 30
        segments = [stored(n, [video(n * 6000, 2, size=gib)]) for n in range(3)]
        plan = ProgressiveMp4({0: INIT}, segments)
        _, mdat = header_boxes(plan)
        assert mdat.payload - mdat.start == 16 and plan.size == len(plan.header) + 6 * gib
        boxes = tables(plan)
        assert b"stco" not in boxes[1]
        assert [o for (o,) in entries(boxes[1][b"co64"], ">Q")] == [len(plan.header) + n * 2 * gib for n in range(3)]
        assert max(end for _, _, end in plan.copy_ranges()) < 2 * gib + 1000

    def test_stco_while_offsets_fit_and_the_mdat_header_boundary(self) -> None:
        """Two 3 GiB chunks: offsets still fit 32 bits (stco) although the file does not; mdat largesize from
        a payload of 2^32 − 8 bytes."""
        segments = [stored(n, [video(n * 6000, 3, size=1 << 30)]) for n in range(2)]
        boxes = tables(ProgressiveMp4({0: INIT}, segments))
        assert b"stco" in boxes[1] and b"co64" not in boxes[1]
        assert len(mdat_header((1 << 32) - 9)) == 8 and len(mdat_header((1 << 32) - 8)) == 16

    def test_long_media_duration_uses_version_1(self) -> None:
        """A 90 kHz duration past 2^32 ticks (13.3 h) → mdhd version 1; mvhd in ms still fits version 0."""
        segments = [stored(0, [video(0, 3, duration=1 << 31, cto=0)])]
        plan = ProgressiveMp4({0: INIT}, segments)
        moov_bytes, _ = header_boxes(plan)
        boxes = tables(plan)
        assert boxes[1][b"mdhd"][0] == 1 and struct.unpack(">Q", boxes[1][b"mdhd"][24:32])[0] == 3 << 31
        assert root(moov_bytes).find(b"moov", b"mvhd").payload[0] == 0
        assert bmff.read_init(moov_bytes)[1].timescale == 90000  # version 1 field layout read back


# ---------------------------------------------------------------------------------------------- scale


def four_hours(segments: int = 14_400) -> Iterator[StoredSegment]:
    """A 4-hour 6 Mb/s broadcast's scanned segments without payload: 1 s segments of 4 fragments, 30 fps video
    (IDR + P/B pattern, composition offsets) and 48 kHz AAC (46.875 frames/s). Per-sample lists are shared
    between segments, as the builder only reads them."""
    ctos, per_fragment = [6000, 0, 3000, 9000, 3000, 0, 6000, 3000], (8, 8, 8, 6)
    shapes = {}
    for index, count in enumerate(per_fragment):
        sizes = [120_000 if index == 0 and i == 0 else 22_000 for i in range(count)]
        flags = [SYNC_SAMPLE_FLAGS if index == 0 and i == 0 else NON_SYNC_SAMPLE_FLAGS for i in range(count)]
        shapes[index] = ([3000] * count, sizes, flags, ctos[:count])
    audio_shapes = {n: ([1024] * n, [380] * n, [SYNC_SAMPLE_FLAGS] * n, [0] * n) for n in range(8, 15)}
    audio_frames = 0
    for sequence in range(segments):
        position, fragments = 24, []
        for index, count in enumerate(per_fragment):
            durations, sizes, flags, ctos_ = shapes[index]
            first = sequence * 30 + sum(per_fragment[:index])
            audio_end = (first + count) * 48000 // 30 // 1024
            a_durations, a_sizes, a_flags, a_offsets = audio_shapes[audio_end - audio_frames]
            mdat = position + 100 + 16 * count + 8 * len(a_sizes) + 8
            runs = (
                bmff.TrackRun(1, first * 3000, 1, durations, sizes, flags, ctos_, mdat),
                bmff.TrackRun(2, audio_frames * 1024, 1, a_durations, a_sizes, a_flags, a_offsets, mdat + sum(sizes)),
            )
            end = mdat + sum(sizes) + sum(a_sizes)
            fragments.append(bmff.Fragment(position, mdat - 8, runs, (mdat, end)))
            position, audio_frames = end, audio_end
        yield StoredSegment(sequence, 0, False, position, tuple(fragments))


def test_four_hour_plan_time_and_memory(capsys: pytest.CaptureFixture[str], record_property: Any) -> None:
    """14,400 segments × 4 fragments (432k video + 675k audio samples, ~11 GB): the plan's build time, and the
    builder's own tracemalloc peak on the first hour (segments made before tracing; tracing the whole 4 hours
    takes ~10× longer than building), reported; bounds asserted loosely."""
    segments = list(four_hours())
    start = time.perf_counter()
    plan = ProgressiveMp4({0: INIT}, segments)
    seconds = time.perf_counter() - start
    video_, audio_ = plan.tracks
    assert (video_.sample_count, audio_.sample_count) == (432_000, 675_000)
    assert video_.duration == audio_.duration == 14_400
    assert plan.duration == pytest.approx(14_400 + 6000 / 90000)  # video presents from its first CTO, after audio
    assert plan.size > 10 * (1 << 30) and b"co64" in plan.header and seconds < 30
    hour = segments[:3600]
    del segments, plan
    tracemalloc.start()
    try:
        ProgressiveMp4({0: INIT}, hour)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 25e6
    record_property("plan_seconds_4h", round(seconds, 2))
    record_property("plan_peak_mb_1h", round(peak / 1e6, 1))
    with capsys.disabled():
        print(
            f"\n[progressive plan] 4 h: {seconds:.2f} s to plan; builder tracemalloc peak for 1 h: {peak / 1e6:.1f} MB"
        )
