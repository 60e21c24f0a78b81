"""The receive buffer: bytes in, exact reads out, with commit/rollback (wsproto ``frame_protocol.Buffer``).

Owns: the bytes received from the peer and not yet parsed.

Rules:
- A parser reads with ``consume_exactly``/``consume_at_most``; if a structure turns out to be incomplete it calls
  ``rollback()`` and waits for more data, otherwise ``commit()``. Nothing before the commit point is kept.
- Reads return ``None`` (never raise) when the data is not there yet; parsers decide what incompleteness means.
- The buffer compacts itself only in ``feed`` (one copy per received block, not one per chunk), so a large block
  made of many small chunks parses in linear time.
- The buffer does not enforce a size limit itself: the connection checks ``len()`` after parsing, when only
  genuinely unparseable leftovers (or input held while paused) remain.
"""

from __future__ import annotations

__all__ = ["ReceiveBuffer"]


class ReceiveBuffer:
    """A bytearray with a read position and a commit mark."""

    __slots__ = ("_data", "_mark", "_pos")

    def __init__(self) -> None:
        self._data = bytearray()
        self._pos = 0
        self._mark = 0

    def __len__(self) -> int:
        """Bytes available to read from the current position."""
        return len(self._data) - self._pos

    def feed(self, data: bytes) -> None:
        """Append received bytes (dropping everything before the commit mark first)."""
        if self._mark:
            del self._data[: self._mark]
            self._pos -= self._mark
            self._mark = 0
        self._data += data

    def consume_exactly(self, size: int) -> bytes | None:
        """Return exactly ``size`` bytes and advance, or ``None`` (and do not advance) if fewer are buffered."""
        end = self._pos + size
        if end > len(self._data):
            return None
        chunk = bytes(self._data[self._pos : end])
        self._pos = end
        return chunk

    def peek_exactly(self, size: int) -> bytes | None:
        """Return the next ``size`` bytes without advancing, or ``None`` if fewer are buffered."""
        end = self._pos + size
        if end > len(self._data):
            return None
        return bytes(self._data[self._pos : end])

    def consume_at_most(self, size: int) -> bytes:
        """Return up to ``size`` bytes (possibly ``b""``) and advance past them."""
        end = min(self._pos + size, len(self._data))
        chunk = bytes(self._data[self._pos : end])
        self._pos = end
        return chunk

    def peek_byte(self) -> int | None:
        """Return the next byte as an int without advancing, or ``None`` if the buffer is empty."""
        return self._data[self._pos] if self._pos < len(self._data) else None

    def skip(self, size: int) -> None:
        """Advance past ``size`` bytes the caller has already peeked at."""
        self._pos += size

    def consume_byte(self) -> int | None:
        """Return the next byte as an int, or ``None`` if the buffer is empty."""
        if self._pos >= len(self._data):
            return None
        value = self._data[self._pos]
        self._pos += 1
        return value

    def commit(self) -> None:
        """Forget everything read so far: a later ``rollback`` returns here."""
        self._mark = self._pos

    def rollback(self) -> None:
        """Un-read everything since the last ``commit``."""
        self._pos = self._mark
