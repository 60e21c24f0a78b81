"""Live thumbnail function on moto: real CMAF segments (the in-process segmenter over the 720p30 fixture) in,
a JPEG and a WebP of 640 px out, the stream item pointed at them only for its current session and newest segment,
partial batch failures for segments ffmpeg cannot decode, and work that fits the invocation's time: ffmpeg is
killed when the time runs out (a Lambda timeout, or ``up`` stopping) and the batch is done, not redone."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from capturestream import keys, table
from capturestream.settings import get_settings
from devstack.lambda_runtime import LocalFunction
from functions.thumbnails.thumbnails import handler as thumbnail_handler
from functions.thumbnails.thumbnails import live, render
from mediakit.cmaf import InitSegment, Segment, Segmenter
from tests.support.aws import create_media_table
from tests.unit.media.conftest import flv_720p30, flv_audio, media_dir  # noqa: F401  (session fixtures)
from tests.unit.media.support import feed_tags, read_flv

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="ffmpeg")

BUCKET = "capturestream-media"
TABLE = "capturestream-MediaTable"
PB, SID, OLD_SID = "pbthumbs000001", "20261203T120000Z-th0001", "20261203T110000Z-th0000"


@pytest.fixture(scope="module")
def muxed(flv_720p30: Path) -> tuple[bytes, list[bytes]]:  # noqa: F811
    """Init and six 1 s segments of 1280×720 30 fps H.264 + AAC, as the ingest node stores them."""
    segmenter = Segmenter(target_duration=1.0, part_target=None)
    outputs = feed_tags(segmenter, read_flv(flv_720p30)) + segmenter.finish()
    (init,) = [o.data for o in outputs if isinstance(o, InitSegment)]
    return init, [o.data for o in outputs if isinstance(o, Segment)]


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Bucket and table on a fresh moto; the function's settings and warm-start caches reset."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    for name, value in {"TABLE_NAME": TABLE, "MEDIA_BUCKET": BUCKET, "FFMPEG_BINARY": "ffmpeg"}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    thumbnail_handler._clients.cache_clear()
    live.INITS.clear()
    s3, dynamodb = boto3.client("s3"), boto3.client("dynamodb")
    s3.create_bucket(Bucket=BUCKET)
    create_media_table(dynamodb, TABLE)
    yield s3, dynamodb
    get_settings.cache_clear()
    thumbnail_handler._clients.cache_clear()
    live.INITS.clear()


def store(s3: Any, muxed: tuple[bytes, list[bytes]], session_id: str = SID, *, epoch: int | None = 0) -> None:
    """Init and segments as the node uploads them (segments with their metadata unless ``epoch`` is None)."""
    init, segments = muxed
    s3.put_object(Bucket=BUCKET, Key=keys.LiveInit(playback_id=PB, session_id=session_id, epoch=0).key, Body=init)
    for sequence, data in enumerate(segments):
        key = keys.LiveSegment(playback_id=PB, session_id=session_id, sequence=sequence).key
        meta = {} if epoch is None else keys.SegmentMetadata(epoch=epoch).headers()
        s3.put_object(Bucket=BUCKET, Key=key, Body=data, Metadata=meta)


def put_stream(dynamodb: Any, session_id: str = SID, **extra: Any) -> None:
    """The stream item the catalog keeps for the channel (only what the thumbnail condition reads)."""
    attributes = {"entity": "stream", "playback_id": PB, "session_id": session_id, "status": "live", **extra}
    dynamodb.put_item(TableName=TABLE, Item={**table.stream_key(PB), **table.to_item(attributes)})


def stream(dynamodb: Any) -> dict[str, Any]:
    return table.from_item(dynamodb.get_item(TableName=TABLE, Key=table.stream_key(PB))["Item"])


def sqs_event(*segments: tuple[str, int] | tuple[str, int, str]) -> dict[str, Any]:
    """SQS records wrapping EventBridge ``Object Created`` events: ``(message id, sequence[, session id])``."""
    records = []
    for message_id, sequence, *session in segments:
        key = keys.LiveSegment(playback_id=PB, session_id=session[0] if session else SID, sequence=sequence).key
        body = {
            "version": "0",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": "123456789012",
            "time": "2026-12-03T12:00:05Z",
            "region": "us-east-1",
            "resources": [f"arn:aws:s3:::{BUCKET}"],
            "detail": {"bucket": {"name": BUCKET}, "object": {"key": key, "size": 1}, "reason": "PutObject"},
        }
        records.append({"messageId": message_id, "body": json.dumps(body), "eventSource": "aws:sqs"})
    return {"Records": records}


def thumb(sequence: int, image_format: str = "jpg", session_id: str = SID) -> str:
    return keys.LiveThumbnail(playback_id=PB, session_id=session_id, sequence=sequence, image_format=image_format).key


def probe(s3: Any, key: str, tmp_path: Path) -> tuple[str, int, int]:
    """``(codec, width, height)`` of a stored image, by ffprobe."""
    path = tmp_path / key.replace("/", "_")
    path.write_bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        text=True,
    )
    (picture,) = json.loads(out.stdout)["streams"]
    return picture["codec_name"], picture["width"], picture["height"]


def stored(s3: Any, session_id: str = SID) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=keys.session_prefix(keys.THUMBS_PREFIX, PB, session_id))
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_newest_segment_becomes_the_streams_thumbnail(aws: Any, muxed: Any, tmp_path: Path) -> None:
    """One ffmpeg run for the batch's newest segment: a 640×360 JPEG and WebP, immutable, and the item names them."""
    s3, dynamodb = aws
    store(s3, muxed)
    put_stream(dynamodb)
    assert thumbnail_handler.handler(sqs_event(("m0", 0), ("m5", 5)), None) == {"batchItemFailures": []}
    assert stored(s3) == [thumb(5), thumb(5, "webp")]
    assert probe(s3, thumb(5), tmp_path) == ("mjpeg", 640, 360)
    assert probe(s3, thumb(5, "webp"), tmp_path) == ("webp", 640, 360)
    for key, content_type in ((thumb(5), "image/jpeg"), (thumb(5, "webp"), "image/webp")):
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert (head["ContentType"], head["CacheControl"]) == (content_type, "public, max-age=31536000, immutable")
    item = stream(dynamodb)
    assert (item["thumbnail_path"], item["thumbnail_webp_path"]) == (thumb(5), thumb(5, "webp"))
    assert (item["thumbnail_sequence"], item["thumbnail_session_id"]) == (5, SID)


def test_only_the_streams_current_session_gets_the_thumbnail(aws: Any, muxed: Any) -> None:
    """A segment of another (older) broadcast is cut but never shown on the stream item; not an error."""
    s3, dynamodb = aws
    store(s3, muxed, OLD_SID)
    put_stream(dynamodb)
    assert thumbnail_handler.handler(sqs_event(("m5", 5, OLD_SID)), None) == {"batchItemFailures": []}
    assert "thumbnail_path" not in stream(dynamodb)
    dynamodb.delete_item(TableName=TABLE, Key=table.stream_key(PB))  # no stream item at all: nothing to point
    assert thumbnail_handler.handler(sqs_event(("m4", 4, OLD_SID)), None) == {"batchItemFailures": []}


def test_an_older_segment_never_replaces_a_newer_thumbnail(aws: Any, muxed: Any) -> None:
    """Late delivery: segment 5 first, then 0 and a redelivered 5; the item keeps segment 5's thumbnail."""
    s3, dynamodb = aws
    store(s3, muxed)
    put_stream(dynamodb)
    assert thumbnail_handler.handler(sqs_event(("m5", 5)), None) == {"batchItemFailures": []}
    assert thumbnail_handler.handler(sqs_event(("m0", 0)), None) == {"batchItemFailures": []}
    assert thumbnail_handler.handler(sqs_event(("m5b", 5)), None) == {"batchItemFailures": []}
    assert stream(dynamodb)["thumbnail_path"] == thumb(5)


def test_a_new_broadcast_replaces_the_last_ones_thumbnail(aws: Any, muxed: Any) -> None:
    """Sequence numbers restart with each session: segment 0 of the new one wins over segment 5 of the old."""
    s3, dynamodb = aws
    store(s3, muxed)
    put_stream(
        dynamodb, thumbnail_path=thumb(5, session_id=OLD_SID), thumbnail_sequence=5, thumbnail_session_id=OLD_SID
    )
    assert thumbnail_handler.handler(sqs_event(("m0", 0)), None) == {"batchItemFailures": []}
    assert (stream(dynamodb)["thumbnail_path"], stream(dynamodb)["thumbnail_sequence"]) == (thumb(0), 0)


def test_a_corrupt_segment_fails_only_its_own_message(aws: Any, muxed: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Another session's corrupt segment fails its message (→ DLQ after retries) with one clear log line; a
    corrupt newest segment of a session falls back to the next newest, whose message succeeds."""
    s3, dynamodb = aws
    store(s3, muxed)
    store(s3, muxed, OLD_SID)
    put_stream(dynamodb)
    garbage = b"\x00\x00\x00\x10moof" + bytes(range(256)) * 8
    for session_id, sequence in ((OLD_SID, 10), (SID, 10)):
        key = keys.LiveSegment(playback_id=PB, session_id=session_id, sequence=sequence).key
        s3.put_object(Bucket=BUCKET, Key=key, Body=garbage, Metadata=keys.SegmentMetadata(epoch=0).headers())
    event = sqs_event(("bad-old", 10, OLD_SID), ("good", 5), ("bad-new", 10))
    assert thumbnail_handler.handler(event, None) == {
        "batchItemFailures": [{"itemIdentifier": "bad-new"}, {"itemIdentifier": "bad-old"}]
    }
    assert stream(dynamodb)["thumbnail_path"] == thumb(5)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2
    assert all("cannot be decoded" in r.getMessage() and "DLQ" in r.getMessage() for r in errors)


def test_segments_without_metadata_use_epoch_0_and_inits_are_cached(aws: Any, muxed: Any) -> None:
    """No object metadata reads as epoch 0; a warm invocation does not fetch the init again."""
    s3, dynamodb = aws
    store(s3, muxed, epoch=None)
    put_stream(dynamodb)
    assert thumbnail_handler.handler(sqs_event(("m0", 0)), None) == {"batchItemFailures": []}
    s3.delete_object(Bucket=BUCKET, Key=keys.LiveInit(playback_id=PB, session_id=SID, epoch=0).key)
    assert thumbnail_handler.handler(sqs_event(("m5", 5)), None) == {"batchItemFailures": []}
    assert stream(dynamodb)["thumbnail_path"] == thumb(5)
    live.INITS.clear()  # a cold start without the init cannot decode: the messages are retried
    assert thumbnail_handler.handler(sqs_event(("m4", 4)), None) == {"batchItemFailures": [{"itemIdentifier": "m4"}]}


def test_a_vanished_segment_is_skipped(aws: Any, muxed: Any) -> None:
    """A segment deleted before its turn (recording deleted) is not retried."""
    s3, dynamodb = aws
    put_stream(dynamodb)
    assert thumbnail_handler.handler(sqs_event(("m5", 5)), None) == {"batchItemFailures": []}
    assert "thumbnail_path" not in stream(dynamodb)


def test_an_audio_only_stream_has_nothing_to_picture(aws: Any, flv_audio: Path) -> None:  # noqa: F811
    """No video track: the message is done (no DLQ noise for radio-style streams), nothing is stored."""
    s3, dynamodb = aws
    segmenter = Segmenter(target_duration=1.0, part_target=None)
    outputs = feed_tags(segmenter, read_flv(flv_audio)) + segmenter.finish()
    (init,) = [o.data for o in outputs if isinstance(o, InitSegment)]
    store(s3, (init, [o.data for o in outputs if isinstance(o, Segment)]))
    put_stream(dynamodb)
    assert thumbnail_handler.handler(sqs_event(("m1", 1)), None) == {"batchItemFailures": []}
    assert stored(s3) == [] and "thumbnail_path" not in stream(dynamodb)


class Context:
    """A Lambda context with ``seconds`` left from now."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@pytest.fixture
def stalled_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """FFMPEG_BINARY that never finishes; its pid lands in the returned file once it runs."""
    pid_file = tmp_path / "ffmpeg.pid"
    script = tmp_path / "ffmpeg"
    script.write_text(f'#!/bin/sh\necho $$ > "{pid_file}"\nexec sleep 60\n')
    script.chmod(0o755)
    monkeypatch.setenv("FFMPEG_BINARY", str(script))
    get_settings.cache_clear()
    return pid_file


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


async def started(pid_file: Path) -> int:
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text().strip():
            return int(pid_file.read_text())
        await asyncio.sleep(0.01)
    raise AssertionError("ffmpeg never started")


def test_a_session_is_not_started_without_time_for_it(aws: Any, muxed: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Under two seconds left: no ffmpeg, and the messages are done (a retry a minute later would be stale)."""
    s3, dynamodb = aws
    store(s3, muxed)
    put_stream(dynamodb)
    assert thumbnail_handler.handler(sqs_event(("m5", 5)), Context(1.5)) == {"batchItemFailures": []}
    assert stored(s3) == [] and "thumbnail_path" not in stream(dynamodb)
    assert any("out of time" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_ffmpeg_is_killed_when_the_time_runs_out(tmp_path: Path, stalled_ffmpeg: Path) -> None:
    """render.live_thumbnail polls the time left while ffmpeg runs and kills it at 0: OutOfTime, not DecodeError."""
    deadline = time.monotonic() + 0.3
    began = time.monotonic()
    with pytest.raises(render.OutOfTime):
        render.live_thumbnail(
            b"init", b"segment", ffmpeg=os.environ["FFMPEG_BINARY"], time_left=lambda: deadline - time.monotonic()
        )
    assert time.monotonic() - began < 0.6
    assert not alive(int(stalled_ffmpeg.read_text()))


def test_ffmpeg_over_its_own_timeout_is_a_decode_error(stalled_ffmpeg: Path) -> None:
    """With time left, ffmpeg running over ``timeout`` still means the bytes are at fault (→ retries, DLQ)."""
    with pytest.raises(render.DecodeError, match="ran over 0.3 s"):
        render.live_thumbnail(b"init", b"segment", ffmpeg=os.environ["FFMPEG_BINARY"], timeout=0.3)
    assert not alive(int(stalled_ffmpeg.read_text()))


async def test_a_stalled_ffmpeg_costs_the_thumbnail_not_the_batch(aws: Any, muxed: Any, stalled_ffmpeg: Path) -> None:
    """In the local runtime with the template's 10 s timeout cut to 3 s: ffmpeg is killed 1 s before the
    deadline, and the invocation returns in time with its messages done, instead of Sandbox.Timedout (the
    whole batch redelivered a minute later while its thread still runs)."""
    s3, dynamodb = aws
    store(s3, muxed)
    put_stream(dynamodb)
    function = LocalFunction("ThumbnailFunction", thumbnail_handler.handler, timeout=3.0)
    began = time.monotonic()
    assert await function.invoke(sqs_event(("m5", 5))) == {"batchItemFailures": []}
    assert 1.8 < time.monotonic() - began < 3.0
    assert not alive(int(stalled_ffmpeg.read_text()))
    assert function.stats.timeouts == 0


async def test_stopping_up_kills_the_running_ffmpeg(aws: Any, muxed: Any, stalled_ffmpeg: Path) -> None:
    """The event source cancelling an invocation at shutdown leaves it no time: ffmpeg is killed at once and the
    handler's threads end, so ``up`` exits promptly (it waited for them past its 20 s stop budget)."""
    s3, dynamodb = aws
    store(s3, muxed)
    put_stream(dynamodb)
    function = LocalFunction("ThumbnailFunction", thumbnail_handler.handler, timeout=10.0)
    call = asyncio.create_task(function.invoke(sqs_event(("m5", 5))))
    pid = await started(stalled_ffmpeg)
    began = time.monotonic()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    while (alive(pid) or function.orphaned_threads) and time.monotonic() - began < 2:
        await asyncio.sleep(0.02)
    assert not alive(pid) and function.orphaned_threads == 0
    assert time.monotonic() - began < 0.5
