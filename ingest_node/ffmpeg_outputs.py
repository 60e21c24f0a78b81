"""Reading what the ffmpeg fallback remuxer wrote: its HLS playlist and its fMP4 init segment.

Owned here: the playlist lines the remuxer relies on (segment URIs and EXTINF durations) and the codec strings
and resolution of an init segment ffmpeg produced (from ``avcC``/``hvcC``/``esds``), so the fallback's outputs
carry the same :class:`~ingest_node.media.InitSegment` fields as the in-process segmenter's.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator

from .media import InitSegment, MediaError, aac, flv
from .media.tracks import video_track

log = logging.getLogger(__name__)


def parse_playlist(text: str) -> tuple[int, list[tuple[str, float, str | None]]]:
    """``(EXT-X-MEDIA-SEQUENCE, [(uri, EXTINF seconds, EXT-X-MAP URI)])`` of an HLS media playlist (RFC 8216 §4.3)."""
    media_sequence, entries, duration, init_uri = 0, [], 0.0, None
    for line in text.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            media_sequence = int(line.partition(":")[2])
        elif line.startswith("#EXT-X-MAP:"):
            init_uri = line.partition('URI="')[2].partition('"')[0]
        elif line.startswith("#EXTINF:"):
            duration = float(line[8:].partition(",")[0])
        elif line and not line.startswith("#"):
            entries.append((line.strip(), duration, init_uri))
            duration = 0.0
    return media_sequence, entries


def init_segment(epoch: int, data: bytes) -> InitSegment:
    """An :class:`InitSegment` with its codecs and size read from the init's sample entries."""
    video = audio = None
    width = height = None
    try:
        for kind, entry in _sample_entries(data):
            if kind in (b"avc1", b"avc3", b"hvc1", b"hev1"):
                config = dict(_boxes(entry[78:]))  # VisualSampleEntry fields: 78 bytes (ISO 14496-12 §12.1.3)
                record = config.get(b"avcC") or config.get(b"hvcC")
                track = video_track(flv.AVC if b"avcC" in config else flv.HEVC, bytes(record or b""))
                video, width, height = track.codec_string, track.width, track.height
            elif kind == b"mp4a":
                asc = _esds_asc(bytes(dict(_boxes(entry[28:]))[b"esds"]))  # AudioSampleEntry fields: 28 bytes
                audio = aac.parse_asc(asc).codec
    except (MediaError, IndexError, KeyError, struct.error) as error:
        log.warning("cannot read the codecs of ffmpeg's init segment: %s", error)
    codecs = ",".join(codec for codec in (video, audio) if codec)
    return InitSegment(
        epoch=epoch, data=data, codecs=codecs, width=width, height=height, video_codec=video, audio_codec=audio
    )


_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl"})


def _boxes(data: bytes | memoryview) -> Iterator[tuple[bytes, memoryview]]:
    """``(type, payload)`` of the boxes in ``data`` (32-bit sizes: an init segment is small)."""
    view, pos = memoryview(data), 0
    while pos + 8 <= len(view):
        size, kind = struct.unpack_from(">I4s", view, pos)
        if size < 8 or pos + size > len(view):
            return
        yield kind, view[pos + 8 : pos + size]
        pos += size


def _sample_entries(data: bytes | memoryview) -> Iterator[tuple[bytes, memoryview]]:
    """Every sample entry under ``moov/trak/mdia/minf/stbl/stsd`` (stsd: FullBox header + entry count)."""
    for kind, payload in _boxes(data):
        if kind == b"stsd":
            yield from _boxes(payload[8:])
        elif kind in _CONTAINERS:
            yield from _sample_entries(payload)


def _esds_asc(esds: bytes) -> bytes:
    """The AudioSpecificConfig in an ``esds`` box (ISO 14496-1 §7.2.6: ES_Descriptor → DecoderConfigDescriptor →
    DecoderSpecificInfo)."""
    tag, pos, _ = _descriptor(esds, 4)  # after the FullBox version/flags
    if tag != 0x03:
        raise KeyError("esds without an ES_Descriptor")
    flags = esds[pos + 2]
    pos += 3 + (2 if flags & 0x80 else 0)  # ES_ID, flags, dependsOn_ES_ID
    pos += 1 + esds[pos] if flags & 0x40 else 0  # URL
    pos += 2 if flags & 0x20 else 0  # OCR_ES_Id
    tag, pos, _ = _descriptor(esds, pos)
    if tag != 0x04:
        raise KeyError("esds without a DecoderConfigDescriptor")
    tag, pos, end = _descriptor(esds, pos + 13)  # objectType, streamType, bufferSize, maxBitrate, avgBitrate
    if tag != 0x05:
        raise KeyError("esds without a DecoderSpecificInfo")
    return esds[pos:end]


def _descriptor(data: bytes, pos: int) -> tuple[int, int, int]:
    """``(tag, payload start, payload end)`` of an MPEG-4 descriptor (expandable size, 7 bits a byte)."""
    tag, pos, size = data[pos], pos + 1, 0
    for _ in range(4):
        byte, pos = data[pos], pos + 1
        size = size << 7 | byte & 0x7F
        if not byte & 0x80:
            break
    return tag, pos, pos + size
