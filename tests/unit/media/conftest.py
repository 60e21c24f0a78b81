"""Media fixtures generated once per session with the real ffmpeg into a tmp folder (nothing binary is committed).

| fixture        | what                                                                          |
| -------------- | ----------------------------------------------------------------------------- |
| ``flv_720p30`` | 1280×720 30 fps H.264 High, B-frames (-bf 3), GOP 30, AAC-LC 48 kHz stereo, 6 s |
| ``flv_1080p60``| 1920×1080 60 fps H.264 High, B-frames, GOP 120 (2 s), AAC 44.1 kHz, 4.5 s      |
| ``flv_audio``  | AAC-LC 48 kHz stereo only, 3 s                                                 |
| ``flv_video``  | 640×360 25 fps H.264 Main (OBS' profile), B-frames, GOP 25, no audio, 3 s      |
| ``mp4_hevc``   | 320×240 30 fps HEVC (x265, open GOP, B-frames), GOP 30, 2 s, ``hvc1``          |
| ``mp4_av1``    | 320×240 30 fps AV1 (SVT-AV1), GOP 30, 2 s                                      |

Debian's ffmpeg 5.1 cannot write HEVC/AV1 into FLV (Enhanced RTMP arrived in 6.1), so those are encoded to MP4 and
the tests turn the MP4 samples into Enhanced RTMP tag bodies (``support.enhanced_video_tags``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.media.support import FFMPEG, FFPROBE, mp4_video_track, run

LAVFI_SINE_48K = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-sc_threshold", "0"]

requires_ffmpeg = pytest.mark.skipif(FFMPEG is None or FFPROBE is None, reason="ffmpeg/ffprobe not installed")


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide folder for generated media."""
    return tmp_path_factory.mktemp("media")


def _encode(folder: Path, name: str, argv: list[str]) -> Path:
    if FFMPEG is None:
        pytest.skip("ffmpeg not installed")
    path = folder / name
    result = run([FFMPEG, "-hide_banner", "-v", "error", "-y", *argv, str(path)])
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture(scope="session")
def flv_720p30(media_dir: Path) -> Path:
    """(a) 720p30 H.264 High with B-frames, GOP 30, AAC 48 kHz, 6 s."""
    return _encode(
        media_dir,
        "a_720p30.flv",
        [
            *("-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30", *LAVFI_SINE_48K, "-t", "6"),
            *(*X264, "-profile:v", "high", "-bf", "3", "-g", "30", "-keyint_min", "30", "-b:v", "1500k"),
            *("-c:a", "aac", "-ac", "2", "-b:a", "128k", "-f", "flv"),
        ],
    )


@pytest.fixture(scope="session")
def flv_1080p60(media_dir: Path) -> Path:
    """(b) 1080p60 H.264 High with B-frames, GOP 120 (2 s), AAC 44.1 kHz, 4.5 s."""
    return _encode(
        media_dir,
        "b_1080p60.flv",
        [
            *("-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=60"),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "4.5"),
            *("-c:v", "libx264", "-preset", "superfast", "-sc_threshold", "0", "-profile:v", "high", "-bf", "3"),
            *("-g", "120", "-keyint_min", "120", "-b:v", "2000k", "-c:a", "aac", "-ac", "2", "-f", "flv"),
        ],
    )


@pytest.fixture(scope="session")
def flv_audio(media_dir: Path) -> Path:
    """(c) AAC-LC 48 kHz stereo, no video, 3 s."""
    return _encode(media_dir, "c_audio.flv", [*LAVFI_SINE_48K, "-t", "3", "-c:a", "aac", "-ac", "2", "-f", "flv"])


@pytest.fixture(scope="session")
def flv_video(media_dir: Path) -> Path:
    """(d) 640×360 25 fps H.264 Main with B-frames, GOP 25, no audio, 3 s."""
    return _encode(
        media_dir,
        "d_video.flv",
        [
            *("-f", "lavfi", "-i", "testsrc2=s=640x360:r=25", "-t", "3"),
            *(*X264, "-profile:v", "main", "-bf", "2", "-g", "25", "-keyint_min", "25", "-f", "flv"),
        ],
    )


@pytest.fixture(scope="session")
def mp4_hevc(media_dir: Path) -> Path:
    """(e) HEVC 320×240 30 fps, x265 defaults (open GOP, B-frames), GOP 30, 2 s, sample entry hvc1."""
    return _encode(
        media_dir,
        "e_hevc.mp4",
        [
            *("-f", "lavfi", "-i", "testsrc2=s=320x240:r=30", "-t", "2", "-c:v", "libx265", "-preset", "ultrafast"),
            *("-x265-params", "log-level=error:keyint=30:min-keyint=30:scenecut=0:bframes=3", "-tag:v", "hvc1"),
            *("-f", "mp4"),
        ],
    )


@pytest.fixture(scope="session")
def mp4_av1(media_dir: Path) -> Path:
    """(f) AV1 320×240 30 fps (SVT-AV1 preset 12), GOP 30, 2 s."""
    return _encode(
        media_dir,
        "f_av1.mp4",
        [
            *("-f", "lavfi", "-i", "testsrc2=s=320x240:r=30", "-t", "2", "-c:v", "libsvtav1", "-preset", "12"),
            *("-g", "30", "-f", "mp4"),
        ],
    )


@pytest.fixture(scope="session")
def hvcc(mp4_hevc: Path) -> bytes:
    """The HEVCDecoderConfigurationRecord x265 wrote for ``mp4_hevc`` (VPS, SPS, PPS and an SEI array)."""
    return mp4_video_track(mp4_hevc)[1]
