"""The local CDN edge against a real moto S3: headers, caching, ranges, CORS, types, runtime config, web files."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import boto3
import pytest
from aiobotocore.session import get_session
from aiohttp import ClientSession, web
from aiohttp.test_utils import make_mocked_request

from capturestream import keys
from devstack.cdn_edge import CdnEdge, cache_ttl, connect_sources, content_security_policy, parse_range

BUCKET = "media"
SEGMENT = keys.LiveSegment(playback_id="pb1", session_id="s1", sequence=3).key
PLAYLIST = keys.LivePlaylist(playback_id="pb1", session_id="s1").key
MANIFEST = keys.SessionManifest(playback_id="pb1", session_id="s1", kind=keys.ManifestKind.STARTED).key
THUMB = keys.LiveThumbnail(playback_id="pb1", session_id="s1", sequence=5, image_format="webp").key
IMMUTABLE = "public, max-age=31536000, immutable"
RUNTIME_CONFIG = {"wsUrl": "ws://127.0.0.1:8001/dev", "captureWsUrl": "ws://127.0.0.1:8002/capture", "stage": "dev"}


@pytest.fixture
async def edge(moto_endpoint: str, tmp_path: Path) -> AsyncIterator[tuple[str, CdnEdge, object]]:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(
        Bucket=BUCKET, Key=SEGMENT, Body=bytes(range(256)) * 4, ContentType="video/mp4", CacheControl=IMMUTABLE
    )
    s3.put_object(
        Bucket=BUCKET,
        Key=PLAYLIST,
        Body=b"#EXTM3U\n",
        ContentType="application/vnd.apple.mpegurl",
        CacheControl="no-cache",
    )
    s3.put_object(Bucket=BUCKET, Key=MANIFEST, Body=b'{"channel_id": "c1"}', ContentType="application/json")
    s3.put_object(Bucket=BUCKET, Key=THUMB, Body=b"<script>alert(1)</script>", ContentType="text/html")
    (tmp_path / "index.html").write_text("<h1>home</h1>")
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "app.js").write_text("console.log(1)")
    (tmp_path / "js" / "app.php").write_text("<?php")
    (tmp_path / "studio").mkdir()
    (tmp_path / "studio" / "index.html").write_text("<h1>studio</h1>")
    (tmp_path / ".env").write_text("SECRET=1")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config.json").write_text("{}")
    (tmp_path / "config.json").write_text('{"from": "disk"}')
    async with get_session().create_client("s3", endpoint_url=moto_endpoint) as client:
        cdn = CdnEdge(client, BUCKET, tmp_path, runtime_config=RUNTIME_CONFIG)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", cdn.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}", cdn, s3
        await runner.cleanup()


async def test_segment_served_with_stored_headers_and_cors(edge) -> None:
    base, _, _ = edge
    async with ClientSession() as http, http.get(f"{base}/{SEGMENT}", headers={"Origin": "http://x"}) as response:
        body = await response.read()
        assert response.status == 200
        assert body == bytes(range(256)) * 4
        assert response.headers["Content-Type"] == "video/mp4"
        assert response.headers["Cache-Control"] == IMMUTABLE
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.headers["ETag"]


async def test_immutable_objects_are_cached_playlists_are_not(edge) -> None:
    base, cdn, s3 = edge
    async with ClientSession() as http:
        for _ in range(3):
            async with http.get(f"{base}/{SEGMENT}") as response:
                assert response.status == 200
        assert cdn.cache.hits == 2
        s3.put_object(
            Bucket=BUCKET,
            Key=PLAYLIST,
            Body=b"#EXTM3U\n#EXT-X-VERSION:7\n",
            CacheControl="no-cache",
            ContentType="application/vnd.apple.mpegurl",
        )
        async with http.get(f"{base}/{PLAYLIST}") as response:
            assert await response.read() == b"#EXTM3U\n#EXT-X-VERSION:7\n"
            assert response.headers["Content-Type"] == "application/vnd.apple.mpegurl"


async def test_ranges_conditional_and_head(edge) -> None:
    base, _, _ = edge
    async with ClientSession() as http:
        async with http.get(f"{base}/{SEGMENT}", headers={"Range": "bytes=10-19"}) as response:
            assert response.status == 206
            assert await response.read() == bytes(range(10, 20))
            assert response.headers["Content-Range"] == "bytes 10-19/1024"
        async with http.get(f"{base}/{SEGMENT}", headers={"Range": "bytes=-4"}) as response:
            assert response.status == 206 and await response.read() == bytes(range(252, 256))
        async with http.get(f"{base}/{SEGMENT}", headers={"Range": "bytes=5000-"}) as response:
            assert response.status == 416 and response.headers["Content-Range"] == "bytes */1024"
        async with http.get(f"{base}/{SEGMENT}") as response:
            etag = response.headers["ETag"]
        async with http.get(f"{base}/{SEGMENT}", headers={"If-None-Match": etag}) as response:
            assert response.status == 304
        async with http.head(f"{base}/{SEGMENT}") as response:
            assert response.status == 200 and response.headers["Content-Length"] == "1024"
        async with http.options(f"{base}/{SEGMENT}") as response:
            assert response.status == 204 and "GET" in response.headers["Access-Control-Allow-Methods"]


@pytest.mark.parametrize(
    "path",
    [
        "/live/pb1/s1/seg_00000099.m4s",  # valid key, absent
        "/live/pb1/s1/secret.txt",  # not a layout key
        "/live/../../etc/passwd",
        f"/{MANIFEST}",  # stored, but sessions/ is not public (channel id, ingest host)
        "/sessions/pb1/s1/started.json.bak",
        f"/{THUMB}",  # stored as text/html: a thumbnail key may only hold an image
        "/../pyproject.toml",
        "/missing.html",
        "/.env",
        "/.git/config.json",
        "/js/app.php",  # not an allowlisted extension
        "/js/",  # no directory listings, no index of subfolders (CloudFront has only a root object)
        "/studio",
        "/studio/",
        "/js//app.js",
    ],
)
async def test_not_found_and_no_escape(edge, path: str) -> None:
    base, _, _ = edge
    async with ClientSession() as http, http.get(f"{base}{path}") as response:
        assert response.status == 404
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_web_files_have_explicit_types_page_headers_and_no_cors(edge) -> None:
    base, _, _ = edge
    async with ClientSession() as http:
        async with http.get(f"{base}/", headers={"Origin": "http://evil.example"}) as response:
            assert response.status == 200 and "home" in await response.text()
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"
            assert response.headers["Content-Security-Policy"] == content_security_policy(
                ["ws://127.0.0.1:8001", "ws://127.0.0.1:8002"]
            )
            assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
            assert "camera=(self)" in response.headers["Permissions-Policy"]
            assert "Access-Control-Allow-Origin" not in response.headers
            etag = response.headers["ETag"]
        async with http.get(f"{base}/index.html", headers={"If-None-Match": etag}) as response:
            assert response.status == 304 and response.headers["X-Content-Type-Options"] == "nosniff"
        async with http.get(f"{base}/js/app.js") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        async with http.post(f"{base}/") as response:
            assert response.status == 405 and "Access-Control-Allow-Origin" not in response.headers
        async with http.options(f"{base}/") as response:
            assert response.status == 405 and "Access-Control-Allow-Origin" not in response.headers


async def test_media_responses_are_nosniff_typed_by_key_and_cors(edge) -> None:
    base, _, s3 = edge
    s3.put_object(Bucket=BUCKET, Key=PLAYLIST, Body=b"#EXTM3U\n", ContentType="application/x-mpegURL")
    async with ClientSession() as http:
        async with http.get(f"{base}/{PLAYLIST}") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/vnd.apple.mpegurl"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        async with http.get(f"{base}/{SEGMENT}") as response:
            etag = response.headers["ETag"]
        async with http.get(f"{base}/{SEGMENT}", headers={"If-None-Match": etag}) as response:
            assert response.status == 304 and response.headers["X-Content-Type-Options"] == "nosniff"
        async with http.get(f"{base}/vod/pb1/s1/recording.mp4") as response:
            assert response.status == 404 and response.headers["Access-Control-Allow-Origin"] == "*"
        async with http.options(f"{base}/{SEGMENT}") as response:
            assert response.status == 204 and response.headers["X-Content-Type-Options"] == "nosniff"
        async with http.put(f"{base}/{SEGMENT}") as response:
            assert response.status == 405 and response.headers["Access-Control-Allow-Origin"] == "*"


async def test_runtime_config_is_served_fresh_without_cors(edge, tmp_path: Path) -> None:
    base, _, _ = edge
    async with ClientSession() as http, http.get(f"{base}/config.json", headers={"Origin": "http://x"}) as response:
        assert response.status == 200
        assert await response.json() == RUNTIME_CONFIG  # not the config.json file on disk
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Access-Control-Allow-Origin" not in response.headers
    without = CdnEdge(None, BUCKET, tmp_path)  # no runtime config: 404, and the pages connect to 'self' only
    assert (await without.handle(make_mocked_request("GET", "/config.json"))).status == 404
    page = await without.handle(make_mocked_request("GET", "/index.html"))
    assert page.headers["Content-Security-Policy"] == content_security_policy()
    without.configure(RUNTIME_CONFIG)  # `up` learns its URLs after the edge started
    configured = await without.handle(make_mocked_request("GET", "/config.json"))
    assert configured.status == 200 and json.loads(configured.body) == RUNTIME_CONFIG
    page = await without.handle(make_mocked_request("GET", "/index.html"))
    assert "connect-src 'self' ws://127.0.0.1:8001 ws://127.0.0.1:8002;" in page.headers["Content-Security-Policy"]


def test_connect_sources_are_origins_of_url_values_only() -> None:
    config = {
        **RUNTIME_CONFIG,
        "apiUrl": "https://API.example.com/prod/",
        "v6": "ws://[::1]:9000/x",
        "same": "ws://127.0.0.1:8001/other",
        "injection": "wss://evil.example; script-src *",
        "bad port": "ws://127.0.0.1:99999/",
        "scheme": "javascript:alert(1)",
        "number": 3,
    }
    assert connect_sources(config) == [
        "https://api.example.com",
        "ws://127.0.0.1:8001",
        "ws://127.0.0.1:8002",
        "ws://[::1]:9000",
    ]
    assert connect_sources(None) == []


def test_page_policy_forbids_inline_code_and_allows_what_hls_needs() -> None:
    policy = dict(d.strip().split(" ", 1) for d in content_security_policy(["wss://ws.example"]).split(";"))
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert "unsafe" not in content_security_policy()
    assert "blob:" in policy["worker-src"] and "blob:" in policy["media-src"]
    assert policy["connect-src"] == "'self' wss://ws.example"
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"


@pytest.mark.parametrize(
    ("header", "expected"),
    [("public, max-age=60", 60), ("no-cache", 0), ("max-age=10, no-store", 0), (None, 0), ("private, max-age=5", 0)],
)
def test_cache_ttl(header: str | None, expected: int) -> None:
    assert cache_ttl(header) == expected


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=5-", 10, (5, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=8-100", 10, (8, 9)),
        ("bytes=10-", 10, None),
        ("bytes=5-2", 10, None),
    ],
)
def test_parse_range(header: str, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize("header", ["bytes=", "bytes=1-2,4-5", "items=1-2"])
def test_parse_range_rejects_unsupported(header: str) -> None:
    with pytest.raises(ValueError):
        parse_range(header, 10)
