"""ffmpeg command lines as data: pure argv builders on ffmpeg-python's ``.compile()`` (STYLE §3 owncast, rule 12).

Every builder returns ``list[str]`` (argv[0] is the ffmpeg binary) for ``asyncio.create_subprocess_exec``; nothing
here runs a process, touches the disk or builds a shell string. The tests pin each argv exactly (golden lists, the
way owncast pins ``transcoder_x264_test.go``), so a change to a command shows up as a diff in review.

Rules:
- Inputs are validated before anything is built (:class:`ArgsError`, a ``ValueError``): paths must be absolute
  (an absolute path can be neither an option nor a protocol URL such as ``http:``) and free of NUL/CR/LF;
  numbers must be finite, of the right type (``bool`` is not a number here) and inside a documented range.
- Every command runs with ``-hide_banner -nostats -nostdin -loglevel warning -y``: the caller keeps the stderr
  tail for its error messages, so stderr must stay short (and be drained); ``-nostdin`` keeps ffmpeg from reading
  keystrokes (``pipe:0`` input is still read); ``-y`` because the caller owns the output paths. ffmpeg-python puts
  global options after the output, where ffmpeg accepts them.
- Images for viewers are JPEG in full range written as ``yuv420p`` tagged ``pc`` (``-strict unofficial``), which
  mjpeg writes as the same standard JFIF as ``yuvj420p``: ffmpeg 5.1's swscaler prints a "deprecated pixel
  format" warning for every ``yuvj*`` conversion it sets up (a dozen lines per thumbnail), which would bury the
  stderr tail. WebP stays limited range (what WebP decoders assume).
- Images stored for recordings are reproducible: one thread, ``+bitexact`` for codec, muxer and scaler, and the
  portable integer DCT (``-dct int``: x86 otherwise picks an SSE2 DCT whose output differs from the C one that
  an ARM Lambda runs), so rebuilding a recording stores byte-identical objects.
- The HLS layout is the in-process segmenter's (``mediakit.cmaf``): CMAF fMP4, ``init_<epoch>.mp4``,
  ``seg_%08d.m4s`` numbered from the media sequence, ``index.m3u8`` listing every segment (``-hls_list_size 0``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import ffmpeg

#: File names inside the remux working directory; :mod:`ingest_node.muxing.ffmpeg_remuxer` reads them back.
PLAYLIST_NAME = "index.m3u8"
SEGMENT_PATTERN = "seg_%08d.m4s"
GLOBAL_ARGS = ("-hide_banner", "-nostats", "-nostdin", "-loglevel", "warning")
#: File names of the storyboard sprite sheets ffmpeg writes (``sprite_000.jpg``, ...), one per full grid of tiles.
SPRITE_PATTERN = "sprite_%03d.jpg"
#: Swscale flags for stored images: sharp downscaling, accurate rounding, the scaler's bit-exact code paths.
EXACT_SCALE_FLAGS = "lanczos+accurate_rnd+bitexact"
#: The same for storyboard tiles (an 8× reduction): area averaging, ~20 % less CPU than lanczos for 500 tiles.
TILE_SCALE_FLAGS = "area+accurate_rnd+bitexact"
#: Output options that make an image run reproducible (single thread, no version strings, portable DCT).
EXACT_OUTPUT = {"threads": 1, "flags": "+bitexact", "fflags": "+bitexact", "dct": "int"}
#: mjpeg's full-range JPEG from ``yuv420p`` frames tagged ``pc`` (see the module rules).
JPEG_FULL_RANGE = {"c:v": "mjpeg", "strict": "unofficial", "pix_fmt": "yuv420p", "color_range": "pc"}
#: Most inputs one storyboard run takes (one keyframe file per init epoch run).
MAX_STORYBOARD_INPUTS = 256
#: Linux MAX_ARG_STRLEN: one argv string (the ``concat:`` URL) may not be longer.
MAX_ARG_LENGTH = 128 * 1024


class ArgsError(ValueError):
    """A builder was given an input it refuses (relative path, out-of-range number, ...)."""


def init_name(epoch: int) -> str:
    """The init segment file name of ``epoch`` (relative to the playlist, as ffmpeg writes it)."""
    return f"init_{_integer(epoch, 'epoch', 0, 1 << 31)}.mp4"


def remux_args(
    *,
    workdir: Path,
    segment_seconds: float,
    epoch: int = 0,
    start_number: int = 0,
    transcode_audio: bool = False,
    hevc: bool = False,
    audio_bitrate_kbps: int = 128,
    ffmpeg_bin: str = "ffmpeg",
) -> list[str]:
    """FLV on stdin → CMAF HLS in ``workdir``: video copied, audio copied or encoded to AAC.

    Args:
        workdir: absolute folder for ``index.m3u8``, ``init_<epoch>.mp4`` and ``seg_%08d.m4s``.
        segment_seconds: ``-hls_time`` target (0 < s ≤ 60); ffmpeg cuts at the first keyframe past it.
        epoch: numbers the init segment (``init_<epoch>.mp4``), one per ffmpeg run.
        start_number: media sequence of the first segment (continues across runs).
        transcode_audio: ``-c:a aac`` for MP3/Opus/PCM/Speex input; otherwise every stream is copied.
        hevc: tag the copied video ``hvc1`` (parameter sets in the sample entry, what Apple players need).
        audio_bitrate_kbps: AAC bitrate when transcoding (16-512).
        ffmpeg_bin: the ffmpeg executable.

    Returns:
        The argv, ``ffmpeg_bin`` first.

    Raises:
        ArgsError: an input out of range.
    """
    folder = _path(workdir, "workdir")
    _seconds(segment_seconds, "segment_seconds", 60.0)
    _integer(start_number, "start_number", 0, 1 << 31)
    _integer(audio_bitrate_kbps, "audio_bitrate_kbps", 16, 512)
    _flag(transcode_audio, "transcode_audio")
    _flag(hevc, "hevc")
    options: dict[str, object] = {
        "format": "hls",
        "hls_segment_type": "fmp4",
        "hls_time": _format(segment_seconds),
        "hls_flags": "independent_segments+program_date_time",
        "hls_fmp4_init_filename": init_name(epoch),
        "hls_segment_filename": f"{folder}/{SEGMENT_PATTERN}",
        "hls_list_size": 0,
        "start_number": start_number,
    }
    if transcode_audio:
        options |= {"c:v": "copy", "c:a": "aac", "b:a": f"{audio_bitrate_kbps}k"}
    else:
        options["c"] = "copy"
    if hevc:
        options["tag:v"] = "hvc1"
    source = ffmpeg.input("pipe:0", format="flv")
    # The "?" makes each map optional: audio-only and video-only publishers get one track, never an error.
    stream = ffmpeg.output(source["v:0?"], source["a:0?"], f"{folder}/{PLAYLIST_NAME}", **options)
    return _compile(stream, ffmpeg_bin)


def capture_args(
    *,
    copy_video: bool,
    copy_audio: bool = False,
    video_bitrate_kbps: int = 2500,
    keyframe_seconds: float = 1.0,
    audio_bitrate_kbps: int = 128,
    ffmpeg_bin: str = "ffmpeg",
) -> list[str]:
    """Browser go-live: MediaRecorder's WebM/Matroska on stdin → FLV on stdout, for the node's RTMP tag path.

    Only what must be is encoded: H.264 video is copied; any other video (VP8/VP9/AV1) is encoded with libx264
    ``veryfast``/``zerolatency`` with a keyframe every ``keyframe_seconds`` of media time (MediaRecorder's frame
    rate varies, so keyframes are forced by time, not counted in frames); audio other than AAC (always Opus from
    a browser) is encoded to AAC-LC at 48 kHz, what fMP4 players everywhere decode.

    Input latency: the Matroska header names every track and codec, so probing is cut to the minimum
    (``-probesize 32 -analyzeduration 0``): the first FLV tags leave ffmpeg ~15 ms after the first chunk arrives,
    against ~2.4 s with the defaults. ``-fflags nobuffer`` is **not** used: with Matroska on a pipe it throws away
    the packets read while probing, i.e. the first keyframe and everything up to the next one (measured: a whole
    5 s Chromium GOP). ``-flush_packets 1`` hands every tag to the pipe at once; ``no_duration_filesize`` because
    a pipe cannot be rewound to patch the header.

    Args:
        copy_video: the video is H.264 (``V_MPEG4/ISO/AVC``): copy it; otherwise encode it with libx264.
        copy_audio: the audio is AAC already: copy it; otherwise encode it to AAC.
        video_bitrate_kbps: libx264 bitrate, also its maxrate and one second of VBV buffer (100-20000).
        keyframe_seconds: libx264 keyframe interval in seconds (0 < s ≤ 10).
        audio_bitrate_kbps: AAC bitrate when encoding (16-512).
        ffmpeg_bin: the ffmpeg executable.

    Returns:
        The argv, ``ffmpeg_bin`` first.

    Raises:
        ArgsError: an input out of range.
    """
    _flag(copy_video, "copy_video")
    _flag(copy_audio, "copy_audio")
    _integer(video_bitrate_kbps, "video_bitrate_kbps", 100, 20000)
    _seconds(keyframe_seconds, "keyframe_seconds", 10.0)
    _integer(audio_bitrate_kbps, "audio_bitrate_kbps", 16, 512)
    options: dict[str, object] = {"format": "flv", "flvflags": "no_duration_filesize", "flush_packets": 1}
    if copy_video:
        options["c:v"] = "copy"
    else:
        options |= {
            **{"c:v": "libx264", "preset": "veryfast", "tune": "zerolatency", "pix_fmt": "yuv420p"},
            **{
                "b:v": f"{video_bitrate_kbps}k",
                "maxrate": f"{video_bitrate_kbps}k",
                "bufsize": f"{video_bitrate_kbps}k",
            },
            **{"force_key_frames": f"expr:gte(t,n_forced*{_format(keyframe_seconds)})", "sc_threshold": 0},
        }
    if copy_audio:
        options["c:a"] = "copy"
    else:
        options |= {"c:a": "aac", "b:a": f"{audio_bitrate_kbps}k", "ar": 48000}
    source = ffmpeg.input("pipe:0", format="matroska", probesize=32, analyzeduration=0)
    stream = ffmpeg.output(source["v:0?"], source["a:0?"], "pipe:1", **options)
    return _compile(stream, ffmpeg_bin)


def thumbnail_args(
    *,
    width: int,
    source: Path | None = None,
    output: Path | None = None,
    quality: int = 4,
    ffmpeg_bin: str = "ffmpeg",
) -> list[str]:
    """One JPEG of the first frame of an fMP4 init + segment, scaled to ``width`` (height keeps the aspect, even).

    ffmpeg 5.1's swscaler warns "deprecated pixel format used" for the JPEG range (yuvj420p) the encoder needs; it
    is harmless, and the only line such a run prints.

    Args:
        width: output width in pixels (16-3840).
        source: an absolute file holding init + segment bytes; ``None`` reads them from stdin (``pipe:0``).
        output: an absolute ``.jpg`` path; ``None`` writes the JPEG to stdout (``pipe:1``).
        quality: ``-q:v`` (2 best - 31 worst).
        ffmpeg_bin: the ffmpeg executable.

    Raises:
        ArgsError: an input out of range.
    """
    _integer(width, "width", 16, 3840)
    _integer(quality, "quality", 2, 31)
    source_url = "pipe:0" if source is None else _path(source, "source")
    output_url = "pipe:1" if output is None else _path(output, "output", suffixes=(".jpg", ".jpeg"))
    stream = (
        ffmpeg.input(source_url, **({"format": "mp4"} if source is None else {}))
        .filter("scale", width, -2)
        .output(
            output_url,
            # image2 wants -update 1 to write one picture to a plain file name (not a %03d pattern)
            **({"format": "image2pipe"} if output is None else {"format": "image2", "update": 1}),
            **{"frames:v": 1, "c:v": "mjpeg", "q:v": quality},
        )
    )
    return _compile(stream, ffmpeg_bin)


def sprite_name(index: int) -> str:
    """File name of storyboard sprite sheet ``index`` (from 0) as :func:`storyboard_args` writes it."""
    return SPRITE_PATTERN % _integer(index, "index", 0, 999)


def live_thumbnail_args(
    *,
    source: Path | None,
    jpeg: Path,
    webp: Path,
    width: int = 640,
    frames: int = 60,
    jpeg_quality: int = 3,
    webp_quality: int = 75,
    ffmpeg_bin: str = "ffmpeg",
) -> list[str]:
    """A live thumbnail: a keyframe of an fMP4 init + segment, as a JPEG and a WebP.

    Only keyframes are decoded (``-skip_frame nokey``), as live platforms take their stream snapshots: a live
    segment starts on one, and it is the sharpest picture of its GOP. When a segment holds several (a short GOP),
    the ``thumbnail`` filter keeps, out of up to ``frames`` of them, the one whose colour histogram is closest to
    their average. Only the chosen frame is scaled, then split into the two encoders. (Decoding every reference
    frame of a 1 s 720p30 segment, as this did before, cost ~2.7× the CPU for a picture from the same second.)

    Args:
        source: an absolute file holding init + segment bytes; ``None`` reads them from stdin (``pipe:0``).
        jpeg: absolute ``.jpg`` output path.
        webp: absolute ``.webp`` output path.
        width: output width in pixels (16-3840); the height keeps the aspect and is even.
        frames: ``thumbnail`` batch size in keyframes (2-1000); a segment is judged on the keyframes it has.
        jpeg_quality: ``-q:v`` of the JPEG (2 best - 31 worst).
        webp_quality: libwebp ``-quality`` (0-100).
        ffmpeg_bin: the ffmpeg executable.

    Raises:
        ArgsError: an input out of range.
    """
    _integer(width, "width", 16, 3840)
    _integer(frames, "frames", 2, 1000)
    _integer(jpeg_quality, "jpeg_quality", 2, 31)
    _integer(webp_quality, "webp_quality", 0, 100)
    source_url = "pipe:0" if source is None else _path(source, "source")
    jpeg_path = _path(jpeg, "jpeg", suffixes=(".jpg", ".jpeg"))
    webp_path = _path(webp, "webp", suffixes=(".webp",))
    # Cheapest first (measured on the bench's 1 s 720p30 2.5 Mb/s segment with the static ffmpeg 7 `up` uses:
    # reference frames decoded 161 ms of CPU, the keyframe alone 58 ms, of which ~25 ms is the WebP encoder): the
    # frames between keyframes are never decoded, and only the picked frame is scaled.
    # One decoding thread: a keyframe decodes in well under its budget on one core (Lambda gives this function
    # one vCPU), and on a shared box a thumbnail never takes every core from the ingest node.
    source_options: dict[str, object] = {"threads": 1, "skip_frame": "nokey"} | (
        {"format": "mp4"} if source is None else {}
    )
    picked = (
        ffmpeg.input(source_url, **source_options)
        .video.filter("thumbnail", n=frames)
        .filter("scale", width, -2, flags="lanczos")
        .filter_multi_output("split")
    )
    single = {"format": "image2", "update": 1, "frames:v": 1}
    jpeg_out = (
        picked.stream(0)
        .filter("scale", out_range="full")
        .output(jpeg_path, **single, **JPEG_FULL_RANGE, **{"q:v": jpeg_quality})
    )
    webp_out = picked.stream(1).output(webp_path, **single, **{"c:v": "libwebp", "quality": webp_quality})
    return _compile(ffmpeg.merge_outputs(jpeg_out, webp_out), ffmpeg_bin)


def storyboard_args(
    *,
    sources: Sequence[Path],
    output_dir: Path,
    tile_width: int,
    tile_height: int,
    columns: int,
    rows: int,
    quality: int = 5,
    ffmpeg_bin: str = "ffmpeg",
) -> list[str]:
    """Storyboard sprite sheets from keyframe files (``mediakit.storyboard.keyframe_fmp4``), in one run.

    Every frame of every source, in order, is scaled into ``tile_width``×``tile_height`` keeping its aspect
    (letterboxed: epochs may differ in size), the sources are concatenated, and every ``columns``×``rows``
    frames make one sheet ``output_dir/sprite_%03d.jpg`` numbered from 0 (:func:`sprite_name`); the last sheet
    is flushed with its empty tiles black. Reproducible (module rules).

    Args:
        sources: absolute, distinct paths of the keyframe files, one per init epoch run
            (1-:data:`MAX_STORYBOARD_INPUTS`).
        output_dir: absolute folder for the sheets.
        tile_width: tile width in pixels (2-1920, even).
        tile_height: tile height in pixels (2-1920, even).
        columns: tiles per row (1-100).
        rows: rows per sheet (1-100).
        quality: ``-q:v`` of the JPEGs (2 best - 31 worst).
        ffmpeg_bin: the ffmpeg executable.

    Raises:
        ArgsError: an input out of range.
    """
    if isinstance(sources, str | Path) or not sources or len(sources) > MAX_STORYBOARD_INPUTS:
        raise ArgsError(f"sources must be a sequence of 1-{MAX_STORYBOARD_INPUTS} paths")
    paths = [_path(source, "sources[]") for source in sources]
    if len(set(paths)) != len(paths):
        raise ArgsError("sources must be distinct files")
    folder = _path(output_dir, "output_dir")
    _even_size(tile_width, "tile_width")
    _even_size(tile_height, "tile_height")
    _integer(columns, "columns", 1, 100)
    _integer(rows, "rows", 1, 100)
    _integer(quality, "quality", 2, 31)
    tiles = [
        ffmpeg.input(path, threads=1)
        .video.filter("scale", tile_width, tile_height, force_original_aspect_ratio="decrease", flags=TILE_SCALE_FLAGS)
        .filter("pad", tile_width, tile_height, "(ow-iw)/2", "(oh-ih)/2")
        .filter("setsar", 1)
        for path in paths
    ]
    joined = tiles[0] if len(tiles) == 1 else ffmpeg.concat(*tiles, v=1, a=0)
    sheets = joined.filter("tile", f"{columns}x{rows}").filter("scale", out_range="full", flags=EXACT_SCALE_FLAGS)
    stream = sheets.output(
        f"{folder}/{SPRITE_PATTERN}",
        format="image2",
        start_number=0,
        fps_mode="passthrough",  # one file per sheet: never duplicate or drop one to fit a frame rate
        **JPEG_FULL_RANGE,
        **{"q:v": quality},
        **EXACT_OUTPUT,
    )
    return _compile(stream, ffmpeg_bin)


def poster_args(
    *,
    source: Path | None,
    output: Path,
    max_width: int = 1280,
    frames: int = 10,
    quality: int = 3,
    ffmpeg_bin: str = "ffmpeg",
) -> list[str]:
    """A recording's poster: the most representative of a few candidate keyframes, as one JPEG.

    The candidates come as a keyframe file (``mediakit.storyboard.keyframe_fmp4``); the ``thumbnail`` filter
    keeps the one closest to their average histogram (not a black or fade-in frame). The poster keeps the source
    width up to ``max_width`` (never upscaled), even height. Reproducible (module rules).

    Args:
        source: absolute path of the keyframe file; ``None`` reads it from stdin (``pipe:0``).
        output: absolute ``.jpg`` path.
        max_width: widest poster in pixels (16-3840).
        frames: number of candidates (1-1000; ``thumbnail`` needs a batch of at least 2 and judges a shorter
            input on the frames it has).
        quality: ``-q:v`` of the JPEG (2 best - 31 worst).
        ffmpeg_bin: the ffmpeg executable.

    Raises:
        ArgsError: an input out of range.
    """
    _integer(max_width, "max_width", 16, 3840)
    _integer(frames, "frames", 1, 1000)
    _integer(quality, "quality", 2, 31)
    source_url = "pipe:0" if source is None else _path(source, "source")
    target = _path(output, "output", suffixes=(".jpg", ".jpeg"))
    stream = (
        ffmpeg.input(source_url, threads=1, **({"format": "mp4"} if source is None else {}))
        .video.filter("thumbnail", n=max(frames, 2))
        .filter("scale", f"min(iw,{max_width})", -2, out_range="full", flags=EXACT_SCALE_FLAGS)
        .output(
            target, format="image2", update=1, **{"frames:v": 1}, **JPEG_FULL_RANGE, **{"q:v": quality}, **EXACT_OUTPUT
        )
    )
    return _compile(stream, ffmpeg_bin)


def recording_args(
    *,
    output: Path,
    inputs: Sequence[Path] | None = None,
    ffmpeg_bin: str = "ffmpeg",
) -> list[str]:
    """An init segment followed by its media segments → one faststart MP4, streams copied.

    Args:
        output: absolute ``.mp4`` path (faststart rewrites the file, so it must be a seekable file).
        inputs: absolute paths, init first, joined with ffmpeg's ``concat:`` protocol (bounded by
            :data:`MAX_ARG_LENGTH`); ``None`` reads the concatenated bytes from stdin (``pipe:0``), which is the
            way for long broadcasts.
        ffmpeg_bin: the ffmpeg executable.

    Raises:
        ArgsError: a relative path, a path with ``|`` (the concat separator), an empty list, or too long a list.
    """
    target = _path(output, "output", suffixes=(".mp4",))
    if inputs is None:
        source = ffmpeg.input("pipe:0", format="mp4")
    else:
        if isinstance(inputs, str | Path) or not inputs:
            raise ArgsError("inputs must be a non-empty sequence of paths (init first)")
        parts = [_path(part, "inputs[]") for part in inputs]
        if any("|" in part for part in parts):
            raise ArgsError("input paths must not contain '|' (the concat: separator)")
        url = "concat:" + "|".join(parts)
        if len(url.encode()) >= MAX_ARG_LENGTH:
            raise ArgsError(f"{len(parts)} inputs make a concat: URL over {MAX_ARG_LENGTH} bytes; use stdin")
        source = ffmpeg.input(url)
    stream = source.output(target, format="mp4", c="copy", movflags="+faststart")
    return _compile(stream, ffmpeg_bin)


# ---------------------------------------------------------------------------------------------- validation


def _compile(stream: ffmpeg.nodes.OutputStream, ffmpeg_bin: str) -> list[str]:
    if not isinstance(ffmpeg_bin, str) or not ffmpeg_bin or ffmpeg_bin.startswith("-") or _bad_chars(ffmpeg_bin):
        raise ArgsError(f"ffmpeg_bin must be an executable name or path, got {ffmpeg_bin!r}")
    return stream.global_args(*GLOBAL_ARGS).compile(cmd=ffmpeg_bin, overwrite_output=True)


def _bad_chars(text: str) -> bool:
    return any(char in text for char in "\0\r\n")


def _path(value: object, name: str, *, suffixes: tuple[str, ...] = ()) -> str:
    if not isinstance(value, str | Path):
        raise ArgsError(f"{name} must be a path, got {type(value).__name__}")
    text = str(value)
    if not Path(text).is_absolute() or _bad_chars(text):
        raise ArgsError(f"{name} must be an absolute path without control characters, got {text!r}")
    if suffixes and Path(text).suffix.lower() not in suffixes:
        raise ArgsError(f"{name} must end in {' or '.join(suffixes)}, got {text!r}")
    return text


def _flag(value: object, name: str) -> None:
    if not isinstance(value, bool):
        raise ArgsError(f"{name} must be a bool, got {value!r}")


def _integer(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ArgsError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _seconds(value: object, name: str, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high or math.isinf(value):
        raise ArgsError(f"{name} must be a number of seconds in (0, {high:g}], got {value!r}")
    return float(value)


def _format(value: float) -> str:
    """A number as ffmpeg reads it back: ``1`` not ``1.0``, ``0.5``, ``2.002``."""
    return format(value, "g")


def _even_size(value: object, name: str) -> int:
    size = _integer(value, name, 2, 1920)
    if size % 2:
        raise ArgsError(f"{name} must be even (4:2:0 chroma), got {size}")
    return size
