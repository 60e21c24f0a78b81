"""Which codecs a browser recording carries, read from the head of its WebM/Matroska stream. SANS-IO.

The browser go-live path must decide, before ffmpeg starts, what ffmpeg has to encode: H.264 is copied, anything
else is encoded (:func:`mediakit.ffmpeg_args.capture_args`). The client's ``mimeType`` is a claim; the stream's
own header is the fact, so it is read here.

Spec: Matroska (RFC 9559) on EBML (RFC 8794). §4 of RFC 8794: an Element is ``Element ID (VINT, 1-4 octets,
marker kept) | Element Data Size (VINT, 1-8 octets, marker removed; all value bits set = unknown size) | data``.
Path read: ``EBML`` (``0x1A45DFA3``: ``DocType`` ``0x4282`` must be ``webm`` or ``matroska``) → ``Segment``
(``0x18538067``, entered, size ignored: MediaRecorder writes it as unknown) → its children up to ``Tracks``
(``0x1654AE6B``) → each ``TrackEntry`` (``0xAE``): ``TrackType`` (``0x83``: 1 video, 2 audio) and ``CodecID``
(``0x86``, e.g. ``V_MPEG4/ISO/AVC``, ``V_VP8``, ``A_OPUS``).

Rules:
- :func:`read_tracks` is a pure function of the bytes received so far: ``None`` means "need more" (h11's
  ``NEED_DATA``); the caller keeps the bytes (they go to ffmpeg too) and asks again with more.
- Anything that is not such a stream, a ``Cluster`` (media) before ``Tracks``, an element of unknown size other
  than ``Segment``, or no ``Tracks`` within :data:`MAX_HEADER_BYTES` raises :class:`NotMatroska`.
- Chromium's MediaRecorder writes ``Tracks`` in its first chunk (``CHROMIUM.md``), so one call usually answers.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The header (everything before Tracks ends) may be at most this long.
MAX_HEADER_BYTES = 1 << 20
#: Matroska CodecIDs the node copies instead of encoding.
H264 = "V_MPEG4/ISO/AVC"
AAC_PREFIX = "A_AAC"

_EBML, _DOC_TYPE = 0x1A45DFA3, 0x4282
_SEGMENT, _TRACKS, _CLUSTER = 0x18538067, 0x1654AE6B, 0x1F43B675
_TRACK_ENTRY, _TRACK_TYPE, _CODEC_ID = 0xAE, 0x83, 0x86
_VIDEO, _AUDIO = 1, 2
_DOC_TYPES = ("webm", "matroska")


class NotMatroska(ValueError):
    """The stream does not start like a WebM/Matroska recording with a Tracks element."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordedTracks:
    """The codecs of a recording: Matroska CodecIDs of its first video and first audio track."""

    doc_type: str
    video: str | None
    audio: str | None

    @property
    def copy_video(self) -> bool:
        """H.264: ffmpeg copies it (anything else is encoded to H.264)."""
        return self.video == H264

    @property
    def copy_audio(self) -> bool:
        """AAC already (never from a browser, which records Opus): ffmpeg copies it."""
        return self.audio is not None and self.audio.startswith(AAC_PREFIX)


@dataclass(frozen=True, slots=True)
class _Element:
    id: int
    start: int  # first data byte
    size: int | None  # None: unknown size

    @property
    def end(self) -> int:
        assert self.size is not None
        return self.start + self.size


def read_tracks(data: bytes) -> RecordedTracks | None:
    """The tracks of the recording whose first bytes are ``data``; ``None`` until ``Tracks`` is complete.

    Raises:
        NotMatroska: see the module rules.
    """
    if data[:1] not in (b"", b"\x1a"):
        raise NotMatroska("not a WebM/Matroska stream (no EBML header)")
    head = _element(data, 0)
    if head is None:
        return _more(data)
    if head.id != _EBML or head.size is None:
        raise NotMatroska("not a WebM/Matroska stream (no EBML header)")
    if head.end > len(data):
        return _more(data)
    doc_type = _string(data, _child(data, head, _DOC_TYPE)) or "matroska"
    if doc_type not in _DOC_TYPES:
        raise NotMatroska(f"EBML DocType {doc_type[:32]!r} is not WebM or Matroska")
    segment = _element(data, head.end)
    if segment is None:
        return _more(data)
    if segment.id != _SEGMENT:
        raise NotMatroska("no Segment after the EBML header")
    pos = segment.start
    while (child := _element(data, pos)) is not None:
        if child.id == _CLUSTER:
            raise NotMatroska("media (a Cluster) before any Tracks element")
        if child.size is None:
            raise NotMatroska(f"element 0x{child.id:X} of unknown size before Tracks")
        if child.end > len(data):
            break
        if child.id == _TRACKS:
            return _tracks(data, child, doc_type)
        pos = child.end
    return _more(data)


def _more(data: bytes) -> None:
    """Need more bytes, unless the header is already too long."""
    if len(data) > MAX_HEADER_BYTES:
        raise NotMatroska(f"no Tracks element in the first {MAX_HEADER_BYTES} bytes")
    return None


def _tracks(data: bytes, tracks: _Element, doc_type: str) -> RecordedTracks:
    found: dict[int, str] = {}
    for entry in _children(data, tracks):
        if entry.id != _TRACK_ENTRY:
            continue
        kind = _uint(data, _child(data, entry, _TRACK_TYPE))
        codec = _string(data, _child(data, entry, _CODEC_ID))
        if kind in (_VIDEO, _AUDIO) and codec and kind not in found:
            found[kind] = codec
    if not found:
        raise NotMatroska("no audio or video track")
    return RecordedTracks(doc_type=doc_type, video=found.get(_VIDEO), audio=found.get(_AUDIO))


def _children(data: bytes, parent: _Element) -> list[_Element]:
    found, pos = [], parent.start
    while pos < parent.end:
        child = _element(data, pos)
        if child is None or child.size is None or child.end > parent.end:
            raise NotMatroska(f"malformed element inside 0x{parent.id:X}")
        found.append(child)
        pos = child.end
    return found


def _child(data: bytes, parent: _Element, element_id: int) -> _Element | None:
    return next((child for child in _children(data, parent) if child.id == element_id), None)


def _string(data: bytes, element: _Element | None) -> str | None:
    if element is None:
        return None
    return bytes(data[element.start : element.end]).rstrip(b"\0").decode("ascii", "replace")


def _uint(data: bytes, element: _Element | None) -> int | None:
    if element is None or not 1 <= (element.size or 0) <= 8:
        return None
    return int.from_bytes(data[element.start : element.end], "big")


def _element(data: bytes, pos: int) -> _Element | None:
    """The element header at ``pos``, or ``None`` if it is not all there yet."""
    element_id = _vint(data, pos, max_length=4, keep_marker=True)
    if element_id is None:
        return None
    size = _vint(data, pos + element_id[1], max_length=8, keep_marker=False)
    if size is None:
        return None
    start = pos + element_id[1] + size[1]
    unknown = size[0] == (1 << (7 * size[1])) - 1
    return _Element(element_id[0], start, None if unknown else size[0])


def _vint(data: bytes, pos: int, *, max_length: int, keep_marker: bool) -> tuple[int, int] | None:
    """RFC 8794 §4: (value, length) of the variable-size integer at ``pos``; ``None`` if it is cut short."""
    if pos >= len(data):
        return None
    first = data[pos]
    length = 8 - first.bit_length() + 1
    if first == 0 or length > max_length:
        raise NotMatroska(f"invalid EBML variable-size integer at byte {pos}")
    if pos + length > len(data):
        return None
    value = int.from_bytes(data[pos : pos + length], "big")
    return (value if keep_marker else value & ((1 << (7 * length)) - 1)), length
