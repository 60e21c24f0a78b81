"""ISO BMFF output read back box by box: init segment layout, fragment flags, offsets and sizes."""

from __future__ import annotations

import struct

from mediakit.cmaf import aac
from mediakit.cmaf.boxes import box, descriptor, full_box
from mediakit.cmaf.fragment import NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS, TrackRun, build_fragment
from mediakit.cmaf.init import build_init
from mediakit.cmaf.tracks import AudioTrack, audio_track, video_track
from tests.unit.media.support import AVCC_720P_HIGH, parse_boxes, read_fragment, root

OBS_ASC = bytes.fromhex("119056e500")


def test_box_and_full_box_headers() -> None:
    """size counts the header; FullBox adds version and 24-bit flags."""
    assert box(b"free", b"ab") == b"\x00\x00\x00\x0afreeab"
    assert full_box(b"tfdt", 1, 0x020000, b"") == b"\x00\x00\x00\x0ctfdt\x01\x02\x00\x00"


def test_descriptor_sizes_use_expandable_encoding() -> None:
    """14496-1 §8.3.3: 7 bits per size byte, continuation bit on all but the last."""
    assert descriptor(5, b"x" * 3)[:2] == b"\x05\x03"
    assert descriptor(5, b"x" * 200)[:3] == b"\x05\x81\x48"


def test_av_init_segment_layout() -> None:
    """ftyp + moov(mvhd, trak video 90 kHz avc1/avcC, trak audio 48 kHz mp4a/esds with the ASC, mvex/trex×2)."""
    video = video_track("avc1", AVCC_720P_HIGH)
    audio = audio_track(OBS_ASC, 2)
    tree = root(build_init(video=video, audio=audio))
    assert [b.kind for b in tree.children] == [b"ftyp", b"moov"]
    ftyp = tree.find(b"ftyp").payload
    assert ftyp[:4] == b"iso6" and b"cmfc" not in ftyp  # muxed A/V is not a CMAF track file
    mvhd = tree.find(b"moov", b"mvhd").payload
    assert struct.unpack_from(">I", mvhd, 12)[0] == 1000
    video_trak, audio_trak = tree.find_all(b"moov", b"trak")
    tkhd = video_trak.find(b"tkhd").payload
    assert struct.unpack_from(">III", tkhd, 4)[2] == 1  # track_ID
    assert struct.unpack_from(">II", tkhd, 76) == (1280 << 16, 720 << 16)
    assert struct.unpack_from(">I", video_trak.find(b"mdia", b"mdhd").payload, 12)[0] == 90000
    assert video_trak.find(b"mdia", b"hdlr").payload[8:12] == b"vide"
    stsd = video_trak.find(b"mdia", b"minf", b"stbl", b"stsd").payload
    entry = parse_boxes(stsd[8:])[0]
    assert entry.kind == b"avc1"
    assert struct.unpack_from(">HH", entry.payload, 24) == (1280, 720)
    assert parse_boxes(entry.payload[78:])[0] == parse_boxes(box(b"avcC", AVCC_720P_HIGH))[0]
    assert struct.unpack_from(">I", audio_trak.find(b"tkhd").payload, 12)[0] == 2
    assert struct.unpack_from(">I", audio_trak.find(b"mdia", b"mdhd").payload, 12)[0] == 48000
    assert audio_trak.find(b"mdia", b"hdlr").payload[8:12] == b"soun"
    mp4a = parse_boxes(audio_trak.find(b"mdia", b"minf", b"stbl", b"stsd").payload[8:])[0]
    assert mp4a.kind == b"mp4a"
    channels, sample_size, _, _, rate = struct.unpack_from(">HHHHI", mp4a.payload, 16)
    assert (channels, sample_size, rate >> 16) == (2, 16, 48000)
    esds = parse_boxes(mp4a.payload[28:])[0]
    assert esds.kind == b"esds" and esds.payload.endswith(descriptor(5, OBS_ASC) + descriptor(6, b"\x02"))
    trex = tree.find_all(b"moov", b"mvex", b"trex")
    assert [struct.unpack_from(">I", t.payload, 4)[0] for t in trex] == [1, 2]
    assert tree.find_all(b"moov", b"trak", b"edts") == []  # no edit list (CMAF_COST pitfalls 5/6)


def test_single_track_inits() -> None:
    """Audio-only and video-only inits have one trak (IDs stay 2 and 1) and claim cmfc."""
    audio_only = root(build_init(video=None, audio=audio_track(OBS_ASC, 2)))
    assert len(audio_only.find_all(b"moov", b"trak")) == 1
    assert struct.unpack_from(">I", audio_only.find(b"moov", b"trak", b"tkhd").payload, 12)[0] == 2
    assert b"cmfc" in audio_only.find(b"ftyp").payload
    video_only = root(build_init(video=video_track("avc1", AVCC_720P_HIGH), audio=None))
    assert [t.find(b"mdia", b"hdlr").payload[8:12] for t in video_only.find_all(b"moov", b"trak")] == [b"vide"]


def test_he_aac_sample_entry_rate_is_output_rate() -> None:
    """With SBR the mp4a entry states the output rate; mdhd keeps the core rate as timescale."""
    asc = aac.parse_asc(bytes.fromhex("2b118800"))  # explicit HE-AAC, core 24 kHz → 48 kHz
    tree = root(build_init(video=None, audio=AudioTrack(asc=asc, channels=2)))
    trak = tree.find(b"moov", b"trak")
    assert struct.unpack_from(">I", trak.find(b"mdia", b"mdhd").payload, 12)[0] == 24000
    mp4a = parse_boxes(trak.find(b"mdia", b"minf", b"stbl", b"stsd").payload[8:])[0]
    assert struct.unpack_from(">I", mp4a.payload, 24)[0] >> 16 == 48000


def test_fragment_offsets_flags_and_sizes() -> None:
    """trun v0 0xF01 for video (flags + CTO), 0x301 + tfhd default flags for audio; data_offset from the moof."""
    video = TrackRun(
        track_id=1,
        base_time=90_000 * 3,
        durations=[3000, 3000, 3000],
        payloads=[b"I" * 10, b"P" * 5, memoryview(b"B" * 7)],
        flags=[SYNC_SAMPLE_FLAGS, NON_SYNC_SAMPLE_FLAGS, NON_SYNC_SAMPLE_FLAGS],
        offsets=[6000, 9000, 0],
    )
    audio = TrackRun(track_id=2, base_time=2**33, durations=[1024, 1024], payloads=[b"a" * 4, b"b" * 6])
    data = build_fragment(7, [video, audio])
    moof, mdat = parse_boxes(data)
    assert (moof.kind, mdat.kind) == (b"moof", b"mdat")
    assert struct.unpack_from(">I", moof.find(b"mfhd").payload, 4)[0] == 7
    video_run, audio_run = read_fragment(moof, data, 0)
    assert (video_run.base_time, audio_run.base_time) == (270_000, 2**33)  # 64-bit tfdt
    assert video_run.samples == [b"I" * 10, b"P" * 5, b"B" * 7]
    assert video_run.flags == [0x02000000, 0x01010000, 0x01010000]
    assert video_run.offsets == [6000, 9000, 0]
    assert audio_run.samples == [b"a" * 4, b"b" * 6] and audio_run.flags == [0x02000000, 0x02000000]
    assert int.from_bytes(video_run_trun_flags(moof, 0), "big") == 0xF01
    assert int.from_bytes(video_run_trun_flags(moof, 1), "big") == 0x301
    assert mdat.payload == b"I" * 10 + b"P" * 5 + b"B" * 7 + b"a" * 4 + b"b" * 6


def video_run_trun_flags(moof: object, index: int) -> bytes:
    """The 24-bit flags of the ``index``-th traf's trun."""
    traf = moof.find_all(b"traf")[index]  # type: ignore[attr-defined]
    return traf.find(b"trun").payload[1:4]
