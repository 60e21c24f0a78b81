"""Fixtures of the in-process ingest node tests."""

from __future__ import annotations

import pytest

from tests.integration.node_support import PublishTarget, provision_publish_target


@pytest.fixture
def publish_target(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> PublishTarget:
    """A fresh moto with the media bucket, the table and one channel; ``AWS_ENDPOINT_URL`` points there."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return provision_publish_target()
