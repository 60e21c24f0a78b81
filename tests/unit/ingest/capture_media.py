"""Recordings shaped like a browser's ``MediaRecorder`` output, made with the real ffmpeg (nothing binary committed).

Chromium records H.264 (Constrained Baseline, no B-frames) or VP8, with Opus, into a live Matroska/WebM stream:
unknown-size Segment and Clusters, no Cues (``CHROMIUM.md``). ``-live 1`` makes ffmpeg's muxer write the same shape.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
#: ``MediaRecorder.start(250)``: the API's recommended timeslice.
SLICE_SECONDS = 0.25

_SINE = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
_OPUS = ["-c:a", "libopus", "-b:a", "96k"]
_H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline", "-pix_fmt", "yuv420p"]
_VP8 = ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "800k"]


def record(folder: Path, video: str, seconds: float = 4.0, *, gop: int = 30) -> Path:
    """A browser-like recording: ``video`` ``"h264"`` (1280×720 30 fps, Matroska) or ``"vp8"`` (640×360, WebM),
    both with Opus, a keyframe every ``gop`` frames."""
    assert FFMPEG is not None, "ffmpeg is needed"
    size, codec, muxer = ("1280x720", _H264, "matroska") if video == "h264" else ("640x360", _VP8, "webm")
    path = folder / f"browser_{video}_{gop}.{'mkv' if muxer == 'matroska' else 'webm'}"
    if path.exists():
        return path
    argv = [FFMPEG, "-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30"]
    argv += [*_SINE, "-t", f"{seconds:g}", *codec, "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0"]
    argv += [*_OPUS, "-live", "1", "-f", muxer, str(path)]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    return path


def slices(data: bytes, seconds: float, slice_seconds: float = SLICE_SECONDS) -> list[bytes]:
    """``data`` cut into pieces of ~``slice_seconds`` of media each (by bytes: the recordings are near CBR)."""
    count = max(1, round(seconds / slice_seconds))
    step = -(-len(data) // count)
    return [data[i : i + step] for i in range(0, len(data), step)]
