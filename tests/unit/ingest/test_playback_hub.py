"""The playback hub as the broadcasts' observer: routing by playback id, reconnects, the end, a new broadcast.

The end is checked against a real :class:`~ingest_node.sessions.broadcast.Broadcast` too (in-memory S3), whose
``end()`` hands over the muxer's final segment before it tells observers ``ENDED``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from capturestream.models import Channel
from ingest_node.muxing.muxer import TagKind
from ingest_node.playback.hub import PlaybackHub
from ingest_node.sessions.broadcast import Broadcast, BroadcastState
from mediakit.cmaf import Segmenter
from mediakit.cmaf.flv import FlvReader
from mediakit.hls import parse_media_playlist
from tests.unit.ingest.memory_storage import MemoryUploader
from tests.unit.ingest.playback_media import publisher_tags
from tests.unit.media.support import Tag, feed_tags, publish


@pytest.fixture(scope="module")
def tags(tmp_path_factory: pytest.TempPathFactory) -> list[Tag]:
    return publisher_tags(tmp_path_factory.mktemp("flv"))


@dataclass(eq=False)
class FakeBroadcast:
    """What the hub reads from a Broadcast."""

    playback_id: str
    session_id: str
    state: BroadcastState = BroadcastState.LIVE
    log_extra: dict = field(default_factory=dict)


def _publish(hub: PlaybackHub, broadcast: FakeBroadcast, tags: list[Tag]) -> None:
    segmenter = Segmenter(target_duration=1.0, part_target=0.25, anchor=datetime.now(UTC))
    for tag in tags:
        if tag.kind in (8, 9):
            hub.on_tag(broadcast, TagKind(tag.kind), tag.timestamp, tag.body)  # type: ignore[arg-type]
    hub.on_outputs(broadcast, feed_tags(segmenter, tags))  # type: ignore[arg-type]


async def test_routes_by_playback_id_and_the_end_removes_flv_and_ll_hls_at_once(tags: list[Tag]) -> None:
    hub = PlaybackHub(segment_seconds=1.0)
    one, two = FakeBroadcast("pb-one", "s1"), FakeBroadcast("pb-two", "s2")
    assert hub.flv("pb-one") is None and hub.ll_hls("pb-one") is None
    _publish(hub, one, tags)
    _publish(hub, two, tags[:50])
    stream = hub.flv("pb-one")
    assert stream is not None and stream is not hub.flv("pb-two")
    assert hub.ll_hls("pb-one") is not None and hub.ll_hls("pb-one").session_id == "s1"  # type: ignore[union-attr]
    viewer = stream.join()
    assert hub.flv_viewers == 1
    ll = hub.ll_hls("pb-one")
    one.state = BroadcastState.ENDED
    hub.on_state(one)  # type: ignore[arg-type]
    assert hub.flv("pb-one") is None and hub.ll_hls("pb-one") is None
    assert await viewer.next_chunk() and await viewer.next_chunk() is None
    assert ll is not None and ll.ended and ll.render().rstrip().endswith("#EXT-X-ENDLIST")
    assert hub.flv("pb-two") is not None and hub.ll_hls("pb-two") is not None


async def test_a_broadcasts_end_gives_ll_hls_its_last_segment_and_endlist_and_flv_every_tag(tags: list[Tag]) -> None:
    """A real Broadcast's end: the LL playlist a player holds ends with the same last segment as the stored
    playlist, then ENDLIST; a held reload is answered with it; an FLV viewer gets every tag, then its end."""
    hub = PlaybackHub(segment_seconds=1.0)
    uploader = MemoryUploader()
    channel, _ = Channel.create(name="hub", owner="o")
    broadcast = Broadcast(channel, uploader, segment_seconds=1.0, node_id="t", observer=hub)  # type: ignore[arg-type]
    playback_id = channel.playback_id
    await publish(broadcast, tags[:1])  # onMetaData: the FLV side exists
    stream = hub.flv(playback_id)
    assert stream is not None
    viewer = stream.join()
    await publish(broadcast, tags[1:])
    ll = hub.ll_hls(playback_id)
    assert ll is not None
    live = parse_media_playlist(ll.render())
    held = asyncio.create_task(ll.wait_playlist(live.segments[-1].sequence + 2, None))  # the one after the last
    await asyncio.sleep(0.05)
    assert not held.done()

    await broadcast.end("test")
    assert hub.flv(playback_id) is None and hub.ll_hls(playback_id) is None
    ended = parse_media_playlist(await asyncio.wait_for(held, 1))
    stored_key = next(key for key in uploader.objects if key.endswith("index.m3u8"))
    stored = parse_media_playlist(uploader.objects[stored_key].decode())
    assert ended.ended and stored.ended and ended.preload_hint is None
    assert ended.segments[-1].sequence == stored.segments[-1].sequence == live.segments[-1].sequence + 1
    assert ended.segments[-1].duration == pytest.approx(stored.segments[-1].duration)
    assert ended.segments[-1].uri == ll.uri(f"seg_{ended.segments[-1].sequence}.m4s")
    last = await ll.segment(ended.segments[-1].sequence)
    assert last == uploader.objects[stored_key.replace("index.m3u8", stored.segments[-1].uri)]

    data = bytearray()
    while (chunk := await viewer.next_chunk()) is not None:
        data += chunk
    reader = FlvReader()
    received = [*reader.feed(bytes(data)), *reader.feed(b"")]
    assert [t.body for t in received if t.kind != 18] == [t.body for t in tags if t.kind != 18]


async def test_a_resumed_broadcast_restarts_the_publisher_clock(tags: list[Tag]) -> None:
    hub = PlaybackHub(segment_seconds=1.0)
    broadcast = FakeBroadcast("pb", "s")
    _publish(hub, broadcast, tags)
    stream = hub.flv("pb")
    assert stream is not None
    broadcast.state = BroadcastState.RECONNECTING
    hub.on_state(broadcast)  # type: ignore[arg-type]
    broadcast.state = BroadcastState.LIVE
    hub.on_state(broadcast)  # type: ignore[arg-type]
    _publish(hub, broadcast, tags[:10])
    assert hub.flv("pb") is stream and stream.timeline.publishers == 2
    assert stream.timeline.now > max(t.timestamp for t in tags)


async def test_a_new_broadcast_of_the_same_playback_id_replaces_the_old(tags: list[Tag]) -> None:
    hub = PlaybackHub(segment_seconds=1.0)
    old = FakeBroadcast("pb", "old")
    _publish(hub, old, tags[:50])
    old.state = BroadcastState.ENDED
    hub.on_state(old)  # type: ignore[arg-type]
    hub.on_tag(old, TagKind.VIDEO, 0, tags[1].body)  # type: ignore[arg-type]  (late: ignored)
    new = FakeBroadcast("pb", "new")
    _publish(hub, new, tags[:50])
    assert hub.ll_hls("pb") is not None and hub.ll_hls("pb").session_id == "new"  # type: ignore[union-attr]
    assert hub.flv("pb") is not None
