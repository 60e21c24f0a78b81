"""The fMP4 initialization segment (ISO/IEC 14496-12; layout as measured in CMAF_COST.md).

Layout::

    ftyp(iso6; iso6, isom, mp41, dash [, cmfc when single-track])
    moov
      mvhd (timescale 1000, duration 0, next_track_ID 3)
      trak video (track_ID 1)                      trak audio (track_ID 2)
        tkhd (flags 3 = enabled|in_movie, w×h)       tkhd (flags 3, alternate_group 1, volume 1.0)
        mdia: mdhd 90000 'und', hdlr vide,           mdia: mdhd <ASC rate> 'und', hdlr soun,
              minf: vmhd, dinf/dref/url,                   minf: smhd, dinf/dref/url,
              stbl: stsd avc1+avcC | hvc1+hvcC |           stbl: stsd mp4a+esds,
                    av01+av1C, empty stts/stsc/stsz/stco         empty stts/stsc/stsz/stco
      mvex: trex per track (defaults 0; every fragment states its own)

Rules:
- Track IDs are fixed (video 1, audio 2) whatever tracks exist, so they never change across init epochs.
- No edit list (``elst``): CMAF_COST pitfalls 5/6 measured that players cope with the B-frame and AAC priming
  offsets; an elst would make ffmpeg and hls.js disagree on start times.
- Brands: a muxed audio+video file is not a CMAF track file (ISO/IEC 23000-19 §7.3: one track per CMAF track),
  so ``cmfc`` is claimed only for single-track output. Everything else follows the prototype that hls.js, ffmpeg
  and ffprobe accepted.
"""

from __future__ import annotations

import struct

from .boxes import UNITY_MATRIX, box, descriptor, file_type, full_box
from .tracks import VIDEO_TIMESCALE, AudioTrack, VideoTrack

VIDEO_TRACK_ID = 1
AUDIO_TRACK_ID = 2
_LANGUAGE_UND = 0x55C4  # ISO-639-2/T 'und' packed as three 5-bit letters (§8.4.2.3)
_MOVIE_TIMESCALE = 1000
_TKHD_ENABLED_IN_MOVIE = 0x000003
_OBJECT_TYPE_AAC = 0x40  # 14496-1 Table 5: Audio ISO/IEC 14496-3
_STREAM_TYPE_AUDIO = 0x05 << 2 | 0x01  # streamType 5 (AudioStream), upStream 0, reserved 1


def brands(single_track: bool) -> tuple[bytes, ...]:
    """Compatible brands of the ``ftyp``."""
    return (b"iso6", b"isom", b"mp41", b"dash", *((b"cmfc",) if single_track else ()))


def build_init(*, video: VideoTrack | None, audio: AudioTrack | None) -> bytes:
    """Build ``ftyp`` + ``moov`` for the given tracks (at least one).

    Raises:
        ValueError: neither track given.
    """
    if video is None and audio is None:
        raise ValueError("an init segment needs at least one track")
    traks, trexes = [], []
    if video is not None:
        traks.append(_video_trak(video))
        trexes.append(_trex(VIDEO_TRACK_ID))
    if audio is not None:
        traks.append(_audio_trak(audio))
        trexes.append(_trex(AUDIO_TRACK_ID))
    mvhd = full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIIIIH10x", 0, 0, _MOVIE_TIMESCALE, 0, 0x00010000, 0x0100),
        UNITY_MATRIX,
        bytes(24),  # pre_defined
        struct.pack(">I", AUDIO_TRACK_ID + 1),
    )
    ftyp = file_type(b"ftyp", b"iso6", brands(single_track=len(traks) == 1))
    return ftyp + box(b"moov", mvhd, *traks, box(b"mvex", *trexes))


def _trex(track_id: int) -> bytes:
    return full_box(b"trex", 0, 0, struct.pack(">IIIII", track_id, 1, 0, 0, 0))


def _tkhd(track_id: int, *, audio: bool, width: int, height: int) -> bytes:
    return full_box(
        b"tkhd",
        0,
        _TKHD_ENABLED_IN_MOVIE,
        struct.pack(">IIIII8xhhhH", 0, 0, track_id, 0, 0, 0, 1 if audio else 0, 0x0100 if audio else 0, 0),
        UNITY_MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )


def _mdia(timescale: int, handler: bytes, name: bytes, media_header: bytes, sample_entry: bytes) -> bytes:
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, 0, _LANGUAGE_UND, 0))
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, handler), name + b"\x00")
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), sample_entry),
        full_box(b"stts", 0, 0, bytes(4)),
        full_box(b"stsc", 0, 0, bytes(4)),
        full_box(b"stsz", 0, 0, bytes(8)),
        full_box(b"stco", 0, 0, bytes(4)),
    )
    return box(b"mdia", mdhd, hdlr, box(b"minf", media_header, dinf, stbl))


def _video_trak(track: VideoTrack) -> bytes:
    width, height = track.width or 0, track.height or 0
    # VisualSampleEntry (§12.1.3): reserved, data_reference_index 1, pre_defined/reserved, size,
    # 72 dpi, frame_count 1, empty compressorname, depth 0x0018, pre_defined -1.
    entry = box(
        track.codec.encode(),
        struct.pack(">6xH16xHHIIIH32xHh", 1, width, height, 0x00480000, 0x00480000, 0, 1, 0x0018, -1),
        box(track.config_box, track.record),
    )
    vmhd = full_box(b"vmhd", 0, 1, bytes(8))
    tkhd = _tkhd(VIDEO_TRACK_ID, audio=False, width=width, height=height)
    return box(b"trak", tkhd, _mdia(VIDEO_TIMESCALE, b"vide", b"VideoHandler", vmhd, entry))


def _audio_trak(track: AudioTrack) -> bytes:
    asc = track.asc
    es = descriptor(
        0x03,  # ES_Descriptor: ES_ID, no flags
        struct.pack(">HB", AUDIO_TRACK_ID, 0),
        descriptor(
            0x04,  # DecoderConfigDescriptor: objectType, streamType, bufferSizeDB, max/avg bitrate (unknown = 0)
            struct.pack(">BB3sII", _OBJECT_TYPE_AAC, _STREAM_TYPE_AUDIO, bytes(3), 0, 0),
            descriptor(0x05, asc.raw),  # DecoderSpecificInfo = AudioSpecificConfig
        ),
        descriptor(0x06, b"\x02"),  # SLConfigDescriptor, predefined 2 (MP4)
    )
    rate = asc.output_rate if asc.output_rate < 0x10000 else 0
    # AudioSampleEntry (§12.2.3): channelcount, samplesize 16, samplerate 16.16.
    entry = box(
        b"mp4a", struct.pack(">6xH8xHHHHI", 1, track.channels, 16, 0, 0, rate << 16), full_box(b"esds", 0, 0, es)
    )
    smhd = full_box(b"smhd", 0, 0, bytes(4))
    tkhd = _tkhd(AUDIO_TRACK_ID, audio=True, width=0, height=0)
    return box(b"trak", tkhd, _mdia(asc.sample_rate, b"soun", b"SoundHandler", smhd, entry))
