"""ISO/IEC 14496-12 box writing helpers: ``Box`` (§4.2) and ``FullBox`` headers around already-built payloads.

Rules:
- A box is ``size UI32 | type 4CC | payload`` where size counts the 8-byte header; a FullBox adds
  ``version UI8 | flags UI24``. Boxes are built bottom-up from bytes, so a parent's size is known when written.
- 64-bit ``largesize`` is never needed: segments are bounded by the segmenter (see ``max_segment_bytes``).
- MPEG-4 descriptors (14496-1 §7.2.2, used inside ``esds``) use the expandable size encoding, 7 bits per byte.
"""

from __future__ import annotations

import struct

_HEADER = struct.Struct(">I4s")
_FULL_HEADER = struct.Struct(">I4sI")
#: tkhd/mvhd unity transformation matrix (§8.2.2.3), 16.16 and 2.30 fixed point.
UNITY_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)


def box(kind: bytes, *payload: bytes) -> bytes:
    """A plain box around the concatenated ``payload`` parts."""
    body = b"".join(payload)
    return _HEADER.pack(8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    """A FullBox: header, ``version``, 24-bit ``flags``, then the payload."""
    body = b"".join(payload)
    return _FULL_HEADER.pack(12 + len(body), kind, version << 24 | flags) + body


def descriptor(tag: int, *payload: bytes) -> bytes:
    """An MPEG-4 descriptor (14496-1 §8.3.3): tag, expandable size, payload."""
    body = b"".join(payload)
    size = len(body)
    encoded = [size & 0x7F]
    size >>= 7
    while size:
        encoded.append(0x80 | (size & 0x7F))
        size >>= 7
    return bytes([tag, *reversed(encoded)]) + body


def file_type(kind: bytes, major: bytes, compatible: tuple[bytes, ...]) -> bytes:
    """``ftyp``/``styp`` (§4.3): major brand, minor version 0, compatible brands."""
    return box(kind, major, b"\x00\x00\x00\x00", *compatible)
