"""The playback hub as the broadcasts' observer: routing by playback id, reconnects, the end, a new broadcast."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from ingest_node.muxing.muxer import TagKind
from ingest_node.playback.hub import PlaybackHub
from ingest_node.sessions.broadcast import BroadcastState
from mediakit.cmaf import Segmenter
from tests.unit.ingest.playback_media import publisher_tags
from tests.unit.media.support import Tag, feed_tags


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


async def test_routes_by_playback_id_and_ends_flv_then_ll_hls(tags: list[Tag]) -> None:
    hub = PlaybackHub(segment_seconds=1.0, end_grace=0.05)
    one, two = FakeBroadcast("pb-one", "s1"), FakeBroadcast("pb-two", "s2")
    assert hub.flv("pb-one") is None and hub.ll_hls("pb-one") is None
    _publish(hub, one, tags)
    _publish(hub, two, tags[:50])
    stream = hub.flv("pb-one")
    assert stream is not None and stream is not hub.flv("pb-two")
    assert hub.ll_hls("pb-one") is not None and hub.ll_hls("pb-one").session_id == "s1"  # type: ignore[union-attr]
    viewer = stream.join()
    assert hub.flv_viewers == 1
    one.state = BroadcastState.ENDED
    hub.on_state(one)  # type: ignore[arg-type]
    assert hub.flv("pb-one") is None and await viewer.next_chunk() and await viewer.next_chunk() is None
    assert hub.ll_hls("pb-one") is not None  # takes the muxer's last outputs for a moment
    await asyncio.sleep(0.1)
    assert hub.ll_hls("pb-one") is None and hub.flv("pb-two") is not None


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
    hub = PlaybackHub(segment_seconds=1.0, end_grace=0.05)
    old = FakeBroadcast("pb", "old")
    _publish(hub, old, tags[:50])
    old.state = BroadcastState.ENDED
    hub.on_state(old)  # type: ignore[arg-type]
    hub.on_tag(old, TagKind.VIDEO, 0, tags[1].body)  # type: ignore[arg-type]  (late: ignored)
    new = FakeBroadcast("pb", "new")
    _publish(hub, new, tags[:50])
    await asyncio.sleep(0.1)  # the old one's grace timer must not remove the new entry
    assert hub.ll_hls("pb") is not None and hub.ll_hls("pb").session_id == "new"  # type: ignore[union-attr]
    assert hub.flv("pb") is not None
