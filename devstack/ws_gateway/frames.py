"""Per-frame size enforcement for inbound WebSocket data (API Gateway's 32 KB frame quota).

This module owns the one limit aiohttp cannot express. aiohttp's ``max_msg_size`` bounds a whole
(reassembled) message, which covers the 128 KB message quota. API Gateway also caps every single frame at
32 KB: "a message larger than 32 KB must be split into multiple frames, each 32 KB or smaller ... If a
larger message (or larger frame size) is received, the connection is closed with code 1009"
(https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html).

:class:`FrameSizeGuard` sits in front of aiohttp's parser on the raw byte stream, reads only frame headers
(RFC 6455 §5.2: 2 bytes, then a 16- or 64-bit extended length, then a 4-byte mask key) and skips payloads.

Rules:
    * Bytes before an oversized frame's header are forwarded, so earlier complete messages are delivered.
    * On an oversized data frame (text, binary or continuation) the guard fails the message queue with
      ``WebSocketError(1009)`` and stops forwarding, which is exactly aiohttp's own reader error path:
      ``WebSocketResponse.receive()`` then closes with 1009. Control frames are capped at 125 bytes by
      RFC 6455 §5.5 and are left to aiohttp.
    * Installing the guard touches two private aiohttp attributes (the protocol's ``_payload_parser`` and
      the response's ``_reader`` queue; aiohttp is pinned to 3.14.5). If they are missing, the guard is not
      installed, a warning is logged once and only the message limit applies.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import WebSocketError, WSCloseCode, web

__all__ = ["FrameSizeGuard", "install_frame_guard"]

logger = logging.getLogger(__name__)

_DATA_OPCODES = frozenset({0x0, 0x1, 0x2})  # continuation, text, binary (RFC 6455 §5.2)
_warned = False


def _header_size(header: bytearray) -> int:
    """Full header length once the first two bytes are known (2 before that)."""
    if len(header) < 2:
        return 2
    len7 = header[1] & 0x7F
    extended = 2 if len7 == 126 else 8 if len7 == 127 else 0
    return 2 + extended + (4 if header[1] & 0x80 else 0)


def _payload_length(header: bytearray) -> int:
    len7 = header[1] & 0x7F
    if len7 == 126:
        return int.from_bytes(header[2:4], "big")
    if len7 == 127:
        return int.from_bytes(header[2:10], "big")
    return len7


class FrameSizeGuard:
    """Stands in for aiohttp's ``WebSocketReader`` (``feed_data``/``feed_eof``) and checks frame sizes.

    Args:
        parser: aiohttp's WebSocket parser for this connection.
        queue: The response's message queue, failed with ``WebSocketError(1009)`` on a violation.
        max_frame_bytes: Largest allowed data frame payload.
    """

    __slots__ = ("_parser", "_queue", "_limit", "_header", "_skip", "_frame_start", "_failed")

    def __init__(self, parser: Any, queue: Any, max_frame_bytes: int) -> None:
        self._parser = parser
        self._queue = queue
        self._limit = max_frame_bytes
        self._header = bytearray()
        self._skip = 0
        self._frame_start = 0
        self._failed = False

    def feed_eof(self) -> None:
        """Forward end of stream to the parser."""
        self._parser.feed_eof()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        """Check the frame headers in ``data``, then forward it (or fail the connection).

        Returns:
            The parser's ``(eof, tail)``; ``(True, b"")`` once a frame was too large, like aiohttp's reader.
        """
        if self._failed:
            return True, b""
        offset = self._scan(data)
        if offset < 0:
            return self._parser.feed_data(data)
        self._failed = True
        if offset:
            self._parser.feed_data(data[:offset])
        self._queue.set_exception(WebSocketError(WSCloseCode.MESSAGE_TOO_BIG, f"Frame exceeds limit {self._limit}"))
        return True, b""

    def _scan(self, data: bytes) -> int:
        """Return the offset of an oversized frame's header in ``data``, or -1 if there is none."""
        header = self._header
        pos, end = 0, len(data)
        self._frame_start = 0  # a header carried over from the previous chunk starts "before" this one
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            if not header:
                self._frame_start = pos
            take = min(_header_size(header) - len(header), end - pos)
            header += data[pos : pos + take]
            pos += take
            if len(header) < _header_size(header):
                continue
            length = _payload_length(header)
            if (header[0] & 0x0F) in _DATA_OPCODES and length > self._limit:
                return self._frame_start
            self._skip = length
            header.clear()
        return -1


def install_frame_guard(request: web.Request, ws: web.WebSocketResponse, max_frame_bytes: int) -> bool:
    """Put a :class:`FrameSizeGuard` in front of the prepared response's parser.

    Args:
        request: The upgraded request.
        ws: Its prepared ``WebSocketResponse``.
        max_frame_bytes: Largest allowed data frame payload.

    Returns:
        Whether the guard is active (``False`` if aiohttp's internals changed; a warning is logged once).
    """
    global _warned
    protocol = request.protocol
    parser = getattr(protocol, "_payload_parser", None)
    queue = getattr(ws, "_reader", None)
    if parser is None or queue is None or not hasattr(queue, "set_exception"):
        if not _warned:
            _warned = True
            logger.warning("aiohttp internals changed: the %d-byte frame limit is not enforced", max_frame_bytes)
        return False
    protocol._payload_parser = FrameSizeGuard(parser, queue, max_frame_bytes)
    return True
