"""capturestream.thumbnails: one segment per session and batch, newest first, and the guarded stream update."""

from __future__ import annotations

from datetime import UTC, datetime

from capturestream import events, keys, table, thumbnails

PB, S1, S2 = "pb1", "20261125T150000Z-a1", "20261125T160000Z-b2"
BUCKET = "media"


def item(message_id: str, *media_keys: keys.MediaKey, at: datetime | None = None) -> events.SqsItem:
    """An SQS item carrying object-created events for ``media_keys``."""
    return events.SqsItem(
        message_id=message_id,
        events=tuple(
            events.MediaObjectCreated(
                object=events.ObjectCreated(bucket=BUCKET, key=key.key, event_time=at), media_key=key
            )
            for key in media_keys
        ),
    )


def seg(sequence: int, session_id: str = S1, playback_id: str = PB) -> keys.LiveSegment:
    return keys.LiveSegment(playback_id=playback_id, session_id=session_id, sequence=sequence)


def test_newest_segment_first_per_session() -> None:
    """Sessions in order of appearance; each one's segments newest first, every message id kept."""
    batches = thumbnails.plan_batch(
        [
            item("m1", seg(5)),
            item("m2", seg(10, S2, "pb2")),
            item("m3", seg(15)),
            item("m4", seg(10)),
        ]
    )
    assert [(b.playback_id, b.session_id) for b in batches] == [(PB, S1), ("pb2", S2)]
    assert [c.segment.sequence for c in batches[0].candidates] == [15, 10, 5]
    assert [c.message_ids for c in batches[0].candidates] == [{"m3"}, {"m4"}, {"m1"}]
    assert batches[0].message_ids == {"m1", "m3", "m4"}
    assert batches[1].candidates[0].segment == seg(10, S2, "pb2")
    assert batches[1].candidates[0].bucket == BUCKET


def test_redelivered_segment_is_one_candidate() -> None:
    """The same segment in two messages: one candidate with both ids and the latest event time."""
    early, late = datetime(2026, 11, 25, 15, 0, 1, tzinfo=UTC), datetime(2026, 11, 25, 15, 0, 2, tzinfo=UTC)
    (batch,) = thumbnails.plan_batch([item("m1", seg(5), at=late), item("m2", seg(5), at=early)])
    (candidate,) = batch.candidates
    assert (candidate.message_ids, candidate.stored_at) == ({"m1", "m2"}, late)


def test_other_objects_and_empty_items_are_ignored() -> None:
    """Manifests, inits and playlists (or skipped bodies) never make a thumbnail."""
    others = item(
        "m1",
        keys.LiveInit(playback_id=PB, session_id=S1, epoch=0),
        keys.LivePlaylist(playback_id=PB, session_id=S1),
        keys.SessionManifest(playback_id=PB, session_id=S1, kind="started"),
    )
    assert thumbnails.plan_batch([others, events.SqsItem(message_id="m2")]) == []


def test_thumbnail_keys_are_immutable_per_segment() -> None:
    """One JPEG and one WebP key per segment, under the derived prefix."""
    images = thumbnails.thumbnail_keys(seg(42))
    assert {f: k.key for f, k in images.items()} == {
        keys.ImageFormat.JPEG: keys.LiveThumbnail(playback_id=PB, session_id=S1, sequence=42).key,
        keys.ImageFormat.WEBP: keys.LiveThumbnail(playback_id=PB, session_id=S1, sequence=42, image_format="webp").key,
    }
    assert all(keys.is_derived(k.key) for k in images.values())
    assert thumbnails.CONTENT_TYPES == {keys.ImageFormat.JPEG: "image/jpeg", keys.ImageFormat.WEBP: "image/webp"}
    assert "immutable" in thumbnails.CACHE_CONTROL


def test_thumbnail_update_is_guarded_by_session_and_sequence() -> None:
    """SET the paths and sequence only for the stream's current session and a newer segment (or new session)."""
    update = thumbnails.thumbnail_update(seg(42))
    names, values = update["ExpressionAttributeNames"], update["ExpressionAttributeValues"]
    assert update["Key"] == table.stream_key(PB)
    assert update["UpdateExpression"] == "SET #path = :path, #webp = :webp, #seq = :seq, #tsid = :sid"
    assert update["ConditionExpression"] == (
        "#sid = :sid AND (attribute_not_exists(#seq) OR attribute_not_exists(#tsid) OR #tsid <> :sid OR #seq < :seq)"
    )
    assert names == {
        "#sid": "session_id",
        "#path": "thumbnail_path",
        "#webp": "thumbnail_webp_path",
        "#seq": "thumbnail_sequence",
        "#tsid": "thumbnail_session_id",
    }
    assert values == {
        ":sid": {"S": S1},
        ":path": {"S": keys.LiveThumbnail(playback_id=PB, session_id=S1, sequence=42).key},
        ":webp": {"S": keys.LiveThumbnail(playback_id=PB, session_id=S1, sequence=42, image_format="webp").key},
        ":seq": {"N": "42"},
    }
    used = " ".join((update["UpdateExpression"], update["ConditionExpression"]))
    assert all(name in used for name in names) and all(value in used for value in values)
