"""Shared fixtures: a fake AWS environment and a real moto server over HTTP.

Integration tests talk to ``ThreadedMotoServer(port=0)`` over HTTP (boto3 and aiobotocore alike; moto's
in-process decorators do not patch aiohttp). The server is session-scoped and reset before each test that
asks for ``moto_endpoint`` (16 ms).
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator

import pytest

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture(autouse=True)
def fake_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs with throwaway credentials and no real AWS profile."""
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def _moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def moto_endpoint(_moto_server: str) -> str:
    """URL of a freshly reset moto server (S3, SQS, EventBridge, DynamoDB + Streams)."""
    request = urllib.request.Request(f"{_moto_server}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    return _moto_server
