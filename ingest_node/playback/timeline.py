"""One broadcast's FLV timeline for viewers: publisher timestamps → a clock that never goes backwards.

OBS restarts its RTMP timestamps at 0 on every new connection, and a broadcast outlives its publisher (a reconnect
or a takeover resumes the same broadcast). A viewer's player must not see time jump back, so each publisher's
timestamps are rebased onto the broadcast's clock.

Rules:
- Per publisher: ``out = offset + (ts − first_ts)``, where ``first_ts`` is that publisher's first timestamp and
  ``offset`` is the largest timestamp given out so far plus :data:`GAP_MS` (0 for the first publisher).
- :meth:`Timeline.new_publisher` starts a new mapping at the next tag (the hub calls it when the broadcast goes
  live again). A timestamp more than :data:`BACKWARDS_MS` below the publisher's previous one (an encoder restart
  without a reconnect, or a 32-bit wrap) is treated the same way.
- Small regressions inside one publisher (audio interleaved a few ms behind video) pass through unchanged;
  results are clamped at 0 (a tag cannot carry a negative time).
"""

from __future__ import annotations

#: Added after the last timestamp when a new publisher's clock starts (about one frame).
GAP_MS = 40
#: A jump backwards larger than this within one publisher starts a new mapping.
BACKWARDS_MS = 5000


class Timeline:
    """Maps publisher timestamps (ms) onto the broadcast's monotonic viewer clock."""

    def __init__(self) -> None:
        self._first: int | None = None  # first timestamp of the current publisher; None: next tag starts one
        self._offset = 0
        self._last_in = 0
        self._max_out = -GAP_MS  # so the first publisher's offset is 0
        #: How many publisher clocks were joined (1 after the first tag).
        self.publishers = 0

    def new_publisher(self) -> None:
        """The next tag comes from a new publisher (its clock restarts)."""
        self._first = None

    def map(self, timestamp: int) -> int:
        """The viewer timestamp of a publisher ``timestamp``."""
        first = self._first
        if first is None or timestamp < self._last_in - BACKWARDS_MS:
            first = self._first = timestamp
            self._offset = self._max_out + GAP_MS
            self.publishers += 1
        self._last_in = timestamp
        out = self._offset + timestamp - first
        if out < 0:
            out = 0
        if out > self._max_out:
            self._max_out = out
        return out

    @property
    def now(self) -> int:
        """The largest timestamp given out so far (0 before any)."""
        return max(0, self._max_out)
