"""Test media for the playback tests: a real ffmpeg publisher's FLV, as the tags an RTMP publisher sends."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.media.support import FFMPEG, FFPROBE, Tag, read_flv, run

FPS = 30
SECONDS = 4


def publisher_tags(folder: Path) -> list[Tag]:
    """4 s of 320x240 30 fps H.264 (keyframe every 1 s, B-frames) + 48 kHz AAC; skips without ffmpeg/ffprobe."""
    if FFMPEG is None or FFPROBE is None:
        pytest.skip("ffmpeg/ffprobe not installed")
    path = folder / "in.flv"
    result = run(
        [FFMPEG, "-hide_banner", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=s=320x240:r={FPS}",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(SECONDS),
         "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", str(FPS), "-keyint_min", str(FPS),
         "-sc_threshold", "0", "-c:a", "aac", "-f", "flv", str(path)]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return read_flv(path)
