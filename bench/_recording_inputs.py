"""Inputs of ``bench.recordings``: the live segments a broadcast of any length leaves behind, made from real media.

One short clip is encoded once with ffmpeg lavfi (640×360 30 fps H.264 High with B-frames, 1 s GOP, AAC-LC
48 kHz, as an OBS-like publisher sends it; the bitrate is scaled down so a 4-hour broadcast fits in moto and on
disk). Its FLV tags are fed through :class:`mediakit.cmaf.Segmenter` — the muxer the ingest node runs, with its
1 s segments and 0.25 s LL-HLS parts — over and over, every loop's timestamps shifted by the clip's length, so the
timeline is continuous and every segment carries real sample tables (30 video + ~47 audio samples in 4 parts).

The clip is :data:`CLIP_SECONDS` long because 8 s hold exactly 240 video frames and 375 AAC frames (1024 samples at
48 kHz): each loop keeps exactly those, so loops join without a gap and without an audio resync. The segments and
the init go to a local folder (``init_0.mp4``, ``seg_<n>.m4s``: the reference remuxes them from there) and, with
the object metadata the ingest node writes (:class:`capturestream.keys.SegmentMetadata`), into a bucket.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from capturestream import keys
from capturestream.models import MediaInfo, SessionManifestBody
from mediakit import hls
from mediakit.cmaf import InitSegment, Segment, Segmenter, flv

CLIP_SECONDS = 8
FPS = 30
AUDIO_RATE = 48_000
AAC_FRAME = 1024
VIDEO_KBPS = 400
AUDIO_KBPS = 64
#: The ingest node's segment and LL-HLS part targets (``ingest_node.sessions.broadcast``).
SEGMENT_SECONDS = 1.0
PART_SECONDS = 0.25
#: What OBS announces in ``onMetaData`` (the segmenter then knows which tracks to wait for).
METADATA = {"videocodecid": 7, "audiocodecid": 10, "width": 640, "height": 360, "framerate": FPS}
_VIDEO, _AUDIO = 9, 8


def encode_clip(path: Path, *, seconds: int = CLIP_SECONDS, video_kbps: int = VIDEO_KBPS) -> Path:
    """Encode the clip as FLV (what an RTMP publisher sends); returns ``path``.

    Raises:
        subprocess.CalledProcessError: ffmpeg failed.
    """
    ffmpeg = shutil.which("ffmpeg") or "ffmpeg"
    subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate={FPS}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={AUDIO_RATE}",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-bf", "2",
         "-g", str(FPS), "-keyint_min", str(FPS), "-sc_threshold", "0",
         "-b:v", f"{video_kbps}k", "-maxrate", f"{video_kbps * 6 // 5}k", "-bufsize", f"{video_kbps}k",
         "-c:a", "aac", "-b:a", f"{AUDIO_KBPS}k", "-f", "flv", str(path)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return path


Tag = flv.FileTag


def read_flv(path: Path) -> list[Tag]:
    """Every tag of an FLV file (:func:`mediakit.cmaf.flv.read_file`)."""
    return flv.read_file(path.read_bytes())


@dataclass(frozen=True)
class Clip:
    """The clip split for looping: sequence headers (sent once), then one loop's coded frames in tag order."""

    configs: list[Tag]
    frames: list[Tag]
    seconds: int

    @classmethod
    def from_tags(cls, tags: list[Tag], seconds: int = CLIP_SECONDS) -> Clip:
        """Keep the frames of exactly ``seconds``: video DTS below it, and as many AAC frames as fit it.

        Raises:
            ValueError: the clip is shorter than ``seconds`` or lacks a track.
        """
        media = [t for t in tags if t.kind in (_VIDEO, _AUDIO) and len(t.body) > 2]
        configs = [t for t in media if t.body[1] == 0]  # AVC / AAC packet type 0: sequence header
        frames, audio_kept = [], 0
        audio_wanted = seconds * AUDIO_RATE // AAC_FRAME
        for tag in media:
            if tag.body[1] != 1:  # configs, AVC end of sequence
                continue
            if tag.kind == _VIDEO and tag.timestamp < seconds * 1000:
                frames.append(tag)
            elif tag.kind == _AUDIO and audio_kept < audio_wanted:
                frames.append(tag)
                audio_kept += 1
        video = sum(1 for t in frames if t.kind == _VIDEO)
        if len(configs) != 2 or video != seconds * FPS or audio_kept != audio_wanted:
            raise ValueError(f"clip has {len(configs)} configs, {video} video and {audio_kept} audio frames")
        return cls(configs, frames, seconds)

    def tags(self, seconds: float) -> Iterator[tuple[int, int, bytes]]:
        """``(kind, timestamp, body)`` of a ``seconds``-long broadcast: configs, then the loops, shifted."""
        for tag in self.configs:
            yield tag.kind, tag.timestamp, tag.body
        end_ms, loop = round(seconds * 1000), 0
        while True:
            shift = loop * self.seconds * 1000
            for tag in self.frames:
                if tag.kind == _VIDEO and tag.timestamp + shift >= end_ms:
                    return
                yield tag.kind, tag.timestamp + shift, tag.body
            loop += 1


@dataclass(frozen=True)
class StoredInput:
    """One live segment as written: what its object metadata and EXTINF say."""

    sequence: int
    epoch: int
    discontinuity: bool
    program_date_time: str
    duration: float
    size: int
    parts: int


@dataclass
class Broadcast:
    """A generated broadcast on local disk."""

    folder: Path
    init: Path
    segments: list[StoredInput] = field(default_factory=list)
    video_samples: int = 0
    audio_samples: int = 0
    generate_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        """Media seconds: the sum of the segments' durations (what the VOD playlist's EXTINFs add up to)."""
        return sum(s.duration for s in self.segments)

    @property
    def bytes(self) -> int:
        """Init plus every segment."""
        return self.init.stat().st_size + sum(s.size for s in self.segments)

    def segment_path(self, sequence: int) -> Path:
        """The local file of segment ``sequence``."""
        return self.folder / f"seg_{sequence:08d}.m4s"

    def paths(self) -> list[Path]:
        """Init first, then every segment in order: the byte stream a player (or ffmpeg) reads."""
        return [self.init, *(self.segment_path(s.sequence) for s in self.segments)]


def generate(folder: Path, clip: Clip, seconds: float, anchor: datetime) -> Broadcast:
    """Feed ``seconds`` of the looped clip through the segmenter; write ``init_0.mp4`` and ``seg_<n>.m4s`` files.

    Raises:
        RuntimeError: the segmenter opened a second init epoch (the loops must join seamlessly).
    """
    folder.mkdir(parents=True, exist_ok=True)
    segmenter = Segmenter(target_duration=SEGMENT_SECONDS, part_target=PART_SECONDS, anchor=anchor)
    broadcast = Broadcast(folder=folder, init=folder / "init_0.mp4")

    def store(outputs: list[Any]) -> None:
        for output in outputs:
            if isinstance(output, InitSegment):
                if output.epoch != 0:
                    raise RuntimeError(f"the looped clip opened init epoch {output.epoch}")
                broadcast.init.write_bytes(output.data)
            elif isinstance(output, Segment):
                broadcast.segment_path(output.sequence).write_bytes(output.data)
                broadcast.segments.append(
                    StoredInput(
                        sequence=output.sequence,
                        epoch=output.epoch,
                        discontinuity=output.discontinuity,
                        program_date_time=hls.format_date_time(output.program_date_time),
                        duration=output.duration,
                        size=len(output.data),
                        parts=len(output.parts),
                    )
                )

    store(segmenter.feed_metadata(dict(METADATA)))
    for kind, timestamp, body in clip.tags(seconds):
        if kind == _VIDEO:
            store(segmenter.feed_video(timestamp, body))
            broadcast.video_samples += body[1] == 1
        else:
            store(segmenter.feed_audio(timestamp, body))
            broadcast.audio_samples += body[1] == 1
    store(segmenter.finish())
    if segmenter.timeline.resyncs or segmenter.timeline.rebases:
        raise RuntimeError(f"the loops did not join: {segmenter.timeline.resyncs} audio resyncs")
    return broadcast


def upload(s3: Any, bucket: str, playback_id: str, session_id: str, broadcast: Broadcast, workers: int = 8) -> None:
    """Store the init and every segment as the ingest node does (Content-Type, :class:`SegmentMetadata`)."""
    init_key = keys.LiveInit(playback_id=playback_id, session_id=session_id, epoch=0).key
    s3.put_object(Bucket=bucket, Key=init_key, Body=broadcast.init.read_bytes(), ContentType="video/mp4")

    def put(segment: StoredInput) -> None:
        meta = keys.SegmentMetadata(
            epoch=segment.epoch, discontinuity=segment.discontinuity, program_date_time=segment.program_date_time
        )
        key = keys.LiveSegment(playback_id=playback_id, session_id=session_id, sequence=segment.sequence).key
        body = broadcast.segment_path(segment.sequence).read_bytes()
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="video/mp4", Metadata=meta.headers())

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(put, broadcast.segments))


def put_ended(
    s3: Any, bucket: str, *, channel_id: str, playback_id: str, session_id: str, started: datetime, seconds: float
) -> str:
    """Write the session's ``ended.json`` as the node writes it; returns its key."""
    body = SessionManifestBody(
        channel_id=channel_id,
        playback_id=playback_id,
        session_id=session_id,
        started_at=started,
        ended_at=started + timedelta(seconds=seconds + 1),
        duration=seconds,
        media=MediaInfo(video_codec="avc1.64001e", audio_codec="mp4a.40.2", width=640, height=360, frame_rate=FPS),
        title="bench recording",
        revision=1,
        ingest_node="bench",
        reason="publisher stopped",
    )
    key = keys.SessionManifest(playback_id=playback_id, session_id=session_id, kind=keys.ManifestKind.ENDED).key
    s3.put_object(Bucket=bucket, Key=key, Body=body.model_dump_json().encode(), ContentType="application/json")
    return key


def sqs_event(bucket: str, key: str, message_id: str = "bench-1") -> dict[str, Any]:
    """The SQS batch Lambda hands RecordingFunction for one EventBridge "Object Created" event of ``key``."""
    detail = {"bucket": {"name": bucket}, "object": {"key": key, "size": 400}, "reason": "PutObject"}
    body = {"version": "0", "id": message_id, "detail-type": "Object Created", "source": "aws.s3",
            "account": "123456789012", "time": "2026-12-03T12:00:00Z", "region": "us-east-1",
            "resources": [f"arn:aws:s3:::{bucket}"], "detail": detail}  # fmt: skip
    record = {"messageId": message_id, "receiptHandle": "bench", "body": json.dumps(body), "attributes": {},
              "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
              "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:capturestream-RecordingQueue",
              "awsRegion": "us-east-1"}  # fmt: skip
    return {"Records": [record]}


def publisher_args(url: str, seconds: int) -> list[str]:
    """An OBS-like real-time ffmpeg publisher (``tests/e2e/test_ingest.ffmpeg_args``): 640×360 30 fps H.264 High
    with B-frames, 1 s GOP, 800 kb/s, AAC 48 kHz 128 kb/s."""
    return [
        shutil.which("ffmpeg") or "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate={FPS}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={AUDIO_RATE}",
        "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-bf", "2",
        "-g", str(FPS), "-keyint_min", str(FPS), "-sc_threshold", "0", "-b:v", "800k",
        "-c:a", "aac", "-b:a", "128k", "-f", "flv", url,
    ]  # fmt: skip
