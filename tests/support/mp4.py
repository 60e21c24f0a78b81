"""A tiny ISO-BMFF reader for tests: enough to check what ffprobe can't (CMAF_COST.md pitfall 7).

ffprobe's H.264 parser recomputes keyframe flags, so "every segment starts on a keyframe" and "durations match
EXTINF" are checked here from the boxes themselves: ``trun`` sample flags and durations, ``mdhd`` timescales.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf", b"mvex", b"dinf"}


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """Yield ``(type, payload_start, box_end)`` for each box in ``data[start:end]``."""
    end = len(data) if end is None else end
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        header = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, start + 8)[0]
            header = 16
        if size < header or start + size > end:
            raise ValueError(f"bad box {kind!r} at {start}")
        yield kind, start + header, start + size
        start += size


def walk(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """Every box, depth first, descending into the usual containers."""
    for kind, payload, box_end in boxes(data, start, end):
        yield kind, payload, box_end
        if kind in _CONTAINERS:
            yield from walk(data, payload, box_end)


@dataclass
class Track:
    """A track of an init segment."""

    track_id: int
    handler: str
    timescale: int


def tracks(init: bytes) -> dict[int, Track]:
    """Tracks declared by an init segment, by track id."""
    found: dict[int, Track] = {}
    for kind, payload, box_end in walk(init):
        if kind != b"trak":
            continue
        track_id = timescale = 0
        handler = ""
        for inner, p, _ in walk(init, payload, box_end):
            if inner == b"tkhd":
                version = init[p]
                track_id = struct.unpack_from(">I", init, p + (20 if version == 1 else 12))[0]
            elif inner == b"mdhd":
                version = init[p]
                timescale = struct.unpack_from(">I", init, p + (20 if version == 1 else 12))[0]
            elif inner == b"hdlr":
                handler = init[p + 8 : p + 12].decode()
        found[track_id] = Track(track_id, handler, timescale)
    return found


@dataclass
class Run:
    """Samples of one track inside one fragment."""

    track_id: int
    durations: list[int]
    flags: list[int]


def runs(segment: bytes) -> list[Run]:
    """Every ``trun`` of a segment with its track id (from the enclosing ``tfhd``)."""
    found: list[Run] = []
    for kind, payload, box_end in walk(segment):
        if kind != b"traf":
            continue
        track_id, default_duration, default_flags = 0, 0, 0
        for inner, p, _ in boxes(segment, payload, box_end):
            if inner == b"tfhd":
                tf_flags = int.from_bytes(segment[p + 1 : p + 4], "big")
                track_id = struct.unpack_from(">I", segment, p + 4)[0]
                offset = p + 8 + (8 if tf_flags & 0x1 else 0) + (4 if tf_flags & 0x2 else 0)
                if tf_flags & 0x8:
                    default_duration = struct.unpack_from(">I", segment, offset)[0]
                    offset += 4
                if tf_flags & 0x10:
                    offset += 4
                if tf_flags & 0x20:
                    default_flags = struct.unpack_from(">I", segment, offset)[0]
            elif inner == b"trun":
                found.append(_trun(segment, p, track_id, default_duration, default_flags))
    return found


def _trun(data: bytes, p: int, track_id: int, default_duration: int, default_flags: int) -> Run:
    flags = int.from_bytes(data[p + 1 : p + 4], "big")
    count = struct.unpack_from(">I", data, p + 4)[0]
    offset = p + 8 + (4 if flags & 0x1 else 0)
    first_flags = None
    if flags & 0x4:
        first_flags = struct.unpack_from(">I", data, offset)[0]
        offset += 4
    durations, sample_flags = [], []
    for index in range(count):
        duration, sflags = default_duration, default_flags
        if flags & 0x100:
            duration = struct.unpack_from(">I", data, offset)[0]
            offset += 4
        if flags & 0x200:
            offset += 4
        if flags & 0x400:
            sflags = struct.unpack_from(">I", data, offset)[0]
            offset += 4
        if flags & 0x800:
            offset += 4
        if index == 0 and first_flags is not None:
            sflags = first_flags
        durations.append(duration)
        sample_flags.append(sflags)
    return Run(track_id, durations, sample_flags)


def is_sync(sample_flags: int) -> bool:
    """True when the sample is a sync sample (``sample_is_non_sync_sample`` bit clear)."""
    return not (sample_flags >> 16) & 0x1
