"""CaptureStream ingest node: RTMP in, CMAF HLS objects out (see ``ingest_node.media`` for the sans-IO muxer)."""
