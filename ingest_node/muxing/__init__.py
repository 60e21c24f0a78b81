"""Muxing: FLV tags in, CMAF init/parts/segments out: the in-process segmenter and the ffmpeg fallback."""
