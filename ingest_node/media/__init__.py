"""SANS-IO CMAF (fMP4) HLS muxer: RTMP audio/video message bodies in, init segments, parts, segments and playlists out.

No sockets, no asyncio, no subprocesses, no clocks: bytes in, bytes out (STYLE rule 1, as for ``ingest_node.rtmp``).
The session layer feeds :class:`Segmenter` and publishes what it returns; :class:`MediaPlaylist` renders the live
playlist from those outputs. Module map:

- :mod:`.flv` — tag bodies (legacy FLV and Enhanced RTMP) → typed configs and frames
- :mod:`.h264`, :mod:`.hevc`, :mod:`.av1`, :mod:`.aac` — codec configuration records → size and codec strings
- :mod:`.boxes`, :mod:`.init`, :mod:`.fragment` — ISO BMFF writing (init segment, ``moof`` + ``mdat``)
- :mod:`.tracks` — parsed configs → track descriptions (timescales, sample entry, identity for epochs)
- :mod:`.timeline` — publisher timestamps → continuous output decode times (reconnects, audio sample counts)
- :mod:`.segmenter` — configs, commits and the cut rules; :mod:`.assembly` — parts and segments from samples
- :mod:`.outputs` — :class:`InitSegment`, :class:`Part`, :class:`Segment`; :mod:`.playlist` — m3u8
- :mod:`.errors` — :class:`UnsupportedMedia` (fall back to ffmpeg) / :class:`MediaUsageError` (caller bug)
"""

from .errors import MalformedMedia, MediaError, MediaUsageError, UnsupportedMedia
from .outputs import InitSegment, Output, Part, PartInfo, Segment
from .playlist import MediaPlaylist, Variant, render_master
from .segmenter import Segmenter

__all__ = [
    "InitSegment",
    "MalformedMedia",
    "MediaError",
    "MediaPlaylist",
    "MediaUsageError",
    "Output",
    "Part",
    "PartInfo",
    "Segment",
    "Segmenter",
    "UnsupportedMedia",
    "Variant",
    "render_master",
]
