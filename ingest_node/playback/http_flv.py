"""``GET /live/<playbackId>.flv``: HTTP-FLV (chunked ``video/x-flv``) or, on a WebSocket upgrade, WS-FLV (binary
messages of FLV bytes, what mpegts.js's WebSocket loader reads).

Rules:
- The viewer's queue is filled by :class:`~.flv_stream.FlvStream` (GOP cache first, slow viewers skip to the next
  keyframe); this module only drains it into the socket, everything queued in one write.
- A socket that accepts nothing for :data:`WRITE_TIMEOUT` seconds (a viewer that stopped reading) is closed and
  the viewer dropped.
- The response ends when the broadcast ends (after the queued bytes), or when the viewer goes away.
- WS-FLV ignores what the client sends (messages up to 4 KiB; bigger ones close the socket) except the close.
- Each viewer counts in :data:`ingest_node.metrics.PLAYBACK_VIEWERS` (``http_flv`` / ``ws_flv``) while it is
  served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from .. import metrics
from .flv_stream import FlvStream, FlvViewer

log = logging.getLogger(__name__)

#: A viewer whose socket takes no bytes for this long is dropped.
WRITE_TIMEOUT = 10.0
CONTENT_TYPE = "video/x-flv"


async def serve_flv(
    request: web.Request, stream: FlvStream, headers: dict[str, str], *, write_timeout: float = WRITE_TIMEOUT
) -> web.StreamResponse:
    """Serve one FLV viewer until the broadcast ends or the viewer leaves.

    Args:
        request: the ``GET``; with ``Upgrade: websocket`` it becomes WS-FLV.
        stream: the broadcast's FLV fan-out.
        headers: extra response headers (CORS, Cache-Control).
        write_timeout: seconds a single write may wait for the socket.
    """
    ws = web.WebSocketResponse(max_msg_size=4096, compress=False)
    if ws.can_prepare(request).ok:
        ws.headers.update(headers)
        await ws.prepare(request)
        with metrics.PLAYBACK_VIEWERS.labels(protocol="ws_flv").track_inprogress():
            await _serve_ws(ws, stream, write_timeout)
        return ws
    response = web.StreamResponse(headers={**headers, "Content-Type": CONTENT_TYPE})
    response.enable_chunked_encoding()
    await response.prepare(request)
    viewer = stream.join()
    try:
        with metrics.PLAYBACK_VIEWERS.labels(protocol="http_flv").track_inprogress():
            while (chunk := await viewer.next_chunk()) is not None:
                await asyncio.wait_for(response.write(chunk), write_timeout)
            await response.write_eof()
    except (ConnectionError, TimeoutError) as error:
        _log_gone(request, viewer, error, write_timeout)
    finally:
        stream.leave(viewer)
    return response


async def _serve_ws(ws: web.WebSocketResponse, stream: FlvStream, write_timeout: float) -> None:
    viewer = stream.join()
    sender = asyncio.create_task(_send(ws, viewer, write_timeout))
    reader = asyncio.create_task(_read_until_closed(ws))
    try:
        await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stream.leave(viewer)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        if not sender.done():
            sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close()


async def _send(ws: web.WebSocketResponse, viewer: FlvViewer, write_timeout: float) -> None:
    try:
        while (chunk := await viewer.next_chunk()) is not None:
            await asyncio.wait_for(ws.send_bytes(chunk), write_timeout)
    except (ConnectionError, TimeoutError) as error:
        log.info("WS-FLV viewer dropped: %s", type(error).__name__, extra={"sent": viewer.sent, "skips": viewer.skips})


async def _read_until_closed(ws: web.WebSocketResponse) -> None:
    async for _ in ws:  # ends on close (or a message over the size limit)
        pass


def _log_gone(request: web.Request, viewer: FlvViewer, error: BaseException, timeout: float) -> None:
    if isinstance(error, TimeoutError):
        log.info("FLV viewer dropped: its socket took nothing for %g s", timeout, extra={"sent": viewer.sent})
    else:
        log.debug("FLV viewer left", extra={"sent": viewer.sent, "skips": viewer.skips, "peer": request.remote})
