"""Settings come from the environment, names match template.yaml, secrets are checked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from capturestream.settings import ApiSettings, FunctionSettings, IngestSettings, get_settings


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def function_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABLE_NAME", "capturestream-MediaTable")
    monkeypatch.setenv("MEDIA_BUCKET", "capturestream-media")


def test_function_settings_from_env(function_env: None) -> None:
    settings = get_settings(FunctionSettings)
    assert settings.table_name == "capturestream-MediaTable"
    assert get_settings(FunctionSettings) is settings


def test_missing_variables_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TABLE_NAME", raising=False)
    monkeypatch.delenv("MEDIA_BUCKET", raising=False)
    with pytest.raises(ValidationError) as info:
        get_settings(FunctionSettings)
    assert "TABLE_NAME" in str(info.value) and "MEDIA_BUCKET" in str(info.value)


@pytest.mark.parametrize("secret", ["changethis", "short", "x" * 31])
def test_weak_jwt_secrets_are_refused(function_env: None, monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    monkeypatch.setenv("JWT_SECRET", secret)
    with pytest.raises(ValidationError):
        get_settings(ApiSettings)


def test_api_settings_parse_origins_and_hide_secret(function_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", "s" * 48)
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", "http://localhost:8000, https://app.example.com")
    settings = get_settings(ApiSettings)
    assert settings.cors_allow_origins == ["http://localhost:8000", "https://app.example.com"]
    assert "s" * 48 not in repr(settings)


def test_ingest_settings_bounds(function_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONNECT_WINDOW", "1801")
    with pytest.raises(ValidationError):
        get_settings(IngestSettings)
