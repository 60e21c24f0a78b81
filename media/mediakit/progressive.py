"""One seekable progressive MP4 from a broadcast's live CMAF segments, planned without touching a payload byte.

A recording is not re-muxed: its ``moov`` is computed from the segments' ``trun`` tables (read with
:mod:`mediakit.segment_scan`), and its ``mdat`` is the segments' sample bytes copied in order. This module is the
plan: :class:`ProgressiveMp4` gives the file header (``ftyp`` + ``moov`` + ``mdat`` header, ``moov`` first:
"faststart") and the byte ranges of each segment object to copy after it. The caller streams them into storage.
SANS-IO: bytes and plain values in, bytes and ranges out.

Layout (ISO/IEC 14496-12)::

    ftyp  isom; isom, iso2 [, avc1], mp41                                      §4.3
    moov  mvhd (timescale 1000, times 0)                                       §8.2.2
          trak per track id, ascending: tkhd, edts/elst, mdia: mdhd, hdlr (copied), minf: vmhd|smhd + dinf
          (copied), stbl: stsd, stts, ctts, stss, stsc, stsz, stco|co64       §8.3-§8.7
    mdat  segments in order, fragments in order, each fragment's track runs in their mdat order      §8.1.1

Rules:
1. Chunks: one chunk per track run (§8.7.4): the run's samples are contiguous in the segment and stay contiguous
   in the file, so the chunk offset is where the run lands. ``stco``, or ``co64`` when any offset ≥ 2^32
   (§8.7.5). ``stsc`` (§8.7.4), ``stts`` (§8.6.1.2) and ``ctts`` (§8.6.1.3; version 1 only for a negative
   offset) are run-length encoded; ``stss`` (§8.6.2) is written for a track with a non-sync sample and omitted
   when every sample is sync; ``stsz`` (§8.7.3.2) lists every size.
2. Widths: ``mdat`` gets a 64-bit largesize when its payload is ≥ 2^32 - 8 (§8.1.1); ``mvhd``/``tkhd``/``mdhd``
   are version 1 when a duration does not fit 32 bits (§8.2.2, 8.3.2, 8.4.2), ``elst`` when an entry does not.
3. Deterministic: creation/modification times are 0 and nothing depends on a clock or on dict order; identical
   inputs give identical bytes, so a retried build writes the same object.
4. Sample entries (§8.5.2) are copied byte for byte from the init of the epoch that uses them (``avcC``,
   ``hvcC``, ``av1C``, ``esds`` untouched). Identical entries across epochs are one ``stsd`` entry; a codec
   change adds an entry and ``stsc``'s sample_description_index switches (ffmpeg's mov demuxer hands the new
   configuration to the decoder).
5. Timeline: a track's runs are laid end to end. When a run's ``tfdt`` (§8.8.12) is later than where the track's
   previous sample ends, that sample is stretched to close the gap; when earlier, it is shortened, never below 1
   tick. A track keeps the timescale of its first epoch; a later epoch with another one (a new AAC sample rate)
   is rescaled by rounding each sample's *start*, so rounding errors never accumulate.
6. Edit lists (§8.6.6): a track presents from its first sample's composition time (``media_time`` = that
   sample's composition offset; B-frame video: a few frames). The earliest-presenting track starts at 0, and a
   track that presents later (``tfdt`` + composition offset) gets an empty edit for the difference. This is what
   ffmpeg's mov muxer writes for the same input (720p fixture: video 0.021 s, audio 0.000 s) and keeps lip sync
   exact; shifting video by its offset while delaying audio by the raw ``tfdt`` difference would not.
7. Input errors are :class:`RecordingError`: no segments, a sequence gap, an epoch without init, a track not in
   its init, a run without ``tfdt``, samples outside their ``mdat``, timing that overflows its field.
8. Memory (4-hour broadcast, ~1.1 M samples): the tables are ``array.array`` (:mod:`mediakit.progressive_tables`),
   the copy ranges three ``array("Q")`` columns; segments are iterated once and not kept, so a caller may pass a
   lazily built sequence.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from . import bmff
from .progressive_tables import (
    MOVIE_TIMESCALE,
    U32,
    InitTrak,
    Parts,
    SampleTable,
    TrackTiming,
    boxed,
    file_header,
    init_traks,
    mdat_header,
    movie_header,
    track,
)
from .stored import StoredSegment


class RecordingError(ValueError):
    """The segments and inits given cannot make one MP4; the message names the segment or epoch at fault."""


@dataclass(frozen=True, slots=True)
class TrackSummary:
    """One track of the planned MP4, for the recording item."""

    track_id: int
    #: ``hdlr`` handler type: ``"vide"``, ``"soun"``.
    handler: str
    #: Distinct sample entry types in ``stsd`` order (``("avc1",)``); codec strings come from the inits.
    fourccs: tuple[str, ...]
    #: ``stsd`` entries (more than one after a codec change).
    sample_entries: int
    timescale: int
    sample_count: int
    #: Media duration in seconds.
    duration: float


@dataclass(frozen=True, slots=True)
class _Epoch:
    tracks: dict[int, bmff.TrackInfo]
    traks: dict[int, InitTrak]


class ProgressiveMp4:
    """The plan of one progressive MP4: its header, size and the segment byte ranges that follow the header.

    Args:
        inits: init segment bytes by epoch (``init_<epoch>.mp4``).
        segments: the broadcast's segments in sequence order, each with its scanned fragments.

    Raises:
        RecordingError: see rule 7 of the module docstring.
    """

    def __init__(self, inits: Mapping[int, bytes], segments: Sequence[StoredSegment]) -> None:
        plan = _Planner(inits)
        for segment in segments:  # once, in order: a lazily built sequence works too (rule 8)
            plan.add(segment)
        if plan.next_sequence is None:
            raise RecordingError("no segments to build a recording from")
        if not plan.tables:
            raise RecordingError("the segments hold no samples")
        tables = [plan.tables[track_id] for track_id in sorted(plan.tables)]
        timings = _timings(tables)
        #: ``ftyp`` + ``moov`` + ``mdat`` header: the first bytes of the file.
        self.header: bytes = _header(tables, [plan.init_traks[t.track_id] for t in tables], timings, plan.payload)
        #: The whole file in bytes.
        self.size: int = len(self.header) + plan.payload
        #: Seconds, the longest track including its start delay (``mvhd`` duration, unrounded).
        self.duration: float = max(
            (float(Fraction(t.delay, MOVIE_TIMESCALE) + Fraction(table.duration, table.timescale)))
            for table, t in zip(tables, timings, strict=True)
        )
        #: The tracks, by ascending track id.
        self.tracks: tuple[TrackSummary, ...] = tuple(_summary(table) for table in tables)
        self._ranges = plan.ranges

    def copy_ranges(self) -> Iterator[tuple[int, int, int]]:
        """``(segment sequence, start, end)`` byte ranges of the segment objects, in file order.

        Exactly the sample bytes the tables point at, adjacent ranges of one segment merged (a fragment's video
        and audio runs become one range).
        """
        return zip(*self._ranges, strict=True)


class _Planner:
    """Walks the segments once, growing the tables and the copy ranges."""

    def __init__(self, inits: Mapping[int, bytes]) -> None:
        self._inits = inits
        self._epochs: dict[int, _Epoch] = {}
        self.tables: dict[int, SampleTable] = {}
        self.init_traks: dict[int, InitTrak] = {}
        self.next_sequence: int | None = None
        self.payload = 0
        self.ranges = (array("Q"), array("Q"), array("Q"))

    def add(self, segment: StoredSegment) -> None:
        self._check_sequence(segment.sequence)
        epoch = self._epoch(segment)
        for fragment in segment.fragments:
            for run in sorted((run for run in fragment.runs if run.sizes), key=lambda run: run.data_position):
                self._add_run(segment, fragment, run, epoch)

    def _check_sequence(self, sequence: int) -> None:
        expected = self.next_sequence
        if expected is not None and sequence > expected:
            raise RecordingError(f"segment {expected} is missing")
        if expected is not None and sequence < expected:
            raise RecordingError(f"segment {sequence} is repeated or out of order (expected {expected})")
        self.next_sequence = sequence + 1

    def _epoch(self, segment: StoredSegment) -> _Epoch:
        number = segment.epoch
        if number not in self._epochs:
            if number not in self._inits:
                raise RecordingError(f"segment {segment.sequence} needs init epoch {number}, which was not given")
            data = bytes(self._inits[number])
            try:
                self._epochs[number] = _Epoch(bmff.read_init(data), init_traks(data))
            except bmff.MalformedBox as error:
                raise RecordingError(f"init epoch {number} is not an init segment: {error}") from None
        return self._epochs[number]

    def _add_run(self, segment: StoredSegment, fragment: bmff.Fragment, run: bmff.TrackRun, epoch: _Epoch) -> None:
        info = _checked(segment, fragment, run, epoch)
        table = self._table(run.track_id, info, epoch, segment, fragment)
        entry = table.entry_index(info.entries[run.sample_description_index - 1].data)
        base, durations, offsets = _in_timescale(run, run.base_time or 0, info.timescale, table.timescale)
        try:
            table.close_gap(base)
            table.append(durations, run.sizes, run.flags, offsets, entry, self.payload)
        except OverflowError:
            message = f"track {run.track_id} timing does not fit 32-bit sample tables"
            raise _error(segment, fragment, message) from None
        self._add_range(segment.sequence, run.data_position, run.data_position + run.total_size)

    def _table(
        self, track_id: int, info: bmff.TrackInfo, epoch: _Epoch, segment: StoredSegment, fragment: bmff.Fragment
    ) -> SampleTable:
        table = self.tables.get(track_id)
        if table is None:
            table = self.tables[track_id] = SampleTable(track_id, info.handler, info.timescale)
            self.init_traks[track_id] = epoch.traks[track_id]
        elif table.handler != info.handler:
            message = f"track {track_id} changed from {table.handler!r} to {info.handler!r}"
            raise _error(segment, fragment, message)
        table.width, table.height = max(table.width, info.width), max(table.height, info.height)
        return table

    def _add_range(self, sequence: int, start: int, end: int) -> None:
        sequences, starts, ends = self.ranges
        if sequences and sequences[-1] == sequence and ends[-1] == start:
            ends[-1] = end
        else:
            sequences.append(sequence)
            starts.append(start)
            ends.append(end)
        self.payload += end - start


def _checked(segment: StoredSegment, fragment: bmff.Fragment, run: bmff.TrackRun, epoch: _Epoch) -> bmff.TrackInfo:
    """The run's track in its init, after checking the run can be placed and copied (rule 7)."""
    info = epoch.tracks.get(run.track_id)
    if info is None or run.track_id not in epoch.traks:
        raise _error(segment, fragment, f"track {run.track_id} is not in init epoch {segment.epoch}")
    if run.base_time is None:
        raise _error(segment, fragment, f"track {run.track_id} has no tfdt")
    low, high = fragment.mdat or (0, segment.size)
    if not max(low, 0) <= run.data_position <= run.data_position + run.total_size <= min(high, segment.size):
        raise _error(segment, fragment, f"samples of track {run.track_id} lie outside their mdat")
    index, count = run.sample_description_index, len(info.entries)
    if not 1 <= index <= count:
        raise _error(segment, fragment, f"track {run.track_id} uses sample description {index} of {count}")
    return info


def _error(segment: StoredSegment, fragment: bmff.Fragment, message: str) -> RecordingError:
    return RecordingError(f"segment {segment.sequence}, fragment at {fragment.moof_start}: {message}")


def _in_timescale(
    run: bmff.TrackRun, base_time: int, source: int, target: int
) -> tuple[int, Sequence[int], Sequence[int]]:
    """The run's ``tfdt`` (``base_time``), durations and composition offsets in the track's timescale (rule 5)."""
    if source == target:
        return base_time, run.durations, run.composition_offsets

    def scale(ticks: int) -> int:
        return (ticks * target + source // 2) // source

    position, start = base_time, scale(base_time)
    durations, previous = [], start
    for duration in run.durations:
        position += duration
        current = scale(position)
        durations.append(max(1, current - previous))
        previous = current
    return start, durations, [scale(offset) for offset in run.composition_offsets]


def _timings(tables: list[SampleTable]) -> list[TrackTiming]:
    """Edit lists (rule 6): the earliest presentation start is movie time 0."""
    starts = [Fraction(t.first_time + max(t.first_offset, 0), t.timescale) for t in tables]
    earliest = min(starts)
    return [
        TrackTiming(
            delay=round((start - earliest) * MOVIE_TIMESCALE),
            media_time=max(table.first_offset, 0),
            presented=round(Fraction(table.duration * MOVIE_TIMESCALE, table.timescale)),
        )
        for table, start in zip(tables, starts, strict=True)
    ]


def _header(tables: list[SampleTable], traks: list[InitTrak], timings: list[TrackTiming], payload: int) -> bytes:
    """``ftyp`` + ``moov`` + ``mdat`` header, with ``co64`` only if a chunk offset needs it (rule 1).

    The ``moov`` size does not depend on the offset values: it is the size of its pieces without the offset
    tables plus theirs, so the ``moov`` is written once, with the real offsets.
    """
    ftyp = file_header(entry[4:8] for table in tables for entry in table.entries)
    mdat = mdat_header(payload)
    mvhd = movie_header(max(t.total for t in timings), max(t.track_id for t in tables) + 1)
    samples = [table.sample_boxes() for table in tables]

    def moov(chunk_boxes: list[Parts]) -> Parts:
        traks_ = zip(tables, traks, timings, samples, chunk_boxes, strict=True)
        return boxed(b"moov", [mvhd, *(part for parts in traks_ for part in track(*parts))])

    def offset_tables(wide: bool) -> int:
        return sum(table.chunk_offset_box_size(wide) for table in tables)

    shell = sum(map(len, moov([[] for _ in tables])))
    base = len(ftyp) + shell + offset_tables(False) + len(mdat)
    wide = base + max(table.chunk_offsets[-1] for table in tables) > U32
    base += offset_tables(wide) - offset_tables(False)
    return b"".join([ftyp, *moov([table.chunk_offset_box(base, wide) for table in tables]), mdat])


def _summary(table: SampleTable) -> TrackSummary:
    fourccs = tuple(dict.fromkeys(entry[4:8].decode("latin-1") for entry in table.entries))
    return TrackSummary(
        track_id=table.track_id,
        handler=table.handler,
        fourccs=fourccs,
        sample_entries=len(table.entries),
        timescale=table.timescale,
        sample_count=table.count,
        duration=table.duration / table.timescale,
    )
