"""Test-only helpers: a tiny FLV file reader (+ AMF0 for onMetaData), an ISO BMFF box reader, a mini MP4 demuxer,
and ffmpeg/ffprobe runners. None of this is product code; the product never reads files.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mediakit import bmff
from mediakit.cmaf import InitSegment, Output, Part, Segment, Segmenter, flv
from mediakit.hls import MediaPlaylist

# avcC records written by ffmpeg/x264 for the session fixtures (a), (b) and (d).
AVCC_720P_HIGH = bytes.fromhex(
    "0164001fffe1001a6764001facd9405005bb0110000003001000000303c0f183196001000468efbcb0fdf8f800"
)
AVCC_1080P_HIGH = bytes.fromhex(
    "0164002affe1001b6764002aacd940780227e5c044000003000400000301e03c60c65801000468efbcb0fdf8f800"
)
AVCC_360P_MAIN = bytes.fromhex("014d401effe10018674d401eeca05017fcb808800000030080000019078b16cb01000468ef8fc8")
# av1C written by ffmpeg for SVT-AV1 320x240 (fixture f): seq_profile 0, level 0, 8-bit, sequence header OBU.
AV1C_240P = bytes.fromhex("81000c000a0b000000043cffbc02f80040")

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")

# ---------------------------------------------------------------------------------------------- FLV files


Tag = flv.FileTag


def read_flv(path: Path) -> list[Tag]:
    """All tags of an FLV file (:func:`mediakit.cmaf.flv.read_file`)."""
    return flv.read_file(path.read_bytes())


def amf0_metadata(body: bytes) -> dict[str, Any]:
    """Decode a script tag ``"onMetaData", {ECMA array}`` (AMF0: number, bool, string, object, ECMA array)."""
    name, pos = _amf0_value(body, 0)
    assert name == "onMetaData"
    value, _ = _amf0_value(body, pos)
    return value


def _amf0_value(data: bytes, pos: int) -> tuple[Any, int]:
    marker = data[pos]
    pos += 1
    if marker == 0:
        return struct.unpack_from(">d", data, pos)[0], pos + 8
    if marker == 1:
        return data[pos] != 0, pos + 1
    if marker == 2:
        size = int.from_bytes(data[pos : pos + 2], "big")
        return data[pos + 2 : pos + 2 + size].decode(), pos + 2 + size
    if marker in (3, 8):
        pos += 4 if marker == 8 else 0
        result = {}
        while True:
            size = int.from_bytes(data[pos : pos + 2], "big")
            if size == 0 and data[pos + 2] == 9:
                return result, pos + 3
            key = data[pos + 2 : pos + 2 + size].decode()
            result[key], pos = _amf0_value(data, pos + 2 + size)
    raise AssertionError(f"AMF0 marker {marker} not supported by the test reader")


async def publish(target: Any, tags: list[Tag]) -> None:
    """Feed FLV tags to anything shaped like ``Broadcast`` (as its RTMP publisher would)."""
    for tag in tags:
        if tag.kind == 18:
            await target.on_metadata(amf0_metadata(tag.body))
        elif tag.kind == 9:
            await target.on_video(tag.timestamp, tag.body)
        elif tag.kind == 8:
            await target.on_audio(tag.timestamp, tag.body)


def feed_tags(segmenter: Segmenter, tags: list[Tag], *, offset_ms: int = 0) -> list[Output]:
    """Feed FLV tags as RTMP messages would arrive (timestamps shifted by ``offset_ms``)."""
    outputs: list[Output] = []
    for tag in tags:
        if tag.kind == 9:
            outputs += segmenter.feed_video(tag.timestamp + offset_ms, tag.body)
        elif tag.kind == 8:
            outputs += segmenter.feed_audio(tag.timestamp + offset_ms, tag.body)
        elif tag.kind == 18:
            outputs += segmenter.feed_metadata(amf0_metadata(tag.body))
    return outputs


# ---------------------------------------------------------------------------------------------- boxes

CONTAINERS = bmff.CONTAINERS


@dataclass
class Box:
    """A parsed box: type, payload (after the header) and children for container types."""

    kind: bytes
    payload: bytes
    children: list[Box] = field(default_factory=list)

    def find(self, *path: bytes) -> Box:
        """The first descendant along ``path`` (e.g. ``find(b"trak", b"mdia", b"mdhd")``)."""
        found = self.find_all(*path)
        assert found, f"no box {path}"
        return found[0]

    def find_all(self, *path: bytes) -> list[Box]:
        """Every descendant along ``path``."""
        boxes = [self]
        for kind in path:
            boxes = [child for box in boxes for child in box.children if child.kind == kind]
        return boxes


def parse_boxes(data: bytes) -> list[Box]:
    """Parse a byte string into top-level boxes (recursing into known containers); sizes must add up exactly."""
    found = []
    for ref in bmff.iter_boxes(data):
        payload = bytes(data[ref.payload : ref.end])
        found.append(Box(ref.kind, payload, parse_boxes(payload) if ref.kind in CONTAINERS else []))
    return found


def root(data: bytes) -> Box:
    """A synthetic root box around the top-level boxes of ``data``."""
    return Box(b"root", data, parse_boxes(data))


@dataclass
class Run:
    """One traf decoded: track, tfdt, per-sample (duration, size, flags, cto), and the sample bytes."""

    track_id: int
    base_time: int
    durations: list[int]
    sizes: list[int]
    flags: list[int]
    offsets: list[int]
    samples: list[bytes]


def _run(run: bmff.TrackRun, data: bytes) -> Run:
    assert run.base_time is not None, "every traf must carry a tfdt"
    return Run(
        track_id=run.track_id,
        base_time=run.base_time,
        durations=run.durations,
        sizes=run.sizes,
        flags=run.flags,
        offsets=run.composition_offsets,
        samples=bmff.sample_bytes(data, run),
    )


def read_fragment(moof: Box, fragment: bytes, moof_start: int) -> list[Run]:
    """Decode every traf of the ``moof`` at ``moof_start`` of ``fragment`` and slice its samples."""
    ref = next(r for r in bmff.iter_boxes(fragment) if r.start == moof_start)
    assert ref.kind == moof.kind == b"moof"
    return [_run(run, fragment) for run in bmff.read_moof(fragment, ref)]


def segment_runs(segment: bytes) -> list[Run]:
    """Every traf run of a segment (styp + one or more moof/mdat), in order."""
    return [_run(run, segment) for fragment in bmff.read_fragments(segment) for run in fragment.runs]


def timescales(init: bytes) -> dict[int, int]:
    """track_ID → mdhd timescale, from an init segment."""
    return {track_id: track.timescale for track_id, track in bmff.read_init(init).items()}


# ---------------------------------------------------------------------------------------------- MP4 demuxer


@dataclass
class Mp4Sample:
    """One sample of a progressive MP4 track, times in milliseconds."""

    dts_ms: int
    cts_ms: int
    keyframe: bool
    data: bytes


def mp4_video_track(path: Path) -> tuple[bytes, bytes, list[Mp4Sample]]:
    """The first video track of a progressive MP4: ``(sample entry type, config record, samples)``."""
    data = path.read_bytes()
    moov = root(data).find(b"moov")
    trak = next(t for t in moov.find_all(b"trak") if t.find(b"mdia", b"hdlr").payload[8:12] == b"vide")
    timescale = int.from_bytes(trak.find(b"mdia", b"mdhd").payload[12:16], "big")
    stbl = trak.find(b"mdia", b"minf", b"stbl")
    stsd = stbl.find(b"stsd").payload
    entry_type, entry = stsd[12:16], stsd[16 : 8 + int.from_bytes(stsd[8:12], "big")]
    config = parse_boxes(entry[78:])[0].payload  # VisualSampleEntry fields are 78 bytes
    table = {box.kind: box.payload for box in stbl.children}
    sizes = _uints(table[b"stsz"][12:]) if int.from_bytes(table[b"stsz"][4:8], "big") == 0 else []
    deltas = [delta for count, delta in _pairs(table[b"stts"][8:]) for _ in range(count)]
    ctts = (
        [off for count, off in _pairs(table[b"ctts"][8:], signed=True) for _ in range(count)]
        if b"ctts" in table
        else []
    )
    sync = set(_uints(table[b"stss"][8:])) if b"stss" in table else None
    chunk_offsets = _uints(table[b"stco"][8:]) if b"stco" in table else list(_u64s(table[b"co64"][8:]))
    stsc = [
        struct.unpack_from(">III", table[b"stsc"], 8 + 12 * i)
        for i in range(int.from_bytes(table[b"stsc"][4:8], "big"))
    ]
    samples, index, dts = [], 0, 0
    for chunk, offset in enumerate(chunk_offsets, 1):
        per_chunk = next(n for first, n, _ in reversed(stsc) if first <= chunk)
        for _ in range(per_chunk):
            size = sizes[index]
            cto = ctts[index] if ctts else 0
            samples.append(
                Mp4Sample(
                    dts_ms=round(dts * 1000 / timescale),
                    cts_ms=round((dts + cto) * 1000 / timescale) - round(dts * 1000 / timescale),
                    keyframe=sync is None or index + 1 in sync,
                    data=data[offset : offset + size],
                )
            )
            offset += size
            dts += deltas[index]
            index += 1
    return entry_type, config, samples


def _uints(data: bytes) -> list[int]:
    return list(struct.unpack(f">{len(data) // 4}I", data[: len(data) // 4 * 4]))


def _u64s(data: bytes) -> Iterator[int]:
    return iter(struct.unpack(f">{len(data) // 8}Q", data))


def _pairs(data: bytes, *, signed: bool = False) -> list[tuple[int, int]]:
    count = len(data) // 8
    return list(
        zip(*[iter(struct.unpack(f">{count * 2}{'i' if signed else 'I'}", data[: count * 8]))] * 2, strict=False)
    )


def enhanced_video_tags(fourcc: bytes, config: bytes, samples: list[Mp4Sample]) -> list[Tag]:
    """Enhanced RTMP video tag bodies: SequenceStart, then CodedFrames (CodedFramesX when the offset is 0)."""
    tags = [Tag(9, 0, bytes([0x80 | 0x10 | 0]) + fourcc + config)]
    with_cts = fourcc in (b"hvc1", b"avc1")
    for sample in samples:
        frame_type = 0x10 if sample.keyframe else 0x20
        if with_cts and sample.cts_ms:
            body = bytes([0x80 | frame_type | 1]) + fourcc + sample.cts_ms.to_bytes(3, "big", signed=True) + sample.data
        else:
            body = bytes([0x80 | frame_type | 3]) + fourcc + sample.data
        tags.append(Tag(9, sample.dts_ms, body))
    return tags


# ---------------------------------------------------------------------------------------------- output on disk


@dataclass
class Written:
    """Outputs written as an HLS folder: ``index.m3u8``, ``init_<epoch>.mp4``, ``seg_<n>.m4s``, parts."""

    folder: Path
    inits: list[InitSegment]
    segments: list[Segment]
    parts: list[Part]
    playlist: str


def write_hls(outputs: list[Output], folder: Path, *, part_target: float | None = None) -> Written:
    """Write outputs and a complete (ENDLIST, no window) playlist, as the session layer would."""
    folder.mkdir(parents=True, exist_ok=True)
    playlist = MediaPlaylist(target_duration=1.0, window=None, part_target=part_target)
    inits, segments, parts = [], [], []
    for output in outputs:
        if isinstance(output, InitSegment):
            (folder / f"init_{output.epoch}.mp4").write_bytes(output.data)
            playlist.add_init(output)
            inits.append(output)
        elif isinstance(output, Part):
            name = f"seg_{output.sequence:05d}.p{output.index}.m4s"
            (folder / name).write_bytes(output.data)
            playlist.add_part(output, name)
            parts.append(output)
        elif isinstance(output, Segment):
            name = f"seg_{output.sequence:05d}.m4s"
            (folder / name).write_bytes(output.data)
            playlist.add_segment(output, name, f"init_{output.epoch}.mp4")
            segments.append(output)
    text = playlist.render(ended=True)
    (folder / "index.m3u8").write_text(text)
    return Written(folder, inits, segments, parts, text)


# ---------------------------------------------------------------------------------------------- ffmpeg


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def ffprobe_streams(path: Path, *, count_frames: bool = False) -> list[dict[str, Any]]:
    """``ffprobe -show_streams`` as JSON (``nb_read_frames`` with ``count_frames``)."""
    argv = [FFPROBE or "ffprobe", "-v", "error", "-of", "json", "-show_streams"]
    if count_frames:
        argv.append("-count_frames")
    result = run([*argv, str(path)])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["streams"]
