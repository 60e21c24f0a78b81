"""Golden argv lists for every ffmpeg command the node builds (owncast ``transcoder_x264_test.go`` style), their
input validation, and one real run of the thumbnail and recording commands on a fragmented MP4."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from mediakit.ffmpeg_args import ArgsError, init_name, recording_args, remux_args, thumbnail_args
from tests.unit.media.support import FFMPEG, FFPROBE, ffprobe_streams, run

TAIL = ["-hide_banner", "-nostats", "-nostdin", "-loglevel", "warning", "-y"]
HLS = ["-hls_flags", "independent_segments+program_date_time"]
requires_ffmpeg = pytest.mark.skipif(FFMPEG is None or FFPROBE is None, reason="ffmpeg/ffprobe not installed")

# ---------------------------------------------------------------------------------------------- remux


def test_remux_copies_everything_by_default() -> None:
    """AAC input: every stream copied into CMAF HLS with the in-process segmenter's file layout."""
    assert remux_args(workdir=Path("/var/remux/a1"), segment_seconds=1) == [
        *("ffmpeg", "-f", "flv", "-i", "pipe:0", "-map", "0:v:0?", "-map", "0:a:0?", "-f", "hls"),
        *("-c", "copy", *HLS, "-hls_fmp4_init_filename", "init_0.mp4", "-hls_list_size", "0"),
        *("-hls_segment_filename", "/var/remux/a1/seg_%08d.m4s", "-hls_segment_type", "fmp4", "-hls_time", "1"),
        *("-start_number", "0", "/var/remux/a1/index.m3u8", *TAIL),
    ]


def test_remux_transcodes_audio_and_tags_hevc() -> None:
    """MP3/Opus/PCM/Speex input: video copied, audio to AAC; HEVC tagged hvc1; epoch and start number carried."""
    argv = remux_args(
        workdir=Path("/w"),
        segment_seconds=2.5,
        epoch=3,
        start_number=42,
        transcode_audio=True,
        hevc=True,
        audio_bitrate_kbps=96,
        ffmpeg_bin="/usr/bin/ffmpeg",
    )
    assert argv == [
        *("/usr/bin/ffmpeg", "-f", "flv", "-i", "pipe:0", "-map", "0:v:0?", "-map", "0:a:0?", "-f", "hls"),
        *("-b:a", "96k", "-c:a", "aac", "-c:v", "copy", *HLS, "-hls_fmp4_init_filename", "init_3.mp4"),
        *("-hls_list_size", "0", "-hls_segment_filename", "/w/seg_%08d.m4s", "-hls_segment_type", "fmp4"),
        *("-hls_time", "2.5", "-start_number", "42", "-tag:v", "hvc1", "/w/index.m3u8", *TAIL),
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"workdir": Path("relative/dir")}, "workdir must be an absolute path"),
        ({"workdir": "/tmp/a\nb"}, "workdir must be an absolute path"),
        ({"workdir": 7}, "workdir must be a path"),
        ({"segment_seconds": 0}, "segment_seconds"),
        ({"segment_seconds": -1.0}, "segment_seconds"),
        ({"segment_seconds": 61}, "segment_seconds"),
        ({"segment_seconds": math.inf}, "segment_seconds"),
        ({"segment_seconds": math.nan}, "segment_seconds"),
        ({"segment_seconds": True}, "segment_seconds"),
        ({"segment_seconds": "1"}, "segment_seconds"),
        ({"epoch": -1}, "epoch"),
        ({"epoch": 1.0}, "epoch"),
        ({"start_number": -5}, "start_number"),
        ({"start_number": False}, "start_number"),
        ({"transcode_audio": 1}, "transcode_audio must be a bool"),
        ({"hevc": "yes"}, "hevc must be a bool"),
        ({"audio_bitrate_kbps": 8}, "audio_bitrate_kbps"),
        ({"ffmpeg_bin": "-ffmpeg"}, "ffmpeg_bin"),
        ({"ffmpeg_bin": ""}, "ffmpeg_bin"),
    ],
)
def test_remux_validates_inputs(changes: dict[str, object], message: str) -> None:
    """Bad paths and numbers are refused before anything is built."""
    arguments: dict[str, object] = {"workdir": Path("/w"), "segment_seconds": 1.0} | changes
    with pytest.raises(ArgsError, match=message):
        remux_args(**arguments)  # type: ignore[arg-type]


def test_init_name_matches_the_segmenter_layout() -> None:
    """``init_<epoch>.mp4``, the name the S3 key layout uses too."""
    assert init_name(0) == "init_0.mp4"
    assert init_name(12) == "init_12.mp4"
    with pytest.raises(ArgsError):
        init_name(-1)


# ---------------------------------------------------------------------------------------------- thumbnail


def test_thumbnail_from_stdin_to_stdout() -> None:
    """Init + segment piped in, one JPEG piped out, scaled to the width with an even height."""
    assert thumbnail_args(width=320) == [
        *("ffmpeg", "-f", "mp4", "-i", "pipe:0", "-filter_complex", "[0]scale=320:-2[s0]", "-map", "[s0]"),
        *("-f", "image2pipe", "-c:v", "mjpeg", "-frames:v", "1", "-q:v", "4", "pipe:1", *TAIL),
    ]


def test_thumbnail_from_file_to_file() -> None:
    """A file in (format probed), a ``.jpg`` file out."""
    argv = thumbnail_args(width=640, source=Path("/t/in.mp4"), output=Path("/t/thumb.jpg"), quality=2)
    assert argv == [
        *("ffmpeg", "-i", "/t/in.mp4", "-filter_complex", "[0]scale=640:-2[s0]", "-map", "[s0]"),
        *("-f", "image2", "-c:v", "mjpeg", "-frames:v", "1", "-q:v", "2", "-update", "1", "/t/thumb.jpg", *TAIL),
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"width": 8}, "width"),
        ({"width": 4000}, "width"),
        ({"width": 320.0}, "width"),
        ({"quality": 1}, "quality"),
        ({"source": Path("in.mp4")}, "source must be an absolute path"),
        ({"output": Path("/t/thumb.png")}, r"output must end in \.jpg"),
        ({"output": Path("thumb.jpg")}, "output must be an absolute path"),
    ],
)
def test_thumbnail_validates_inputs(changes: dict[str, object], message: str) -> None:
    """Widths, quality and paths are checked."""
    with pytest.raises(ArgsError, match=message):
        thumbnail_args(**({"width": 320} | changes))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- recording


def test_recording_from_stdin() -> None:
    """Init + segments piped in (any length of broadcast), a faststart MP4 out, streams copied."""
    assert recording_args(output=Path("/r/rec.mp4")) == [
        *("ffmpeg", "-f", "mp4", "-i", "pipe:0", "-f", "mp4", "-c", "copy", "-movflags", "+faststart"),
        *("/r/rec.mp4", *TAIL),
    ]


def test_recording_from_files() -> None:
    """Files joined with the concat: protocol, init first."""
    argv = recording_args(output=Path("/r/rec.mp4"), inputs=[Path("/r/init_0.mp4"), Path("/r/seg_00000000.m4s")])
    assert argv == [
        *("ffmpeg", "-i", "concat:/r/init_0.mp4|/r/seg_00000000.m4s", "-f", "mp4", "-c", "copy"),
        *("-movflags", "+faststart", "/r/rec.mp4", *TAIL),
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"output": Path("rec.mp4")}, "output must be an absolute path"),
        ({"output": Path("/r/rec.mkv")}, r"output must end in \.mp4"),
        ({"inputs": []}, "non-empty sequence"),
        ({"inputs": Path("/r/init_0.mp4")}, "non-empty sequence"),
        ({"inputs": [Path("/r/init_0.mp4"), Path("seg.m4s")]}, "inputs.. must be an absolute path"),
        ({"inputs": [Path("/r/a|b.mp4")]}, "must not contain '|'"),
        ({"inputs": [Path(f"/r/{'x' * 200}/seg_{n:08d}.m4s") for n in range(1000)]}, "use stdin"),
    ],
)
def test_recording_validates_inputs(changes: dict[str, object], message: str) -> None:
    """Paths are checked; a concat: URL over Linux's one-argument limit is refused (stdin is the way)."""
    with pytest.raises(ArgsError, match=message):
        recording_args(**({"output": Path("/r/rec.mp4")} | changes))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def fragmented(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s 320x240 H.264 + AAC fragmented MP4 (init then one fragment per keyframe): what init + segments are."""
    if FFMPEG is None:
        pytest.skip("ffmpeg not installed")
    path = tmp_path_factory.mktemp("transcode") / "fragmented.mp4"
    argv = [FFMPEG, "-hide_banner", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=30"]
    argv += ["-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "2", "-c:v", "libx264", "-g", "30", "-c:a", "aac"]
    argv += ["-movflags", "frag_keyframe+empty_moov+default_base_moof", str(path)]
    result = run(argv)
    assert result.returncode == 0, result.stderr
    return path


@requires_ffmpeg
def test_thumbnail_command_makes_a_jpeg(fragmented: Path, tmp_path: Path) -> None:
    """Both the stdin→stdout and the file→file commands give a 160x120 JPEG."""
    piped = subprocess.run(thumbnail_args(width=160), input=fragmented.read_bytes(), capture_output=True, check=True)
    assert piped.stdout[:3] == b"\xff\xd8\xff"
    assert _unexpected(piped.stderr) == []
    output = tmp_path / "thumb.jpg"
    written = subprocess.run(
        thumbnail_args(width=160, source=fragmented, output=output), capture_output=True, check=True
    )
    assert _unexpected(written.stderr) == []
    (stream,) = ffprobe_streams(output)
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("mjpeg", 160, 120)


@requires_ffmpeg
def test_recording_command_makes_a_faststart_mp4(fragmented: Path, tmp_path: Path) -> None:
    """The recording is a plain MP4 with ``moov`` before ``mdat``, both tracks copied."""
    output = tmp_path / "rec.mp4"
    result = subprocess.run(
        recording_args(output=output), input=fragmented.read_bytes(), capture_output=True, check=True
    )
    assert result.stderr == b""
    data = output.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    assert b"moof" not in data
    assert sorted(s["codec_name"] for s in ffprobe_streams(output)) == ["aac", "h264"]


def _unexpected(stderr: bytes) -> list[str]:
    """stderr lines other than swscaler's harmless yuvj420p deprecation warning."""
    return [line for line in stderr.decode().splitlines() if "deprecated pixel format used" not in line]
