"""The server side of the RTMP handshake (RTMP 1.0 §5.2), plain and Flash-era digest variants.

Owns: C0/C1 validation, the S0/S1/S2 reply, and the client-digest check. The wsproto split applies: this phase
produces bytes and a verdict, then ``connection.py`` moves on to the chunk stream.

Plain handshake (§5.2.2-§5.2.4): C0/S0 carry the version byte ("In C0, this field identifies the RTMP version
requested by the client. In S0, this field identifies the RTMP version selected by the server. The version
defined by this specification is 3"); C1/S1 are "1536 octets long" with time (4), zero (4) and random data; "S2 and
C2 ... MUST contain the timestamp and random echo of C1 and S1, respectively". We echo C1 verbatim, as nginx-rtmp
does for old-style clients.

Digest handshake (Flash Player 9+; not in the public spec, as implemented by librtmp ``handshake.h``, FFmpeg
``rtmpproto.c``, nginx-rtmp ``ngx_rtmp_handshake.c`` and SRS): a client announces it with a non-zero version in
C1 bytes 4-7 and hides a 32-byte HMAC-SHA256 digest in C1 at an offset derived from C1 itself:

- scheme 0: offset = (C1[8] + C1[9] + C1[10] + C1[11]) % 728 + 12
- scheme 1: offset = (C1[772] + C1[773] + C1[774] + C1[775]) % 728 + 776
- digest = HMAC-SHA256(key="Genuine Adobe Flash Player 001" (30 bytes), C1 without the 32 digest bytes)

The server answers with S1 carrying its own digest (same scheme, key "Genuine Adobe Flash Media Server 001",
36 bytes) and with S2 = random(1504) + HMAC-SHA256(key=HMAC-SHA256(key=FMS key (68 bytes), client digest),
S2[:1504]). librtmp checks both ("Server not genuine Adobe!" otherwise) when it uses the digest handshake.

Rules:
- C0 must be 3. RTMPE (6, 8, 9) is refused: we do not implement the encrypted variant. §5.2.2: "Values 32-255
  are not allowed, to make it possible to distinguish RTMP from text-based protocols" -- the message says so
  (an HTTP client's "G" lands here). Other versions below 32 are answered with 3, as §5.2.2 recommends
  ("A server that does not recognize the client's requested version SHOULD respond with 3").
- A C1 whose version is non-zero but whose digest does not verify under either scheme gets the plain answer
  (nginx-rtmp "digest not found" behaviour), so odd clients still connect.
- C2 is read and not verified (no client needs it, and nginx-rtmp does not verify it either).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable
from typing import Final

from .errors import RemoteProtocolError

__all__ = ["C1_SIZE", "FMS_KEY", "FP_KEY", "Handshake", "digest_offset", "find_digest", "make_digest"]

C1_SIZE: Final = 1536
RTMP_VERSION: Final = 3
DIGEST_SIZE: Final = 32
_RANDOM_SIZE: Final = C1_SIZE - DIGEST_SIZE
_KEY_TAIL: Final = bytes.fromhex("f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae")
#: "Genuine Adobe Flash Media Server 001" + 32 bytes; servers sign S1 with the first 36 bytes.
FMS_KEY: Final = b"Genuine Adobe Flash Media Server 001" + _KEY_TAIL
#: "Genuine Adobe Flash Player 001" + 32 bytes; clients sign C1 with the first 30 bytes.
FP_KEY: Final = b"Genuine Adobe Flash Player 001" + _KEY_TAIL
#: The version nginx-rtmp puts in a digest S1 (13.14.10.13); any non-zero value means "digest follows".
SERVER_VERSION: Final = bytes((0x0D, 0x0E, 0x0A, 0x0D))
_RTMPE_VERSIONS: Final = frozenset({6, 8, 9})


def digest_offset(packet: bytes, scheme: int) -> int:
    """Where the digest sits in a 1536-byte C1/S1 under ``scheme`` (0: base 8, 1: base 772)."""
    base = 8 if scheme == 0 else 772
    return sum(packet[base : base + 4]) % 728 + base + 4


def make_digest(packet: bytes, offset: int, key: bytes) -> bytes:
    """HMAC-SHA256 of ``packet`` without the 32 bytes at ``offset``."""
    mac = hmac.new(key, packet[:offset], hashlib.sha256)
    mac.update(packet[offset + DIGEST_SIZE :])
    return mac.digest()


def find_digest(packet: bytes, key: bytes) -> tuple[int, int] | None:
    """Return ``(scheme, offset)`` of a valid digest in ``packet``, trying scheme 1 first as nginx-rtmp does."""
    for scheme in (1, 0):
        offset = digest_offset(packet, scheme)
        expected = make_digest(packet, offset, key)
        if hmac.compare_digest(expected, packet[offset : offset + DIGEST_SIZE]):
            return scheme, offset
    return None


class Handshake:
    """One server-side handshake.

    Args:
        random_bytes: source of S1/S2 randomness (tests inject a deterministic one).
        uptime_ms: the time field of S1 ("the epoch for all future chunks sent from this endpoint").
    """

    def __init__(self, *, random_bytes: Callable[[int], bytes] = os.urandom, uptime_ms: int = 0) -> None:
        self._random = random_bytes
        self._uptime = uptime_ms & 0xFFFFFFFF
        #: True when the client used the digest handshake and we answered in kind.
        self.digest = False
        #: C1's time field: the client's epoch (§5.2.3).
        self.client_epoch = 0
        #: C1's version field, e.g. (9, 0, 124, 2) for FFmpeg; (0, 0, 0, 0) for a plain handshake.
        self.client_version: tuple[int, ...] = (0, 0, 0, 0)

    def receive_c0c1(self, c0c1: bytes) -> bytes:
        """Validate C0+C1 (1537 bytes) and return S0+S1+S2.

        Raises:
            RemoteProtocolError: C0 is not an RTMP version we serve.
        """
        version, c1 = c0c1[0], bytes(c0c1[1:])
        self.check_version(version)
        self.client_epoch = struct.unpack(">I", c1[:4])[0]
        self.client_version = tuple(c1[4:8])
        found = find_digest(c1, FP_KEY[:30]) if any(self.client_version) else None
        if found is None:
            s1 = struct.pack(">I", self._uptime) + bytes(4) + self._random(C1_SIZE - 8)
            return bytes((RTMP_VERSION,)) + s1 + c1
        self.digest = True
        scheme, offset = found
        return bytes((RTMP_VERSION,)) + self._digest_s1(scheme) + self._digest_s2(c1[offset : offset + DIGEST_SIZE])

    def receive_c2(self, c2: bytes) -> None:
        """Accept C2 (1536 bytes); it is not verified (see the module rules)."""

    @staticmethod
    def check_version(version: int) -> None:
        """Refuse a C0 we do not serve (see the module rules)."""
        if version >= 32:
            raise RemoteProtocolError(
                f"not an RTMP handshake: first byte 0x{version:02x} (RTMP 1.0 §5.2.2: values 32-255 are not allowed, "
                "so text protocols such as HTTP are told apart)"
            )
        if version in _RTMPE_VERSIONS:
            raise RemoteProtocolError(f"encrypted RTMP (RTMPE, handshake type {version}) is not supported")

    def _digest_s1(self, scheme: int) -> bytes:
        s1 = bytearray(struct.pack(">I", self._uptime) + SERVER_VERSION + self._random(C1_SIZE - 8))
        offset = digest_offset(bytes(s1), scheme)
        s1[offset : offset + DIGEST_SIZE] = make_digest(bytes(s1), offset, FMS_KEY[:36])
        return bytes(s1)

    def _digest_s2(self, client_digest: bytes) -> bytes:
        key = hmac.new(FMS_KEY, client_digest, hashlib.sha256).digest()
        body = self._random(_RANDOM_SIZE)
        return body + hmac.new(key, body, hashlib.sha256).digest()
