"""The recording function's image step on moto: poster, sprite sheets and WebVTT from ranged keyframe reads of real
CMAF segments (the in-process segmenter over the media fixtures), across init epochs, byte-identical on a rerun."""

from __future__ import annotations

import json
import posixpath
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest

from capturestream import keys
from capturestream.recordings import Storyboard
from functions.recordings.recordings.images import CACHE_CONTROL, NoVideo, build_images
from mediakit import bmff
from mediakit.cmaf import InitSegment, Output, Segment, Segmenter
from mediakit.stored import StoredSegment
from tests.unit.media.conftest import flv_720p30, flv_audio, flv_video, media_dir  # noqa: F401  (session fixtures)
from tests.unit.media.support import feed_tags, read_flv

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="ffmpeg")

BUCKET = "capturestream-media"
PB, SID = "pbimages000001", "20261203T120000Z-img001"
CUE = re.compile(
    r"(\d+):(\d{2}):(\d{2})\.(\d{3}) --> (\d+):(\d{2}):(\d{2})\.(\d{3})\n([^#\n]+)#xywh=(\d+),(\d+),(\d+),(\d+)"
)


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def publish(s3: Any, outputs: list[Output]) -> tuple[dict[int, bytes], list[StoredSegment], float]:
    """Store inits and segments as the node does; describe the segments as the recording function's scan does."""
    inits: dict[int, bytes] = {}
    segments: list[StoredSegment] = []
    duration = 0.0
    for output in outputs:
        if isinstance(output, InitSegment):
            inits[output.epoch] = output.data
            key = keys.LiveInit(playback_id=PB, session_id=SID, epoch=output.epoch).key
            s3.put_object(Bucket=BUCKET, Key=key, Body=output.data)
        elif isinstance(output, Segment):
            meta = keys.SegmentMetadata(epoch=output.epoch, discontinuity=output.discontinuity)
            key = keys.LiveSegment(playback_id=PB, session_id=SID, sequence=output.sequence).key
            s3.put_object(Bucket=BUCKET, Key=key, Body=output.data, Metadata=meta.headers())
            defaults = {tid: track.defaults for tid, track in bmff.read_init(inits[output.epoch]).items()}
            fragments = tuple(bmff.read_fragments(output.data, defaults=defaults))
            segments.append(
                StoredSegment(
                    sequence=output.sequence,
                    epoch=output.epoch,
                    discontinuity=output.discontinuity,
                    size=len(output.data),
                    fragments=fragments,
                )
            )
            duration += output.duration
    return inits, segments, duration


def mux(*flvs: Path) -> list[Output]:
    """One broadcast: each FLV after the first comes as a publisher reconnect (a new epoch if its codec differs)."""
    segmenter = Segmenter(target_duration=1.0, part_target=None)
    outputs: list[Output] = []
    for number, flv in enumerate(flvs):
        outputs += (segmenter.discontinuity() if number else []) + feed_tags(segmenter, read_flv(flv))
    return outputs + segmenter.finish()


def build(s3: Any, inits: dict[int, bytes], segments: list[StoredSegment], duration: float) -> tuple[str, Storyboard]:
    return build_images(
        s3=s3, bucket=BUCKET, playback_id=PB, session_id=SID, inits=inits, segments=segments, duration=duration
    )


def read(s3: Any, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def probe(data: bytes, tmp_path: Path) -> tuple[str, int, int]:
    path = tmp_path / "probe.jpg"
    path.write_bytes(data)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        text=True,
    )
    (picture,) = json.loads(out.stdout)["streams"]
    return picture["codec_name"], picture["width"], picture["height"]


def cues(text: str) -> list[tuple[int, int, str, tuple[int, int, int, int]]]:
    """``(start ms, end ms, sprite URI, xywh)`` of every cue; the text must be nothing but the header and cues."""
    assert text.startswith("WEBVTT\n\n")
    found = []
    for match in CUE.finditer(text):
        h1, m1, s1, f1, h2, m2, s2, f2 = (int(v) for v in match.groups()[:8])
        found.append(
            (
                ((h1 * 60 + m1) * 60 + s1) * 1000 + f1,
                ((h2 * 60 + m2) * 60 + s2) * 1000 + f2,
                match[9],
                tuple(int(v) for v in match.groups()[9:]),
            )
        )
    assert CUE.sub("", text).strip() == "WEBVTT"
    return found


def check_storyboard(s3: Any, board: Storyboard, duration: float, tmp_path: Path) -> None:
    """Every cue names a stored sprite (relative to the VTT), lies inside it, and the cues tile [0, duration]."""
    listed = cues(read(s3, board.vtt_path).decode())
    assert len(listed) == board.tiles
    assert listed[0][0] == 0 and listed[-1][1] == round(duration * 1000)
    assert all(a[1] == b[0] for a, b in zip(listed, listed[1:], strict=False))
    folder = posixpath.dirname(board.vtt_path)
    sizes = {}
    for key in board.sprite_paths:
        codec, width, height = probe(read(s3, key), tmp_path)
        assert (codec, width, height) == ("mjpeg", board.columns * board.tile_width, board.rows * board.tile_height)
        sizes[key] = (width, height)
    for _, _, uri, (x, y, w, h) in listed:
        key = posixpath.normpath(posixpath.join(folder, uri))
        assert key in sizes
        assert (w, h) == (board.tile_width, board.tile_height)
        assert x + w <= sizes[key][0] and y + h <= sizes[key][1]


def test_poster_sprites_and_vtt_are_stored_and_reproducible(s3: Any, flv_720p30: Path, tmp_path: Path) -> None:  # noqa: F811
    """6 s of 720p: a 1280 px poster, one 6×1 sheet of 160×90 tiles every second, a VTT naming it; a rebuild
    stores byte-identical objects."""
    inits, segments, duration = publish(s3, mux(flv_720p30))
    poster, board = build(s3, inits, segments, duration)
    assert poster == keys.SessionImage(playback_id=PB, session_id=SID, kind="poster.jpg").key
    assert board.vtt_path == keys.SessionImage(playback_id=PB, session_id=SID, kind="storyboard.vtt").key
    assert board.sprite_paths == [keys.StoryboardSprite(playback_id=PB, session_id=SID, index=0).key]
    assert (board.interval, board.tiles, board.columns, board.rows) == (1, 6, 6, 1)
    assert (board.tile_width, board.tile_height) == (160, 90)
    assert probe(read(s3, poster), tmp_path) == ("mjpeg", 1280, 720)
    check_storyboard(s3, board, duration, tmp_path)
    for key, content_type in (
        (poster, "image/jpeg"),
        (board.sprite_paths[0], "image/jpeg"),
        (board.vtt_path, "text/vtt"),
    ):
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert (head["ContentType"], head["CacheControl"]) == (content_type, CACHE_CONTROL)
    first = {key: read(s3, key) for key in (poster, board.vtt_path, *board.sprite_paths)}
    for key in first:
        s3.delete_object(Bucket=BUCKET, Key=key)
    assert build(s3, inits, segments, duration) == (poster, board)
    assert {key: read(s3, key) for key in first} == first


def test_epochs_of_different_sizes_share_one_storyboard(
    s3: Any,
    flv_720p30: Path,  # noqa: F811
    flv_video: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """720p, then a reconnect at 640×360 without audio (epoch 1), then 720p again (epoch 2): one storyboard
    over all of them, tiles of one size; the poster comes from the epoch holding most candidates."""
    outputs = mux(flv_720p30, flv_video, flv_720p30)
    inits, segments, duration = publish(s3, outputs)
    assert sorted(inits) == [0, 1, 2] and {s.epoch for s in segments} == {0, 1, 2}
    poster, board = build(s3, inits, segments, duration)
    assert board.tiles == len(segments) == 15
    assert (board.columns, board.rows, len(board.sprite_paths)) == (10, 2, 1)
    check_storyboard(s3, board, duration, tmp_path)
    assert probe(read(s3, poster), tmp_path)[1:] in {(1280, 720), (640, 360)}


def test_audio_only_broadcast_has_no_images(s3: Any, flv_audio: Path) -> None:  # noqa: F811
    """Nothing to picture: NoVideo, and nothing stored."""
    inits, segments, duration = publish(s3, mux(flv_audio))
    with pytest.raises(NoVideo):
        build(s3, inits, segments, duration)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=keys.session_prefix(keys.THUMBS_PREFIX, PB, SID))
    assert listed.get("Contents", []) == []
