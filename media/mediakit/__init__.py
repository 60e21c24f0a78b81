"""mediakit: CaptureStream's pure media toolkit, shared by the ingest node and the media functions.

No I/O anywhere in this package (no sockets, files, subprocesses, clocks or AWS), and no ``capturestream``
import: bytes and plain values in, bytes and plain values out, like h11 under its users. Callers own storage and
processes. A test enforces both rules.

- :mod:`mediakit.cmaf` — the in-process CMAF muxer (RTMP message bodies → init segments, parts, segments)
- :mod:`mediakit.bmff` — the one ISO-BMFF reader (boxes, init tracks, movie fragments and their ``trun`` tables)
- :mod:`mediakit.hls` — the one HLS playlist writer and parser
- :mod:`mediakit.ffmpeg_args` — ffmpeg command lines as data (argv builders, golden-tested)
- :mod:`mediakit.stored` — a live segment as stored (:class:`~mediakit.stored.StoredSegment`);
  :mod:`mediakit.segment_scan` — its ``moof`` boxes found with ranged reads (sans-IO scanner)
- :mod:`mediakit.progressive` (+ ``progressive_tables``) — one faststart MP4 planned from the live segments:
  the header and the byte ranges to copy, never the payload
- :mod:`mediakit.vod` — the VOD playlist over the live segments; :mod:`mediakit.storyboard` — seek-preview
  layout, WebVTT and the keyframe-only fMP4 ffmpeg turns into sprite sheets

The package is its own Lambda layer (``MediaKitLayer``, ContentUri ``media/``), so the functions that need it
carry it and the others do not.
"""
