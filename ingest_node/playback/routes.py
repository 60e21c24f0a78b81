"""The node's public low-latency playback routes (the URL contract the web player is built against).

- ``GET /live/<playbackId>.flv``: HTTP-FLV; with a WebSocket upgrade, WS-FLV (:mod:`.http_flv`).
- ``GET /live/<playbackId>/ll.m3u8[?_HLS_msn=M[&_HLS_part=N]]``: the LL-HLS media playlist, blocking reload
  (:mod:`.ll_hls`).
- ``GET /live/<playbackId>/ll/<sessionId>/init_<epoch>.mp4``, ``seg_<msn>.m4s``, ``part_<msn>.<index>.m4s``: the
  media it names, from memory.

Rules:
- Keyed by playback id only; unknown or ended broadcasts are 404.
- Every ``/live/`` response (errors too) carries ``Access-Control-Allow-Origin: *`` (public playback; the web UI
  is served from another origin); ``OPTIONS`` preflights are answered.
- Blocking playlist reloads (``_HLS_msn``) count in :data:`ingest_node.metrics.LL_HLS_BLOCKING_REQUESTS` while
  held: an LL-HLS player keeps one waiting, so the gauge is about the number of LL-HLS viewers.
- ``Cache-Control``: playlists and FLV ``no-cache`` (live, changes every part); media ``max-age=300`` (its URI
  names the session, so it never changes); errors ``no-cache``.
"""

from __future__ import annotations

import re

from aiohttp import web

from .. import metrics
from .http_flv import serve_flv
from .hub import PlaybackHub
from .ll_hls import DirectiveError, LlHlsStream, PlaybackError

CORS = {"Access-Control-Allow-Origin": "*"}
_LIVE = {**CORS, "Cache-Control": "no-cache"}
_MEDIA = {**CORS, "Cache-Control": "public, max-age=300"}
_PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
_MEDIA_NAME = re.compile(
    r"init_(?P<epoch>\d{1,9})\.mp4|seg_(?P<msn>\d{1,12})\.m4s|part_(?P<pmsn>\d{1,12})\.(?P<part>\d{1,4})\.m4s"
)


class PlaybackRoutes:
    """The ``/live/...`` handlers over one :class:`PlaybackHub`."""

    def __init__(self, hub: PlaybackHub) -> None:
        self.hub = hub

    def register(self, app: web.Application) -> None:
        """Add the routes to the node's app."""
        app.router.add_get("/live/{playback_id}.flv", self.flv)
        app.router.add_get("/live/{playback_id}/ll.m3u8", self.playlist)
        app.router.add_get("/live/{playback_id}/ll/{session_id}/{name}", self.media)
        app.router.add_route("OPTIONS", "/live/{tail:.*}", self.preflight)

    async def flv(self, request: web.Request) -> web.StreamResponse:
        """HTTP-FLV / WS-FLV."""
        stream = self.hub.flv(request.match_info["playback_id"])
        if stream is None:
            return _error(404, "no live broadcast with this playback id")
        return await serve_flv(request, stream, _LIVE)

    async def playlist(self, request: web.Request) -> web.Response:
        """The LL-HLS media playlist (blocking when ``_HLS_msn`` asks for what does not exist yet)."""
        stream = self.hub.ll_hls(request.match_info["playback_id"])
        if stream is None:
            return _error(404, "no live broadcast with this playback id")
        try:
            msn, part = _directive(request, "_HLS_msn"), _directive(request, "_HLS_part")
            if msn is None:
                text = await stream.wait_playlist(msn, part)
            else:
                with metrics.LL_HLS_BLOCKING_REQUESTS.track_inprogress():
                    text = await stream.wait_playlist(msn, part)
        except PlaybackError as error:
            return _error(error.status, str(error))
        return web.Response(text=text, headers={**_LIVE, "Content-Type": _PLAYLIST_TYPE})

    async def media(self, request: web.Request) -> web.Response:
        """An init segment, segment or part, from memory (a part not produced yet is waited for)."""
        stream = self.hub.ll_hls(request.match_info["playback_id"])
        match = _MEDIA_NAME.fullmatch(request.match_info["name"])
        if stream is None or match is None or request.match_info["session_id"] != stream.session_id:
            return _error(404, "no such object")
        try:
            data, kind = await _media(stream, match)
        except PlaybackError as error:
            return _error(error.status, str(error))
        return web.Response(body=data, headers={**_MEDIA, "Content-Type": kind})

    async def preflight(self, request: web.Request) -> web.Response:
        """CORS preflight for any ``/live/`` URL."""
        headers = {
            **CORS,
            "Access-Control-Allow-Methods": "GET, OPTIONS",
            "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers", "*"),
            "Access-Control-Max-Age": "86400",
        }
        return web.Response(status=204, headers=headers)


async def _media(stream: LlHlsStream, match: re.Match[str]) -> tuple[bytes, str]:
    if match["epoch"] is not None:
        return stream.init(int(match["epoch"])), "video/mp4"
    if match["msn"] is not None:
        return await stream.segment(int(match["msn"])), "video/iso.segment"
    return await stream.part(int(match["pmsn"]), int(match["part"])), "video/iso.segment"


def _directive(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise DirectiveError(f"{name} must be a non-negative integer")
    return int(value)


def _error(status: int, reason: str) -> web.Response:
    return web.Response(status=status, text=reason + "\n", headers=_LIVE)
