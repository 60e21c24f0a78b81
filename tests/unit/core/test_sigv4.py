"""The hand-rolled SigV4 signer produces exactly what botocore produces.

Two references: botocore's ``SigV4Auth``/``S3SigV4Auth`` applied to the same ``AWSRequest`` at a fixed time, and
the unmodified ``apigatewaymanagementapi`` client's ``post_to_connection`` (its request captured in
``before-send`` and answered there, so nothing goes on the wire): the latter also pins the URL the notifier must
send (``/{stage}/@connections/{id}`` with the id percent-encoded once, ``@`` left as is).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any
from unittest import mock
from urllib.parse import quote

import botocore.session
import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth, _host_from_url
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.credentials import Credentials

from capturestream import sigv4
from capturestream.sigv4 import EMPTY_SHA256, Signer, canonical_uri, host_of

NOW = dt.datetime(2026, 11, 25, 15, 4, 5, tzinfo=dt.UTC)
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
ENDPOINTS = ["http://127.0.0.1:3001/dev", "https://abc123.execute-api.us-east-1.amazonaws.com/production"]
IDS = ["Jd3AbcdEfgh=", "C00000001=", "L0SM9cOFvHcCIhw="]
BODY = b'{"type":"viewers","count":42}'


def _botocore_signed(auth: SigV4Auth, request: AWSRequest, now: dt.datetime = NOW) -> dict[str, str]:
    with mock.patch("botocore.auth.get_current_datetime", return_value=now.replace(tzinfo=None)):
        auth.add_auth(request)
    return {name.lower(): value for name, value in request.headers.items()}


def _connection_url(endpoint: str, connection_id: str) -> str:
    return f"{endpoint}/@connections/{quote(connection_id, safe='-_.~')}"


@pytest.mark.parametrize("token", [None, "IQoJb3JpZ2luX2VjEAYaCXVzLWVhc3QtMSJHMEUCIQ=="])
@pytest.mark.parametrize("connection_id", IDS)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_execute_api_matches_sigv4auth(endpoint: str, connection_id: str, token: str | None) -> None:
    credentials = Credentials("AKIDEXAMPLE", SECRET, token)
    url = _connection_url(endpoint, connection_id)
    path = url.split("/", 3)[3]
    ours = Signer("execute-api", "us-east-1").sign(
        "POST",
        host_of(url),
        "/" + path,
        payload_sha256=hashlib.sha256(BODY).hexdigest(),
        credentials=credentials.get_frozen_credentials(),
        now=NOW,
    )
    theirs = _botocore_signed(SigV4Auth(credentials, "execute-api", "us-east-1"), AWSRequest("POST", url, data=BODY))
    assert ours == {name: theirs[name] for name in ours}
    assert set(ours) == {"x-amz-date", "authorization"} | ({"x-amz-security-token"} if token else set())
    assert "x-amz-content-sha256" not in theirs


class _EmptyBody:
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield b""


@pytest.mark.parametrize("token", [None, "session-token"])
@pytest.mark.parametrize("connection_id", IDS[:2])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_execute_api_matches_the_management_client(endpoint: str, connection_id: str, token: str | None) -> None:
    """What boto3's ``post_to_connection`` sends: the same URL and the same signature as ours."""
    sent: list[Any] = []

    def capture(request: Any, **_: Any) -> AWSResponse:
        sent.append(request)
        return AWSResponse(request.url, 200, {}, _EmptyBody())

    client = botocore.session.get_session().create_client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint,
        region_name="eu-west-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=SECRET,
        aws_session_token=token,
    )
    client.meta.events.register("before-send", capture)
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        client.post_to_connection(ConnectionId=connection_id, Data=BODY)
    (request,) = sent
    url = _connection_url(endpoint, connection_id)
    assert request.url == url
    ours = Signer("execute-api", "eu-west-1").sign(
        "POST",
        host_of(url),
        "/" + url.split("/", 3)[3],
        payload_sha256=hashlib.sha256(BODY).hexdigest(),
        credentials=Credentials("AKIDEXAMPLE", SECRET, token).get_frozen_credentials(),
        now=NOW,
    )
    assert ours["authorization"] == request.headers["Authorization"].decode()
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"].decode()
    if token:
        assert ours["x-amz-security-token"] == request.headers["X-Amz-Security-Token"].decode()


@pytest.mark.parametrize(
    "path",
    ["", "/", "/dev/@connections/C01%3D", "//a//b/", "/a/./b/../c", "/../x", "/a/b/..", "/~user/%7E%20 x", "/a/."],
)
def test_canonical_uri_matches_botocore(path: str) -> None:
    auth = SigV4Auth(Credentials("a", "b"), "execute-api", "us-east-1")
    assert canonical_uri(path, "execute-api") == auth._normalize_url_path(path)
    assert canonical_uri(path, "s3") == path


@pytest.mark.parametrize(
    "url",
    [
        "https://abc123.execute-api.us-east-1.amazonaws.com/dev",
        "https://ABC.example.com:443/x",
        "http://127.0.0.1:80/dev",
        "http://127.0.0.1:3001/dev",
        "https://example.com:8443",
        "http://[::1]:3001/dev",
    ],
)
def test_host_matches_botocore(url: str) -> None:
    assert host_of(url) == _host_from_url(url)


@pytest.mark.parametrize("token", [None, "session-token-123"])
def test_s3_matches_s3sigv4auth(token: str | None) -> None:
    """S3 rules: the path is signed as sent and the payload hash travels in ``x-amz-content-sha256``."""
    credentials = Credentials("AKIDEXAMPLE", SECRET, token)
    url = "http://localhost:9000/media/live/a%20b/seg_00000001.m4s"
    body = b"segment" * 50
    headers = {"Content-Type": "video/mp4", "Cache-Control": " max-age=1,   public ", "Content-Length": str(len(body))}
    ours = Signer("s3", "eu-west-1").sign(
        "PUT",
        host_of(url),
        "/media/live/a%20b/seg_00000001.m4s",
        payload_sha256=hashlib.sha256(body).hexdigest(),
        headers=headers,
        credentials=credentials.get_frozen_credentials(),
        now=NOW,
    )
    request = AWSRequest("PUT", url, data=body, headers=headers)
    request.context = {"payload_signing_enabled": True}
    theirs = _botocore_signed(S3SigV4Auth(credentials, "s3", "eu-west-1"), request)
    for name in ("authorization", "x-amz-date", "x-amz-content-sha256"):
        assert ours[name] == theirs[name]
    assert ours["cache-control"] == "max-age=1, public"


def test_signing_key_is_derived_once_a_day() -> None:
    credentials = Credentials("AKIDEXAMPLE", SECRET).get_frozen_credentials()
    signer = Signer("execute-api", "us-east-1")
    url = "https://abc123.execute-api.us-east-1.amazonaws.com/dev/@connections/C00000001%3D"
    with mock.patch.object(sigv4, "_hmac", wraps=sigv4._hmac) as derive:
        for now in (NOW, NOW + dt.timedelta(hours=1), NOW + dt.timedelta(days=1)):
            ours = signer.sign(
                "POST",
                host_of(url),
                url[url.index("/dev") :],
                payload_sha256=EMPTY_SHA256,
                credentials=credentials,
                now=now,
            )
            theirs = _botocore_signed(SigV4Auth(credentials, "execute-api", "us-east-1"), AWSRequest("POST", url), now)
            assert ours["authorization"] == theirs["authorization"]
    assert derive.call_count == 8  # 4 HMACs per derivation, 2 days


def test_current_time_is_used_when_none_given() -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    stamp = Signer("execute-api", "us-east-1").sign(
        "POST", "h", "/", payload_sha256=EMPTY_SHA256, credentials=Credentials("a", "b").get_frozen_credentials()
    )["x-amz-date"]
    signed_at = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    assert before <= signed_at <= dt.datetime.now(dt.UTC)
