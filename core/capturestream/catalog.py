"""The media catalog: what session manifests and segments do to stream and session items (pure; no client).

The ingest node writes ``sessions/<playback_id>/<session_id>/{started,reconnecting,ended}.json`` as a broadcast
changes state, ``.../health.json`` every few seconds while it is live, and ``live/.../seg_<n>.m4s`` for every
segment; the catalog function turns each into conditional ``UpdateItem`` calls built here. Two items change:

- the **session** item (one per broadcast): its status, times, media description, segment count and health;
- the **stream** item (one per playback id): the state of the channel's *latest* broadcast, which the live grid,
  the watch page and the notifier read.

Rules (S3 and EventBridge deliver at least once and in any order — STYLE rule 10):
- Applying the same manifest twice leaves the same item: every write is a ``SET`` guarded by a condition, and a
  failed condition means "a newer state is already stored", never an error.
- Within a session, manifests are ordered by their ``revision`` (the node increments it on every state change);
  ``ended`` wins over everything whatever the arrival order. A stale started/reconnecting manifest still fills
  descriptive fields that are missing (:func:`session_fields_update`), never the status.
- A stream item follows the newest session: session ids sort by start time (``models.new_session_id``), so a
  late manifest of an older broadcast never overwrites a newer one.
- Segment events only raise the session's ``last_sequence``/``segment_count``/``last_segment_at`` (the reaper's
  liveness signal); an older or duplicate segment leaves it unchanged.
- Viewer counts and thumbnails on the stream item belong to other writers (notifier, thumbnail function); the
  catalog never touches them. Its ``channel_name`` belongs to the channel rename route, and wins over the
  title a manifest carries (the name when its broadcast started).
- Health manifests (``health.json``, rewritten while live) merge their samples into the session item's bounded
  series keyed by sample time (:func:`health_update`: a union, so duplicates and late versions change nothing),
  and refresh the stream item's ``media`` at most every 30 s (:func:`stream_media_update`).
- Paths come from :mod:`capturestream.keys`; nothing here spells a key.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from . import keys, table
from .models import HealthManifestBody, HealthSample, SessionManifestBody, StreamStatus

_ENDED_FIELDS = ("ended_at", "duration", "end_reason")
#: Newest health samples kept on a session item: 10 minutes at the node's one sample every 5 s.
HEALTH_KEPT = 120
#: The stream item's ``media`` follows health manifests at most once per this many milliseconds of samples:
#: every stream-item write wakes the notifier, and cards need no fresher bitrate than that.
STREAM_MEDIA_REFRESH_MS = 30_000


def status_of(kind: keys.ManifestKind) -> StreamStatus:
    """The status a manifest of ``kind`` announces."""
    return {
        keys.ManifestKind.STARTED: StreamStatus.LIVE,
        keys.ManifestKind.RECONNECTING: StreamStatus.RECONNECTING,
        keys.ManifestKind.ENDED: StreamStatus.ENDED,
    }[kind]


def _update(
    key: table.Item,
    fields: dict[str, Any],
    *,
    if_absent: tuple[str, ...] = (),
    prefer: dict[str, str] | None = None,
    remove: tuple[str, ...] = (),
    condition: str | None = None,
    condition_values: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``UpdateItem`` arguments: ``SET`` every field, ``REMOVE`` others.

    A field in ``if_absent`` is set only where it is missing; a field in ``prefer`` takes the value of the named
    attribute where that one exists (``title`` ← ``channel_name``). Conditions name attributes as ``#status``,
    ``#rev``, ``#sid``, ``#last``, ``#hv`` (health_version), ``#hat`` (health_at) and values as ``:<name>``.
    """
    names = {
        "#status": "status",
        "#rev": "revision",
        "#sid": "session_id",
        "#last": "last_sequence",
        "#hv": table.HEALTH_VERSION,
        "#hat": "health_at",
    }
    values, clauses = {}, []
    for index, (name, value) in enumerate(fields.items()):
        names[f"#f{index}"] = name
        values[f":v{index}"] = table.serialize(value)
        target = f"if_not_exists(#f{index}, :v{index})" if name in if_absent else f":v{index}"
        if prefer and name in prefer:
            names[f"#p{index}"] = prefer[name]
            target = f"if_not_exists(#p{index}, :v{index})"
        clauses.append(f"#f{index} = {target}")
    expression = "SET " + ", ".join(clauses)
    if remove:
        for index, name in enumerate(remove):
            names[f"#r{index}"] = name
        expression += " REMOVE " + ", ".join(f"#r{index}" for index in range(len(remove)))
    update: dict[str, Any] = {"Key": key, "UpdateExpression": expression}
    if condition:
        update["ConditionExpression"] = condition
        values.update({f":{name}": table.serialize(value) for name, value in (condition_values or {}).items()})
    used = " ".join((expression, condition or ""))
    update["ExpressionAttributeNames"] = {name: value for name, value in names.items() if name in used}
    update["ExpressionAttributeValues"] = values
    return update


def _described(body: SessionManifestBody) -> dict[str, Any]:
    """Fields every manifest carries about its broadcast."""
    playlist = keys.LivePlaylist(playback_id=body.playback_id, session_id=body.session_id)
    fields: dict[str, Any] = {
        "session_id": body.session_id,
        "channel_id": body.channel_id,
        "playback_id": body.playback_id,
        "started_at": body.started_at.isoformat(),
        "playlist_path": playlist.key,
        "media": body.media.model_dump(exclude_none=True),
    }
    if body.title:
        fields["title"] = body.title
    return fields


def _state(body: SessionManifestBody, status: StreamStatus) -> dict[str, Any]:
    """Fields that change with the broadcast's state."""
    fields: dict[str, Any] = {"status": status.value, "revision": body.revision}
    if status is StreamStatus.ENDED:
        ended_at = body.ended_at or body.started_at
        duration = body.duration if body.duration is not None else (ended_at - body.started_at).total_seconds()
        fields.update({"ended_at": ended_at.isoformat(), "duration": round(max(duration, 0.0), 3)})
        if body.reason:
            fields["end_reason"] = body.reason
    return fields


def session_update(body: SessionManifestBody, kind: keys.ManifestKind) -> dict[str, Any]:
    """``UpdateItem`` arguments applying a manifest to its session item.

    ``ended`` is unconditional (it wins); ``started``/``reconnecting`` apply only when the session has not
    ended and this manifest's revision is newer than the stored one. On ``ConditionalCheckFailed`` use
    :func:`session_fields_update`.
    """
    status = status_of(kind)
    fields = {
        "entity": "session",
        **_described(body),
        **_state(body, status),
        table.GSI1_PK: table.broadcasts_of(body.playback_id),
        table.GSI1_SK: f"{body.started_at.isoformat()}#{body.session_id}",
    }
    key = table.session_key(body.session_id)
    if status is StreamStatus.ENDED:
        return _update(key, fields)
    return _update(
        key,
        fields,
        condition="attribute_not_exists(#status) OR (#status <> :ended AND "
        "(attribute_not_exists(#rev) OR #rev < :revision))",
        condition_values={"ended": StreamStatus.ENDED.value, "revision": body.revision},
    )


def session_fields_update(body: SessionManifestBody) -> dict[str, Any]:
    """``UpdateItem`` arguments recording a stale manifest's descriptive fields where they are still missing."""
    fields = _described(body)
    return _update(table.session_key(body.session_id), fields, if_absent=tuple(fields))


def stream_update(body: SessionManifestBody, kind: keys.ManifestKind) -> dict[str, Any]:
    """``UpdateItem`` arguments moving the stream item to this manifest's state, if it is the newest.

    Applies when the stream has no session yet, when this manifest's session is newer than the stored one, or
    when it is the same session and this manifest is newer (``ended``: whenever the session has not ended yet).
    ``ConditionalCheckFailed`` means a newer state is stored: nothing to do. The title is the channel's name as
    its owner last renamed it (``table.CHANNEL_NAME``) where the stream item has one: a manifest carries the name
    from when the broadcast started.
    """
    status = status_of(kind)
    fields = {
        "entity": "stream",
        **_described(body),
        **_state(body, status),
        table.GSI1_PK: table.streams_by_status(status.value),
        table.GSI1_SK: f"{body.started_at.isoformat()}#{body.playback_id}",
    }
    same_session = "#sid = :sid AND #status <> :ended"
    if status is not StreamStatus.ENDED:
        same_session += " AND #rev < :revision"
    remove = () if status is StreamStatus.ENDED else tuple(f for f in _ENDED_FIELDS if f not in fields)
    return _update(
        table.stream_key(body.playback_id),
        fields,
        prefer={"title": table.CHANNEL_NAME},
        remove=remove,
        condition=f"attribute_not_exists(#sid) OR #sid < :sid OR ({same_session})",
        condition_values={
            "sid": body.session_id,
            "ended": StreamStatus.ENDED.value,
            **({} if status is StreamStatus.ENDED else {"revision": body.revision}),
        },
    )


def segment_update(segment: keys.LiveSegment, stored_at: datetime) -> dict[str, Any]:
    """``UpdateItem`` arguments recording that segment ``segment.sequence`` is in S3, if it is the newest.

    ``ConditionalCheckFailed`` means a later (or the same) segment was already recorded.
    """
    fields = {
        "session_id": segment.session_id,
        "playback_id": segment.playback_id,
        "last_sequence": segment.sequence,
        "segment_count": segment.sequence + 1,
        "last_segment_at": stored_at.isoformat(),
    }
    return _update(
        table.session_key(segment.session_id),
        fields,
        condition="attribute_not_exists(#last) OR #last < :sequence",
        condition_values={"sequence": segment.sequence},
    )


def merge_health(stored: list[list[Any]], incoming: list[HealthSample]) -> list[list[Any]]:
    """Stored health rows (``table.health_row``) plus new samples: keyed by time, oldest first, the newest
    :data:`HEALTH_KEPT`.

    A union, so order-free and idempotent: merging the same samples again, or older ones later (which the bound
    drops again), gives the same rows. A sample never changes once measured, so for a time already stored the
    stored row stays (a duplicate then writes nothing at all).
    """
    rows = {row[0]: row for row in map(table.health_row, incoming)}
    rows.update((row[0], row) for row in stored)
    return [rows[t] for t in sorted(rows)][-HEALTH_KEPT:]


def health_update(body: HealthManifestBody, session: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``UpdateItem`` arguments merging a health manifest into its session item as last read, or None.

    Read-modify-write under optimistic locking: the write is conditional on ``health_version`` still being the
    one read, so ConditionalCheckFailed means another delivery wrote first: read again and retry. None when there
    is nothing to write: every sample is stored already (a duplicate), or the session is not catalogued yet (no
    ``status``: its started.json is still on its way, and the next manifest repeats these samples). The session's
    ``media`` follows the manifest while the broadcast is not over and the manifest brings the newest sample.

    Args:
        body: the manifest.
        session: the session item's attributes (``table.from_item``), or None when there is no item.
    """
    if not session or not session.get("status"):
        return None
    stored = session.get(table.HEALTH) or []
    merged = merge_health(stored, body.samples)
    if merged == stored:
        return None
    version = session.get(table.HEALTH_VERSION)
    fields: dict[str, Any] = {table.HEALTH: merged, table.HEALTH_VERSION: (version or 0) + 1}
    incoming = max((table.health_row(sample)[0] for sample in body.samples), default=None)
    if session["status"] != StreamStatus.ENDED.value and (not stored or (incoming or 0) > stored[-1][0]):
        fields["media"] = body.media.model_dump(exclude_none=True)
    return _update(
        table.session_key(body.session_id),
        fields,
        condition="attribute_exists(#status) AND "
        + ("attribute_not_exists(#hv)" if version is None else "#hv = :version"),
        condition_values=None if version is None else {"version": version},
    )


def stream_media_update(body: HealthManifestBody) -> dict[str, Any] | None:
    """``UpdateItem`` arguments refreshing the stream item's ``media`` from a health manifest, or None (no samples).

    Applies to the stream's current broadcast while it is not over, at most once per
    :data:`STREAM_MEDIA_REFRESH_MS` of sample time (``health_at``: the newest sample it took). ConditionalCheckFailed
    means not due, or not the current broadcast: nothing to do.
    """
    if not body.samples:
        return None
    newest = max(table.health_row(sample)[0] for sample in body.samples)
    return _update(
        table.stream_key(body.playback_id),
        {"media": body.media.model_dump(exclude_none=True), "health_at": newest},
        condition="#sid = :sid AND #status <> :ended AND (attribute_not_exists(#hat) OR #hat <= :due)",
        condition_values={
            "sid": body.session_id,
            "ended": StreamStatus.ENDED.value,
            "due": newest - STREAM_MEDIA_REFRESH_MS,
        },
    )
