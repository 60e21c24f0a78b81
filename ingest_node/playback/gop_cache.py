"""The GOP cache: what a new FLV viewer needs so that playback starts on a keyframe at once.

A viewer that joins mid-GOP would otherwise wait up to a keyframe interval (2 s with OBS's default) for a picture.
The cache keeps, per broadcast, the latest sequence headers (AVC/HEVC/AV1 decoder configuration, AAC
AudioSpecificConfig), the latest ``onMetaData`` and every tag since the last video keyframe.

It runs for every tag of every broadcast, mostly with nobody watching over FLV, so it keeps references, not
bytes: each GOP tag is ``(kind, viewer timestamp, body)``, and its FLV bytes are made only when a viewer needs them,
once per tag for all viewers (those made for live viewers are kept; a viewer joining encodes the rest, once).

Rules:
- Tags are classified from their first bytes only (FLV 10.1 Annex E.4.2/E.4.3 and Enhanced RTMP ``ExVideoTagHeader``/
  ``ExAudioTagHeader``), never parsed: FLV viewers get whatever the publisher sends, including codecs the CMAF
  muxer does not take.
- A video keyframe starts a new GOP (the cache restarts with it); audio before the first keyframe is not kept.
- Bounded in bytes (FLV bytes: body + 15 per tag, whether encoded yet or not): a GOP larger than ``max_bytes`` (a
  publisher sending keyframes too rarely) empties the cache until the next keyframe; viewers joining meanwhile
  start at that keyframe.
- A stream without video keeps no GOP (every AAC frame decodes alone): viewers start with the next tag.
"""

from __future__ import annotations

import enum

from . import flv

#: Largest GOP kept: 5 s at 10 Mb/s.
MAX_GOP_BYTES = 6 << 20
#: What FLV adds to a tag body: the 11-byte tag header and the 4-byte ``PreviousTagSize``.
_FLV_OVERHEAD = 15


class Role(enum.Enum):
    """What a tag is for a viewer that starts mid-stream."""

    #: Decoder configuration (AVC sequence header, AAC AudioSpecificConfig, Enhanced RTMP SequenceStart).
    SEQUENCE_HEADER = "sequence_header"
    #: A video frame that decodes alone: a GOP starts here.
    KEYFRAME = "keyframe"
    #: Anything else (inter frames, audio frames, end of sequence, command frames).
    FRAME = "frame"


# Module-level names for the members: an Enum attribute lookup costs ~10x a global one, and this runs per tag.
_SEQUENCE_HEADER, _KEYFRAME, _FRAME = Role.SEQUENCE_HEADER, Role.KEYFRAME, Role.FRAME
_VIDEO, _AUDIO = flv.VIDEO, flv.AUDIO


def classify(kind: int, body: bytes) -> Role:
    """The :class:`Role` of one audio/video tag body (``kind`` 8 audio, 9 video)."""
    if len(body) < 2:
        return _FRAME
    first = body[0]
    if kind == _VIDEO:
        if first & 0x80:  # Enhanced RTMP: IsExHeader | FrameType UB[3] | PacketType UB[4]
            frame_type, packet_type = (first >> 4) & 0x07, first & 0x0F
            if packet_type == 0:
                return _SEQUENCE_HEADER
            return _KEYFRAME if frame_type == 1 and packet_type in (1, 3) else _FRAME
        keyframe = first >> 4 == 1
        if first & 0x0F in (7, 12):  # AVC (and the de-facto HEVC id 12): AVCPacketType 0 header, 1 NALUs, 2 end
            if body[1] == 0:
                return _SEQUENCE_HEADER
            return _KEYFRAME if keyframe and body[1] == 1 else _FRAME
        return _KEYFRAME if keyframe else _FRAME
    if kind == _AUDIO:
        sound_format = first >> 4
        if (sound_format == 10 and body[1] == 0) or (sound_format == 9 and first & 0x0F == 0):
            return _SEQUENCE_HEADER
    return _FRAME


class GopCache:
    """Sequence headers, metadata and the current GOP of one broadcast (tag references, FLV bytes on demand)."""

    def __init__(self, max_bytes: int = MAX_GOP_BYTES) -> None:
        self.max_bytes = max_bytes
        self._video_header: bytes | None = None  # the latest sequence header bodies
        self._audio_header: bytes | None = None
        self._metadata: dict[str, object] | None = None
        self._gop: list[tuple[int, int, bytes]] = []  # (kind, viewer timestamp, body) from the keyframe on
        self._encoded: list[bytes] = []  # the FLV bytes of _gop[: len(_encoded)]
        self._gop_bytes = 0
        self._gop_start: int | None = None  # timestamp of the GOP's keyframe; None: no GOP to give out
        self.has_video = False
        self.has_audio = False

    def sequence_header_changed(self, kind: int, body: bytes) -> bool:
        """True when ``body`` differs from the kept sequence header of that kind (a new one must be sent)."""
        return body != (self._video_header if kind == _VIDEO else self._audio_header)

    def set_metadata(self, metadata: dict[str, object]) -> None:
        """The publisher's latest ``onMetaData``."""
        self._metadata = dict(metadata)

    def add(self, role: Role, kind: int, timestamp: int, body: bytes, encoded: bytes | None = None) -> None:
        """One tag at its viewer timestamp; ``encoded``: its FLV bytes, when they were made for live viewers."""
        if kind == _VIDEO:
            self.has_video = True
        elif kind == _AUDIO:
            self.has_audio = True
        if role is _FRAME:
            if self._gop_start is None:
                return
        elif role is _KEYFRAME:
            self._gop, self._encoded, self._gop_bytes, self._gop_start = [], [], 0, timestamp
        else:
            if kind == _VIDEO:
                self._video_header = body
            elif kind == _AUDIO:
                self._audio_header = body
            return
        gop = self._gop
        if encoded is not None and len(self._encoded) == len(gop):
            self._encoded.append(encoded)
        gop.append((kind, timestamp, body))
        self._gop_bytes += len(body) + _FLV_OVERHEAD
        if self._gop_bytes > self.max_bytes:
            self._gop, self._encoded, self._gop_bytes, self._gop_start = [], [], 0, None

    @property
    def has_gop(self) -> bool:
        """A GOP is kept: a viewer joining now starts on its keyframe."""
        return self._gop_start is not None

    def headers(self, timestamp: int) -> list[bytes]:
        """The ``onMetaData`` and sequence headers (video first), stamped ``timestamp``: what a decoder needs
        before a keyframe."""
        out = [flv.metadata_tag(self._metadata, timestamp)] if self._metadata is not None else []
        if self._video_header is not None:
            out.append(flv.tag(_VIDEO, timestamp, self._video_header))
        if self._audio_header is not None:
            out.append(flv.tag(_AUDIO, timestamp, self._audio_header))
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

    def gop(self) -> list[bytes]:
        """The kept GOP as FLV tags (the ones not encoded yet are encoded now, once)."""
        encoded = self._encoded
        encoded += [flv.tag(kind, timestamp, body) for kind, timestamp, body in self._gop[len(encoded) :]]
        return list(encoded)

    def start(self, timestamp: int) -> list[bytes]:
        """Everything a new viewer gets before live tags: file header, headers and the GOP (if one is kept).

        Args:
            timestamp: the stream's current time, used for the headers when no GOP is kept.
        """
        at = self._gop_start if self._gop_start is not None else timestamp
        return [self.file_header(), *self.headers(at), *self.gop()]
