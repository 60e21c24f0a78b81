"""The one ISO-BMFF reader (mediakit.bmff): what the muxer writes reads back; garbage raises only MalformedBox."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mediakit import bmff
from mediakit.cmaf.boxes import box
from mediakit.cmaf.fragment import NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS, TrackRun, build_fragment, segment_type
from mediakit.cmaf.init import build_init
from mediakit.cmaf.tracks import audio_track, video_track
from tests.unit.media.support import AVCC_720P_HIGH

OBS_ASC = bytes.fromhex("1190")  # AAC-LC 48 kHz stereo


def _fragment(sequence: int, base: int) -> bytes:
    video = TrackRun(
        1,
        base,
        [3000] * 3,
        [b"I" * 10, b"P" * 5, b"B" * 7],
        [SYNC_SAMPLE_FLAGS] + [NON_SYNC_SAMPLE_FLAGS] * 2,
        [6000, 0, 3000],
    )
    audio = TrackRun(2, base // 90000 * 48000, [1024, 1024], [b"a" * 4, b"b" * 6])
    return build_fragment(sequence, [video, audio])


def test_init_tracks_read_back() -> None:
    """Track ids, handlers, timescales, sizes, trex defaults and sample entries of a built init."""
    init = build_init(video=video_track("avc1", AVCC_720P_HIGH), audio=audio_track(OBS_ASC, 2))
    tracks = bmff.read_init(init)
    assert {t: (i.handler, i.timescale) for t, i in tracks.items()} == {1: ("vide", 90000), 2: ("soun", 48000)}
    assert (tracks[1].width, tracks[1].height) == (1280, 720)
    assert tracks[1].entries[0].fourcc == b"avc1" and tracks[1].entries[0].child(b"avcC") == AVCC_720P_HIGH
    assert bmff.esds_audio_specific_config(tracks[2].entries[0].child(b"esds") or b"") == OBS_ASC
    assert tracks[2].defaults == bmff.TrackDefaults(1, 0, 0, 0)


def test_fragments_read_back_with_absolute_positions() -> None:
    """Two fragments after a styp: tfdt, durations, sizes, flags, offsets and where each sample sits."""
    segment = segment_type(False) + _fragment(1, 0) + _fragment(2, 9000)
    fragments = bmff.read_fragments(segment, position=1000)
    assert len(fragments) == 2
    video, audio = fragments[1].runs
    assert (video.base_time, video.durations, video.composition_offsets) == (9000, [3000] * 3, [6000, 0, 3000])
    assert [bmff.is_sync(f) for f in video.flags] == [True, False, False]
    assert audio.flags == [SYNC_SAMPLE_FLAGS] * 2  # tfhd default_sample_flags
    assert bmff.sample_bytes(segment, audio, position=1000) == [b"a" * 4, b"b" * 6]
    start, end = fragments[1].mdat or (0, 0)
    assert segment[start - 1000 : end - 1000] == b"I" * 10 + b"P" * 5 + b"B" * 7 + b"a" * 4 + b"b" * 6


def test_largesize_and_to_the_end_boxes() -> None:
    """64-bit sizes (size 1) and size 0 (to the end of the data) (§4.2)."""
    large = struct.pack(">I4sQ", 1, b"free", 16 + 3) + b"abc"
    last = struct.pack(">I4s", 0, b"mdat") + b"xyz"
    refs = list(bmff.iter_boxes(large + last))
    assert [(r.kind, r.size) for r in refs] == [(b"free", 19), (b"mdat", 11)]


@pytest.mark.parametrize("cut", [1, 7, 9, 30])
def test_truncated_input_raises_malformed(cut: int) -> None:
    """A box cut short is a MalformedBox, never an IndexError or struct.error."""
    segment = segment_type(False) + _fragment(1, 0)
    with pytest.raises(bmff.MalformedBox):
        bmff.read_fragments(segment[: len(segment) - cut])


def test_trailing_data_is_left_alone() -> None:
    """Reading a range that ends before trailing bytes ignores them."""
    data = box(b"free", b"12") + b"trailing garbage"
    assert [r.kind for r in bmff.iter_boxes(data, 0, 10)] == [b"free"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_raises_only_malformed(data: bytes) -> None:
    """Random bytes parse or raise MalformedBox (STYLE rule 5)."""
    for reader in (bmff.read_fragments, bmff.read_init, lambda d: list(bmff.walk(d))):
        with contextlib.suppress(bmff.MalformedBox):
            reader(data)
