"""The notifier's decisions over captured DynamoDB Streams events: who hears what, and only on real changes."""

from __future__ import annotations

import json
from pathlib import Path

from capturestream import messages, notifications, table
from capturestream.chat import ChatEntry
from capturestream.notifications import Audience

EVENTS = Path(__file__).parents[2] / "events" / "dynamodb"
CDN = "https://cdn.example.com"


def _load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def _said(plan: notifications.Plan) -> list[tuple[str, Audience, str]]:
    return [(n.playback_id, n.audience, messages.encode(n.message)) for n in plan.notifications]


def test_a_broadcasts_life_captured_from_moto() -> None:
    plan = notifications.plan(_load("moto_notifier_batch.json"), CDN)
    kinds = [(n.message.type, n.audience) for n in plan.notifications]
    assert kinds == [
        ("streamLive", Audience.EVERYONE),  # INSERT (after moto's keys-only INSERT, which is skipped)
        ("chat", Audience.SUBSCRIBERS),
        ("streamLive", Audience.EVERYONE),  # reconnecting
        ("thumbnail", Audience.EVERYONE),
        ("streamEnded", Audience.EVERYONE),
    ]
    live, chat, back, thumbnail, ended = (n.message for n in plan.notifications)
    assert live.stream.status == "live" and live.stream.title == "Speedrun"
    assert live.stream.playback_url == f"{CDN}/live/pb1/20261125T150000Z-a1/index.m3u8"
    assert back.stream.status == "reconnecting"
    assert thumbnail.url == f"{CDN}/thumbs/pb1/20261125T150000Z-a1/live_00000003.jpg"
    assert (chat.user, chat.text, chat.stream_id) == ("Ada", "hello", "pb1")
    assert ended == messages.StreamEndedMessage(stream_id="pb1")
    assert plan.recount == {"pb1"}  # two joins and a leave: one recount for the batch


def test_aws_shaped_records_no_op_rewrites_and_ttl_removals() -> None:
    plan = notifications.plan(_load("aws_stream_ended_chat_ttl.json"), CDN)
    assert [n.message.type for n in plan.notifications] == ["chat", "streamEnded"]  # the rewrite says nothing
    assert plan.recount == {"pb1"}  # a TTL removal is a leave like any other


def test_viewer_count_only_changes_and_other_items_say_nothing() -> None:
    stream = table.to_item({"pk": "STREAM#pb1", "sk": "STREAM", "playback_id": "pb1", "session_id": "s1",
                            "status": "live", "viewer_count": 1})  # fmt: skip
    recounted = {**stream, "viewer_count": {"N": "2"}}
    session = table.to_item({"pk": "SESSION#s1", "sk": "SESSION", "session_id": "s1", "status": "live"})
    event = {
        "Records": [
            {"eventName": "MODIFY", "dynamodb": {"Keys": table.stream_key("pb1"), "OldImage": stream,
                                                 "NewImage": recounted}},
            {"eventName": "MODIFY", "dynamodb": {"Keys": table.session_key("s1"), "NewImage": session}},
            {"eventName": "REMOVE", "dynamodb": {"Keys": table.stream_key("pb1"), "OldImage": stream}},
        ]
    }  # fmt: skip
    plan = notifications.plan(event, CDN)
    assert plan.notifications == [] and plan.recount == set()


def test_a_new_broadcast_after_an_ended_one_is_live_again() -> None:
    ended = table.to_item({"pk": "STREAM#pb1", "sk": "STREAM", "playback_id": "pb1", "session_id": "s1",
                           "status": "ended"})  # fmt: skip
    fresh = table.to_item({"pk": "STREAM#pb1", "sk": "STREAM", "playback_id": "pb1", "session_id": "s2",
                           "status": "live"})  # fmt: skip
    event = {"Records": [{"eventName": "MODIFY", "dynamodb": {"Keys": table.stream_key("pb1"), "OldImage": ended,
                                                              "NewImage": fresh}}]}  # fmt: skip
    plan = notifications.plan(event, CDN)
    (note,) = plan.notifications
    assert note.message.type == "streamLive" and note.message.stream.status == "live"
    assert plan.recount == {"pb1"}  # the offline stream's watch pages are counted for the new broadcast


def test_viewer_count_counts_people_not_tabs() -> None:
    items = [
        table.subscription_to_item("pb1", "C1=", "anon:a", 1),
        table.subscription_to_item("pb1", "C2=", "anon:a", 1),  # a's second tab
        table.subscription_to_item("pb1", "C3=", "user:u1", 1),
    ]
    assert notifications.viewer_count(items) == 2
    assert notifications.viewer_count([]) == 0


def test_a_chat_item_that_makes_no_valid_message_is_skipped_not_fatal() -> None:
    def chat(message_id: str, user: str) -> dict:
        entry = ChatEntry(playback_id="pb1", session_id="s1", id=message_id, user=user, text="hi", ts=1, media_ms=1)
        item = entry.to_item()
        return {"eventName": "INSERT", "dynamodb": {"Keys": {k: item[k] for k in ("pk", "sk")}, "NewImage": item}}

    event = {"Records": [chat("m1", "x" * 200), chat("m2", "two\nlines"), chat("m3", "Ada")]}
    plan = notifications.plan(event, CDN)
    assert [(n.message.id, n.message.user) for n in plan.notifications] == [("m3", "Ada")]
