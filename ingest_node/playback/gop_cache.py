"""The GOP cache: what a new FLV viewer needs so that playback starts on a keyframe at once.

A viewer that joins mid-GOP would otherwise wait up to a keyframe interval (2 s with OBS's default) for a picture.
The cache keeps, per broadcast, the latest sequence headers (AVC/HEVC/AV1 decoder configuration, AAC
AudioSpecificConfig), the latest ``onMetaData`` and every tag since the last video keyframe.

Rules:
- Tags are classified from their first bytes only (FLV 10.1 Annex E.4.2/E.4.3 and Enhanced RTMP ``ExVideoTagHeader``/
  ``ExAudioTagHeader``), never parsed: FLV viewers get whatever the publisher sends, including codecs the CMAF
  muxer does not take.
- A video keyframe starts a new GOP (the cache restarts with it); audio before the first keyframe is not kept.
- Bounded in bytes: a GOP larger than ``max_bytes`` (a publisher sending keyframes too rarely) empties the cache
  until the next keyframe; viewers joining meanwhile start at that keyframe.
- A stream without video keeps no GOP (every AAC frame decodes alone): viewers start with the next tag.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from . import flv

#: Largest GOP kept: 5 s at 10 Mb/s.
MAX_GOP_BYTES = 6 << 20


class Role(enum.Enum):
    """What a tag is for a viewer that starts mid-stream."""

    #: Decoder configuration (AVC sequence header, AAC AudioSpecificConfig, Enhanced RTMP SequenceStart).
    SEQUENCE_HEADER = "sequence_header"
    #: A video frame that decodes alone: a GOP starts here.
    KEYFRAME = "keyframe"
    #: Anything else (inter frames, audio frames, end of sequence, command frames).
    FRAME = "frame"


def classify(kind: int, body: bytes) -> Role:
    """The :class:`Role` of one audio/video tag body (``kind`` 8 audio, 9 video)."""
    if len(body) < 2:
        return Role.FRAME
    first = body[0]
    if kind == flv.VIDEO:
        if first & 0x80:  # Enhanced RTMP: IsExHeader | FrameType UB[3] | PacketType UB[4]
            frame_type, packet_type = (first >> 4) & 0x07, first & 0x0F
            if packet_type == 0:
                return Role.SEQUENCE_HEADER
            return Role.KEYFRAME if frame_type == 1 and packet_type in (1, 3) else Role.FRAME
        keyframe = first >> 4 == 1
        if first & 0x0F in (7, 12):  # AVC (and the de-facto HEVC id 12): AVCPacketType 0 header, 1 NALUs, 2 end
            if body[1] == 0:
                return Role.SEQUENCE_HEADER
            return Role.KEYFRAME if keyframe and body[1] == 1 else Role.FRAME
        return Role.KEYFRAME if keyframe else Role.FRAME
    if kind == flv.AUDIO:
        sound_format = first >> 4
        if (sound_format == 10 and body[1] == 0) or (sound_format == 9 and first & 0x0F == 0):
            return Role.SEQUENCE_HEADER
    return Role.FRAME


@dataclass(slots=True)
class _Tag:
    kind: int
    timestamp: int
    body: bytes


class GopCache:
    """Sequence headers, metadata and the current GOP of one broadcast, as encoded FLV tags."""

    def __init__(self, max_bytes: int = MAX_GOP_BYTES) -> None:
        self.max_bytes = max_bytes
        self._headers: dict[int, _Tag] = {}  # by tag kind: the latest sequence header
        self._metadata: dict[str, object] | None = None
        self._gop: list[bytes] = []
        self._gop_bytes = 0
        self._gop_start: int | None = None  # timestamp of the GOP's keyframe; None: no GOP to give out
        self.has_video = False
        self.has_audio = False

    def sequence_header_changed(self, kind: int, body: bytes) -> bool:
        """True when ``body`` differs from the kept sequence header of that kind (a new one must be sent)."""
        kept = self._headers.get(kind)
        return kept is None or kept.body != body

    def set_metadata(self, metadata: dict[str, object]) -> None:
        """The publisher's latest ``onMetaData``."""
        self._metadata = dict(metadata)

    def add(self, role: Role, kind: int, timestamp: int, body: bytes, encoded: bytes) -> None:
        """One tag as every viewer received it (``encoded`` with its viewer timestamp)."""
        if kind == flv.VIDEO:
            self.has_video = True
        elif kind == flv.AUDIO:
            self.has_audio = True
        if role is Role.SEQUENCE_HEADER:
            self._headers[kind] = _Tag(kind, timestamp, body)
            return
        if role is Role.KEYFRAME:
            self._gop, self._gop_bytes, self._gop_start = [], 0, timestamp
        elif self._gop_start is None:
            return
        self._gop.append(encoded)
        self._gop_bytes += len(encoded)
        if self._gop_bytes > self.max_bytes:
            self._gop, self._gop_bytes, self._gop_start = [], 0, None

    @property
    def has_gop(self) -> bool:
        """A GOP is kept: a viewer joining now starts on its keyframe."""
        return self._gop_start is not None

    def headers(self, timestamp: int) -> list[bytes]:
        """The ``onMetaData`` and sequence headers (video first), stamped ``timestamp``: what a decoder needs
        before a keyframe."""
        out = [flv.metadata_tag(self._metadata, timestamp)] if self._metadata is not None else []
        for kind in (flv.VIDEO, flv.AUDIO):
            if (header := self._headers.get(kind)) is not None:
                out.append(flv.tag(kind, timestamp, header.body))
        return out

    @property
    def metadata(self) -> dict[str, object] | None:
        """The latest ``onMetaData`` (``None`` before any)."""
        return self._metadata

    def file_header(self) -> bytes:
        """The FLV header, flagging the tracks seen so far (both before any tag)."""
        audio = self.has_audio or not self.has_video
        video = self.has_video or not self.has_audio
        return flv.file_header(audio=audio, video=video)

    def start(self, timestamp: int) -> list[bytes]:
        """Everything a new viewer gets before live tags: file header, headers and the GOP (if one is kept).

        Args:
            timestamp: the stream's current time, used for the headers when no GOP is kept.
        """
        at = self._gop_start if self._gop_start is not None else timestamp
        return [self.file_header(), *self.headers(at), *self._gop]
