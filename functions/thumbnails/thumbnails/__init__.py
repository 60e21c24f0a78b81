"""The live thumbnail function: sampled live segments (EventBridge → SQS) → a JPEG and a WebP per stream, ~every 5 s.

Lambda handler ``thumbnails.handler.handler`` (CodeUri ``functions/thumbnails/``). Modules: :mod:`.handler` (the
SQS entry point), :mod:`.live` (one session's segment → stored images → stream item), :mod:`.render` (the ffmpeg
run). The decisions (which segment, the conditional update) live in :mod:`capturestream.thumbnails`.
"""
