"""A live segment as stored in S3, seen by the functions that build on it (recording builder, storyboard, poster).

The recording builder reads only each segment's box headers and ``moof`` boxes (ranged reads, never the whole
payload twice), so every consumer works from these descriptions plus ranged reads of the sample bytes it needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import bmff


@dataclass(frozen=True, slots=True)
class StoredSegment:
    """One ``seg_<sequence>.m4s`` object: what its metadata says and where its fragments are."""

    #: HLS media sequence number (``keys.LiveSegment.sequence``).
    sequence: int
    #: Init segment epoch it needs (``keys.LiveInit.epoch``; from the object metadata).
    epoch: int
    #: First segment after a reconnect or a codec change (EXT-X-DISCONTINUITY).
    discontinuity: bool
    #: Object size in bytes.
    size: int
    #: Its ``moof`` + ``mdat`` pairs; positions count from the object's first byte.
    fragments: tuple[bmff.Fragment, ...]
    #: EXT-X-PROGRAM-DATE-TIME of its first sample (ISO 8601 UTC), when the node recorded it.
    program_date_time: str | None = None

    def duration(self, timescales: dict[int, int]) -> float:
        """Seconds of media: the longest track's sum of sample durations (``timescales``: track id → ticks/s)."""
        totals: dict[int, int] = {}
        for fragment in self.fragments:
            for run in fragment.runs:
                totals[run.track_id] = totals.get(run.track_id, 0) + run.duration
        return max((ticks / timescales[track] for track, ticks in totals.items() if track in timescales), default=0.0)

    def first_keyframe(self, video_track_id: int) -> tuple[int, int] | None:
        """``(position, size)`` of the segment's first video sync sample, or None (no video / no sync sample)."""
        for fragment in self.fragments:
            for run in fragment.runs:
                if run.track_id != video_track_id:
                    continue
                position = run.data_position
                for size, flags in zip(run.sizes, run.flags, strict=True):
                    if bmff.is_sync(flags):
                        return position, size
                    position += size
        return None
