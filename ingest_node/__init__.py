"""CaptureStream ingest node: RTMP in, CMAF HLS objects out (see ``mediakit.cmaf`` for the sans-IO muxer)."""
