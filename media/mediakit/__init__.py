"""mediakit: CaptureStream's pure media toolkit, shared by the ingest node and the media functions.

No I/O anywhere in this package (no sockets, files, subprocesses, clocks or AWS), and no ``capturestream``
import: bytes and plain values in, bytes and plain values out, like h11 under its users. Callers own storage and
processes. A test enforces both rules.

- :mod:`mediakit.cmaf` — the in-process CMAF muxer (RTMP message bodies → init segments, parts, segments)
- :mod:`mediakit.bmff` — the one ISO-BMFF reader (boxes, init tracks, movie fragments and their ``trun`` tables)
- :mod:`mediakit.hls` — the one HLS playlist writer and parser
- :mod:`mediakit.ffmpeg_args` — ffmpeg command lines as data (argv builders, golden-tested)

The package is its own Lambda layer (``MediaKitLayer``, ContentUri ``media/``), so the functions that need it
carry it and the others do not.
"""
