"""The VOD playlist of a recording: every stored live segment of a broadcast, in order, under one playlist.

No re-upload: the playlist names the live segments where they already are (URIs are the caller's, e.g. relative
paths from ``vod/<pb>/<session>/index.m3u8`` to ``live/<pb>/<session>/``). Reconnects keep their
``EXT-X-DISCONTINUITY``, a new init epoch its ``EXT-X-MAP``; durations come from the segments' own sample tables
(not from a live playlist, which only held the last few), program date times from the segments' metadata, else
from the broadcast start plus the media before them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from . import bmff
from .cmaf.outputs import Segment
from .hls import MediaPlaylist, parse_date_time
from .stored import StoredSegment


def vod_playlist(
    segments: Sequence[StoredSegment],
    timescales: Mapping[int, Mapping[int, int]],
    *,
    started_at: datetime,
    target_duration: float,
    segment_uri: Callable[[StoredSegment], str],
    init_uri: Callable[[int], str],
) -> str:
    """The ``EXT-X-PLAYLIST-TYPE:VOD`` media playlist.

    Args:
        segments: the broadcast's segments, in sequence order.
        timescales: per init epoch, track id → timescale.
        started_at: the broadcast's start (program date time of a segment without one).
        target_duration: the configured segment target (seconds); the playlist's grows to the longest segment.
        segment_uri: the URI of a segment, as the playlist names it.
        init_uri: the URI of an epoch's init segment.
    """
    playlist = MediaPlaylist(target_duration=target_duration, window=None)
    elapsed = 0.0
    for stored in segments:
        duration = stored.duration(dict(timescales[stored.epoch]))
        when = _parse_time(stored.program_date_time) or started_at + timedelta(seconds=elapsed)
        segment = Segment(
            sequence=stored.sequence,
            data=b"",
            duration=duration,
            epoch=stored.epoch,
            discontinuity=stored.discontinuity and stored.sequence > 0,
            program_date_time=when,
            keyframe=_starts_with_sync_sample(stored),
            parts=(),
        )
        playlist.add_segment(segment, uri=segment_uri(stored), init_uri=init_uri(stored.epoch))
        elapsed += duration
    return playlist.render(vod=True)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parse_date_time(value)
    except ValueError:
        return None


def _starts_with_sync_sample(stored: StoredSegment) -> bool:
    """True when the segment's first sample of every track is a sync sample (EXT-X-INDEPENDENT-SEGMENTS)."""
    first = stored.fragments[0].runs if stored.fragments else ()
    return all(bmff.is_sync(run.flags[0]) for run in first if run.flags)
