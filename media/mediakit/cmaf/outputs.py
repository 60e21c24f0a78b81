"""What the segmenter produces: frozen, keyword-only output events (STYLE rule 2). Don't subclass them.

Rules:
- Order within one ``feed_*`` result is the order to publish in: an :class:`InitSegment` comes before the first
  part/segment that needs it; a segment's last :class:`Part` comes before the :class:`Segment` itself.
- A segment's bytes are exactly the concatenation of its parts' bytes (LL-HLS byte-for-byte, CMAF_COST
  pitfall 11); :class:`PartInfo` gives each part's byte range inside the segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class Output:
    """Base class of every segmenter output."""

    __slots__ = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class InitSegment(Output):
    """An fMP4 initialization segment (``ftyp`` + ``moov``); a new one starts each epoch."""

    #: 0 for the first init; +1 each time the codec configuration changes.
    epoch: int
    data: bytes
    #: RFC 6381 CODECS value, video first: ``"avc1.64001f,mp4a.40.2"``.
    codecs: str
    #: Display size, ``None`` without a video track (or when neither bitstream nor metadata tell it).
    width: int | None
    height: int | None
    #: The two halves of ``codecs``, ``None`` for a missing track.
    video_codec: str | None = None
    audio_codec: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class PartInfo:
    """Where one LL-HLS part sits inside its finished segment."""

    index: int
    duration: float
    independent: bool
    #: Byte range of the part inside ``Segment.data`` (for EXT-X-BYTERANGE style serving).
    offset: int
    size: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Part(Output):
    """An LL-HLS partial segment (one ``moof`` + ``mdat``; the first part of a segment starts with ``styp``)."""

    #: Media sequence number of the parent segment.
    sequence: int
    #: Index within the parent segment, from 0.
    index: int
    data: bytes
    duration: float
    #: Starts with a video keyframe (or the stream has no video): EXT-X-PART INDEPENDENT=YES.
    independent: bool
    #: Init epoch of the parent segment, and whether the parent segment follows a discontinuity.
    epoch: int = 0
    discontinuity: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Segment(Output):
    """A finished media segment."""

    #: Media sequence number, from 0, +1 per segment (also across discontinuities).
    sequence: int
    data: bytes
    #: Seconds, from sample durations (what EXTINF says).
    duration: float
    epoch: int
    #: First segment after a publisher reconnect or a codec change: EXT-X-DISCONTINUITY.
    discontinuity: bool
    #: Wall-clock time of the segment's first sample: anchor + media time.
    program_date_time: datetime
    #: Starts with a video keyframe (always, unless force-cut or the stream has no video; audio-only → True).
    keyframe: bool
    parts: tuple[PartInfo, ...]
