"""The media catalog: what session manifests do to the session items in DynamoDB (pure; no client).

The ingest node writes ``sessions/<playback_id>/<session_id>/started.json`` when a broadcast starts and
``ended.json`` when it is over; the catalog function turns each into a conditional ``UpdateItem`` built here.

Rules (S3 and EventBridge deliver at least once and in any order — STYLE rule 10):
- Applying the same manifest twice leaves the same item (every write is an idempotent ``SET``).
- ``ended`` wins over ``started`` whatever the arrival order: the started update carries a condition that the
  item is not already ended; when that condition fails, :func:`started_fields_update` records the started
  fields without touching the status.
- The playlist URL path comes from :mod:`capturestream.keys`; nothing here spells a key.
"""

from __future__ import annotations

from typing import Any

from . import keys, table
from .models import SessionManifestBody, StreamStatus


def _set_expression(fields: dict[str, Any], *, if_absent: tuple[str, ...] = ()) -> dict[str, Any]:
    names, values, clauses = {}, {}, []
    for index, (name, value) in enumerate(fields.items()):
        names[f"#f{index}"] = name
        values[f":v{index}"] = table.serialize(value)
        target = f"if_not_exists(#f{index}, :v{index})" if name in if_absent else f":v{index}"
        clauses.append(f"#f{index} = {target}")
    return {
        "UpdateExpression": "SET " + ", ".join(clauses),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def _common_fields(body: SessionManifestBody) -> dict[str, Any]:
    playlist = keys.LivePlaylist(playback_id=body.playback_id, session_id=body.session_id)
    return {
        "entity": "session",
        "session_id": body.session_id,
        "channel_id": body.channel_id,
        "playback_id": body.playback_id,
        "started_at": body.started_at.isoformat(),
        "playlist_path": playlist.key,
        "media": body.media.model_dump(exclude_none=True),
    }


def started_update(body: SessionManifestBody) -> dict[str, Any]:
    """``UpdateItem`` arguments marking the session live, unless it has already ended (conditional)."""
    fields = {
        **_common_fields(body),
        "status": StreamStatus.LIVE.value,
        table.GSI1_PK: table.streams_by_status(StreamStatus.LIVE.value),
        table.GSI1_SK: f"{body.started_at.isoformat()}#{body.session_id}",
    }
    update = _set_expression(fields)
    update["ExpressionAttributeNames"]["#status"] = "status"
    update["ExpressionAttributeValues"][":ended"] = {"S": StreamStatus.ENDED.value}
    update["ConditionExpression"] = "attribute_not_exists(#status) OR #status <> :ended"
    return {"Key": table.session_key(body.session_id), **update}


def started_fields_update(body: SessionManifestBody) -> dict[str, Any]:
    """``UpdateItem`` arguments recording a late ``started`` manifest on an already-ended session."""
    fields = _common_fields(body)
    update = _set_expression(fields, if_absent=tuple(fields))
    return {"Key": table.session_key(body.session_id), **update}


def ended_update(body: SessionManifestBody) -> dict[str, Any]:
    """``UpdateItem`` arguments marking the session ended with its end time and duration."""
    ended_at = body.ended_at or body.started_at
    duration = body.duration if body.duration is not None else (ended_at - body.started_at).total_seconds()
    fields = {
        **_common_fields(body),
        "status": StreamStatus.ENDED.value,
        "ended_at": ended_at.isoformat(),
        "duration": round(max(duration, 0.0), 3),
        table.GSI1_PK: table.streams_by_status(StreamStatus.ENDED.value),
        table.GSI1_SK: f"{body.started_at.isoformat()}#{body.session_id}",
    }
    if body.reason:
        fields["end_reason"] = body.reason
    return {"Key": table.session_key(body.session_id), **_set_expression(fields)}
