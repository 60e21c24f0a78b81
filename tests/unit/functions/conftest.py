"""Fixtures of the function tests: the REST function's environment on moto and the table from template.yaml."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from capturestream.settings import get_settings
from functions.api import deps
from functions.api import handler as api_handler
from tests.support.api import ORIGIN, RTMP, SECRET, TABLE, WEB
from tests.support.aws import create_media_table


@pytest.fixture
def api_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Environment of the REST function pointed at moto; yields a boto3 DynamoDB client (no table yet)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    for name, value in {
        "TABLE_NAME": TABLE,
        "MEDIA_BUCKET": "capturestream-media",
        "JWT_SECRET": SECRET,
        "RTMP_INGEST_URL": RTMP,
        "WEB_BASE_URL": WEB + "/",
        "CORS_ALLOW_ORIGINS": f"{ORIGIN},http://other.test",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    deps.reset_clients()
    yield boto3.client("dynamodb")
    api_handler.app.dependency_overrides.clear()
    get_settings.cache_clear()
    deps.reset_clients()


@pytest.fixture
def dynamodb(api_env: Any) -> Any:
    """The DynamoDB client, with the single table created from template.yaml."""
    create_media_table(api_env, TABLE)
    return api_env
