"""HLS playlists (RFC 8216, and the LL-HLS tags of draft-pantos-hls-rfc8216bis): a live media playlist and a master.

Rules:
- ``EXT-X-VERSION`` is 7 (fMP4 with EXT-X-MAP needs ≥ 6), 9 when LL-HLS tags are present.
- ``EXT-X-TARGETDURATION``: RFC 8216 §4.3.3.1 "The EXTINF duration of each Media Segment in the Playlist file,
  when rounded to the nearest integer, MUST be less than or equal to the target duration", and §6.2.1 says it
  MUST NOT change. So it is the largest *rounded* EXTINF ever added (never the ceiling: a 29.97 fps 1 s GOP gives
  1.001 s segments, and a ceiling of 2 would double hls.js' live latency, 3 × TARGETDURATION), never below the
  configured target rounded up, and it never decreases.
- Sliding window: the last ``window`` segments (``None`` keeps all). ``EXT-X-MEDIA-SEQUENCE`` is the first listed
  segment's sequence; ``EXT-X-DISCONTINUITY-SEQUENCE`` counts the EXT-X-DISCONTINUITY tags that slid out (§6.2.2).
- ``EXT-X-MAP`` precedes the first listed segment and every segment whose init URI differs from the previous one
  (a new epoch after a codec change); ``EXT-X-DISCONTINUITY`` precedes segments flagged by the segmenter.
- ``EXT-X-INDEPENDENT-SEGMENTS`` only when every listed segment starts with a keyframe (force-cut segments don't).
- ``EXT-X-PROGRAM-DATE-TIME`` on every segment, UTC, millisecond precision; ``EXTINF`` with ``%.5f``.
- LL-HLS (``part_target`` set): ``EXT-X-PART-INF:PART-TARGET`` is the largest part duration seen (parts run up to
  one frame past the part target; "Partial Segment ... duration MUST be less than or equal to the Part Target
  Duration"), never below the configured value; ``EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK`` =
  3 × PART-TARGET ("MUST be at least twice ... SHOULD be at least three times the Part Target Duration");
  ``EXT-X-PART`` lines for the last :data:`PART_SEGMENTS` segments and the in-progress one; ``EXT-X-PRELOAD-HINT``
  for the next part while live (hls.js loops without one, gohlslib notes).
- URIs are the caller's (keys come from ``capturestream.keys``); this module never spells a storage key.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .cmaf.outputs import InitSegment, Part, Segment

PART_SEGMENTS = 3


@dataclass(slots=True)
class _PartLine:
    duration: float
    uri: str
    independent: bool


@dataclass(slots=True)
class _Entry:
    sequence: int
    uri: str
    init_uri: str | None
    duration: float
    discontinuity: bool
    program_date_time: datetime
    keyframe: bool
    parts: list[_PartLine] = field(default_factory=list)
    #: ``EXT-X-PROGRAM-DATE-TIME`` and ``EXTINF`` lines, written once: a live playlist renders every entry again
    #: for each new segment.
    date_time_line: str = field(init=False)
    extinf_line: str = field(init=False)

    def __post_init__(self) -> None:
        self.date_time_line = f"#EXT-X-PROGRAM-DATE-TIME:{format_date_time(self.program_date_time)}"
        self.extinf_line = f"#EXTINF:{self.duration:.5f},"


class MediaPlaylist:
    """A live (or, with ``window=None``, complete) media playlist for one rendition."""

    def __init__(self, target_duration: float, window: int | None = 6, part_target: float | None = None) -> None:
        if window is not None and window < 1:
            raise ValueError("window must be ≥ 1 or None")
        self.window = window
        self.part_target = part_target
        self._target = math.ceil(target_duration - 1e-9)
        self._part_target = part_target or 0.0
        self._segments: deque[_Entry] = deque()
        self._removed_discontinuities = 0
        self._next_sequence = 0
        self._inits: dict[int, InitSegment] = {}
        self._pending_parts: list[_PartLine] = []
        self._pending_sequence: int | None = None
        self._pending_init_uri: str | None = None
        self._pending_discontinuity = False

    def add_init(self, init: InitSegment) -> None:
        """Record an init segment (its codecs/size serve :func:`render_master`; its URI comes per segment)."""
        self._inits[init.epoch] = init

    @property
    def inits(self) -> dict[int, InitSegment]:
        """Init segments added so far, by epoch."""
        return dict(self._inits)

    def add_part(self, part: Part, uri: str, init_uri: str | None = None) -> None:
        """Add a part of the in-progress segment (LL-HLS). ``init_uri`` lets a new epoch's MAP precede its parts."""
        if self._pending_sequence != part.sequence:
            self._pending_parts, self._pending_sequence, self._pending_init_uri = [], part.sequence, None
        self._pending_parts.append(_PartLine(part.duration, uri, part.independent))
        if init_uri:
            self._pending_init_uri = init_uri
        self._pending_discontinuity = part.discontinuity
        self._part_target = max(self._part_target, _ceil_ms(part.duration))

    def add_segment(self, segment: Segment, uri: str, init_uri: str | None) -> None:
        """Add a finished segment (its parts added with :meth:`add_part` move under it) and slide the window."""
        parts = self._pending_parts if self._pending_sequence == segment.sequence else []
        self._pending_parts, self._pending_sequence = [], None
        self._segments.append(
            _Entry(
                sequence=segment.sequence,
                uri=uri,
                init_uri=init_uri,
                duration=segment.duration,
                discontinuity=segment.discontinuity,
                program_date_time=segment.program_date_time,
                keyframe=segment.keyframe,
                parts=parts,
            )
        )
        self._next_sequence = segment.sequence + 1
        self._target = max(self._target, math.floor(segment.duration + 0.5))
        for line in parts:
            self._part_target = max(self._part_target, _ceil_ms(line.duration))
        while self.window is not None and len(self._segments) > self.window:
            if self._segments.popleft().discontinuity:
                self._removed_discontinuities += 1

    def render(self, *, ended: bool = False, preload_hint: str | None = None, vod: bool = False) -> str:
        """The playlist text.

        Args:
            ended: append ``EXT-X-ENDLIST`` (and no preload hint).
            preload_hint: URI of the next part, for ``EXT-X-PRELOAD-HINT`` (LL-HLS, live only).
            vod: a finished recording: ``EXT-X-PLAYLIST-TYPE:VOD`` (RFC 8216 §4.3.3.5, the playlist never
                changes) and ``EXT-X-ENDLIST``.
        """
        ended = ended or vod
        low_latency = self.part_target is not None
        segments = list(self._segments)
        lines = ["#EXTM3U", f"#EXT-X-VERSION:{9 if low_latency else 7}", f"#EXT-X-TARGETDURATION:{self._target}"]
        if vod:
            lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
        if low_latency:
            lines.append(f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={3 * self._part_target:.3f}")
            lines.append(f"#EXT-X-PART-INF:PART-TARGET={self._part_target:.3f}")
        first = segments[0].sequence if segments else self._next_sequence
        lines.append(f"#EXT-X-MEDIA-SEQUENCE:{first}")
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{self._removed_discontinuities}")
        if all(entry.keyframe for entry in segments):
            lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
        previous_init: str | None = None
        with_parts = len(segments) - PART_SEGMENTS
        for position, entry in enumerate(segments):
            if entry.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            if entry.init_uri and entry.init_uri != previous_init:
                lines.append(f'#EXT-X-MAP:URI="{entry.init_uri}"')
                previous_init = entry.init_uri
            lines.append(entry.date_time_line)
            if low_latency and position >= with_parts:
                lines.extend(_part_line(line) for line in entry.parts)
            lines.append(entry.extinf_line)
            lines.append(entry.uri)
        if low_latency and self._pending_parts and not ended:
            if self._pending_discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            if self._pending_init_uri and self._pending_init_uri != previous_init:
                lines.append(f'#EXT-X-MAP:URI="{self._pending_init_uri}"')
            lines.extend(_part_line(line) for line in self._pending_parts)
        if low_latency and preload_hint and not ended:
            lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{preload_hint}"')
        if ended:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"


def _part_line(line: _PartLine) -> str:
    independent = ",INDEPENDENT=YES" if line.independent else ""
    return f'#EXT-X-PART:DURATION={line.duration:.5f},URI="{line.uri}"{independent}'


def _ceil_ms(seconds: float) -> float:
    return math.ceil(round(seconds * 1000, 6)) / 1000


def format_date_time(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``: ``2025-01-02T03:04:05.678Z``."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_date_time(value: str) -> datetime:
    """What :func:`format_date_time` wrote (any ISO 8601 with an offset or ``Z``) → an aware datetime.

    Raises:
        ValueError: not an ISO 8601 date-time.
    """
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True, kw_only=True, slots=True)
class Variant:
    """One ``EXT-X-STREAM-INF`` entry of a master playlist."""

    uri: str
    #: Peak bits per second (RFC 8216 §4.3.4.2 BANDWIDTH, required).
    bandwidth: int
    codecs: str
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None

    @classmethod
    def from_init(cls, init: InitSegment, *, uri: str, bandwidth: int, frame_rate: float | None = None) -> Variant:
        """A variant described by an init segment's codecs and size."""
        return cls(
            uri=uri,
            bandwidth=bandwidth,
            codecs=init.codecs,
            width=init.width,
            height=init.height,
            frame_rate=frame_rate,
        )


def render_master(variants: Sequence[Variant]) -> str:
    """A master playlist with CODECS and RESOLUTION (RFC 8216 §4.3.4.2)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for variant in variants:
        attributes = [f"BANDWIDTH={variant.bandwidth}", f'CODECS="{variant.codecs}"']
        if variant.width and variant.height:
            attributes.append(f"RESOLUTION={variant.width}x{variant.height}")
        if variant.frame_rate:
            attributes.append(f"FRAME-RATE={variant.frame_rate:.3f}")
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attributes))
        lines.append(variant.uri)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True, kw_only=True, slots=True)
class PlaylistSegment:
    """One media segment line of a media playlist, with the tags that apply to it."""

    sequence: int
    uri: str
    duration: float
    #: URI of the ``EXT-X-MAP`` in force (None before any).
    init_uri: str | None
    discontinuity: bool
    program_date_time: datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class ParsedPlaylist:
    """What :func:`parse_media_playlist` read."""

    version: int | None
    target_duration: int | None
    media_sequence: int
    discontinuity_sequence: int
    ended: bool
    independent_segments: bool
    segments: tuple[PlaylistSegment, ...]
    #: ``EXT-X-PART`` URIs in order (LL-HLS), and the ``EXT-X-PRELOAD-HINT`` URI.
    parts: tuple[str, ...] = ()
    preload_hint: str | None = None


class PlaylistError(ValueError):
    """Text that is not an HLS media playlist (RFC 8216 §4.1: it must start with ``#EXTM3U``)."""


def parse_media_playlist(text: str) -> ParsedPlaylist:
    """Read a media playlist (RFC 8216 §4.3; LL-HLS parts and hints are listed, not interpreted).

    Raises:
        PlaylistError: no ``#EXTM3U`` header, or a tag value that does not parse.
    """
    lines = [line.strip() for line in text.splitlines()]
    if not lines or lines[0] != "#EXTM3U":
        raise PlaylistError("not an HLS playlist: the first line must be #EXTM3U")
    values: dict[str, int | None] = {"version": None, "target": None, "sequence": 0, "discontinuities": 0}
    segments: list[PlaylistSegment] = []
    parts: list[str] = []
    flags = {"ended": False, "independent": False}
    duration, init_uri, discontinuity, when, hint = 0.0, None, False, None, None
    try:
        for line in lines[1:]:
            tag, _, value = line.partition(":")
            if tag == "#EXT-X-VERSION":
                values["version"] = int(value)
            elif tag == "#EXT-X-TARGETDURATION":
                values["target"] = int(value)
            elif tag == "#EXT-X-MEDIA-SEQUENCE":
                values["sequence"] = int(value)
            elif tag == "#EXT-X-DISCONTINUITY-SEQUENCE":
                values["discontinuities"] = int(value)
            elif tag == "#EXT-X-ENDLIST":
                flags["ended"] = True
            elif tag == "#EXT-X-INDEPENDENT-SEGMENTS":
                flags["independent"] = True
            elif tag == "#EXT-X-DISCONTINUITY":
                discontinuity = True
            elif tag == "#EXT-X-MAP":
                init_uri = _attribute(value, "URI")
            elif tag == "#EXT-X-PROGRAM-DATE-TIME":
                when = parse_date_time(value)
            elif tag == "#EXTINF":
                duration = float(value.partition(",")[0])
            elif tag == "#EXT-X-PART":
                parts.append(_attribute(value, "URI") or "")
            elif tag == "#EXT-X-PRELOAD-HINT":
                hint = _attribute(value, "URI")
            elif line and not line.startswith("#"):
                sequence = int(values["sequence"] or 0) + len(segments)
                segments.append(
                    PlaylistSegment(
                        sequence=sequence,
                        uri=line,
                        duration=duration,
                        init_uri=init_uri,
                        discontinuity=discontinuity,
                        program_date_time=when,
                    )
                )
                duration, discontinuity, when = 0.0, False, None
    except ValueError as error:
        raise PlaylistError(f"bad playlist tag value: {error}") from None
    return ParsedPlaylist(
        version=values["version"],
        target_duration=values["target"],
        media_sequence=int(values["sequence"] or 0),
        discontinuity_sequence=int(values["discontinuities"] or 0),
        ended=flags["ended"],
        independent_segments=flags["independent"],
        segments=tuple(segments),
        parts=tuple(parts),
        preload_hint=hint,
    )


def _attribute(value: str, name: str) -> str | None:
    """A quoted attribute of a tag's attribute list (RFC 8216 §4.2), e.g. ``URI="init_0.mp4"``."""
    marker = f'{name}="'
    start = value.find(marker)
    if start < 0 or (start and value[start - 1] not in ", "):
        return None
    return value[start + len(marker) :].partition('"')[0]
