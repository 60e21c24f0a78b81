"""Golden argv lists for every ffmpeg command the node and the media functions build (owncast
``transcoder_x264_test.go`` style), their input validation, and real runs of the commands on a fragmented MP4."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from mediakit.cmaf import flv
from mediakit.ffmpeg_args import (
    ArgsError,
    capture_args,
    init_name,
    live_thumbnail_args,
    poster_args,
    recording_args,
    remux_args,
    sprite_name,
    storyboard_args,
    thumbnail_args,
)
from tests.unit.ingest.capture_media import record
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


# ---------------------------------------------------------------------------------------------- browser capture

CAPTURE_IN = ["-f", "matroska", "-analyzeduration", "0", "-probesize", "32", "-i", "pipe:0"]
CAPTURE_MAP = ["-map", "0:v:0?", "-map", "0:a:0?", "-f", "flv"]
CAPTURE_OUT = ["-flush_packets", "1", "-flvflags", "no_duration_filesize", "pipe:1", *TAIL]


def test_capture_copies_h264_and_encodes_opus_to_aac() -> None:
    """Chromium's H.264 + Opus: video copied, audio to AAC-LC 48 kHz; Matroska in with minimal probing, FLV out."""
    assert capture_args(copy_video=True) == [
        *("ffmpeg", *CAPTURE_IN, *CAPTURE_MAP),
        *("-ar", "48000", "-b:a", "128k", "-c:a", "aac", "-c:v", "copy", *CAPTURE_OUT),
    ]


def test_capture_encodes_vp8_with_keyframes_by_time() -> None:
    """VP8/VP9: libx264 veryfast zerolatency, CBR-ish at the studio's bitrate, a keyframe every N s of media."""
    argv = capture_args(
        copy_video=False,
        copy_audio=True,
        video_bitrate_kbps=1200,
        keyframe_seconds=2,
        audio_bitrate_kbps=96,
        ffmpeg_bin="/opt/bin/ffmpeg",
    )
    assert argv == [
        *("/opt/bin/ffmpeg", *CAPTURE_IN, *CAPTURE_MAP, "-b:v", "1200k", "-bufsize", "1200k", "-c:a", "copy"),
        *("-c:v", "libx264", "-flush_packets", "1", "-flvflags", "no_duration_filesize"),
        *("-force_key_frames", "expr:gte(t,n_forced*2)", "-maxrate", "1200k", "-pix_fmt", "yuv420p"),
        *("-preset", "veryfast", "-sc_threshold", "0", "-tune", "zerolatency", "pipe:1", *TAIL),
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"copy_video": 1}, "copy_video must be a bool"),
        ({"copy_audio": None}, "copy_audio must be a bool"),
        ({"video_bitrate_kbps": 50}, "video_bitrate_kbps"),
        ({"video_bitrate_kbps": 2500.0}, "video_bitrate_kbps"),
        ({"keyframe_seconds": 0}, "keyframe_seconds"),
        ({"keyframe_seconds": 11}, "keyframe_seconds"),
        ({"audio_bitrate_kbps": 1000}, "audio_bitrate_kbps"),
        ({"ffmpeg_bin": "-i"}, "ffmpeg_bin"),
    ],
)
def test_capture_validates_inputs(changes: dict[str, object], message: str) -> None:
    """Bad flags and numbers are refused before anything is built."""
    with pytest.raises(ArgsError, match=message):
        capture_args(**({"copy_video": True} | changes))  # type: ignore[arg-type]


@requires_ffmpeg
@pytest.mark.parametrize(("video", "copy"), [("h264", True), ("vp8", False)])
def test_capture_command_gives_avc_and_aac_flv_tags(video: str, copy: bool, tmp_path: Path) -> None:
    """The real command on a browser-like recording: FLV with AVC video (1 s keyframes) and AAC audio, every
    frame kept (the first GOP too: no ``-fflags nobuffer``)."""
    source = record(tmp_path, video, 3.0)
    result = subprocess.run(
        capture_args(copy_video=copy), input=source.read_bytes(), capture_output=True, timeout=60, check=True
    )
    tags = flv.FlvReader().feed(result.stdout)
    video_tags = [flv.parse_video(t.body) for t in tags if t.kind == 9]
    audio_tags = [flv.parse_audio(t.body) for t in tags if t.kind == 8]
    assert isinstance(video_tags[0], flv.VideoConfig) and video_tags[0].codec == "avc1"
    assert isinstance(audio_tags[0], flv.AudioConfig) and audio_tags[0].codec == "mp4a"
    frames = [tag for tag in video_tags if isinstance(tag, flv.VideoFrame)]
    assert len(frames) == 90 and frames[0].keyframe
    keyframe_times = [t.timestamp for t in tags if t.kind == 9 and t.body[0] >> 4 == 1 and t.body[1] == 1]
    assert [round(ms / 1000) for ms in keyframe_times] == [0, 1, 2]


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


# ---------------------------------------------------------------------------------------------- live thumbnail

JPEG_FULL = ["-c:v", "mjpeg", "-color_range", "pc"]
EXACT = ["-dct", "int", "-fflags", "+bitexact", "-flags", "+bitexact"]


def test_live_thumbnail_from_stdin() -> None:
    """Init + segment piped in; keyframes only, the thumbnail filter picks one, split into a full-range JPEG and a
    WebP."""
    argv = live_thumbnail_args(source=None, jpeg=Path("/t/thumb.jpg"), webp=Path("/t/thumb.webp"))
    assert argv == [
        *("ffmpeg", "-f", "mp4", "-skip_frame", "nokey", "-threads", "1", "-i", "pipe:0", "-filter_complex"),
        "[0:v]thumbnail=n=60[s0];[s0]scale=640:-2:flags=lanczos[s1];[s1]split=2[s2][s3];[s2]scale=out_range=full[s4]",
        *("-map", "[s4]", "-f", "image2", *JPEG_FULL, "-frames:v", "1", "-pix_fmt", "yuv420p", "-q:v", "3"),
        *("-strict", "unofficial", "-update", "1", "/t/thumb.jpg"),
        *("-map", "[s3]", "-f", "image2", "-c:v", "libwebp", "-frames:v", "1", "-quality", "75", "-update", "1"),
        *("/t/thumb.webp", *TAIL),
    ]


def test_live_thumbnail_from_a_file() -> None:
    """A file in (format probed), another width, batch and qualities."""
    argv = live_thumbnail_args(
        source=Path("/t/in.mp4"),
        jpeg=Path("/t/a.jpeg"),
        webp=Path("/t/a.webp"),
        width=320,
        frames=30,
        jpeg_quality=5,
        webp_quality=60,
        ffmpeg_bin="/opt/bin/ffmpeg",
    )
    head = ["/opt/bin/ffmpeg", "-skip_frame", "nokey", "-threads", "1", "-i", "/t/in.mp4", "-filter_complex"]
    assert argv[:8] == head
    assert argv[8].startswith("[0:v]thumbnail=n=30[s0];[s0]scale=320:-2:flags=lanczos[s1];")
    assert argv[argv.index("-q:v") + 1] == "5" and argv[argv.index("-quality") + 1] == "60"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"width": 8}, "width"),
        ({"frames": 1}, "frames"),
        ({"frames": 1001}, "frames"),
        ({"jpeg_quality": 40}, "jpeg_quality"),
        ({"webp_quality": 101}, "webp_quality"),
        ({"jpeg": Path("/t/a.png")}, r"jpeg must end in \.jpg"),
        ({"webp": Path("/t/a.jpg")}, r"webp must end in \.webp"),
        ({"webp": Path("a.webp")}, "webp must be an absolute path"),
        ({"source": Path("in.mp4")}, "source must be an absolute path"),
    ],
)
def test_live_thumbnail_validates_inputs(changes: dict[str, object], message: str) -> None:
    """Sizes, batch, qualities and paths are checked."""
    arguments: dict[str, object] = {"source": None, "jpeg": Path("/t/a.jpg"), "webp": Path("/t/a.webp")}
    with pytest.raises(ArgsError, match=message):
        live_thumbnail_args(**(arguments | changes))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- storyboard, poster

EXACT_SCALE = "flags=lanczos+accurate_rnd+bitexact"
TILE_SCALE = "flags=area+accurate_rnd+bitexact"


def test_storyboard_from_one_keyframe_file() -> None:
    """Letterboxed tiles, a 10×2 grid, full-range bit-exact JPEG sheets numbered from 0, no frame rate games."""
    argv = storyboard_args(
        sources=[Path("/w/tiles_000.mp4")],
        output_dir=Path("/w/out"),
        tile_width=160,
        tile_height=90,
        columns=10,
        rows=2,
    )
    assert argv == [
        *("ffmpeg", "-threads", "1", "-i", "/w/tiles_000.mp4", "-filter_complex"),
        f"[0:v]scale=160:90:{TILE_SCALE}:force_original_aspect_ratio=decrease[s0];"
        "[s0]pad=160:90:(ow-iw)/2:(oh-ih)/2[s1];[s1]setsar=1[s2];[s2]tile=10x2[s3];"
        f"[s3]scale={EXACT_SCALE}:out_range=full[s4]",
        *("-map", "[s4]", "-f", "image2", *JPEG_FULL, *EXACT, "-fps_mode", "passthrough", "-pix_fmt", "yuv420p"),
        *("-q:v", "5", "-start_number", "0", "-strict", "unofficial", "-threads", "1", "/w/out/sprite_%03d.jpg"),
        *TAIL,
    ]
    assert sprite_name(0) == "sprite_000.jpg" and sprite_name(12) == "sprite_012.jpg"


def test_storyboard_concatenates_epoch_runs() -> None:
    """One input per epoch run, each scaled and padded to the tile size, concatenated before the tile filter."""
    argv = storyboard_args(
        sources=[Path("/w/a.mp4"), Path("/w/b.mp4")],
        output_dir=Path("/w"),
        tile_width=90,
        tile_height=160,
        columns=5,
        rows=4,
        quality=3,
    )
    tile = f"scale=90:160:{TILE_SCALE}:force_original_aspect_ratio=decrease"
    assert argv[:9] == ["ffmpeg", "-threads", "1", "-i", "/w/a.mp4", "-threads", "1", "-i", "/w/b.mp4"]
    assert argv[9:11] == [
        "-filter_complex",
        f"[0:v]{tile}[s0];[s0]pad=90:160:(ow-iw)/2:(oh-ih)/2[s1];[s1]setsar=1[s2];"
        f"[1:v]{tile}[s3];[s3]pad=90:160:(ow-iw)/2:(oh-ih)/2[s4];[s4]setsar=1[s5];"
        f"[s2][s5]concat=a=0:n=2:v=1[s6];[s6]tile=5x4[s7];[s7]scale={EXACT_SCALE}:out_range=full[s8]",
    ]
    assert argv[argv.index("-q:v") + 1] == "3"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sources": []}, "sources must be a sequence"),
        ({"sources": Path("/w/a.mp4")}, "sources must be a sequence"),
        ({"sources": [Path(f"/w/{n}.mp4") for n in range(257)]}, "sources must be a sequence"),
        ({"sources": [Path("/w/a.mp4"), Path("/w/a.mp4")]}, "distinct"),
        ({"sources": [Path("a.mp4")]}, r"sources\[\] must be an absolute path"),
        ({"output_dir": Path("out")}, "output_dir must be an absolute path"),
        ({"tile_width": 161}, "tile_width must be even"),
        ({"tile_height": 0}, "tile_height"),
        ({"columns": 0}, "columns"),
        ({"rows": 101}, "rows"),
        ({"quality": 1}, "quality"),
    ],
)
def test_storyboard_validates_inputs(changes: dict[str, object], message: str) -> None:
    """Inputs, grid and tile sizes are checked."""
    arguments: dict[str, object] = {
        "sources": [Path("/w/a.mp4")],
        "output_dir": Path("/w"),
        "tile_width": 160,
        "tile_height": 90,
        "columns": 10,
        "rows": 10,
    }
    with pytest.raises(ArgsError, match=message):
        storyboard_args(**(arguments | changes))  # type: ignore[arg-type]


def test_poster_from_candidates() -> None:
    """The thumbnail filter over the candidates, the source width up to 1280, one bit-exact full-range JPEG."""
    assert poster_args(source=Path("/w/poster.mp4"), output=Path("/w/poster.jpg")) == [
        *("ffmpeg", "-threads", "1", "-i", "/w/poster.mp4", "-filter_complex"),
        f"[0:v]thumbnail=n=10[s0];[s0]scale=min(iw\\,1280):-2:{EXACT_SCALE}:out_range=full[s1]",
        *("-map", "[s1]", "-f", "image2", *JPEG_FULL, *EXACT, "-frames:v", "1", "-pix_fmt", "yuv420p", "-q:v", "3"),
        *("-strict", "unofficial", "-threads", "1", "-update", "1", "/w/poster.jpg", *TAIL),
    ]


def test_poster_of_one_candidate_from_stdin() -> None:
    """One candidate still makes a valid thumbnail batch (n=2, flushed at the end of input)."""
    argv = poster_args(source=None, output=Path("/w/p.jpg"), max_width=640, frames=1)
    assert argv[:8] == ["ffmpeg", "-f", "mp4", "-threads", "1", "-i", "pipe:0", "-filter_complex"]
    assert argv[8] == f"[0:v]thumbnail=n=2[s0];[s0]scale=min(iw\\,640):-2:{EXACT_SCALE}:out_range=full[s1]"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_width": 8}, "max_width"),
        ({"frames": 0}, "frames"),
        ({"quality": 32}, "quality"),
        ({"output": Path("/w/p.webp")}, r"output must end in \.jpg"),
        ({"source": Path("p.mp4")}, "source must be an absolute path"),
    ],
)
def test_poster_validates_inputs(changes: dict[str, object], message: str) -> None:
    """Width, batch, quality and paths are checked."""
    with pytest.raises(ArgsError, match=message):
        poster_args(**({"source": None, "output": Path("/w/p.jpg")} | changes))  # type: ignore[arg-type]


@requires_ffmpeg
def test_live_thumbnail_command_makes_a_jpeg_and_a_webp(fragmented: Path, tmp_path: Path) -> None:
    """Both images, the same size, from one quiet run (stderr stays empty: no yuvj420p warnings)."""
    jpeg, webp = tmp_path / "t.jpg", tmp_path / "t.webp"
    argv = live_thumbnail_args(source=None, jpeg=jpeg, webp=webp, width=160)
    result = subprocess.run(argv, input=fragmented.read_bytes(), capture_output=True, check=True)
    assert result.stderr == b""
    (picture,) = ffprobe_streams(jpeg)
    assert (picture["codec_name"], picture["width"], picture["height"], picture["color_range"]) == (
        "mjpeg",
        160,
        120,
        "pc",
    )
    (picture,) = ffprobe_streams(webp)
    assert (picture["codec_name"], picture["width"], picture["height"]) == ("webp", 160, 120)


@requires_ffmpeg
def test_storyboard_and_poster_commands_are_reproducible(fragmented: Path, tmp_path: Path) -> None:
    """60 frames on 8×4 sheets → two sheets; the poster keeps 320 px; a second run writes the same bytes."""
    outputs = []
    for attempt in range(2):
        folder = tmp_path / str(attempt)
        folder.mkdir()
        argv = storyboard_args(
            sources=[fragmented], output_dir=folder, tile_width=80, tile_height=60, columns=8, rows=4
        )
        assert subprocess.run(argv, capture_output=True, check=True).stderr == b""
        poster = folder / "poster.jpg"
        argv = poster_args(source=fragmented, output=poster, frames=60)
        assert subprocess.run(argv, capture_output=True, check=True).stderr == b""
        outputs.append({path.name: path.read_bytes() for path in sorted(folder.iterdir())})
    assert sorted(outputs[0]) == ["poster.jpg", "sprite_000.jpg", "sprite_001.jpg"]
    assert outputs[0] == outputs[1]
    sheet, poster_stream = (
        ffprobe_streams(tmp_path / "0" / "sprite_001.jpg")[0],
        ffprobe_streams(tmp_path / "0" / "poster.jpg")[0],
    )
    assert (sheet["width"], sheet["height"]) == (640, 240)
    assert (poster_stream["width"], poster_stream["height"]) == (320, 240)
