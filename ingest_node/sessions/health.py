"""Live health of one broadcast: a sample of what the publisher sends every few seconds, reported in batches.

The studio page charts bitrate, frame rate and keyframe interval while a channel is live. The node measures them
(:class:`~.stream_stats.StreamStats`) and, since it writes only S3 objects, reports them in a session
manifest, ``sessions/<playback_id>/<session_id>/health.json`` (:class:`capturestream.models.HealthManifestBody`),
which the catalog merges into the session item.

Rules:
- Nothing here runs per frame. :meth:`HealthMonitor.tick` is called when a segment is cut (about once a second);
  it reads the clock, and every :data:`SAMPLE_SECONDS` it reads the rolling window of ``StreamStats`` once.
  There is no timer task: a stalled publisher makes no samples, which the chart shows as a gap.
- One object per broadcast, overwritten after every :data:`REPORT_EVERY` samples (10 s; the first sample at
  once, so the studio's charts start 5 s after going live) with the newest :data:`KEPT_SAMPLES` samples: 30
  streams cost 3 PUTs/s (their segments cost 30/s), and each version repeats the last minute, so a lost or late
  delivery leaves no hole in the series.
- A sample is keyed by its wall-clock time ``t`` (whole milliseconds), so the catalog merges overlapping
  versions idempotently. Rates cover the media since the previous sample.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from capturestream.models import HealthSample

from .stream_stats import StreamStats

#: Seconds of media per sample (the studio warns on a keyframe interval over 2 s, so a window holds several).
SAMPLE_SECONDS = 5.0
#: New samples per version of ``health.json`` (after the first one).
REPORT_EVERY = 2
#: Samples each version carries: the last minute.
KEPT_SAMPLES = 12


class HealthMonitor:
    """Samples a broadcast's :class:`StreamStats` and says when a report is due."""

    def __init__(
        self,
        *,
        sample_seconds: float = SAMPLE_SECONDS,
        report_every: int = REPORT_EVERY,
        kept: int = KEPT_SAMPLES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sample_seconds = sample_seconds
        self._report_every = report_every
        self._clock = clock
        self._samples: deque[HealthSample] = deque(maxlen=kept)
        self._since: int | None = None  # media timestamp the next window starts after
        self._next_sample = clock() + sample_seconds
        self._unreported = 0
        self._reported_once = False

    @property
    def pending(self) -> bool:
        """True when a sample was taken since the last report."""
        return self._unreported > 0

    def tick(self, stats: StreamStats) -> bool:
        """Take a sample if one is due; True when a report is due (call :meth:`report` then)."""
        now = self._clock()
        if now < self._next_sample:
            return False
        self._next_sample = now + self._sample_seconds
        window = stats.window(self._since)
        if window is None:
            return False
        self._since = window.until
        self._samples.append(
            HealthSample(
                t=_now_ms(),
                bitrate_kbps=window.bitrate_kbps,
                frame_rate=window.frame_rate,
                keyframe_interval=window.keyframe_interval,
            )
        )
        self._unreported += 1
        return self._unreported >= self._report_every or not self._reported_once

    def report(self) -> list[HealthSample]:
        """The samples to store now, oldest first."""
        self._unreported, self._reported_once = 0, True
        return list(self._samples)

    def restart(self) -> None:
        """A new publisher attached: its timestamps start again, so the next window starts at its first message."""
        self._since = None


def _now_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
