"""The node's low-latency playback (issue 11 item 6): HTTP-FLV / WS-FLV with a GOP cache, and LL-HLS from memory.

:class:`~.hub.PlaybackHub` is the :class:`~ingest_node.sessions.broadcast.BroadcastObserver` that sees every
broadcast's tags and CMAF outputs; :mod:`.routes` serves them under ``/live/`` on the node's HTTP app
(:mod:`ingest_node.http_app`). Standard HLS through S3/CDN stays the default path; this one skips S3 and the CDN.

Layout: :mod:`.flv` (FLV bytes), :mod:`.timeline` (timestamps across publisher reconnects), :mod:`.gop_cache`,
:mod:`.flv_stream` (fan-out, bounded viewer queues), :mod:`.http_flv` (HTTP/WebSocket handler), :mod:`.ll_hls`
(playlist with parts, blocking reload), :mod:`.hub`, :mod:`.routes`.
"""
