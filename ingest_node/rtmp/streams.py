"""Per-message-stream bookkeeping: state, publishing name, and 32-bit timestamp unwrapping.

Owns: what the core remembers about each message stream id handed out by ``createStream`` (RTMP 1.0 §7.2.1.3).

Rules:
- The state only moves through ``state.next_stream_state`` (the table), via :meth:`MessageStream.advance`.
- Timestamps: RTMP message timestamps are 32-bit and roll over (RTMP 1.0 §4: "Because timestamps are 32 bits
  long, they roll over every 49 days, 17 hours, 2 minutes and 47.296 seconds", so applications "SHOULD use serial
  number arithmetic [RFC1982] when processing timestamps, and SHOULD be capable of handling wraparound").
  Each message stream keeps one running clock shared by its audio, video and data messages: every new
  timestamp moves it by the signed 32-bit difference to the previous one, so a wrap adds 2**32 instead of
  jumping back 49 days. The reported value is clamped at 0 (a client that starts a hair below its epoch does
  not produce negative times), while the running clock keeps the true value so later deltas stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from .state import StreamInput, StreamState, next_stream_state

__all__ = ["MessageStream"]

_MASK32: Final = 0xFFFFFFFF
_HALF: Final = 0x80000000


@dataclass(slots=True)
class MessageStream:
    """One message stream of a connection."""

    stream_id: int
    state: StreamState = StreamState.CREATED
    #: The name given to ``publish`` (the stream key): kept to match ``FCUnpublish(name)``; never in a repr.
    publish_name: str | None = field(default=None, repr=False)
    _last_raw: int | None = field(default=None, repr=False)
    _clock: int = field(default=0, repr=False)

    def advance(self, event: StreamInput) -> bool:
        """Apply ``event`` through the transition table; return whether to report it as an event."""
        self.state, report = next_stream_state(self.state, event, self.stream_id)
        return report

    def absolute_time(self, raw: int) -> int:
        """Map a 32-bit message timestamp onto this stream's unbounded millisecond clock."""
        if self._last_raw is None:
            self._clock = raw
        else:
            delta = (raw - self._last_raw) & _MASK32
            self._clock += delta - (1 << 32) if delta >= _HALF else delta
        self._last_raw = raw
        return max(self._clock, 0)
