"""The receive hot path (``Broadcast.feed_now``) stores exactly what the awaited path stores, in the same order.

The RTMP connection muxes a message in ``data_received`` when nothing is queued before it; outputs for S3 wait for
``store_outputs``. Whatever mix of the two paths a publisher's messages take (the slow one while the lock is held or
before the format is known), the objects stored and their order must not change.
"""

from __future__ import annotations

import pytest

from capturestream.models import Channel
from ingest_node.muxing.muxer import TagKind
from ingest_node.sessions.broadcast import Broadcast
from tests.unit.ingest.memory_storage import MemoryUploader
from tests.unit.ingest.test_health import flv_gop2  # noqa: F401  (fixture: 6 s, keyframe every 2 s, AAC)
from tests.unit.media.support import Tag, amf0_metadata

KINDS = {8: TagKind.AUDIO, 9: TagKind.VIDEO}


async def _run(tags: list[Tag], *, hot: bool, every: int = 1) -> tuple[MemoryUploader, int]:
    """Publish ``tags``; with ``hot``, every ``every``-th media tag tries the hot path. Returns the storage and how
    many tags the hot path took."""
    uploader = MemoryUploader()
    channel, _ = Channel.create(name="hot", owner="o")
    broadcast = Broadcast(channel, uploader, segment_seconds=1.0, node_id="t")  # type: ignore[arg-type]
    taken = 0
    for n, tag in enumerate(tags):
        if tag.kind == 18:
            await broadcast.on_metadata(amf0_metadata(tag.body))
            continue
        kind = KINDS[tag.kind]
        if hot and n % every == 0 and broadcast.feed_now(kind, tag.timestamp, tag.body):
            taken += 1
            if broadcast.outputs_unstored:
                await broadcast.store_outputs()
        elif kind is TagKind.VIDEO:
            await broadcast.on_video(tag.timestamp, tag.body)
        else:
            await broadcast.on_audio(tag.timestamp, tag.body)
    await broadcast.end("test")
    return uploader, taken


def _media(uploader: MemoryUploader) -> list[tuple[str, bytes]]:
    """Stored keys in order, with the bodies of init and media segments (playlists and manifests carry wall-clock
    times, so only their order is compared)."""
    return [(key.split("/", 3)[-1], body if key.endswith((".mp4", ".m4s")) else b"") for key, body in uploader.puts]


@pytest.mark.parametrize("every", [1, 3])
async def test_hot_path_stores_what_the_awaited_path_stores(flv_gop2: list[Tag], every: int) -> None:  # noqa: F811
    slow, _ = await _run(flv_gop2, hot=False)
    fast, taken = await _run(flv_gop2, hot=True, every=every)
    media_tags = sum(1 for tag in flv_gop2 if tag.kind in KINDS)
    assert taken > media_tags // every - 10  # all but the tags before the first init went the hot way
    slow_objects, fast_objects = _media(slow), _media(fast)
    assert [key for key, _ in fast_objects] == [key for key, _ in slow_objects]
    assert fast_objects == slow_objects
    assert any(key.endswith(".m4s") for key, _ in fast_objects)


async def test_hot_path_steps_aside_while_the_lock_is_held(flv_gop2: list[Tag]) -> None:  # noqa: F811
    uploader = MemoryUploader()
    channel, _ = Channel.create(name="hot", owner="o")
    broadcast = Broadcast(channel, uploader, segment_seconds=1.0, node_id="t")  # type: ignore[arg-type]
    media = [tag for tag in flv_gop2 if tag.kind in KINDS]
    for tag in media[:250]:  # past the first init (the format is set)
        await (broadcast.on_video if tag.kind == 9 else broadcast.on_audio)(tag.timestamp, tag.body)
    tag = media[250]
    assert broadcast.feed_now(KINDS[tag.kind], tag.timestamp, tag.body)  # format set, lock free: taken
    async with broadcast._lock:  # another step (a takeover, the end) holds the muxer
        tag = media[251]
        assert not broadcast.feed_now(KINDS[tag.kind], tag.timestamp, tag.body)
    await broadcast.end("test")
    assert not broadcast.feed_now(KINDS[tag.kind], tag.timestamp, tag.body)  # ended: nothing more is muxed
    stored = len(uploader.puts)
    await broadcast.on_video(tag.timestamp, tag.body)  # a message in flight at a kick is dropped, not an error
    assert len(uploader.puts) == stored
