"""The lean S3 PUT: its SigV4 equals botocore's, and it stores objects in a real (moto) S3."""

from __future__ import annotations

import datetime as dt
import hashlib
from unittest import mock

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from capturestream.sigv4 import Signer
from ingest_node.storage.s3_put import S3PutError, S3Putter, resolve_target

NOW = dt.datetime(2026, 11, 25, 15, 4, 5, tzinfo=dt.UTC)


@pytest.mark.parametrize("token", [None, "session-token-123"])
@pytest.mark.parametrize(
    ("endpoint", "key"),
    [("http://127.0.0.1:4566", "live/pb1/20261125T150000Z-abc/seg_00000001.m4s"), (None, "sessions/p/s/started.json")],
)
def test_signature_matches_botocore(endpoint: str | None, key: str, token: str | None) -> None:
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    body = b"segment bytes" * 100
    target = resolve_target("media-bucket", "eu-west-1", endpoint)
    path = target.path_prefix + "/" + key
    ours = Signer("s3", target.region).sign(
        "PUT",
        target.host,
        path,
        payload_sha256=hashlib.sha256(body).hexdigest(),
        headers={"content-type": "video/mp4", "cache-control": "max-age=1", "content-length": str(len(body))},
        credentials=credentials.get_frozen_credentials(),
        now=NOW,
    )
    url = target.base + path[len(target.path_prefix) :]
    request = AWSRequest(
        method="PUT",
        url=url,
        data=body,
        headers={"Content-Type": "video/mp4", "Cache-Control": "max-age=1", "Content-Length": str(len(body))},
    )
    request.context = {"payload_signing_enabled": True}
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        S3SigV4Auth(credentials, "s3", "eu-west-1").add_auth(request)
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours["x-amz-content-sha256"] == request.headers["X-Amz-Content-SHA256"]


def test_target_layouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    aws = resolve_target("b", "us-east-2")
    assert (aws.base, aws.host, aws.path_prefix) == (
        "https://b.s3.us-east-2.amazonaws.com",
        "b.s3.us-east-2.amazonaws.com",
        "",
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://localhost:9000/")
    minio = resolve_target("b", "us-east-1")
    assert (minio.base, minio.host, minio.path_prefix) == ("http://localhost:9000/b", "localhost:9000", "/b")


async def test_put_stores_object_with_headers(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="media")
    async with S3Putter("media") as putter:
        await putter.put(
            "live/a/b/index.m3u8", b"#EXTM3U\n", content_type="application/vnd.apple.mpegurl", cache_control="no-cache"
        )
        with pytest.raises(S3PutError) as info:
            async with S3Putter("missing-bucket") as other:
                await other.put("k", b"x", content_type="video/mp4", cache_control="no-cache")
    stored = s3.get_object(Bucket="media", Key="live/a/b/index.m3u8")
    assert stored["Body"].read() == b"#EXTM3U\n"
    assert stored["ContentType"] == "application/vnd.apple.mpegurl" and stored["CacheControl"] == "no-cache"
    assert info.value.status == 404 and info.value.code == "NoSuchBucket" and not info.value.retryable
