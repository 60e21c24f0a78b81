"""The reaper's decisions: which broadcasts lost their ingest node, and the ``ended.json`` that ends them (pure).

An ingest node ends its own broadcasts: a clean unpublish at once, a dropped publisher when its reconnect window
runs out. A node that dies (crash, SIGKILL, lost host) ends nothing, so its broadcasts would stay ``live`` or
``reconnecting`` forever and never get a recording. Once a minute the reaper looks at every stream listed as
``live``/``reconnecting`` and at its current session item; a session with no sign of life for longer than
``reconnect_window + reaper_margin`` is **lost**, and the reaper writes the ``ended.json`` the node would have
written. From there the normal path takes over (catalog → ``ended``/``streamEnded``, recording build).

Rules:
- The newest sign of life is the latest of ``last_segment_at`` (the S3 time of the newest segment, which the
  catalog records) and ``started_at``. A ``reconnecting`` session has sent nothing since it dropped, so its
  newest segment is when the window started; the catalog stores no separate "reconnecting since" time.
- A live node keeps writing segments (≥ one per few seconds), and ends its own sessions ``reconnect_window``
  after a drop; the margin covers the catalog's segment batching and clock skew, so the reaper only ever acts
  where the node cannot.
- Only sessions the catalog knows as ``live``/``reconnecting`` are judged: an ended one is done, and a session
  item without a status (segments catalogued before ``started.json``) has no manifest fields to end it with.
- The body ends the broadcast at its last sign of life (the media ends there, not when the reaper noticed),
  with a revision above the stored one, ``reason`` :data:`REASON` and ``ingest_node`` :data:`INGEST_NODE`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from .models import SessionManifestBody, StreamStatus

#: ``reason`` of an ``ended.json`` written by the reaper.
REASON = "node_lost"
#: ``ingest_node`` of an ``ended.json`` written by the reaper.
INGEST_NODE = "reaper"
#: Stream statuses whose broadcasts may have lost their node.
WATCHED = (StreamStatus.LIVE, StreamStatus.RECONNECTING)


def grace(reconnect_window: float, margin: float) -> timedelta:
    """How long a session may show no sign of life before it counts as lost."""
    return timedelta(seconds=reconnect_window + margin)


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def last_sign_of_life(session: Mapping[str, Any]) -> datetime | None:
    """The newest moment the session item shows the node working (None: it records none)."""
    times = [t for t in (_time(session.get("last_segment_at")), _time(session.get("started_at"))) if t]
    return max(times) if times else None


def is_lost(session: Mapping[str, Any], *, now: datetime, grace: timedelta) -> bool:
    """True when ``session`` (a session item's attributes, Python values) is live or reconnecting and has shown
    no sign of life for longer than ``grace`` at ``now``."""
    if session.get("status") not in {status.value for status in WATCHED}:
        return False
    last = last_sign_of_life(session)
    return last is not None and now - last > grace


def ended_manifest(session: Mapping[str, Any]) -> SessionManifestBody:
    """The ``ended.json`` body that ends a lost session, built from its session item's attributes.

    Raises:
        pydantic.ValidationError: when the item lacks the ids or start time a manifest needs.
    """
    started = _time(session.get("started_at"))
    ended = last_sign_of_life(session) or started
    duration = round(max((ended - started).total_seconds(), 0.0), 3) if started and ended else None
    return SessionManifestBody.model_validate(
        {
            "channel_id": session.get("channel_id"),
            "playback_id": session.get("playback_id"),
            "session_id": session.get("session_id"),
            "started_at": started,
            "ended_at": ended,
            "duration": duration,
            "media": session.get("media") or {},
            "title": session.get("title") or None,
            "revision": int(session.get("revision") or 0) + 1,
            "ingest_node": INGEST_NODE,
            "reason": REASON,
        }
    )
