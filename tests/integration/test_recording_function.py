"""The recording function against moto over HTTP, fed real CMAF segments (the in-process segmenter, real ffmpeg
media): MP4 + VOD playlist + images + item; idempotent; broken inputs fail loudly on the item and the message."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from capturestream import keys, recordings, table
from capturestream.models import MediaInfo, SessionManifestBody
from capturestream.settings import get_settings
from functions.recordings.recordings import handler as recording_handler
from mediakit import bmff, hls
from mediakit.cmaf import InitSegment, Segment, Segmenter
from tests.support.aws import create_media_table
from tests.unit.media.support import feed_tags, read_flv

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

BUCKET = "capturestream-media"
TABLE = "capturestream-MediaTable"
PB = "pbrecording000001"
SID = "20261203T120000Z-rec001"
CHANNEL = "chan00000001"
STARTED = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of 640×360 30 fps H.264 (1 s GOP, B-frames) + AAC 48 kHz: what OBS sends, shrunk."""
    path = tmp_path_factory.mktemp("rec") / "a.flv"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=640x360:r=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "4", "-c:v", "libx264",
         "-preset", "veryfast", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-bf", "2",
         "-c:a", "aac", "-b:a", "96k", "-f", "flv", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path


@pytest.fixture
def env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    for name, value in {"TABLE_NAME": TABLE, "MEDIA_BUCKET": BUCKET, "FFMPEG_BINARY": "ffmpeg"}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    recording_handler._clients.cache_clear()
    s3, dynamodb = boto3.client("s3"), boto3.client("dynamodb")
    s3.create_bucket(Bucket=BUCKET)
    create_media_table(dynamodb, TABLE)
    yield s3, dynamodb
    get_settings.cache_clear()
    recording_handler._clients.cache_clear()


@pytest.fixture(scope="module")
def audio_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of AAC only: a radio-style broadcast."""
    path = tmp_path_factory.mktemp("rec") / "audio.flv"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", "3", "-c:a", "aac", "-b:a", "96k", "-f", "flv", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path


def _publish(s3: Any, flv: Path, *, reconnect: bool = True) -> float:
    """Store what the ingest node would: inits and segments with their metadata; return the media seconds."""
    tags = read_flv(flv)
    segmenter = Segmenter(target_duration=1.0, part_target=0.25, anchor=STARTED)
    outputs = feed_tags(segmenter, tags)
    if reconnect:  # OBS reconnects: same broadcast, timestamps restart at 0
        outputs += segmenter.discontinuity(anchor=STARTED + timedelta(seconds=7))
        outputs += feed_tags(segmenter, tags)
    outputs += segmenter.finish()
    seconds = 0.0
    for output in outputs:
        if isinstance(output, InitSegment):
            key = keys.LiveInit(playback_id=PB, session_id=SID, epoch=output.epoch).key
            s3.put_object(Bucket=BUCKET, Key=key, Body=output.data, ContentType="video/mp4")
        elif isinstance(output, Segment):
            meta = keys.SegmentMetadata(
                epoch=output.epoch,
                discontinuity=output.discontinuity,
                program_date_time=hls.format_date_time(output.program_date_time),
            )
            key = keys.LiveSegment(playback_id=PB, session_id=SID, sequence=output.sequence).key
            s3.put_object(Bucket=BUCKET, Key=key, Body=output.data, ContentType="video/mp4", Metadata=meta.headers())
            seconds += output.duration
    return seconds


def _end(s3: Any, seconds: float) -> str:
    body = SessionManifestBody(
        channel_id=CHANNEL,
        playback_id=PB,
        session_id=SID,
        started_at=STARTED,
        ended_at=STARTED + timedelta(seconds=seconds + 3),
        duration=seconds,
        media=MediaInfo(video_codec="avc1.64001e", audio_codec="mp4a.40.2", width=640, height=360),
        title="Recording test",
        revision=3,
    )
    key = keys.SessionManifest(playback_id=PB, session_id=SID, kind="ended").key
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.model_dump_json().encode())
    return key


def _event(key: str, message_id: str = "m1") -> dict[str, Any]:
    detail = {"bucket": {"name": BUCKET}, "object": {"key": key, "size": 100}, "reason": "PutObject"}
    body = {"version": "0", "detail-type": "Object Created", "source": "aws.s3", "account": "123456789012",
            "time": "2026-12-03T12:00:10Z", "region": "us-east-1", "resources": [], "detail": detail}  # fmt: skip
    record = {"messageId": message_id, "receiptHandle": "r", "body": json.dumps(body), "attributes": {},
              "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
              "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"}  # fmt: skip
    return {"Records": [record]}


def _item(dynamodb: Any) -> dict[str, Any]:
    item = dynamodb.get_item(TableName=TABLE, Key=recordings.recording_key(SID), ConsistentRead=True)["Item"]
    return table.from_item(item)


def _ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name,codec_type", "-of", "json",
         str(path)], capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_an_ended_broadcast_becomes_a_recording(env: tuple[Any, Any], flv: Path, tmp_path: Path) -> None:
    """MP4 (faststart, H.264 + AAC, both publishes stitched, decodes silently), VOD playlist over the live
    segments with the reconnect's discontinuity, poster and storyboard, and a ready item with stats."""
    s3, dynamodb = env
    seconds = _publish(s3, flv)
    dynamodb.put_item(TableName=TABLE, Item=table.to_item({
        "pk": f"{table.CHAT_PREFIX}{SID}", "sk": table.chat_sort_key(1000, "c1"), "text": "hi"}))  # fmt: skip
    result = recording_handler.handler(_event(_end(s3, seconds)), None)
    assert result == {"batchItemFailures": []}

    item = _item(dynamodb)
    assert item["status"] == "ready", item
    assert abs(item["duration"] - seconds) < 0.2 and item["segment_count"] >= 8
    assert (item["width"], item["height"], item["video_codec"][:4], item["audio_codec"]) == (
        640,
        360,
        "avc1",
        "mp4a.40.2",
    )
    assert item["stats"]["reconnects"] == 1 and item["stats"]["chat_messages"] == 1
    assert "stream_key" not in json.dumps(item)

    mp4 = tmp_path / "r.mp4"
    mp4.write_bytes(s3.get_object(Bucket=BUCKET, Key=item["mp4_path"])["Body"].read())
    assert [ref.kind for ref in bmff.iter_boxes(mp4.read_bytes())][:3] == [b"ftyp", b"moov", b"mdat"]
    probe = _ffprobe(mp4)
    assert sorted(s["codec_name"] for s in probe["streams"]) == ["aac", "h264"]
    assert abs(float(probe["format"]["duration"]) - seconds) < 0.5
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(mp4), "-f", "null", "-"], capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert decoded.returncode == 0 and decoded.stderr.strip() == "", decoded.stderr[-2000:]

    playlist = hls.parse_media_playlist(s3.get_object(Bucket=BUCKET, Key=item["playlist_path"])["Body"].read().decode())
    assert playlist.ended and len(playlist.segments) == item["segment_count"]
    assert sum(1 for s in playlist.segments if s.discontinuity) == 1
    assert playlist.segments[0].uri == "../../../" + keys.LiveSegment(playback_id=PB, session_id=SID, sequence=0).key

    head = s3.head_object(Bucket=BUCKET, Key=item["poster_path"])
    assert head["ContentType"] == "image/jpeg"
    vtt = s3.get_object(Bucket=BUCKET, Key=item["storyboard"]["vtt_path"])["Body"].read().decode()
    assert vtt.startswith("WEBVTT") and "#xywh=" in vtt
    for path in item["storyboard"]["sprite_paths"]:
        assert s3.head_object(Bucket=BUCKET, Key=path)["ContentLength"] > 0


def test_building_twice_gives_the_same_objects_and_item(env: tuple[Any, Any], flv: Path) -> None:
    """A duplicate ended.json (or the reaper and the node both ending it) changes nothing; a forced rebuild
    (fingerprint cleared) writes byte-identical objects."""
    s3, dynamodb = env
    key = _end(s3, _publish(s3, flv, reconnect=False))
    assert recording_handler.handler(_event(key), None) == {"batchItemFailures": []}
    first = _item(dynamodb)
    paths = [first["mp4_path"], first["playlist_path"], first["poster_path"], first["storyboard"]["vtt_path"],
             *first["storyboard"]["sprite_paths"]]  # fmt: skip
    before = {p: s3.get_object(Bucket=BUCKET, Key=p)["Body"].read() for p in paths}
    assert recording_handler.handler(_event(key, "m2"), None) == {"batchItemFailures": []}
    assert _item(dynamodb) == first
    dynamodb.update_item(TableName=TABLE, Key=recordings.recording_key(SID), UpdateExpression="REMOVE #s",
                         ExpressionAttributeNames={"#s": "source"})  # fmt: skip
    assert recording_handler.handler(_event(key, "m3"), None) == {"batchItemFailures": []}
    assert _item(dynamodb) == first
    assert {p: s3.get_object(Bucket=BUCKET, Key=p)["Body"].read() for p in paths} == before


def test_a_missing_segment_fails_the_build_loudly(env: tuple[Any, Any], flv: Path) -> None:
    """A gap is a failed item naming the segment and a failed message (→ retries → DLQ), not a short VOD."""
    s3, dynamodb = env
    key = _end(s3, _publish(s3, flv, reconnect=False))
    s3.delete_object(Bucket=BUCKET, Key=keys.LiveSegment(playback_id=PB, session_id=SID, sequence=2).key)
    assert recording_handler.handler(_event(key), None) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    item = _item(dynamodb)
    assert item["status"] == "failed" and "[2]" in item["error"], item
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=keys.VOD_PREFIX).get("Contents", [])
    assert listed == []


def test_a_corrupt_segment_fails_the_build_loudly(env: tuple[Any, Any], flv: Path) -> None:
    s3, dynamodb = env
    key = _end(s3, _publish(s3, flv, reconnect=False))
    segment = keys.LiveSegment(playback_id=PB, session_id=SID, sequence=1).key
    s3.put_object(Bucket=BUCKET, Key=segment, Body=b"\x00\x00\x01\x00moof" + b"garbage" * 10)
    assert recording_handler.handler(_event(key), None) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    item = _item(dynamodb)
    assert item["status"] == "failed" and segment in item["error"], item


def test_a_deleted_recording_is_not_rebuilt(env: tuple[Any, Any], flv: Path) -> None:
    s3, dynamodb = env
    key = _end(s3, _publish(s3, flv, reconnect=False))
    recording = recordings.Recording(
        recording_id=SID, playback_id=PB, channel_id=CHANNEL, started_at=STARTED, status="ready"
    )
    dynamodb.put_item(TableName=TABLE, Item=recordings.tombstone_item(recording, datetime.now(UTC)))
    assert recording_handler.handler(_event(key), None) == {"batchItemFailures": []}
    assert _item(dynamodb)["status"] == "deleted"
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=keys.VOD_PREFIX).get("KeyCount", 0) == 0


def test_an_audio_only_broadcast_is_recorded_without_pictures(env: tuple[Any, Any], audio_flv: Path) -> None:
    s3, dynamodb = env
    key = _end(s3, _publish(s3, audio_flv, reconnect=False))
    assert recording_handler.handler(_event(key), None) == {"batchItemFailures": []}
    item = _item(dynamodb)
    assert item["status"] == "ready" and "poster_path" not in item and "storyboard" not in item, item
    assert item["audio_codec"] == "mp4a.40.2" and "video_codec" not in item
    assert abs(item["duration"] - 3.0) < 0.2


class _Context:
    """A Lambda context with 60 s left for the first ``checks`` reads of the time, then 1 s (under the reserve)."""

    def __init__(self, checks: int) -> None:
        self.checks = checks
        self.lock = threading.Lock()

    def get_remaining_time_in_millis(self) -> int:
        with self.lock:
            self.checks -= 1
            return 60_000 if self.checks >= 0 else 1_000


@pytest.mark.parametrize("after_scan", [False, True], ids=["before the scan", "during the MP4 upload"])
def test_a_build_out_of_time_stops_and_is_retried(
    env: tuple[Any, Any], flv: Path, after_scan: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Short of time (a Lambda deadline, or `up` stopping: the local runtime leaves an abandoned invocation no
    time) the build stops at its next read: the multipart upload is aborted, no item says failed, the message is
    retried, and the retry builds the recording."""
    s3, dynamodb = env
    seconds = _publish(s3, flv, reconnect=False)
    segments = s3.list_objects_v2(Bucket=BUCKET, Prefix=keys.LIVE_PREFIX)["KeyCount"] - 1  # less the init
    key = _end(s3, seconds)
    # after the scan: one look per segment scanned, one as the MP4 starts, one for its first read; then short
    result = recording_handler.handler(_event(key), _Context(segments + 2 if after_scan else 0))
    assert result == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    (warning,) = [
        r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "out of time" in r.getMessage()
    ]
    assert ("reading segment" in warning) if after_scan else ("scanning" in warning), warning
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=keys.VOD_PREFIX).get("KeyCount", 0) == 0
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    stored = dynamodb.get_item(TableName=TABLE, Key=recordings.recording_key(SID), ConsistentRead=True).get("Item")
    assert stored is None or table.from_item(stored)["status"] == "building"
    assert recording_handler.handler(_event(key, "m2"), None) == {"batchItemFailures": []}
    assert _item(dynamodb)["status"] == "ready"
