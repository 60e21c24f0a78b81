"""The local CDN edge: serves the media bucket and the web app over HTTP, as CloudFront does in AWS.

``GET|HEAD /live/…``, ``/vod/…`` and ``/thumbs/…`` are read from the media bucket with the object's stored
``Content-Type`` and ``Cache-Control`` (the ingest node sets them: playlists ``no-cache``, segments immutable),
with ``ETag``/``Last-Modified``, conditional requests (304), single byte ranges (206/416) and CORS for any origin
(media is public, like a CloudFront distribution with a CORS response-headers policy). Everything else is a file
under ``web/``.

Rules:
- Objects the origin marks cacheable (``max-age`` > 0, not ``no-cache``/``no-store``/``private``) are kept in a
  bounded in-memory LRU for their max-age, as an edge would; playlists are always fetched fresh. The cache is
  what makes many viewers of one stream cost one origin read per segment.
- Only media prefixes from :mod:`capturestream.keys` are proxied; nothing else in the bucket is reachable.
- The edge never spells a key: the request path *is* the key, validated by :func:`capturestream.keys.decode`.
"""

from __future__ import annotations

import logging
import mimetypes
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from botocore.exceptions import ClientError

from capturestream import keys
from capturestream.errors import InvalidKey

log = logging.getLogger(__name__)

MEDIA_PREFIXES = keys.TRIGGER_PREFIXES + keys.DERIVED_PREFIXES
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_MAX_AGE = re.compile(r"max-age=(\d+)")
_UNCACHEABLE = ("no-cache", "no-store", "private")
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Range, If-None-Match, If-Modified-Since",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, ETag, Age",
    "Access-Control-Max-Age": "86400",
}


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
    """aiohttp handlers for media (from the bucket) and the web app (from a folder)."""

    def __init__(self, s3_client: Any, bucket: str, web_root: Path, cache: EdgeCache | None = None) -> None:
        self._s3 = s3_client
        self._bucket = bucket
        self._web_root = web_root.resolve()
        self.cache = cache or EdgeCache()

    @staticmethod
    def is_media_path(path: str) -> bool:
        """True for request paths the edge serves from the bucket."""
        return path.lstrip("/").startswith(MEDIA_PREFIXES)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one request: media from the bucket, anything else from ``web/``."""
        if request.method == "OPTIONS":
            return web.Response(status=204, headers=CORS_HEADERS)
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD, OPTIONS", **CORS_HEADERS})
        if self.is_media_path(request.path):
            return await self._media(request)
        return self._web_file(request)

    async def _media(self, request: web.Request) -> web.StreamResponse:
        key = request.path.lstrip("/")
        try:
            keys.decode(key)
        except InvalidKey:
            return _not_found()
        cached = self.cache.get(key)
        if cached is None:
            cached = await self._fetch(key)
            if cached is None:
                return _not_found()
        return _respond(request, cached)

    async def _fetch(self, key: str) -> CachedObject | None:
        try:
            response = await self._s3.get_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        async with response["Body"] as stream:
            body = await stream.read()
        headers = {
            "Content-Type": response.get("ContentType") or "application/octet-stream",
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

    def _web_file(self, request: web.Request) -> web.StreamResponse:
        relative = request.path.lstrip("/") or "index.html"
        path = (self._web_root / relative).resolve()
        if path.is_dir():
            path = path / "index.html"
        if not path.is_relative_to(self._web_root) or not path.is_file():
            return _not_found()
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        headers = {"Cache-Control": "no-cache", "Content-Type": content_type}
        return web.FileResponse(path, headers=headers)


def _not_found() -> web.Response:
    return web.json_response({"message": "Not Found"}, status=404, headers=CORS_HEADERS)


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
