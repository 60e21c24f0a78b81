"""FLV writing: the file header, tags and the ``onMetaData`` script tag that HTTP-FLV and WS-FLV viewers receive.

Spec: Adobe FLV 10.1 Annex E.2 (header: ``"FLV" UI8 version=1, UI8 flags (0x04 audio, 0x01 video), UI32
DataOffset=9``), E.3 (body: ``UI32 PreviousTagSize0 = 0``, then tag + ``UI32 PreviousTagSize`` = 11 + DataSize),
E.4.1 (tag header: ``UI8 TagType, UI24 DataSize, UI24 Timestamp, UI8 TimestampExtended, UI24 StreamID = 0``).

Rules:
- Tag bodies are the RTMP audio/video message bodies unchanged (an RTMP message body *is* an FLV tag body), so the
  node never re-encodes media for FLV viewers: one header and four bytes are added per tag.
- Timestamps are milliseconds, 32 bits (the 24 low bits then the extended high byte); the caller keeps them
  monotonic (:mod:`.timeline`).
- ``onMetaData`` is an AMF0 string followed by an ECMA array (what encoders and ffmpeg write); only numbers,
  booleans and strings from the publisher's metadata are kept.
- Pure functions, no I/O.
"""

from __future__ import annotations

import struct
from typing import Any

from ..rtmp import amf0

AUDIO, VIDEO, SCRIPT = 8, 9, 18
_HEADER = struct.Struct(">3sBBI")
#: TagType + DataSize as one UI32, Timestamp (low 24 bits) + TimestampExtended as another, StreamID (0).
_TAG_HEADER = struct.Struct(">II3x")
_PREVIOUS_TAG_SIZE = struct.Struct(">I")
_TAG_HEADER_SIZE = 11
_MAX_DATA_SIZE = 0xFFFFFF


def file_header(*, audio: bool = True, video: bool = True) -> bytes:
    """The 9-byte FLV header followed by ``PreviousTagSize0`` (0)."""
    flags = (0x04 if audio else 0) | (0x01 if video else 0)
    return _HEADER.pack(b"FLV", 1, flags, 9) + b"\x00\x00\x00\x00"


def tag(kind: int, timestamp: int, body: bytes) -> bytes:
    """One FLV tag with its trailing ``PreviousTagSize``.

    Args:
        kind: 8 audio, 9 video, 18 script data.
        timestamp: milliseconds ≥ 0; it wraps at 2**32 (49.7 days), as RTMP's clock does.
        body: the tag body (an RTMP message body).

    Raises:
        ValueError: a body over 16 MiB − 1 (UI24 DataSize) or a negative timestamp.
    """
    size = len(body)
    if size > _MAX_DATA_SIZE:
        raise ValueError(f"FLV tag body of {size} bytes does not fit UI24 DataSize")
    if timestamp < 0:
        raise ValueError(f"FLV timestamp {timestamp} is negative")
    header = _TAG_HEADER.pack(kind << 24 | size, (timestamp & 0xFFFFFF) << 8 | (timestamp >> 24 & 0xFF))
    return b"".join((header, body, _PREVIOUS_TAG_SIZE.pack(_TAG_HEADER_SIZE + size)))


def metadata_tag(metadata: dict[str, Any], timestamp: int = 0) -> bytes:
    """An ``onMetaData`` script tag from the publisher's metadata (scalar values only)."""
    kept = amf0.EcmaArray({str(k): v for k, v in metadata.items() if _scalar(v)})
    return tag(SCRIPT, timestamp, amf0.encode("onMetaData", kept))


def _scalar(value: object) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        return value == value and abs(value) < 2**53  # NaN and what a double cannot hold are left out
    return isinstance(value, str) and len(value) < 1024
