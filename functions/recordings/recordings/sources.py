"""What a broadcast left in S3, read for the recording builder: its init segments and its live segments' structure.

Rules:
- The bucket is the truth, not a playlist: the live playlist kept only the last segments, and after an ingest
  node crash it may lag behind what was stored. Segments are listed under the session's ``live/`` prefix.
- Each segment is read with ranged GETs driven by :class:`mediakit.segment_scan.SegmentScanner` (box headers and
  ``moof`` boxes only, ~1-9 % of its bytes), concurrently, so a 4-hour 6 Mb/s broadcast (14,400 segments) is
  indexed without reading its 11 GB twice; a small segment (≤ :data:`WHOLE_READ_BYTES`) is read whole in one GET
  instead of one per fragment. The first read also returns the object metadata (init epoch, discontinuity,
  program date time, :class:`capturestream.keys.SegmentMetadata`).
- A missing, truncated or unreadable segment is a :class:`SourceError` naming it: a short recording must never
  pass silently.
- Each segment's scan starts only with time for it (:func:`.budget.check`).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from capturestream import keys
from mediakit import bmff
from mediakit.segment_scan import SegmentScanner
from mediakit.stored import StoredSegment

from . import budget

#: A segment up to this size is read whole by the scan (one GET, ~1 s at ≤ 4 Mb/s): a request's latency costs
#: more than the bytes. Larger ones are scanned with ranged reads of the moofs only.
WHOLE_READ_BYTES = 512 * 1024
SCAN_READ_BYTES = 16 * 1024


class SourceError(Exception):
    """The broadcast's media in S3 is incomplete or corrupt; the message says which object."""


@dataclass(frozen=True)
class SessionMedia:
    """The media of one broadcast as stored."""

    inits: dict[int, bytes]
    tracks: dict[int, dict[int, bmff.TrackInfo]]
    segments: list[StoredSegment]
    #: ETag of every object read, by key: the build's input fingerprint.
    etags: dict[str, str]


def read_session_media(
    s3: Any,
    bucket: str,
    playback_id: str,
    session_id: str,
    *,
    concurrency: int = 16,
    time_left: budget.TimeLeft = budget.unlimited,
) -> SessionMedia:
    """List, fetch the inits, and scan every segment of one session.

    Raises:
        SourceError: no segment, a gap in the sequence, an init missing, or a segment that does not parse.
        budget.OutOfTime: the invocation's time ran short.
    """
    listed = _list(s3, bucket, keys.session_prefix(keys.LIVE_PREFIX, playback_id, session_id))
    inits: dict[int, bytes] = {}
    segments: list[tuple[keys.LiveSegment, int, str]] = []
    etags: dict[str, str] = {}
    for key, size, etag in listed:
        try:
            decoded = keys.decode(key)
        except ValueError:
            continue
        if isinstance(decoded, keys.LiveInit):
            inits[decoded.epoch] = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            etags[key] = etag
        elif isinstance(decoded, keys.LiveSegment):
            segments.append((decoded, size, etag))
            etags[key] = etag
    if not segments:
        raise SourceError(f"no live segment stored under live/{playback_id}/{session_id}/")
    segments.sort(key=lambda item: item[0].sequence)
    expected = list(range(len(segments)))
    found = [key.sequence for key, _, _ in segments]
    if found != expected:
        missing = sorted(set(range(found[-1] + 1)) - set(found))[:5]
        raise SourceError(f"segments {missing} of live/{playback_id}/{session_id}/ are missing")
    try:
        tracks = {epoch: bmff.read_init(data) for epoch, data in inits.items()}
    except bmff.MalformedBox as error:
        raise SourceError(f"an init segment of session {session_id} is corrupt: {error}") from None
    defaults = {epoch: {tid: t.defaults for tid, t in per.items()} for epoch, per in tracks.items()}
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        scanned = list(pool.map(lambda item: _scan(s3, bucket, item[0], item[1], defaults, time_left), segments))
    return SessionMedia(inits=inits, tracks=tracks, segments=scanned, etags=etags)


def _list(s3: Any, bucket: str, prefix: str) -> list[tuple[str, int, str]]:
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += [(item["Key"], int(item["Size"]), item.get("ETag", "")) for item in page.get("Contents", [])]
    return found


def _scan(
    s3: Any,
    bucket: str,
    key: keys.LiveSegment,
    size: int,
    defaults: Mapping[int, dict[int, bmff.TrackDefaults]],
    time_left: budget.TimeLeft = budget.unlimited,
) -> StoredSegment:
    """One segment's fragments and metadata, from ranged reads (the first one also brings the metadata)."""
    budget.check(time_left, f"scanning {key.key}")
    read_size = size if size <= WHOLE_READ_BYTES else SCAN_READ_BYTES
    try:
        scanner = SegmentScanner(size, defaults.get(0, {}), read_size=read_size)
        want = scanner.want()
        if want is None:
            raise SourceError(f"{key.key} is empty")
        response = _get_range(s3, bucket, key.key, *want)
        meta = keys.SegmentMetadata.parse(response.get("Metadata") or {}) or keys.SegmentMetadata(epoch=0)
        if meta.epoch not in defaults:
            raise SourceError(f"{key.key} needs init epoch {meta.epoch}, which is not stored")
        if meta.epoch != 0:  # the same first read, with that epoch's track defaults
            scanner = SegmentScanner(size, defaults[meta.epoch], read_size=read_size)
        scanner.feed(want[0], response["Body"].read())
        while (want := scanner.want()) is not None:
            scanner.feed(want[0], _get_range(s3, bucket, key.key, *want)["Body"].read())
        fragments = scanner.fragments
    except bmff.MalformedBox as error:
        raise SourceError(f"{key.key} is corrupt: {error}") from None
    if not fragments:
        raise SourceError(f"{key.key} holds no media fragment")
    return StoredSegment(
        sequence=key.sequence,
        epoch=meta.epoch,
        discontinuity=meta.discontinuity,
        size=size,
        fragments=fragments,
        program_date_time=meta.program_date_time,
    )


def _get_range(s3: Any, bucket: str, key: str, offset: int, length: int) -> Any:
    return s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={offset}-{offset + length - 1}")
