"""The media catalog: what session manifests and segments do to stream and session items (pure; no client).

The ingest node writes ``sessions/<playback_id>/<session_id>/{started,reconnecting,ended}.json`` as a broadcast
changes state, and ``live/.../seg_<n>.m4s`` for every segment; the catalog function turns each into conditional
``UpdateItem`` calls built here. Two items change:

- the **session** item (one per broadcast): its status, times, media description and segment count;
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
- Paths come from :mod:`capturestream.keys`; nothing here spells a key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import keys, table
from .models import SessionManifestBody, StreamStatus

_ENDED_FIELDS = ("ended_at", "duration", "end_reason")


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
    ``#rev``, ``#sid``, ``#last`` and values as ``:<name>``.
    """
    names = {"#status": "status", "#rev": "revision", "#sid": "session_id", "#last": "last_sequence"}
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
