"""capturestream.reaping: which sessions lost their node at ``now``, and the ended.json that ends them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from capturestream import reaping
from capturestream.models import SessionManifestBody

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
GRACE = reaping.grace(60, 30)  # RECONNECT_WINDOW 60 s + REAPER_MARGIN 30 s


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def session(status: str | None = "live", last_segment: float | None = None, **extra: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "session_id": "20261125T150000Z-aaaaaa",
        "channel_id": "abcdefghijkl",
        "playback_id": "pb1",
        "started_at": T0.isoformat(),
        "media": {"video_codec": "avc1.64001f", "width": 1280, "height": 720},
        "title": "Speedrun",
        "revision": 2,
        **extra,
    }
    if status is not None:
        attributes["status"] = status
    if last_segment is not None:
        attributes["last_segment_at"] = at(last_segment).isoformat()
    return attributes


def test_grace_is_the_window_plus_the_margin() -> None:
    assert reaping.grace(60, 30) == timedelta(seconds=90)
    assert reaping.grace(0, 0) == timedelta(0)


@pytest.mark.parametrize(
    ("name", "attributes", "now", "lost"),
    [
        ("live, segments flowing", session(last_segment=1000), 1005, False),
        ("live, last segment exactly at the grace", session(last_segment=1000), 1090, False),
        ("live, last segment just past the grace", session(last_segment=1000), 1090.001, True),
        ("live, node died long ago", session(last_segment=1000), 5000, True),
        ("live, no segment yet, just started", session(), 30, False),
        ("live, no segment ever", session(), 91, True),
        ("reconnecting inside the window", session("reconnecting", last_segment=1000), 1060, False),
        ("reconnecting inside window + margin", session("reconnecting", last_segment=1000), 1085, False),
        ("reconnecting, window and margin over", session("reconnecting", last_segment=1000), 1100, True),
        ("ended is done", session("ended", last_segment=1000), 9000, False),
        ("no status: no manifest catalogued", session(None, last_segment=1000), 9000, False),
        ("unknown status", session("paused", last_segment=1000), 9000, False),
        ("no times at all", {"status": "live"}, 9000, False),
        # a reconnect re-sent started.json later than the newest segment: started_at counts too
        ("segment older than a later start", session(last_segment=-50, started_at=at(100).isoformat()), 150, False),
    ],
)
def test_is_lost(name: str, attributes: dict[str, Any], now: float, lost: bool) -> None:
    assert reaping.is_lost(attributes, now=at(now), grace=GRACE) is lost, name


def test_ended_manifest_is_what_the_node_would_write() -> None:
    body = reaping.ended_manifest(session(last_segment=754.5))
    assert isinstance(body, SessionManifestBody)
    assert (body.channel_id, body.playback_id, body.session_id) == ("abcdefghijkl", "pb1", "20261125T150000Z-aaaaaa")
    assert (body.started_at, body.ended_at, body.duration) == (T0, at(754.5), 754.5)
    assert body.media.video_codec == "avc1.64001f" and body.media.width == 1280
    assert (body.title, body.revision, body.reason, body.ingest_node) == ("Speedrun", 3, "node_lost", "reaper")
    assert SessionManifestBody.model_validate_json(body.model_dump_json(exclude_none=True)) == body


@pytest.mark.parametrize(
    ("attributes", "ended", "duration", "revision"),
    [
        (session(revision=None), 0, 0.0, 1),  # no segment: ends where it started
        ({**session(last_segment=10), "revision": 0, "media": None, "title": ""}, 10, 10.0, 1),
        (session(last_segment=-5), 0, 0.0, 3),  # a segment stamped before the start (clock skew)
    ],
)
def test_ended_manifest_edges(attributes: dict[str, Any], ended: float, duration: float, revision: int) -> None:
    body = reaping.ended_manifest(attributes)
    assert (body.ended_at, body.duration, body.revision) == (at(ended), duration, revision)
    assert body.ended_at >= body.started_at


def test_ended_manifest_needs_ids_and_a_start() -> None:
    with pytest.raises(ValidationError):
        reaping.ended_manifest({"status": "live", "last_segment_at": T0.isoformat()})
