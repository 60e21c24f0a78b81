"""The local CDN edge against a real moto S3: headers, caching, ranges, CORS, and web files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import boto3
import pytest
from aiobotocore.session import get_session
from aiohttp import ClientSession, web

from capturestream import keys
from devstack.cdn_edge import CdnEdge, cache_ttl, parse_range

BUCKET = "media"
SEGMENT = keys.LiveSegment(playback_id="pb1", session_id="s1", sequence=3).key
PLAYLIST = keys.LivePlaylist(playback_id="pb1", session_id="s1").key
IMMUTABLE = "public, max-age=31536000, immutable"


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
    (tmp_path / "index.html").write_text("<h1>home</h1>")
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "app.js").write_text("console.log(1)")
    async with get_session().create_client("s3", endpoint_url=moto_endpoint) as client:
        cdn = CdnEdge(client, BUCKET, tmp_path)
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
        "/sessions/pb1/s1/started.json.bak",
        "/../pyproject.toml",
        "/missing.html",
    ],
)
async def test_not_found_and_no_escape(edge, path: str) -> None:
    base, _, _ = edge
    async with ClientSession() as http, http.get(f"{base}{path}") as response:
        assert response.status == 404


async def test_web_files(edge) -> None:
    base, _, _ = edge
    async with ClientSession() as http:
        async with http.get(f"{base}/") as response:
            assert response.status == 200 and "home" in await response.text()
        async with http.get(f"{base}/js/app.js") as response:
            assert response.status == 200 and "javascript" in response.headers["Content-Type"]
        async with http.post(f"{base}/") as response:
            assert response.status == 405


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
