"""Sample tables and ``moov`` boxes of the progressive MP4 planned by :mod:`mediakit.progressive` (ISO/IEC 14496-12).

Owned here: one output track's tables as they grow run by run (:class:`SampleTable`) and the writers of a
non-fragmented ``moov``. The design rules (why one chunk per run, when 64-bit fields are used, how the edit list
is chosen) are in :mod:`mediakit.progressive`; this module implements them.

Rules:
- Memory: a 4-hour broadcast is ~1.1 million samples, so per-sample values live in ``array.array`` (4 bytes each,
  no int objects), and tables that are usually uniform (every sample sync, no composition offset) are not
  materialised until a sample needs them.
- Serialisation is one ``byteswap`` + ``tobytes`` per table (big-endian, §4.2), never a per-value ``pack``.
- The big boxes are written as lists of byte pieces (:data:`Parts`) joined once at the end: a ``moov`` of a
  4-hour broadcast is ~10 MB, and nesting ``stbl``/``minf``/``mdia``/``trak``/``moov`` by concatenation would
  copy it at every level. Sizes still come bottom-up from the pieces' lengths (§4.2).
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby

from . import bmff
from .cmaf.boxes import UNITY_MATRIX, box, file_type, full_box

U32 = 0xFFFFFFFF
MOVIE_TIMESCALE = 1000
#: Byte pieces of one or more boxes, in order; ``b"".join`` gives the bytes.
Parts = list[bytes]
_TKHD_ENABLED_IN_MOVIE = 0x000003
_NON_SYNC = 0x00010000  # sample_is_non_sync_sample (§8.8.3.1)
_SIGNED_32 = range(-(1 << 31), 1 << 31)
_BOX = struct.Struct(">I4s")
_FULL_BOX = struct.Struct(">I4sI")


def big_endian(typecode: str, values: Iterable[int]) -> bytes:
    """``values`` as big-endian integers of an ``array`` typecode (``"I"`` u32, ``"i"`` s32, ``"Q"`` u64)."""
    table = values[:] if isinstance(values, array) and values.typecode == typecode else array(typecode, values)
    if sys.byteorder == "little":
        table.byteswap()
    return table.tobytes()


def run_lengths(values: Iterable[int], typecode: str = "I") -> array[int]:
    """Run-length pairs ``count, value, count, value, ...`` (the stts/ctts entry layout)."""
    pairs = array(typecode)
    for value, group in groupby(values):
        pairs.append(sum(1 for _ in group))
        pairs.append(value)
    return pairs


def boxed(kind: bytes, parts: Parts) -> Parts:
    """A plain box (§4.2) around ``parts``, as pieces."""
    return [_BOX.pack(8 + sum(map(len, parts)), kind), *parts]


def _full_boxed(kind: bytes, version: int, flags: int, *parts: bytes) -> Parts:
    return [_FULL_BOX.pack(12 + sum(map(len, parts)), kind, version << 24 | flags), *parts]


@dataclass(frozen=True, slots=True)
class InitTrak:
    """What a progressive ``trak`` copies from the init that introduced its track."""

    handler_box: bytes
    #: The ``minf`` children other than ``stbl`` (``vmhd``/``smhd``/``nmhd`` and ``dinf``), as stored.
    media_info_boxes: bytes
    language: int


def init_traks(init: bytes) -> dict[int, InitTrak]:
    """The copyable boxes of every ``trak`` of an init segment, by track id.

    Raises:
        MalformedBox: a trak without tkhd, mdhd, hdlr or minf.
    """
    moov = bmff.find(init, b"moov")
    if moov is None:
        raise bmff.MalformedBox("no moov box")
    found = {}
    for trak in bmff.find_all(init, b"trak", start=moov.payload, end=moov.end):
        tkhd = _need(init, trak, b"tkhd")
        version = init[tkhd.payload] if tkhd.payload < tkhd.end else 0
        id_at = tkhd.payload + (20 if version == 1 else 12)
        track_id = int.from_bytes(init[id_at : id_at + 4], "big")
        mdhd, hdlr, minf = (_need(init, trak, b"mdia", kind) for kind in (b"mdhd", b"hdlr", b"minf"))
        kept = [
            init[ref.start : ref.end] for ref in bmff.iter_boxes(init, minf.payload, minf.end) if ref.kind != b"stbl"
        ]
        language = int.from_bytes(init[mdhd.end - 4 : mdhd.end - 2], "big")
        found[track_id] = InitTrak(init[hdlr.start : hdlr.end], b"".join(kept), language)
    return found


def _need(data: bytes, parent: bmff.BoxRef, *path: bytes) -> bmff.BoxRef:
    ref = bmff.find(data, *path, start=parent.payload, end=parent.end)
    if ref is None:
        raise bmff.MalformedBox(f"trak at {parent.start} has no {b'/'.join(path)!r}")
    return ref


class SampleTable:
    """One output track's sample tables, grown one track run (= one chunk) at a time.

    Times are in :attr:`timescale` ticks; :attr:`first_time` is the first run's ``tfdt``, :attr:`end_time` where
    the last sample ends on the laid-out timeline (``first_time`` + every duration).
    """

    def __init__(self, track_id: int, handler: str, timescale: int) -> None:
        self.track_id, self.handler, self.timescale = track_id, handler, timescale
        self.durations = array("I")
        self.sizes = array("I")
        self.chunk_offsets = array("Q")  # relative to the mdat payload
        self.entries: list[bytes] = []
        self.width = self.height = 0
        self.first_time = self.end_time = 0
        self.first_offset = 0
        self._offsets: array[int] | None = None  # composition offsets, once one is not 0
        self._sync: array[int] | None = None  # sync sample numbers, once a sample is not sync
        self._stsc = array("I")  # (first_chunk, samples_per_chunk, sample_description_index) triples
        self._entry_index: dict[bytes, int] = {}

    @property
    def count(self) -> int:
        """Samples so far."""
        return len(self.sizes)

    @property
    def duration(self) -> int:
        """Sum of sample durations (the media duration, ``mdhd``)."""
        return self.end_time - self.first_time

    def entry_index(self, entry: bytes) -> int:
        """The 1-based ``stsd`` index of a sample entry, added when new (identical entries are one)."""
        if entry not in self._entry_index:
            self.entries.append(entry)
            self._entry_index[entry] = len(self.entries)
        return self._entry_index[entry]

    def close_gap(self, base_time: int) -> None:
        """Make the next run start at ``base_time``: stretch (gap) or shorten (overlap, to ≥ 1 tick) the last
        sample. The first run only sets :attr:`first_time`.

        Raises:
            OverflowError: the stretched duration does not fit 32 bits.
        """
        if not self.count:
            self.first_time = self.end_time = base_time
            return
        last = self.durations[-1]
        stretched = max(1, last + base_time - self.end_time)
        self.durations[-1] = stretched
        self.end_time += stretched - last

    def append(
        self,
        durations: Sequence[int],
        sizes: Sequence[int],
        flags: Sequence[int],
        offsets: Sequence[int],
        entry_index: int,
        position: int,
    ) -> None:
        """Append one run as one chunk at mdat payload offset ``position``.

        Raises:
            OverflowError: a duration, size or offset does not fit its 32-bit field.
        """
        start = self.count
        if not start:
            self.first_offset = offsets[0]
        self.durations.extend(durations)
        self.sizes.extend(sizes)
        self.end_time += sum(durations)
        if self._offsets is None and any(offsets):
            self._offsets = array("i", bytes(4 * start))
        if self._offsets is not None:
            self._offsets.extend(offsets)
        non_sync = {value for value in set(flags) if value & _NON_SYNC}  # a run has one or two distinct flags
        if self._sync is None and non_sync:
            self._sync = array("I", range(1, start + 1))
        if self._sync is not None:
            self._sync.extend(start + i for i, value in enumerate(flags, 1) if value not in non_sync)
        self.chunk_offsets.append(position)
        chunk = len(self.chunk_offsets)
        if len(self._stsc) < 3 or (self._stsc[-2], self._stsc[-1]) != (len(sizes), entry_index):
            self._stsc.extend((chunk, len(sizes), entry_index))

    # ------------------------------------------------------------------ boxes

    def sample_boxes(self) -> Parts:
        """``stsd``, ``stts``, ``ctts``, ``stss``, ``stsc`` and ``stsz``: everything in ``stbl`` but the chunk
        offsets, which depend on where the ``mdat`` lands (§8.5.2, 8.6.1.2, 8.6.1.3, 8.6.2, 8.7.4, 8.7.3.2)."""
        stts = run_lengths(self.durations)
        parts = _full_boxed(b"stsd", 0, 0, struct.pack(">I", len(self.entries)), *self.entries)
        parts += _full_boxed(b"stts", 0, 0, struct.pack(">I", len(stts) // 2), big_endian("I", stts))
        if self._offsets is not None:
            signed = min(self._offsets) < 0
            ctts = run_lengths(self._offsets, "i" if signed else "I")
            parts += _full_boxed(
                b"ctts", int(signed), 0, struct.pack(">I", len(ctts) // 2), big_endian(ctts.typecode, ctts)
            )
        if self._sync is not None:
            parts += _full_boxed(b"stss", 0, 0, struct.pack(">I", len(self._sync)), big_endian("I", self._sync))
        parts += _full_boxed(b"stsc", 0, 0, struct.pack(">I", len(self._stsc) // 3), big_endian("I", self._stsc))
        parts += _full_boxed(b"stsz", 0, 0, struct.pack(">II", 0, self.count), big_endian("I", self.sizes))
        return parts

    def chunk_offset_box(self, base: int, wide: bool) -> Parts:
        """``stco``, or ``co64`` when ``wide`` (§8.7.5): each chunk's file offset, ``base`` = mdat payload start."""
        offsets = array("Q", (base + offset for offset in self.chunk_offsets))
        count = struct.pack(">I", len(offsets))
        if wide:
            return _full_boxed(b"co64", 0, 0, count, big_endian("Q", offsets))
        return _full_boxed(b"stco", 0, 0, count, big_endian("I", offsets))

    def chunk_offset_box_size(self, wide: bool) -> int:
        """Size of :meth:`chunk_offset_box` without building it."""
        return 16 + (8 if wide else 4) * len(self.chunk_offsets)


# ---------------------------------------------------------------------------------------------- moov boxes


@dataclass(frozen=True, slots=True)
class TrackTiming:
    """Where a track sits in the movie: its edit list (§8.6.6) and durations, movie ticks unless said."""

    #: Empty edit before the track's first presented sample (0: none).
    delay: int
    #: Media time (track ticks) the presentation starts at: the first sample's composition offset.
    media_time: int
    #: The media edit's segment_duration (the track's media duration in movie ticks).
    presented: int

    @property
    def total(self) -> int:
        """``tkhd`` duration: the sum of the edits."""
        return self.delay + self.presented


def file_header(fourccs: Iterable[bytes]) -> bytes:
    """``ftyp`` (§4.3): ``isom`` with ``iso2``/``mp41``, plus ``avc1`` when an AVC sample entry is present."""
    brands = [b"isom", b"iso2", b"mp41"]
    if {b"avc1", b"avc3"} & set(fourccs):
        brands.insert(2, b"avc1")
    return file_type(b"ftyp", b"isom", tuple(brands))


def mdat_header(payload: int) -> bytes:
    """The ``mdat`` header (§8.1.1) for ``payload`` bytes: 64-bit largesize once 8 + payload overflows 32 bits."""
    if payload + 8 > U32:
        return struct.pack(">I4sQ", 1, b"mdat", payload + 16)
    return struct.pack(">I4s", payload + 8, b"mdat")


def movie_header(duration: int, next_track_id: int) -> bytes:
    """``mvhd`` (§8.2.2): times 0 (deterministic output), timescale 1000, version 1 if ``duration`` needs it."""
    if duration > U32:
        times = struct.pack(">QQIQ", 0, 0, MOVIE_TIMESCALE, duration)
    else:
        times = struct.pack(">IIII", 0, 0, MOVIE_TIMESCALE, duration)
    rate_volume = struct.pack(">IH10x", 0x00010000, 0x0100)
    return full_box(
        b"mvhd", int(duration > U32), 0, times, rate_volume, UNITY_MATRIX, bytes(24), struct.pack(">I", next_track_id)
    )


def track(table: SampleTable, init: InitTrak, timing: TrackTiming, sample_boxes: Parts, chunk_offsets: Parts) -> Parts:
    """One ``trak``: tkhd, edts (when needed), mdia with the copied hdlr/minf boxes and the sample tables
    (``sample_boxes`` from :meth:`SampleTable.sample_boxes`, ``chunk_offsets`` from
    :meth:`SampleTable.chunk_offset_box`)."""
    stbl = boxed(b"stbl", [*sample_boxes, *chunk_offsets])
    minf = boxed(b"minf", [init.media_info_boxes, *stbl])
    mdia = boxed(b"mdia", [_media_header(table, init.language), init.handler_box, *minf])
    return boxed(b"trak", [_track_header(table, timing.total), _edits(timing), *mdia])


def _track_header(table: SampleTable, duration: int) -> bytes:
    """``tkhd`` (§8.3.2): enabled + in movie, audio at full volume in alternate group 1, size 16.16."""
    audio = table.handler == "soun"
    wide = duration > U32
    times = struct.pack(">QQIIQ" if wide else ">IIIII", 0, 0, table.track_id, 0, duration)
    layout = struct.pack(">8xhhhH", 0, 1 if audio else 0, 0x0100 if audio else 0, 0)
    size = struct.pack(">II", table.width << 16, table.height << 16)
    return full_box(b"tkhd", int(wide), _TKHD_ENABLED_IN_MOVIE, times, layout, UNITY_MATRIX, size)


def _media_header(table: SampleTable, language: int) -> bytes:
    """``mdhd`` (§8.4.2) with the init's language, version 1 when the duration needs it."""
    duration = table.duration
    wide = duration > U32
    times = struct.pack(">QQIQ" if wide else ">IIII", 0, 0, table.timescale, duration)
    return full_box(b"mdhd", int(wide), 0, times, struct.pack(">HH", language, 0))


def _edits(timing: TrackTiming) -> bytes:
    """``edts``/``elst`` (§8.6.6): an empty edit for ``delay``, then the media from ``media_time``; nothing when
    the track starts at movie time 0 from media time 0."""
    entries = [(timing.delay, -1)] if timing.delay else []
    entries.append((timing.presented, timing.media_time))
    if entries == [(timing.presented, 0)]:
        return b""
    wide = any(duration > U32 or media_time not in _SIGNED_32 for duration, media_time in entries)
    layout = ">QqhH" if wide else ">IihH"
    body = b"".join(struct.pack(layout, duration, media_time, 1, 0) for duration, media_time in entries)
    return box(b"edts", full_box(b"elst", int(wide), 0, struct.pack(">I", len(entries)), body))
