"""SANS-IO CMAF (fMP4) muxer: RTMP audio/video message bodies in, init segments, LL-HLS parts and segments out.

No sockets, no asyncio, no subprocesses, no clocks: bytes in, bytes out (STYLE rule 1, as for ``ingest_node.rtmp``).
The session layer feeds :class:`Segmenter` and publishes what it returns; :class:`mediakit.hls.MediaPlaylist` renders
the live playlist from those outputs. Module map:

- :mod:`.flv` — tag bodies (legacy FLV and Enhanced RTMP) → typed configs and frames
- :mod:`.h264`, :mod:`.hevc`, :mod:`.av1`, :mod:`.aac` — codec configuration records → size and codec strings
- :mod:`.boxes`, :mod:`.init`, :mod:`.fragment` — ISO BMFF writing (init segment, ``moof`` + ``mdat``)
- :mod:`.tracks` — parsed configs → track descriptions (timescales, sample entry, identity for epochs)
- :mod:`.timeline` — publisher timestamps → continuous output decode times (reconnects, audio sample counts)
- :mod:`.segmenter` — configs, commits and the cut rules; :mod:`.assembly` — parts and segments from samples
- :mod:`.outputs` — :class:`InitSegment`, :class:`Part`, :class:`Segment`; :mod:`.probe` — describe a foreign init
- :mod:`.errors` — :class:`UnsupportedMedia` (fall back to ffmpeg) / :class:`MediaUsageError` (caller bug)
"""

from .errors import MalformedMedia, MediaError, MediaUsageError, UnsupportedMedia
from .outputs import InitSegment, Output, Part, PartInfo, Segment
from .probe import describe_init
from .segmenter import Segmenter

__all__ = [
    "InitSegment",
    "MalformedMedia",
    "MediaError",
    "MediaUsageError",
    "Output",
    "Part",
    "PartInfo",
    "Segment",
    "Segmenter",
    "UnsupportedMedia",
    "describe_init",
]
