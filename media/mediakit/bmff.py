"""The one ISO-BMFF (ISO/IEC 14496-12) reader of CaptureStream: boxes, init segments and movie fragments.

Everything that reads MP4 bytes goes through here: the ingest node (codecs of the init ffmpeg wrote), the media
functions (sample tables of the live segments a recording is built from, keyframes for thumbnails) and the tests.
Writing lives beside the muxer (:mod:`mediakit.cmaf.boxes`, :mod:`mediakit.cmaf.fragment`,
:mod:`mediakit.progressive`).

Rules:
- Bytes in, plain values out; no I/O. Any malformed input raises :class:`MalformedBox` (a ``ValueError``), never
  ``struct.error`` or ``IndexError``.
- Box sizes: 32-bit, 64-bit ``largesize`` (size 1) and "to the end" (size 0, §4.2).
- Fragments: ``tfhd`` defaults (§8.8.7), ``trex`` defaults from the init (§8.8.3), every optional ``trun`` field
  (§8.8.8: data offset, first-sample flags, per-sample duration/size/flags/composition offset, version 1 signed
  offsets). Sample byte positions are absolute: ``position`` of the moof + its data offset (default-base-is-moof,
  or the moof start when neither base-data-offset nor default-base-is-moof is set, as CMAF requires).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

#: Boxes whose payload is a list of boxes (the ones this project reads into).
CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf", b"mvex", b"moof", b"traf", b"edts"})
_SYNC_MASK = 0x00010000  # sample_is_non_sync_sample (§8.8.3.1)


class MalformedBox(ValueError):
    """The bytes are not the ISO-BMFF structure they claim to be."""


@dataclass(frozen=True, slots=True)
class BoxRef:
    """Where one box sits in a buffer: ``start`` (header), ``payload`` (after the header) and ``end``."""

    kind: bytes
    start: int
    payload: int
    end: int

    @property
    def size(self) -> int:
        """Whole box size, header included."""
        return self.end - self.start


def iter_boxes(data: bytes | memoryview, start: int = 0, end: int | None = None) -> Iterator[BoxRef]:
    """The sibling boxes in ``data[start:end]``, in order.

    Raises:
        MalformedBox: a header that does not fit, or a size that runs past ``end``.
    """
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        if pos + 8 > end:
            raise MalformedBox(f"truncated box header at {pos}")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise MalformedBox(f"truncated largesize of {kind!r} at {pos}")
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise MalformedBox(f"box {kind!r} at {pos} has size {size}, {end - pos} bytes left")
        yield BoxRef(kind, pos, pos + header, pos + size)
        pos += size


def walk(data: bytes | memoryview, start: int = 0, end: int | None = None) -> Iterator[BoxRef]:
    """Every box, depth first, descending into :data:`CONTAINERS`."""
    for ref in iter_boxes(data, start, end):
        yield ref
        if ref.kind in CONTAINERS:
            yield from walk(data, ref.payload, ref.end)


def find(data: bytes | memoryview, *path: bytes, start: int = 0, end: int | None = None) -> BoxRef | None:
    """The first box along ``path`` (e.g. ``find(init, b"moov", b"trak", b"tkhd")``), or None."""
    refs = [BoxRef(b"", start, start, len(data) if end is None else end)]
    for kind in path:
        refs = [child for ref in refs for child in iter_boxes(data, ref.payload, ref.end) if child.kind == kind]
        if not refs:
            return None
    return refs[0]


def find_all(data: bytes | memoryview, *path: bytes, start: int = 0, end: int | None = None) -> list[BoxRef]:
    """Every box along ``path``."""
    refs = [BoxRef(b"", start, start, len(data) if end is None else end)]
    for kind in path:
        refs = [child for ref in refs for child in iter_boxes(data, ref.payload, ref.end) if child.kind == kind]
    return refs


def is_sync(sample_flags: int) -> bool:
    """True for a sync sample (``sample_is_non_sync_sample`` clear)."""
    return not sample_flags & _SYNC_MASK


# ---------------------------------------------------------------------------------------------- init segments


@dataclass(frozen=True, slots=True)
class TrackDefaults:
    """``trex`` (§8.8.3): what a fragment's samples default to."""

    sample_description_index: int = 1
    duration: int = 0
    size: int = 0
    flags: int = 0


@dataclass(frozen=True, slots=True)
class SampleEntry:
    """One ``stsd`` entry: its four-character code and its bytes (header included, ready to copy)."""

    fourcc: bytes
    data: bytes

    def child(self, kind: bytes) -> bytes | None:
        """Payload of a box inside the entry (``avcC``, ``esds``, ...), past the entry's fixed fields."""
        fixed = 8 + (78 if self.fourcc not in (b"mp4a", b"Opus", b"fLaC", b"ac-3", b"ec-3") else 28)
        try:
            for ref in iter_boxes(self.data, fixed):
                if ref.kind == kind:
                    return bytes(self.data[ref.payload : ref.end])
        except MalformedBox:
            return None
        return None


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """A track of an init segment (or of a progressive file's ``moov``)."""

    track_id: int
    #: ``hdlr`` handler type: ``"vide"``, ``"soun"``, ...
    handler: str
    timescale: int
    entries: tuple[SampleEntry, ...]
    defaults: TrackDefaults = field(default_factory=TrackDefaults)
    width: int = 0
    height: int = 0


def read_init(data: bytes | memoryview) -> dict[int, TrackInfo]:
    """Tracks of an init segment (``ftyp`` + ``moov``), by track id, with their ``trex`` defaults.

    Raises:
        MalformedBox: no ``moov``, or a track without the boxes every track has.
    """
    try:
        moov = find(data, b"moov")
        if moov is None:
            raise MalformedBox("no moov box")
        defaults = {}
        for trex in find_all(data, b"mvex", b"trex", start=moov.payload, end=moov.end):
            track_id, index, duration, size, flags = struct.unpack_from(">5I", data, trex.payload + 4)
            defaults[track_id] = TrackDefaults(index, duration, size, flags)
        tracks = {}
        for trak in find_all(data, b"trak", start=moov.payload, end=moov.end):
            track = _track(data, trak, defaults)
            tracks[track.track_id] = track
        return tracks
    except (struct.error, IndexError) as error:  # a field or a FullBox version byte past the data's end
        raise MalformedBox(f"truncated init segment: {error}") from None


def _track(data: bytes | memoryview, trak: BoxRef, defaults: dict[int, TrackDefaults]) -> TrackInfo:
    tkhd = _need(data, trak, b"tkhd")
    version = data[tkhd.payload]
    track_id = struct.unpack_from(">I", data, tkhd.payload + (20 if version == 1 else 12))[0]
    width, height = struct.unpack_from(">II", data, tkhd.end - 8)
    mdhd = _need(data, trak, b"mdia", b"mdhd")
    timescale = struct.unpack_from(">I", data, mdhd.payload + (20 if data[mdhd.payload] == 1 else 12))[0]
    hdlr = _need(data, trak, b"mdia", b"hdlr")
    handler = bytes(data[hdlr.payload + 8 : hdlr.payload + 12]).decode("latin-1")
    stsd = _need(data, trak, b"mdia", b"minf", b"stbl", b"stsd")
    entries = tuple(
        SampleEntry(ref.kind, bytes(data[ref.start : ref.end])) for ref in iter_boxes(data, stsd.payload + 8, stsd.end)
    )
    if timescale <= 0:
        raise MalformedBox(f"track {track_id} has timescale {timescale}")
    return TrackInfo(
        track_id, handler, timescale, entries, defaults.get(track_id, TrackDefaults()), width >> 16, height >> 16
    )


def _need(data: bytes | memoryview, parent: BoxRef, *path: bytes) -> BoxRef:
    ref = find(data, *path, start=parent.payload, end=parent.end)
    if ref is None:
        raise MalformedBox(f"{parent.kind!r} at {parent.start} has no {b'/'.join(path)!r}")
    return ref


# ---------------------------------------------------------------------------------------------- fragments


@dataclass(slots=True)
class TrackRun:
    """The samples of one track in one ``traf``, as stored: times in the track timescale, absolute positions."""

    track_id: int
    #: ``tfdt`` baseMediaDecodeTime (None when the traf has no tfdt).
    base_time: int | None
    sample_description_index: int
    durations: list[int]
    sizes: list[int]
    flags: list[int]
    composition_offsets: list[int]
    #: Absolute byte position of the first sample (fragment ``position`` + data offset).
    data_position: int

    @property
    def total_size(self) -> int:
        """Payload bytes of the run (they are contiguous)."""
        return sum(self.sizes)

    @property
    def duration(self) -> int:
        """Sum of sample durations (track timescale)."""
        return sum(self.durations)


@dataclass(frozen=True, slots=True)
class Fragment:
    """One ``moof`` and the ``mdat`` after it, positions absolute."""

    moof_start: int
    moof_end: int
    runs: tuple[TrackRun, ...]
    #: The mdat box after the moof: ``(payload start, end)``; None when it was not in the bytes read.
    mdat: tuple[int, int] | None


def read_moof(
    data: bytes | memoryview,
    moof: BoxRef,
    *,
    position: int = 0,
    defaults: dict[int, TrackDefaults] | None = None,
) -> list[TrackRun]:
    """The track runs of one ``moof`` found at ``moof`` in ``data``, which starts at absolute ``position``.

    Raises:
        MalformedBox: a traf without tfhd/trun, or fields past the box end.
    """
    defaults = defaults or {}
    runs = []
    try:
        for traf in find_all(data, b"traf", start=moof.payload, end=moof.end):
            runs.extend(_traf_runs(data, traf, moof.start + position, defaults))
    except (struct.error, IndexError) as error:  # a field or a FullBox version byte past the data's end
        raise MalformedBox(f"truncated moof at {position + moof.start}: {error}") from None
    return runs


def _traf_runs(
    data: bytes | memoryview, traf: BoxRef, moof_position: int, defaults: dict[int, TrackDefaults]
) -> list[TrackRun]:
    tfhd = _need(data, traf, b"tfhd")
    tf_flags = int.from_bytes(data[tfhd.payload + 1 : tfhd.payload + 4], "big")
    track_id = struct.unpack_from(">I", data, tfhd.payload + 4)[0]
    track = defaults.get(track_id, TrackDefaults())
    base, pos = moof_position, tfhd.payload + 8
    if tf_flags & 0x1:
        base = struct.unpack_from(">Q", data, pos)[0]
        pos += 8
    index = track.sample_description_index
    if tf_flags & 0x2:
        index = struct.unpack_from(">I", data, pos)[0]
        pos += 4
    duration, size, flags = track.duration, track.size, track.flags
    if tf_flags & 0x8:
        duration = struct.unpack_from(">I", data, pos)[0]
        pos += 4
    if tf_flags & 0x10:
        size = struct.unpack_from(">I", data, pos)[0]
        pos += 4
    if tf_flags & 0x20:
        flags = struct.unpack_from(">I", data, pos)[0]
    tfdt = find(data, b"tfdt", start=traf.payload, end=traf.end)
    base_time = None
    if tfdt is not None:
        version = data[tfdt.payload]
        base_time = struct.unpack_from(">Q" if version == 1 else ">I", data, tfdt.payload + 4)[0]
    runs, next_position = [], base
    for trun in find_all(data, b"trun", start=traf.payload, end=traf.end):
        run = _trun(data, trun, track_id, base_time, index, (duration, size, flags), base, next_position)
        next_position = run.data_position + run.total_size
        if base_time is not None:
            base_time += run.duration
        runs.append(run)
    if not runs:
        raise MalformedBox(f"traf of track {track_id} has no trun")
    return runs


def _trun(
    data: bytes | memoryview,
    trun: BoxRef,
    track_id: int,
    base_time: int | None,
    index: int,
    sample_defaults: tuple[int, int, int],
    base: int,
    follow_on: int,
) -> TrackRun:
    version = data[trun.payload]
    flags = int.from_bytes(data[trun.payload + 1 : trun.payload + 4], "big")
    count = struct.unpack_from(">I", data, trun.payload + 4)[0]
    pos = trun.payload + 8
    data_position = follow_on
    if flags & 0x1:
        data_position = base + struct.unpack_from(">i", data, pos)[0]
        pos += 4
    first_flags = None
    if flags & 0x4:
        first_flags = struct.unpack_from(">I", data, pos)[0]
        pos += 4
    fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit]
    if pos + 4 * len(fields) * count > trun.end:
        raise MalformedBox(f"trun of track {track_id} claims {count} samples past its end")
    columns: dict[int, list[int]] = {}
    if fields:
        values = struct.unpack_from(f">{count * len(fields)}I", data, pos)
        columns = {bit: list(values[i :: len(fields)]) for i, bit in enumerate(fields)}
    duration, size, sample_flags = sample_defaults
    flag_column = columns.get(0x400) or [sample_flags] * count
    if first_flags is not None and count and 0x400 not in columns:
        flag_column[0] = first_flags
    offsets = columns.get(0x800) or [0] * count
    if version == 1 and 0x800 in columns:
        offsets = [value - (1 << 32) if value & 0x80000000 else value for value in offsets]
    return TrackRun(
        track_id=track_id,
        base_time=base_time,
        sample_description_index=index,
        durations=columns.get(0x100) or [duration] * count,
        sizes=columns.get(0x200) or [size] * count,
        flags=flag_column,
        composition_offsets=offsets,
        data_position=data_position,
    )


def read_fragments(
    data: bytes | memoryview, *, position: int = 0, defaults: dict[int, TrackDefaults] | None = None
) -> list[Fragment]:
    """Every ``moof`` (+ following ``mdat``) of a segment or file held whole in ``data``.

    Raises:
        MalformedBox: broken structure, or sample data that runs past its mdat.
    """
    fragments: list[Fragment] = []
    pending: BoxRef | None = None
    for ref in iter_boxes(data):
        if ref.kind == b"moof":
            if pending is not None:
                fragments.append(_fragment(data, pending, None, position, defaults))
            pending = ref
        elif ref.kind == b"mdat" and pending is not None:
            fragments.append(_fragment(data, pending, ref, position, defaults))
            pending = None
    if pending is not None:
        fragments.append(_fragment(data, pending, None, position, defaults))
    return fragments


def _fragment(
    data: bytes | memoryview,
    moof: BoxRef,
    mdat: BoxRef | None,
    position: int,
    defaults: dict[int, TrackDefaults] | None,
) -> Fragment:
    runs = read_moof(data, moof, position=position, defaults=defaults)
    span = None
    if mdat is not None:
        span = (position + mdat.payload, position + mdat.end)
        for run in runs:
            if run.sizes and not span[0] <= run.data_position <= run.data_position + run.total_size <= span[1]:
                raise MalformedBox(f"samples of track {run.track_id} lie outside their mdat")
    return Fragment(position + moof.start, position + moof.end, tuple(runs), span)


def sample_bytes(data: bytes | memoryview, run: TrackRun, *, position: int = 0) -> list[bytes]:
    """The payload of every sample of ``run`` out of ``data`` (which starts at absolute ``position``)."""
    out, pos = [], run.data_position - position
    for size in run.sizes:
        if pos < 0 or pos + size > len(data):
            raise MalformedBox(f"sample of track {run.track_id} at {pos + position} is outside the data")
        out.append(bytes(data[pos : pos + size]))
        pos += size
    return out


# ---------------------------------------------------------------------------------------------- descriptors


def esds_audio_specific_config(esds: bytes) -> bytes:
    """The AudioSpecificConfig inside an ``esds`` payload (ISO 14496-1 §7.2.6: ES_Descriptor →
    DecoderConfigDescriptor → DecoderSpecificInfo).

    Raises:
        MalformedBox: a descriptor missing or truncated.
    """
    try:
        tag, pos, _ = _descriptor(esds, 4)  # after the FullBox version/flags
        if tag != 0x03:
            raise MalformedBox("esds without an ES_Descriptor")
        flags = esds[pos + 2]
        pos += 3 + (2 if flags & 0x80 else 0)  # ES_ID, flags, dependsOn_ES_ID
        pos += 1 + esds[pos] if flags & 0x40 else 0  # URL
        pos += 2 if flags & 0x20 else 0  # OCR_ES_Id
        tag, pos, _ = _descriptor(esds, pos)
        if tag != 0x04:
            raise MalformedBox("esds without a DecoderConfigDescriptor")
        tag, pos, end = _descriptor(esds, pos + 13)  # objectType, streamType, bufferSize, maxBitrate, avgBitrate
        if tag != 0x05:
            raise MalformedBox("esds without a DecoderSpecificInfo")
        if end > len(esds):
            raise MalformedBox("truncated DecoderSpecificInfo")
        return esds[pos:end]
    except IndexError:
        raise MalformedBox("truncated esds") from None


def _descriptor(data: bytes, pos: int) -> tuple[int, int, int]:
    """``(tag, payload start, payload end)`` of an MPEG-4 descriptor (expandable size, 7 bits a byte)."""
    tag, pos, size = data[pos], pos + 1, 0
    for _ in range(4):
        byte, pos = data[pos], pos + 1
        size = size << 7 | byte & 0x7F
        if not byte & 0x80:
            break
    return tag, pos, pos + size
