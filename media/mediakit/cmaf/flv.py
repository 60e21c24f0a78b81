"""RTMP audio/video message bodies (= FLV tag bodies) → typed codec configs and coded frames.

Spec: Adobe FLV 10.1 Annex E.4.2 (AUDIODATA) / E.4.3 (VIDEODATA), and Veovera Enhanced RTMP v1/v2
("ExVideoTagHeader", "ExAudioTagHeader").

Rules:
- Legacy video: ``FrameType UB[4] | CodecID UB[4]``; only CodecID 7 (AVC) is muxed, plus the de-facto CodecID 12
  (HEVC with the AVC packet layout, used by Chinese CDNs and SRS); other legacy codecs (H.263, VP6, screen video)
  raise :class:`UnsupportedMedia`. ``AVCPacketType`` 0 = sequence header (AVCDecoderConfigurationRecord),
  1 = NALUs preceded by ``CompositionTime SI24`` ("Composition time offset", milliseconds, signed), 2 = end of
  sequence (ignored).
- Enhanced video: "IF (UB[4] & 0b1000) != 0 { IsExHeader = true }"; then ``FrameType = UB[4] & 0b0111``,
  ``PacketType UB[4]`` and a ``FourCC UI32``. PacketTypeSequenceStart (0) carries the codec's configuration record,
  PacketTypeCodedFrames (1) carries ``SI24 CompositionTime`` for ``avc1``/``hvc1`` only (not ``av01``),
  PacketTypeCodedFramesX (3) means "CompositionTime Offset is implied to equal zero". PacketTypeMetadata (4) and
  SequenceEnd (2) are ignored. Multitrack (6), ModEx (7), MPEG2TSSequenceStart (5), unknown packet types and FourCCs
  other than ``avc1``/``hvc1``/``av01`` raise :class:`UnsupportedMedia` ("logic must gracefully fail if at any
  point important signaling/flags are not understood").
- FrameType 5 ("video info/command frame") carries no video and is ignored; 1 and 4 are keyframes.
- Audio: ``SoundFormat`` 10 (AAC, ``AACPacketType`` 0 = AudioSpecificConfig, 1 = raw frame) and the Enhanced RTMP
  v2 ``SoundFormat`` 9 (ExHeader) with FourCC ``mp4a``. The FLV rate/size fields are ignored (they lie, see
  :mod:`.aac`); the SoundType bit is kept only as a channel-count hint for ASCs that defer to a PCE.
- Coded payloads are returned as zero-copy ``memoryview`` slices of the body.
- The FLV container (header, tags, PreviousTagSize) is read by :class:`FlvReader`, incrementally, for any split
  of the bytes (the browser go-live path reads ffmpeg's FLV output this way); :func:`read_file` is the same reader
  over a whole file.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import MalformedMedia, MediaUsageError, UnsupportedMedia

AVC, HEVC, AV1, AAC = "avc1", "hvc1", "av01", "mp4a"

_LEGACY_VIDEO = {7: AVC, 12: HEVC}
_LEGACY_VIDEO_NAMES = {2: "Sorenson H.263", 3: "Screen video", 4: "On2 VP6", 5: "On2 VP6 alpha", 6: "Screen video 2"}
_EX_VIDEO = {b"avc1": AVC, b"hvc1": HEVC, b"av01": AV1}
_SOUND_FORMATS = {
    0: "linear PCM",
    1: "ADPCM",
    2: "MP3",
    3: "linear PCM LE",
    4: "Nellymoser 16 kHz",
    5: "Nellymoser 8 kHz",
    6: "Nellymoser",
    7: "G.711 A-law",
    8: "G.711 mu-law",
    11: "Speex",
    14: "MP3 8 kHz",
    15: "device-specific sound",
}
_KEY_FRAME_TYPES = frozenset({1, 4})
_COMMAND_FRAME = 5
# Enhanced RTMP packet types.
_SEQUENCE_START, _CODED_FRAMES, _SEQUENCE_END, _CODED_FRAMES_X, _METADATA = 0, 1, 2, 3, 4
_EX_AUDIO_MULTICHANNEL_CONFIG = 4


@dataclass(frozen=True, kw_only=True, slots=True)
class VideoConfig:
    """A video sequence header: the codec's decoder configuration record (avcC / hvcC / av1C payload)."""

    codec: str
    record: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class VideoFrame:
    """One coded video frame (access unit / temporal unit)."""

    codec: str
    keyframe: bool
    #: Composition time offset (PTS - DTS) in milliseconds, signed.
    cts: int
    data: memoryview


@dataclass(frozen=True, kw_only=True, slots=True)
class AudioConfig:
    """An audio sequence header: the AudioSpecificConfig."""

    codec: str
    config: bytes
    #: Channel count from the FLV SoundType bit (1 or 2): a hint only.
    flv_channels: int


@dataclass(frozen=True, kw_only=True, slots=True)
class AudioFrame:
    """One raw AAC frame."""

    codec: str
    data: memoryview


@dataclass(frozen=True, kw_only=True, slots=True)
class Ignored:
    """A tag that carries nothing to mux (end of sequence, command frame, HDR metadata)."""

    reason: str


VideoTag = VideoConfig | VideoFrame | Ignored
AudioTag = AudioConfig | AudioFrame | Ignored

_END_OF_SEQUENCE = Ignored(reason="end of sequence")
_COMMAND = Ignored(reason="video info/command frame")
_VIDEO_METADATA = Ignored(reason="video metadata")
_MULTICHANNEL = Ignored(reason="audio multichannel config")


def _si24(body: bytes, pos: int) -> int:
    value = body[pos] << 16 | body[pos + 1] << 8 | body[pos + 2]
    return value - 0x1000000 if value & 0x800000 else value


def parse_video(body: bytes) -> VideoTag:
    """Parse one video message body (FLV VIDEODATA, legacy or Enhanced RTMP).

    Raises:
        MalformedMedia: truncated body or reserved packet type.
        UnsupportedMedia: a codec or Enhanced RTMP feature the muxer does not handle.
    """
    if not body:
        raise MalformedMedia("video tag: empty body")
    first = body[0]
    if first & 0x80:
        return _parse_ex_video(body, (first >> 4) & 0x07, first & 0x0F)
    frame_type, codec_id = first >> 4, first & 0x0F
    if frame_type == _COMMAND_FRAME:
        return _COMMAND
    codec = _LEGACY_VIDEO.get(codec_id)
    if codec is None:
        name = _LEGACY_VIDEO_NAMES.get(codec_id, "reserved")
        raise UnsupportedMedia(f"FLV video codec id {codec_id} ({name}) is not muxed; only AVC")
    if len(body) < 5:
        raise MalformedMedia(f"video tag: {len(body)} bytes, an AVC packet header needs 5")
    packet_type = body[1]
    if packet_type == 1:
        view = memoryview(body)[5:]
        return VideoFrame(codec=codec, keyframe=frame_type in _KEY_FRAME_TYPES, cts=_si24(body, 2), data=view)
    if packet_type == 0:
        return VideoConfig(codec=codec, record=bytes(body[5:]))
    if packet_type == 2:
        return _END_OF_SEQUENCE
    raise MalformedMedia(f"video tag: reserved AVCPacketType {packet_type}")


def _parse_ex_video(body: bytes, frame_type: int, packet_type: int) -> VideoTag:
    if packet_type == _METADATA:
        return _VIDEO_METADATA
    if frame_type == _COMMAND_FRAME:
        return _COMMAND
    if packet_type > _METADATA:
        raise UnsupportedMedia(f"Enhanced RTMP video packet type {packet_type} is not muxed")
    if len(body) < 5:
        raise MalformedMedia("enhanced video tag: truncated FourCC")
    fourcc = bytes(body[1:5])
    codec = _EX_VIDEO.get(fourcc)
    if codec is None:
        raise UnsupportedMedia(f"Enhanced RTMP video FourCC {fourcc!r} is not muxed")
    if packet_type == _SEQUENCE_START:
        return VideoConfig(codec=codec, record=bytes(body[5:]))
    if packet_type == _SEQUENCE_END:
        return _END_OF_SEQUENCE
    keyframe = frame_type in _KEY_FRAME_TYPES
    if packet_type == _CODED_FRAMES and codec != AV1:
        if len(body) < 8:
            raise MalformedMedia("enhanced video tag: truncated CompositionTime")
        return VideoFrame(codec=codec, keyframe=keyframe, cts=_si24(body, 5), data=memoryview(body)[8:])
    return VideoFrame(codec=codec, keyframe=keyframe, cts=0, data=memoryview(body)[5:])


def parse_audio(body: bytes) -> AudioTag:
    """Parse one audio message body (FLV AUDIODATA, legacy AAC or Enhanced RTMP ``mp4a``).

    Raises:
        MalformedMedia: truncated body or reserved packet type.
        UnsupportedMedia: any sound format other than AAC (MP3, Speex, Opus, ...).
    """
    if not body:
        raise MalformedMedia("audio tag: empty body")
    first = body[0]
    sound_format = first >> 4
    if sound_format == 10:
        if len(body) < 2:
            raise MalformedMedia("audio tag: truncated AACPacketType")
        if body[1] == 1:
            return AudioFrame(codec=AAC, data=memoryview(body)[2:])
        if body[1] == 0:
            return AudioConfig(codec=AAC, config=bytes(body[2:]), flv_channels=2 if first & 1 else 1)
        raise MalformedMedia(f"audio tag: reserved AACPacketType {body[1]}")
    if sound_format == 9:
        return _parse_ex_audio(body, first & 0x0F)
    name = _SOUND_FORMATS.get(sound_format, "reserved")
    raise UnsupportedMedia(f"FLV sound format {sound_format} ({name}) is not muxed; only AAC")


def _parse_ex_audio(body: bytes, packet_type: int) -> AudioTag:
    if packet_type not in (_SEQUENCE_START, _CODED_FRAMES, _SEQUENCE_END, _EX_AUDIO_MULTICHANNEL_CONFIG):
        raise UnsupportedMedia(f"Enhanced RTMP audio packet type {packet_type} is not muxed")
    if len(body) < 5:
        raise MalformedMedia("enhanced audio tag: truncated FourCC")
    fourcc = bytes(body[1:5])
    if fourcc != b"mp4a":
        raise UnsupportedMedia(f"Enhanced RTMP audio FourCC {fourcc!r} is not muxed; only mp4a")
    if packet_type == _CODED_FRAMES:
        return AudioFrame(codec=AAC, data=memoryview(body)[5:])
    if packet_type == _SEQUENCE_START:
        return AudioConfig(codec=AAC, config=bytes(body[5:]), flv_channels=2)
    return _END_OF_SEQUENCE if packet_type == _SEQUENCE_END else _MULTICHANNEL


# ---------------------------------------------------------------------------------------------- FLV files and streams


@dataclass(frozen=True, slots=True)
class FileTag:
    """One tag of an FLV file: ``kind`` 8 audio, 9 video, 18 script data; ``timestamp`` in ms (RTMP's clock)."""

    kind: int
    timestamp: int
    body: bytes


def read_file(data: bytes) -> list[FileTag]:
    """Every tag of an FLV file held in ``data`` (FLV 10.1 Annex E.2/E.3: header, then PreviousTagSize + tag, ...).

    Tests and benchmarks replay files this way, as an RTMP publisher sends the same tag bodies.

    Raises:
        MalformedMedia: no FLV signature; a tag cut short at the end is left out.
    """
    if data[:3] != b"FLV" or len(data) < 9:
        raise MalformedMedia("not an FLV file")
    return FlvReader().feed(data)


_FLV_HEADER_SIZE = 9
_TAG_HEADER_SIZE = 11
_PREVIOUS_TAG_SIZE = 4


class FlvReader:
    """An FLV byte stream → its tags, incrementally, whatever the byte boundaries (ffmpeg's ``-f flv pipe:1``).

    FLV 10.1 Annex E.2/E.3: ``"FLV" UI8 version, UI8 flags, UI32 DataOffset``, then ``UI32 PreviousTagSize0`` and
    tags, each ``UI8 TagType (low 5 bits), UI24 DataSize, UI24 Timestamp, UI8 TimestampExtended, UI24 StreamID``
    followed by its body and the next ``PreviousTagSize``. A tag is returned as soon as its body is complete (the
    ``PreviousTagSize`` after it is not waited for). ``feed(b"")`` means end of stream (h11's ``receive_data``).
    Bytes are buffered only up to the end of the tag being read (at most one tag: ≤ 16 MiB + 15).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._skip = 0  # bytes to drop before the next tag (the header's DataOffset + PreviousTagSize0, then 4)
        self._header_read = False
        self._ended = False
        #: The header's TypeFlagsAudio / TypeFlagsVideo, once the header is in.
        self.has_audio: bool | None = None
        self.has_video: bool | None = None

    def feed(self, data: bytes) -> list[FileTag]:
        """Buffer ``data``; return every tag it completed, in order.

        Raises:
            MalformedMedia: the stream is not FLV, or it ended (``b""``) inside a tag.
            MediaUsageError: data fed after the end of the stream.
        """
        if self._ended:
            raise MediaUsageError("FLV stream already ended")
        if not data:
            self._ended = True
            if len(self._buffer) > self._skip or (self._buffer and not self._header_read):
                raise MalformedMedia(f"FLV stream ended inside a tag ({len(self._buffer)} bytes left)")
            return []
        self._buffer += data
        if not self._header_read and not self._read_header():
            return []
        return self._read_tags()

    def _read_header(self) -> bool:
        head = self._buffer
        if head[: min(3, len(head))] != b"FLV"[: min(3, len(head))]:
            raise MalformedMedia("not an FLV stream")
        if len(head) < _FLV_HEADER_SIZE:
            return False
        offset = int.from_bytes(head[5:9], "big")
        if offset < _FLV_HEADER_SIZE:
            raise MalformedMedia(f"FLV header: DataOffset {offset} is shorter than the header")
        self.has_audio, self.has_video = bool(head[4] & 0x04), bool(head[4] & 0x01)
        self._header_read = True
        self._skip = offset + _PREVIOUS_TAG_SIZE
        return True

    def _read_tags(self) -> list[FileTag]:
        buffer, pos, tags = self._buffer, self._skip, []
        while pos + _TAG_HEADER_SIZE <= len(buffer):
            size = int.from_bytes(buffer[pos + 1 : pos + 4], "big")
            end = pos + _TAG_HEADER_SIZE + size
            if end > len(buffer):
                break
            timestamp = int.from_bytes(buffer[pos + 4 : pos + 7], "big") | buffer[pos + 7] << 24
            tags.append(FileTag(buffer[pos] & 0x1F, timestamp, bytes(buffer[pos + _TAG_HEADER_SIZE : end])))
            pos = end + _PREVIOUS_TAG_SIZE
        consumed = min(pos, len(buffer))
        del buffer[:consumed]
        self._skip = pos - consumed
        return tags
