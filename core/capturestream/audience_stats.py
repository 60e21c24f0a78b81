"""Viewer statistics of one broadcast, kept on its session item by the notifier (pure; no client).

The notifier recounts a stream's distinct viewers whenever its subscriptions change (:mod:`.notifications`).
Besides the stream item's ``viewer_count`` (what the live grid shows), the broadcast's **session** item keeps
enough to describe the whole broadcast once it is over:

=====================  ========================================================================================
``peak_viewers``       the largest count seen
``viewers_now``        the count since ``viewers_changed_at``
``viewers_changed_at`` ISO 8601 UTC time of the last change
``viewer_seconds``     ∫ count dt from the start up to ``viewers_changed_at`` (viewer-seconds)
=====================  ========================================================================================

:func:`capturestream.recordings.viewer_stats` reads them back (peak, time-weighted average) and adds the tail
``viewers_now × (ended_at − viewers_changed_at)``.

Rules:
- Read-modify-write with optimistic concurrency: :func:`session_viewers_update` is conditioned on the exact
  values read (:func:`session_viewers_read`), so two notifiers racing on one broadcast never lose a step of the
  integral; the loser gets ``ConditionalCheckFailed``, re-reads and tries again.
- Only sessions that exist and have not ended change: a count arriving after ``ended`` would stretch the
  integral past the end of the broadcast (the condition enforces this, not only the read).
- Nothing is written when the stored count already equals the new one (absent counts as 0): redelivered
  batches and unchanged recounts cost a read, never a write.
- Time never runs backwards: a notifier whose clock is behind the stored ``viewers_changed_at`` adds nothing
  to the integral and leaves the timestamp where it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import table
from .models import StreamStatus

PEAK = "peak_viewers"
NOW = "viewers_now"
CHANGED_AT = "viewers_changed_at"
SECONDS = "viewer_seconds"
#: Attributes this module owns on a session item, in a fixed order (expression placeholders follow it).
FIELDS = (PEAK, NOW, CHANGED_AT, SECONDS)
_PLACEHOLDERS = {PEAK: "#peak", NOW: "#now", CHANGED_AT: "#at", SECONDS: "#secs"}


@dataclass(frozen=True, kw_only=True)
class ViewerTally:
    """The viewer fields of one session item (absent fields read as no viewers yet)."""

    #: Largest concurrent count so far.
    peak: int = 0
    #: Concurrent count since :attr:`changed_at`.
    now: int = 0
    #: When the count last changed; None before the first change.
    changed_at: datetime | None = None
    #: Viewer-seconds accumulated up to :attr:`changed_at`.
    seconds: float = 0.0

    @classmethod
    def of(cls, attributes: Mapping[str, Any]) -> ViewerTally:
        """The tally stored in a session item's attributes (Python values, as :func:`table.from_item` gives)."""
        changed = attributes.get(CHANGED_AT)
        return cls(
            peak=int(attributes.get(PEAK) or 0),
            now=int(attributes.get(NOW) or 0),
            changed_at=datetime.fromisoformat(str(changed)) if changed else None,
            seconds=float(attributes.get(SECONDS) or 0.0),
        )

    def changed(self, count: int, at: datetime) -> ViewerTally:
        """The tally after the count became ``count`` at ``at`` (timezone-aware)."""
        if at.tzinfo is None:
            raise ValueError("viewer count times must be timezone-aware")
        if count < 0:
            raise ValueError(f"a viewer count cannot be negative: {count}")
        at = at.astimezone(UTC)
        elapsed = max((at - self.changed_at).total_seconds(), 0.0) if self.changed_at else 0.0
        return ViewerTally(
            peak=max(self.peak, count),
            now=count,
            changed_at=max(at, self.changed_at) if self.changed_at else at,
            seconds=round(self.seconds + self.now * elapsed, 3),
        )

    def attributes(self) -> dict[str, Any]:
        """The stored attributes (``viewers_changed_at`` as ISO 8601 UTC)."""
        return {
            PEAK: self.peak,
            NOW: self.now,
            CHANGED_AT: self.changed_at.astimezone(UTC).isoformat() if self.changed_at else None,
            SECONDS: self.seconds,
        }


def session_viewers_read(session_id: str) -> dict[str, Any]:
    """``GetItem`` arguments reading what :func:`session_viewers_update` needs (strongly consistent)."""
    return {
        "Key": table.session_key(session_id),
        "ConsistentRead": True,
        "ProjectionExpression": ", ".join(["#pk", "#status", *(_PLACEHOLDERS[f] for f in FIELDS)]),
        "ExpressionAttributeNames": {"#pk": table.PK, "#status": "status", **_names()},
    }


def session_viewers_update(
    session_id: str, stored: Mapping[str, table.AttributeValue] | None, count: int, now: datetime
) -> dict[str, Any] | None:
    """``UpdateItem`` arguments moving a session's viewer fields to ``count`` at ``now``; None: nothing to do.

    Args:
        session_id: the broadcast whose stream the count belongs to.
        stored: the session item as :func:`session_viewers_read` returned it (wire format), or None if absent.
        count: the distinct viewers just counted.
        now: the time of the count (timezone-aware).

    Returns:
        None when the session does not exist, has ended, or already stores ``count``. Otherwise the update,
        conditioned on the item still holding exactly the values in ``stored`` and not having ended:
        ``ConditionalCheckFailed`` means another writer got there first (read again and retry).
    """
    if not stored or table.PK not in stored:
        return None
    attributes = table.from_item(stored)
    if attributes.get("status") == StreamStatus.ENDED.value:
        return None
    before = ViewerTally.of(attributes)
    if before.now == count:
        return None
    after = before.changed(count, now).attributes()
    values: dict[str, table.AttributeValue] = {":ended": {"S": StreamStatus.ENDED.value}}
    sets, conditions = [], ["attribute_exists(#pk)", "(attribute_not_exists(#status) OR #status <> :ended)"]
    for index, name in enumerate(FIELDS):
        placeholder = _PLACEHOLDERS[name]
        values[f":new{index}"] = table.serialize(after[name])
        sets.append(f"{placeholder} = :new{index}")
        if name in stored:  # exactly what was read, in its wire form
            values[f":old{index}"] = stored[name]
            conditions.append(f"{placeholder} = :old{index}")
        else:
            conditions.append(f"attribute_not_exists({placeholder})")
    return {
        "Key": table.session_key(session_id),
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": {"#pk": table.PK, "#status": "status", **_names()},
        "ExpressionAttributeValues": values,
    }


def _names() -> dict[str, str]:
    return {_PLACEHOLDERS[name]: name for name in FIELDS}
