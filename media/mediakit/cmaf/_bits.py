"""A big-endian bit reader for codec headers (H.264/HEVC SPS, AudioSpecificConfig, AV1 sequence header).

Rules:
- Reading past the end raises :class:`MalformedMedia`, never ``IndexError``; Exp-Golomb codes longer than 31
  leading zeros are rejected (ITU-T H.264 §9.1 allows at most 32 bits for ue(v) values we care about).
- Parameter sets carry emulation-prevention bytes (H.264 §7.4.1, HEVC §7.4.2): call :func:`unescape_rbsp`
  on the NAL unit payload before reading it.
"""

from __future__ import annotations

from .errors import MalformedMedia


class BitReader:
    """Reads unsigned fields, ue(v)/se(v) Exp-Golomb codes and leb128 from a byte string, MSB first."""

    __slots__ = ("_value", "_total", "pos", "what")

    def __init__(self, data: bytes, what: str = "bitstream") -> None:
        self._value = int.from_bytes(data, "big")
        self._total = len(data) * 8
        self.pos = 0
        self.what = what

    @property
    def remaining(self) -> int:
        """Bits left to read."""
        return self._total - self.pos

    def u(self, bits: int) -> int:
        """Read ``bits`` bits as an unsigned integer."""
        end = self.pos + bits
        if end > self._total:
            raise MalformedMedia(f"{self.what}: truncated (wanted {bits} bits at bit {self.pos} of {self._total})")
        self.pos = end
        return (self._value >> (self._total - end)) & ((1 << bits) - 1)

    def skip(self, bits: int) -> None:
        """Skip ``bits`` bits."""
        if bits:
            self.u(bits)

    def flag(self) -> bool:
        """Read one bit as a bool."""
        return self.u(1) == 1

    def ue(self) -> int:
        """ue(v): unsigned Exp-Golomb (H.264 §9.1)."""
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise MalformedMedia(f"{self.what}: Exp-Golomb code too long")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        """se(v): signed Exp-Golomb (H.264 §9.1.1)."""
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)

    def uvlc(self) -> int:
        """uvlc(): AV1 §4.10.3 variable length unsigned."""
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros >= 32:
                raise MalformedMedia(f"{self.what}: uvlc too long")
        return (1 << zeros) - 1 + self.u(zeros)


def unescape_rbsp(nal: bytes) -> bytes:
    """Remove emulation-prevention bytes: every ``00 00 03`` becomes ``00 00`` (H.264 §7.4.1.1)."""
    if b"\x00\x00\x03" not in nal:
        return nal
    out = bytearray()
    start = 0
    while True:
        index = nal.find(b"\x00\x00\x03", start)
        if index < 0:
            out += nal[start:]
            return bytes(out)
        out += nal[start : index + 2]
        start = index + 3


def read_leb128(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Read an AV1 leb128 (§4.10.5) at ``pos``; return ``(value, new_pos)``."""
    value = 0
    for i in range(8):
        if pos >= len(data):
            raise MalformedMedia("leb128: truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos
    raise MalformedMedia("leb128: more than 8 bytes")
