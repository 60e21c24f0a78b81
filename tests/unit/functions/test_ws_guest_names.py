"""Guest chat names: stable per viewer, unforgeable without the server's key (functions.ws.chat.guest_name)."""

from __future__ import annotations

import hashlib
import re

import pytest
from pydantic import ValidationError

from capturestream.settings import WsSettings
from functions.ws.chat import guest_name

BASE = {"TABLE_NAME": "t", "MEDIA_BUCKET": "m", "WS_ENDPOINT": "http://x"}


def settings(**secrets: str) -> WsSettings:
    return WsSettings(**BASE, **secrets)


def test_a_guest_name_is_stable_per_viewer_and_carries_65_bits() -> None:
    keyed = settings(JWT_SECRET="j" * 48)
    name = guest_name(keyed, "anon:tab-1234")
    assert re.fullmatch("guest-[a-z2-7]{13}", name)
    assert guest_name(keyed, "anon:tab-1234") == name  # a reload (same viewer id) keeps it
    assert guest_name(keyed, "anon:tab-1235") != name
    assert name != "guest-" + hashlib.sha256(b"anon:tab-1234").hexdigest()[:6]  # the old, computable name


def test_the_name_depends_on_the_server_key() -> None:
    assert guest_name(settings(JWT_SECRET="k" * 48), "anon:a") != guest_name(settings(JWT_SECRET="j" * 48), "anon:a")


@pytest.mark.parametrize("secrets", [{}, {"JWT_SECRET": "short"}, {"JWT_SECRET": "changethis"}])
def test_the_websocket_function_refuses_to_start_without_a_strong_key(secrets: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        settings(**secrets)
