"""Describing an fMP4 init segment someone else wrote (ffmpeg's, in the fallback remuxer, or one read back from S3).

Owned here: the codec strings and display size of an init's sample entries (``avcC``/``hvcC``/``esds``), so an
init read from bytes carries the same :class:`~mediakit.cmaf.outputs.InitSegment` fields as the segmenter's own.
"""

from __future__ import annotations

from .. import bmff
from . import aac, flv
from .errors import MalformedMedia
from .outputs import InitSegment
from .tracks import video_track

_VIDEO_CONFIGS = {
    b"avc1": (flv.AVC, b"avcC"),
    b"avc3": (flv.AVC, b"avcC"),
    b"hvc1": (flv.HEVC, b"hvcC"),
    b"hev1": (flv.HEVC, b"hvcC"),
}


def describe_init(epoch: int, data: bytes) -> InitSegment:
    """An :class:`InitSegment` with codecs and size read from the init's first video and audio sample entries.

    Raises:
        bmff.MalformedBox: not an init segment.
        MalformedMedia: a codec configuration record that does not parse.
    """
    video = audio = None
    width = height = None
    for track in bmff.read_init(data).values():
        entry = track.entries[0] if track.entries else None
        if entry is None:
            continue
        if entry.fourcc in _VIDEO_CONFIGS and video is None:
            codec_id, config_box = _VIDEO_CONFIGS[entry.fourcc]
            described = video_track(codec_id, entry.child(config_box) or b"")
            video, width, height = described.codec_string, described.width, described.height
        elif entry.fourcc == b"mp4a" and audio is None:
            esds = entry.child(b"esds")
            if esds is None:
                raise MalformedMedia("mp4a sample entry without esds")
            audio = aac.parse_asc(bmff.esds_audio_specific_config(esds)).codec
    codecs = ",".join(codec for codec in (video, audio) if codec)
    return InitSegment(
        epoch=epoch, data=data, codecs=codecs, width=width, height=height, video_codec=video, audio_codec=audio
    )
