"""The local CDN edge: serves the media bucket and the web app over HTTP, as CloudFront does in AWS.

``GET|HEAD /live/…``, ``/vod/…`` and ``/thumbs/…`` are read from the media bucket with the object's stored
``Cache-Control`` (the ingest node sets it: playlists ``no-cache``, segments immutable), with
``ETag``/``Last-Modified``, conditional requests (304), single byte ranges (206/416) and CORS for any origin
(media is public, like a CloudFront distribution with a CORS response-headers policy). ``/config.json`` is the
runtime configuration the pages read (WebSocket URLs). Everything else is a file under ``web/``.

Rules:
- Objects the origin marks cacheable (``max-age`` > 0, not ``no-cache``/``no-store``/``private``) are kept in a
  bounded in-memory LRU for their max-age, as an edge would; playlists are always fetched fresh. The cache is
  what makes many viewers of one stream cost one origin read per segment.
- Only ``live/``, ``vod/`` and ``thumbs/`` are proxied. ``sessions/`` is not public: its manifests carry the
  channel id and the ingest node's host. The edge never spells a key: the request path *is* the key, validated
  by :func:`capturestream.keys.decode`.
- The key decides the ``Content-Type`` (:func:`media_type`), not the object: an object whose stored type is not
  one its kind may hold is not served, so nothing written to the bucket can become an HTML page on this origin.
- Web files are served from an extension allowlist with explicit types (:data:`WEB_TYPES`); dotfiles,
  directories other than ``/`` and any other extension are 404.
- Every response says ``X-Content-Type-Options: nosniff``; web files carry a strict Content-Security-Policy (no
  inline script or style, no eval; ``blob:`` for hls.js's worker and MSE) whose ``connect-src`` adds the origins
  of the URLs in the runtime configuration, plus Referrer-Policy and Permissions-Policy. template.yaml's
  CloudFront response-headers policy sends the same headers in AWS (a test compares them).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from botocore.exceptions import ClientError

from capturestream import keys, thumbnails
from capturestream.errors import InvalidKey

log = logging.getLogger(__name__)

#: The public prefixes. ``sessions/`` is not among them: the CloudFront distribution has no behavior for it either.
MEDIA_PREFIXES = (keys.LIVE_PREFIX, keys.VOD_PREFIX, keys.THUMBS_PREFIX)
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_MAX_AGE = re.compile(r"max-age=(\d+)")
_UNCACHEABLE = ("no-cache", "no-store", "private")
#: One path segment of a web file: no leading dot (dotfiles, ``..``), no separators or control characters.
_WEB_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_HOST = re.compile(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]")
_CONNECT_SCHEMES = ("http", "https", "ws", "wss")
CONFIG_PATH = "/config.json"
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Range, If-None-Match, If-Modified-Since",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, ETag, Age",
    "Access-Control-Max-Age": "86400",
}
NOSNIFF = {"X-Content-Type-Options": "nosniff"}
REFERRER_POLICY = "strict-origin-when-cross-origin"
#: The studio captures camera, microphone and screen (getUserMedia/getDisplayMedia); nothing else may ask.
PERMISSIONS_POLICY = "camera=(self), microphone=(self), display-capture=(self), geolocation=(), payment=(), usb=()"
#: Web files: extension -> Content-Type. Anything else under web/ is 404 (no guessing from the platform's
#: mimetypes, which differ between machines). The HLS types serve a reference stream from a web root (bench).
WEB_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".webp": "image/webp",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/mp4",
    ".mp4": "video/mp4",
}

_PLAYLIST = "application/vnd.apple.mpegurl"
_MP4 = "video/mp4"
_JPEG = "image/jpeg"


def media_type(key: keys.MediaKey) -> tuple[str, frozenset[str]] | None:
    """What a public media key may be served as.

    Returns:
        ``(Content-Type to send, stored Content-Types accepted)``, or None for kinds that are never public
        (session manifests).
    """
    match key:
        case keys.LivePlaylist() | keys.VodPlaylist():
            return _PLAYLIST, frozenset({_PLAYLIST, "application/x-mpegurl"})
        case keys.LiveSegment():  # the ingest node stores video/mp4; RFC 8216 §3.3 also allows iso.segment
            return _MP4, frozenset({_MP4, "video/iso.segment"})
        case keys.LiveInit() | keys.VodRecording():
            return _MP4, frozenset({_MP4})
        case keys.LiveThumbnail(image_format=image_format):
            served = thumbnails.CONTENT_TYPES[image_format]
            return served, frozenset({served})
        case keys.StoryboardSprite() | keys.SessionImage(kind=keys.ImageKind.POSTER):
            return _JPEG, frozenset({_JPEG})
        case keys.SessionImage(kind=keys.ImageKind.STORYBOARD_VTT):
            return "text/vtt; charset=utf-8", frozenset({"text/vtt"})
    return None


def content_security_policy(connect_sources: Iterable[str] = ()) -> str:
    """The pages' CSP: same-origin code only, ``blob:`` where hls.js and MSE need it, plus ``connect_sources``.

    Args:
        connect_sources: extra ``connect-src`` sources (origins of the WebSocket gateway and the capture socket).
    """
    connect = " ".join(["'self'", *connect_sources])
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"media-src 'self' blob:; worker-src 'self' blob:; connect-src {connect}; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


def connect_sources(runtime_config: Mapping[str, Any] | None) -> list[str]:
    """The origins (``scheme://host[:port]``) of the http(s)/ws(s) URLs among ``runtime_config``'s values."""
    found: set[str] = set()
    for value in (runtime_config or {}).values():
        if not isinstance(value, str):
            continue
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError:
            continue
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        if parts.scheme in _CONNECT_SCHEMES and _HOST.fullmatch(host):
            found.add(f"{parts.scheme}://{host}" + (f":{port}" if port else ""))
    return sorted(found)


@dataclass(frozen=True)
class CachedObject:
    """An origin response body and the headers the edge repeats."""

    body: bytes
    headers: dict[str, str]
    expires: float


class EdgeCache:
    """A byte-bounded LRU of origin objects, each kept for its ``max-age``."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, CachedObject] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> CachedObject | None:
        """The cached object for ``key`` if still fresh."""
        item = self._items.get(key)
        if item is None or item.expires < time.monotonic():
            if item is not None:
                self._evict(key)
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item

    def put(self, key: str, item: CachedObject) -> None:
        """Keep ``item`` unless it alone exceeds a quarter of the budget."""
        if len(item.body) > self.max_bytes // 4:
            return
        self._evict(key)
        self._items[key] = item
        self._bytes += len(item.body)
        while self._bytes > self.max_bytes:
            self._evict(next(iter(self._items)))

    def _evict(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self._bytes -= len(item.body)


def cache_ttl(cache_control: str | None) -> int:
    """Seconds an edge may keep a response with this ``Cache-Control`` (0 = don't cache)."""
    value = (cache_control or "").lower()
    if any(token in value for token in _UNCACHEABLE):
        return 0
    match = _MAX_AGE.search(value)
    return int(match.group(1)) if match else 0


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """Parse a single ``bytes=`` range into inclusive ``(start, end)``; None if unsatisfiable.

    Raises:
        ValueError: when the header is not a single byte range (the edge then ignores it, per RFC 9110 §14.2).
    """
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.groups() == ("", ""):
        raise ValueError(header)
    first, last = match.groups()
    if first == "":
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    return (start, end) if start <= end and start < size else None


class CdnEdge:
    """aiohttp handlers for media (from the bucket), the runtime configuration and the web app (from a folder)."""

    def __init__(
        self,
        s3_client: Any,
        bucket: str,
        web_root: Path,
        cache: EdgeCache | None = None,
        runtime_config: Mapping[str, Any] | None = None,
    ) -> None:
        """
        Args:
            s3_client: an aiobotocore S3 client.
            bucket: the media bucket.
            web_root: the folder of web files.
            cache: the edge cache (a fresh one by default).
            runtime_config: served as ``/config.json`` (keys such as ``wsUrl``, ``captureWsUrl``); the origins
                of its URLs are allowed in the pages' ``connect-src``. None: ``/config.json`` is 404.
        """
        self._s3 = s3_client
        self._bucket = bucket
        self._web_root = web_root.resolve()
        self.cache = cache or EdgeCache()
        self.configure(runtime_config)

    def configure(self, runtime_config: Mapping[str, Any] | None) -> None:
        """Set what ``/config.json`` serves and the pages' ``connect-src`` (``up`` knows its URLs only once every
        server listens, after the edge itself started)."""
        self._config = None if runtime_config is None else json.dumps(dict(runtime_config)).encode()
        self._page_headers = {
            "Content-Security-Policy": content_security_policy(connect_sources(runtime_config)),
            "Referrer-Policy": REFERRER_POLICY,
            "Permissions-Policy": PERMISSIONS_POLICY,
        }

    @staticmethod
    def is_media_path(path: str) -> bool:
        """True for request paths the edge serves from the bucket."""
        return path.lstrip("/").startswith(MEDIA_PREFIXES)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one request: media from the bucket, ``/config.json``, anything else from ``web/``."""
        response = await self._dispatch(request)
        response.headers.update(NOSNIFF)
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        media = self.is_media_path(request.path)
        cors = CORS_HEADERS if media else {}
        if request.method == "OPTIONS" and media:
            return web.Response(status=204, headers=CORS_HEADERS)
        if request.method not in ("GET", "HEAD"):
            allow = "GET, HEAD, OPTIONS" if media else "GET, HEAD"
            return web.Response(status=405, headers={"Allow": allow, **cors})
        if media:
            return await self._media(request)
        if request.path == CONFIG_PATH:
            return self._runtime_config()
        return self._web_file(request)

    async def _media(self, request: web.Request) -> web.StreamResponse:
        key = request.path.lstrip("/")
        try:
            served = media_type(keys.decode(key))
        except InvalidKey:
            served = None
        if served is None:
            return _not_found(CORS_HEADERS)
        cached = self.cache.get(key)
        if cached is None:
            cached = await self._fetch(key, *served)
            if cached is None:
                return _not_found(CORS_HEADERS)
        return _respond(request, cached)

    async def _fetch(self, key: str, content_type: str, stored_types: frozenset[str]) -> CachedObject | None:
        try:
            response = await self._s3.get_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        async with response["Body"] as stream:
            stored = (response.get("ContentType") or "").split(";", 1)[0].strip().lower()
            if stored not in stored_types:
                log.warning("not serving %s: stored as %r, expected one of %s", key, stored, sorted(stored_types))
                return None
            body = await stream.read()
        headers = {
            "Content-Type": content_type,
            "ETag": response.get("ETag", ""),
            "Last-Modified": response["LastModified"].strftime("%a, %d %b %Y %H:%M:%S GMT"),
        }
        if response.get("CacheControl"):
            headers["Cache-Control"] = response["CacheControl"]
        ttl = cache_ttl(response.get("CacheControl"))
        item = CachedObject(body=body, headers=headers, expires=time.monotonic() + ttl)
        if ttl:
            self.cache.put(key, item)
        return item

    def _runtime_config(self) -> web.Response:
        if self._config is None:
            return _not_found()
        headers = {"Cache-Control": "no-cache", "Content-Type": WEB_TYPES[".json"]}
        return web.Response(body=self._config, headers=headers)

    def _web_file(self, request: web.Request) -> web.StreamResponse:
        relative = request.path.lstrip("/") or "index.html"
        segments = relative.split("/")
        content_type = WEB_TYPES.get(Path(segments[-1]).suffix.lower())
        if content_type is None or not all(_WEB_SEGMENT.fullmatch(s) for s in segments):
            return _not_found()
        path = (self._web_root / relative).resolve()
        if not path.is_relative_to(self._web_root) or not path.is_file():
            return _not_found()
        headers = {"Cache-Control": "no-cache", "Content-Type": content_type, **self._page_headers}
        return web.FileResponse(path, headers=headers)


def _not_found(headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"message": "Not Found"}, status=404, headers=headers)


def _respond(request: web.Request, item: CachedObject) -> web.Response:
    headers = {**item.headers, **CORS_HEADERS, "Accept-Ranges": "bytes"}
    if request.headers.get("If-None-Match") in (item.headers["ETag"], "*"):
        return web.Response(status=304, headers=headers)
    body, status = item.body, 200
    range_header = request.headers.get("Range")
    if range_header:
        try:
            span = parse_range(range_header, len(body))
        except ValueError:  # not a single byte range: ignore it and send the whole object
            span = (0, len(body) - 1)
        else:
            if span is None:
                headers["Content-Range"] = f"bytes */{len(body)}"
                return web.Response(status=416, headers=headers)
            headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{len(body)}"
            status = 206
        body = body[span[0] : span[1] + 1]
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(body))
        return web.Response(status=status, headers=headers)
    return web.Response(status=status, body=body, headers=headers)
