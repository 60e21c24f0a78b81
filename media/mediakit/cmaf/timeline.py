"""The output timeline: publisher millisecond timestamps → decode times in each track's timescale.

Rules:
- One shared offset maps a publisher session's timestamps onto the output (so A/V sync inside a session is kept):
  ``out_ms = ts + offset``. The first session starts at 0 (offset = -first timestamp); each later session (a
  reconnect, :meth:`Timeline.new_session`) starts where the output ended, so ``tfdt`` never goes backwards and
  never jumps (the new publisher's timestamps restart at 0, OBS.md "Reconnect").
- A timestamp that jumps back by more than :data:`REBASE_MS` inside a session (an encoder that restarted its
  clock, a 32-bit wrap) re-anchors the offset the same way, without a discontinuity.
- Video: DTS = out_ms × 90 (90 kHz, exact for millisecond input), forced strictly increasing.
- Audio: DTS from a running sample count (frame = 1024 samples at the ASC rate), not from the millisecond
  timestamps, which are rounded (CMAF_COST pitfall 2: 1016/1024/1032-sample durations). The count is resynced to
  the timestamp when they drift apart by more than :data:`AUDIO_RESYNC_MS` (a gap from dropped frames).
"""

from __future__ import annotations

import math

from .tracks import VIDEO_TIMESCALE

REBASE_MS = 1000
AUDIO_RESYNC_MS = 50
_TICKS_PER_MS = VIDEO_TIMESCALE // 1000


class Timeline:
    """Per-segmenter timestamp mapping; see the module rules."""

    def __init__(self) -> None:
        self._offset: int | None = None
        self._first_session = True
        self._video_last: int | None = None  # 90 kHz
        self.video_step: int | None = None  # last DTS difference, the estimate for a last sample's duration
        self._video_last_ms: int | None = None
        self._video_pts_end = 0  # 90 kHz: latest presentation end so far (B-frames present after later DTSs)
        self._audio_next: int | None = None  # samples
        self._audio_last: int | None = None
        self._audio_last_ms: int | None = None
        self._audio_rate = 0
        self._audio_frame = 1024
        #: Output time (ms) where the current publisher session started, once its first frame arrived.
        self.session_start_ms: int | None = None
        #: Diagnostics: audio resyncs and in-session rebases so far.
        self.resyncs = 0
        self.rebases = 0

    def new_session(self) -> None:
        """A new publisher session (reconnect): its first frame continues the output where it ended."""
        self._offset = None
        self.session_start_ms = None
        self._audio_next = None

    def reset_audio(self, rate: int, frame_samples: int) -> None:
        """The audio configuration changed: restart the sample count in the new timescale."""
        if rate != self._audio_rate:
            self._audio_last = None
        self._audio_rate, self._audio_frame, self._audio_next = rate, frame_samples, None

    def note_video_presentation(self, dts: int, cto: int) -> None:
        """Record a video sample's presentation time, so a new session starts after everything shown so far.

        A publisher cut mid-GOP leaves frames whose PTS lies beyond the last DTS (B-frames); starting the next
        session at the last DTS alone would present two frames at the same time (ffmpeg: "non monotonically
        increasing dts").
        """
        self._video_pts_end = max(self._video_pts_end, dts + cto + (self.video_step or 0))

    def end_ms(self) -> int:
        """Where the output ends so far, in whole milliseconds (rounded up)."""
        end = self._video_pts_end / VIDEO_TIMESCALE * 1000
        if self._video_last is not None:
            end = max(end, (self._video_last + (self.video_step or 0)) / VIDEO_TIMESCALE * 1000)
        if self._audio_last is not None and self._audio_rate:
            end = max(end, (self._audio_last + self._audio_frame) * 1000 / self._audio_rate)
        return math.ceil(end)

    def _out_ms(self, ts: int, last_ms: int | None) -> int:
        if self._offset is None:
            start = 0 if self._first_session else self.end_ms()
            self._first_session = False
            self._offset = start - ts
            self.session_start_ms = start
        elif last_ms is not None and ts + self._offset < last_ms - REBASE_MS:
            self._offset = self.end_ms() - ts
            self.rebases += 1
        return max(ts + self._offset, 0)

    def video(self, ts: int) -> tuple[int, int]:
        """Map a video timestamp; returns ``(dts in 90 kHz, out_ms)``."""
        out_ms = self._out_ms(ts, self._video_last_ms)
        dts = out_ms * _TICKS_PER_MS
        last = self._video_last
        if last is not None:
            if dts <= last:
                dts = last + 1
            self.video_step = dts - last
        self._video_last, self._video_last_ms = dts, out_ms
        return dts, out_ms

    def audio(self, ts: int) -> int:
        """Map an audio timestamp to a DTS in samples at the configured rate (see :meth:`reset_audio`)."""
        out_ms = self._out_ms(ts, self._audio_last_ms)
        rate = self._audio_rate
        target = (out_ms * rate + 500) // 1000
        expected = self._audio_next
        if expected is None:
            dts = target
        elif abs(target - expected) * 1000 > AUDIO_RESYNC_MS * rate:
            dts = target
            self.resyncs += 1
        else:
            dts = expected
        if self._audio_last is not None and dts <= self._audio_last:
            dts = self._audio_last + 1
        self._audio_last, self._audio_last_ms, self._audio_next = dts, out_ms, dts + self._audio_frame
        return dts
