"""SegmentScanner (mediakit.segment_scan): a stored segment's moofs and mdat spans from ranged reads, never its payload.

Tested three ways (STYLE rule 5): one read of everything, many small reads (``read_size`` 64, and a caller that
hands over a single byte whatever was asked), and with foreign and trailing boxes; every result is compared with
the whole-buffer reader ``bmff.read_fragments``. Garbage and truncation raise only ``MalformedBox`` (hypothesis).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediakit import bmff
from mediakit.cmaf import InitSegment, Segment, Segmenter
from mediakit.cmaf.boxes import box, full_box
from mediakit.cmaf.fragment import NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS, TrackRun, build_fragment, segment_type
from mediakit.segment_scan import SegmentScanner, scan_whole
from tests.unit.media.conftest import requires_ffmpeg
from tests.unit.media.support import feed_tags, read_flv


def fragment(sequence: int, frames: int = 8) -> bytes:
    """One moof + mdat: ``frames`` video samples (GOP start first) and 1.5× as many audio samples."""
    base = (sequence - 1) * frames * 3000
    video = TrackRun(
        1,
        base,
        [3000] * frames,
        [bytes([sequence]) * (100 + i) for i in range(frames)],
        [SYNC_SAMPLE_FLAGS] + [NON_SYNC_SAMPLE_FLAGS] * (frames - 1),
        [6000] + [3000] * (frames - 1),
    )
    audio_count = frames * 3 // 2
    audio = TrackRun(2, base * 48 // 90, [1024] * audio_count, [b"a" * 30] * audio_count)
    return build_fragment(sequence, [video, audio])


def segment(count: int = 4, *, between: bytes = b"", tail: bytes = b"") -> bytes:
    """styp + ``count`` fragments, ``between`` after each moof/mdat pair but the last, ``tail`` after the last."""
    parts = [fragment(n + 1) for n in range(count)]
    return segment_type(False) + between.join(parts) + tail


def drive(data: bytes, *, read_size: int = 16384, chunk: int | None = None, size: int | None = None) -> tuple:
    """Run a scanner over ``data`` as ranged reads; ``chunk`` caps what each read returns. → (fragments, reads)."""
    scanner = SegmentScanner(len(data) if size is None else size, {}, read_size=read_size)
    reads = []
    while (wanted := scanner.want()) is not None:
        offset, length = wanted
        piece = data[offset : offset + (length if chunk is None else min(length, chunk))]
        reads.append((offset, len(piece)))
        scanner.feed(offset, piece)
    return scanner.fragments, reads


class TestThreeWays:
    """Whole, piecewise and with extra boxes: the same fragments as the whole-buffer reader."""

    @pytest.mark.parametrize(
        ("read_size", "chunk"),
        [(1 << 30, None), (16384, None), (64, None), (8, 1)],
        ids=["huge", "default", "64", "one-byte-feeds"],
    )
    def test_same_fragments_as_the_whole_buffer_reader(self, read_size: int, chunk: int | None) -> None:
        """Fragments, runs and positions equal ``bmff.read_fragments`` on the whole object."""
        data = segment()
        fragments, _ = drive(data, read_size=read_size, chunk=chunk)
        assert fragments == tuple(bmff.read_fragments(data))
        assert len(fragments) == 4 and all(f.mdat is not None for f in fragments)

    def test_huge_read_size_is_one_read(self) -> None:
        """Everything in the first read: nothing else is asked for."""
        data = segment()
        _, reads = drive(data, read_size=1 << 30)
        assert reads == [(0, len(data))]
        assert scan_whole(data, {}) == tuple(bmff.read_fragments(data))

    def test_tiny_reads_complete_each_moof_with_one_exact_read(self) -> None:
        """read_size 64 < every moof: a header read, then exactly the rest of the moof plus the next header."""
        data = segment()
        fragments, reads = drive(data, read_size=64)
        assert all(f.moof_end - f.moof_start > 64 for f in fragments)
        assert len(reads) == 2 * len(fragments)
        for fragment_, (first, rest) in zip(fragments, zip(reads[::2], reads[1::2], strict=True), strict=True):
            assert first[0] + first[1] == rest[0]
            assert rest[0] + rest[1] == fragment_.moof_end + 16  # the mdat header rides along

    def test_foreign_boxes_and_trailing_box(self) -> None:
        """emsg/free between fragments and a big free box after the last mdat are skipped unread."""
        emsg = full_box(b"emsg", 0, 0, b"urn:x\x00\x00" + bytes(20))
        tail = box(b"free", bytes(5000))
        data = segment(3, between=emsg + box(b"free", b"pad"), tail=tail)
        fragments, reads = drive(data, read_size=256)
        assert fragments == tuple(bmff.read_fragments(data))
        tail_payload = range(len(data) - 5000 + 256, len(data))
        assert not any(offset + length > tail_payload.start for offset, length in reads)

    def test_largesize_and_to_the_end_mdat(self) -> None:
        """mdat with a 64-bit largesize, and a last mdat of size 0 (to the end of the object) (§4.2)."""
        large = _with_largesize_mdat(fragment(1))
        last = bytearray(fragment(2))
        mdat = [r for r in bmff.iter_boxes(last) if r.kind == b"mdat"][0]
        last[mdat.start : mdat.start + 4] = bytes(4)
        data = segment_type(False) + large + bytes(last)
        fragments, _ = drive(data, read_size=100)
        assert fragments == tuple(bmff.read_fragments(data))
        assert fragments[0].mdat is not None and fragments[1].mdat == (fragments[1].moof_end + 8, len(data))


def _with_largesize_mdat(data: bytes) -> bytes:
    """The fragment with its mdat header rewritten as size 1 + largesize, trun data offsets moved by 8."""
    moof, mdat = list(bmff.iter_boxes(data))
    out = bytearray(data[: moof.end])
    for trun in bmff.find_all(out, b"traf", b"trun", start=moof.payload, end=moof.end):
        (offset,) = struct.unpack_from(">i", out, trun.payload + 8)
        struct.pack_into(">i", out, trun.payload + 8, offset + 8)
    return bytes(out) + struct.pack(">I4sQ", 1, b"mdat", mdat.size + 8) + data[mdat.payload : mdat.end]


class TestMalformed:
    """Truncated or inconsistent objects: MalformedBox with a reason; API misuse: ValueError."""

    def test_object_shorter_than_its_size(self) -> None:
        """The store returns nothing where bytes were promised (an empty read before the end)."""
        data = segment(2)
        with pytest.raises(bmff.MalformedBox, match="ended at"):
            drive(data, size=len(data) + 100)

    def test_box_past_the_end(self) -> None:
        """A truncated object whose size is right: the last mdat claims more than is left."""
        data = segment(2)[:-10]
        with pytest.raises(bmff.MalformedBox, match="bytes left"):
            drive(data)

    def test_no_moof(self) -> None:
        """styp + free only."""
        with pytest.raises(bmff.MalformedBox, match="no moof"):
            drive(segment_type(False) + box(b"free", bytes(40)))
        with pytest.raises(bmff.MalformedBox, match="no moof"):
            SegmentScanner(4, {})

    def test_moof_without_mdat(self) -> None:
        """The object ends right after a moof."""
        data = fragment(1)
        moof = next(bmff.iter_boxes(data))
        with pytest.raises(bmff.MalformedBox, match="has no mdat"):
            drive(segment_type(False) + data[: moof.end])

    def test_samples_outside_their_mdat(self) -> None:
        """A trun data offset pointing past the mdat."""
        data = bytearray(fragment(1))
        moof = next(bmff.iter_boxes(data))
        trun = bmff.find_all(data, b"traf", b"trun", start=moof.payload, end=moof.end)[-1]
        struct.pack_into(">i", data, trun.payload + 8, len(data))
        with pytest.raises(bmff.MalformedBox, match="outside its mdat"):
            drive(bytes(data))

    def test_more_bytes_than_the_size(self) -> None:
        """Bytes fed past the object's size mean the size is wrong."""
        scanner = SegmentScanner(100, {})
        with pytest.raises(bmff.MalformedBox, match="object of 100"):
            scanner.feed(0, bytes(101))

    def test_wrong_offset_and_feeding_after_the_end_are_usage_errors(self) -> None:
        """Not MalformedBox: the caller broke the protocol, not the object."""
        data = segment(1)
        scanner = SegmentScanner(len(data), {})
        with pytest.raises(ValueError, match="wants 0") as raised:
            scanner.feed(5, data[5:])
        assert not isinstance(raised.value, bmff.MalformedBox)
        scanner.feed(0, data)
        assert scanner.want() is None
        with pytest.raises(ValueError, match="complete"):
            scanner.feed(len(data), b"x")


def _scan_or_malformed(data: bytes, size: int, read_size: int, chunk: int) -> None:
    try:
        fragments, _ = drive(data, read_size=read_size, chunk=chunk, size=size)
    except bmff.MalformedBox:
        return
    for found in fragments:
        assert found.mdat is not None and 0 <= found.moof_start < found.moof_end <= found.mdat[0] <= found.mdat[1]
        for run in found.runs:
            assert not run.sizes or found.mdat[0] <= run.data_position <= run.data_position + run.total_size
            assert not run.sizes or run.data_position + run.total_size <= found.mdat[1] <= size


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(min_size=8, max_size=600),
    read_size=st.integers(1, 700),
    chunk=st.integers(1, 700),
)
def test_garbage_raises_only_malformed_box(data: bytes, read_size: int, chunk: int) -> None:
    """Random bytes: fragments inside the object, or MalformedBox; never another exception."""
    _scan_or_malformed(data, len(data), read_size, chunk)


_VALID = segment(2)


@settings(max_examples=400, deadline=None)
@given(
    mutations=st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 64),
    extra=st.integers(0, 64),
    read_size=st.integers(1, 2000),
    chunk=st.integers(1, 2000),
)
def test_corrupted_segment_raises_only_malformed_box(
    mutations: list[tuple[int, int]], cut: int, extra: int, read_size: int, chunk: int
) -> None:
    """A real segment with bytes flipped, cut short, or promised longer than it is."""
    data = bytearray(_VALID)
    for position, value in mutations:
        data[position] = value
    data = data[: len(data) - cut]
    if len(data) + extra < 8:
        return
    _scan_or_malformed(bytes(data), len(data) + extra, read_size, chunk)


@requires_ffmpeg
def test_reads_of_a_real_720p_segment_skip_the_payload(flv_720p30: Path) -> None:
    """A 720p segment of four ~250 ms fragments: one read per fragment, ≤ 10 % of its bytes; after the first (a
    blind ``read_size`` read) each read is the next moof plus slack, reaching at most 512 bytes into a payload."""
    segmenter = Segmenter(part_target=0.25)
    outputs = feed_tags(segmenter, read_flv(flv_720p30)) + segmenter.finish()
    init = next(o for o in outputs if isinstance(o, InitSegment))
    defaults = {track_id: track.defaults for track_id, track in bmff.read_init(init.data).items()}
    segments = [o for o in outputs if isinstance(o, Segment)]
    assert len(segments) == 6
    for seg in segments:
        scanner = SegmentScanner(len(seg.data), defaults)
        reads = []
        while (wanted := scanner.want()) is not None:
            reads.append(wanted)
            scanner.feed(wanted[0], seg.data[wanted[0] : wanted[0] + wanted[1]])
        assert scanner.fragments == tuple(bmff.read_fragments(seg.data, defaults=defaults))
        assert len(scanner.fragments) == len(reads) == 4
        assert reads[0] == (0, 16384)
        assert sum(length for _, length in reads) <= 0.10 * len(seg.data)
        payloads = [f.mdat for f in scanner.fragments if f.mdat is not None]
        for offset, length in reads[1:]:
            overlap = sum(max(0, min(end, offset + length) - max(start, offset)) for start, end in payloads)
            assert overlap <= 512, (offset, length, overlap)
