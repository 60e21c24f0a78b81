"""Track descriptions built from codec configuration records: what the init segment and the fragments need.

Rules:
- A config is parsed when its sequence header arrives, so a malformed one fails fast (``UnsupportedMedia``).
- Identity: two configs are "the same" when codec and received record bytes are equal. An identical sequence
  header resent mid-stream (or by a reconnecting OBS) changes nothing; a different one starts a new init epoch.
- Size: from the SPS / sequence header; ``onMetaData`` width/height only when the bitstream cannot tell.
- Video timescale is 90 kHz (FLV milliseconds × 90 is exact); audio timescale is the ASC core sample rate
  (CMAF_COST pitfalls 2 and 4).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from . import aac, av1, h264, hevc
from .errors import MalformedMedia
from .flv import AV1, AVC, HEVC

VIDEO_TIMESCALE = 90_000


@dataclass(frozen=True, kw_only=True, slots=True)
class VideoTrack:
    """A video track: sample entry type, configuration box and display size."""

    #: Sample entry 4CC: ``avc1``, ``hvc1`` or ``av01``.
    codec: str
    #: RFC 6381 codec string for CODECS / InitSegment.codecs.
    codec_string: str
    #: Configuration box type and payload for the sample entry.
    config_box: bytes
    record: bytes
    #: Record exactly as received (identity for "did the config change?").
    source: bytes
    width: int | None
    height: int | None
    #: NAL length size in samples (AVC/HEVC) and in-band parameter sets to strip (HEVC ``hvc1``).
    length_size: int = 4
    parameter_sets: frozenset[bytes] = frozenset()

    def same_config(self, other: VideoTrack | None) -> bool:
        """True when ``other`` came from the same codec and record bytes."""
        return other is not None and other.codec == self.codec and other.source == self.source

    def with_fallback_size(self, width: int | None, height: int | None) -> VideoTrack:
        """This track, with ``width``/``height`` filled in where the bitstream did not give them."""
        if self.width and self.height:
            return self
        return replace(self, width=width or self.width, height=height or self.height)


@dataclass(frozen=True, kw_only=True, slots=True)
class AudioTrack:
    """An AAC audio track."""

    asc: aac.AudioSpecificConfig
    channels: int

    @property
    def codec_string(self) -> str:
        """RFC 6381 codec string (``mp4a.40.2``)."""
        return self.asc.codec

    @property
    def timescale(self) -> int:
        """Track timescale = core sample rate."""
        return self.asc.sample_rate

    def same_config(self, other: AudioTrack | None) -> bool:
        """True when ``other`` came from the same AudioSpecificConfig bytes."""
        return other is not None and other.asc.raw == self.asc.raw


def video_track(codec: str, record: bytes) -> VideoTrack:
    """Parse a video configuration record.

    Raises:
        MalformedMedia: the record (or its SPS) does not parse.
    """
    if codec == AVC:
        avcc = h264.parse_avcc(record)
        sps = h264.parse_sps(avcc.sps[0])
        return VideoTrack(
            codec=AVC,
            codec_string=sps.codec,
            config_box=b"avcC",
            record=avcc.raw,
            source=avcc.raw,
            width=sps.width,
            height=sps.height,
            length_size=avcc.length_size,
        )
    if codec == HEVC:
        hvcc = hevc.parse_hvcc(record)
        try:
            width, height = hevc.sps_size(hvcc.arrays[hevc.NAL_SPS][0])
        except MalformedMedia:
            width = height = None  # fall back to onMetaData
        return VideoTrack(
            codec=HEVC,
            codec_string=hvcc.codec,
            config_box=b"hvcC",
            record=hevc.hvc1_record(hvcc),
            source=hvcc.raw,
            width=width,
            height=height,
            length_size=hvcc.length_size,
            parameter_sets=hvcc.parameter_sets,
        )
    if codec == AV1:
        av1c = av1.parse_av1c(record)
        size = None
        if av1c.sequence_header is not None:
            try:
                size = av1.sequence_header_size(av1c.sequence_header)
            except MalformedMedia:
                size = None
        return VideoTrack(
            codec=AV1,
            codec_string=av1c.codec,
            config_box=b"av1C",
            record=av1c.raw,
            source=av1c.raw,
            width=size[0] if size else None,
            height=size[1] if size else None,
        )
    raise MalformedMedia(f"unknown video codec {codec!r}")  # pragma: no cover - flv only yields the three above


def audio_track(config: bytes, flv_channels: int) -> AudioTrack:
    """Parse an AudioSpecificConfig; the FLV channel hint is used only when the ASC defers to a PCE.

    Raises:
        UnsupportedMedia: not an AAC general-audio object type (MalformedMedia if it does not parse).
    """
    asc = aac.parse_asc(config)
    return AudioTrack(asc=asc, channels=asc.channels or flv_channels)
