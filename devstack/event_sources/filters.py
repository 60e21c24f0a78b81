"""Lambda event filtering (``FilterCriteria``) for the local event sources.

Lambda drops records that match none of an event source mapping's filter patterns before batching; dropped
records count as processed and are never delivered (Lambda docs, "Lambda event filtering"). The pattern syntax
is EventBridge's, so the matching is moto's own EventBridge matcher (the emulator we already run) rather than a
second implementation here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from moto.events.models import EventPattern


class RecordFilter:
    """Decides whether a Lambda-shaped record is delivered: with no patterns, every record is."""

    def __init__(self, patterns: Sequence[str] = ()) -> None:
        self._patterns = [EventPattern.load(pattern) for pattern in patterns]

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def __call__(self, record: Mapping[str, Any]) -> bool:
        """True when ``record`` matches at least one pattern (or there are none)."""
        return not self._patterns or any(pattern.matches_event(dict(record)) for pattern in self._patterns)
