"""capturestream.tokens: the ``name`` claim is a display name or the whole token is refused."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from capturestream.errors import Unauthorized
from capturestream.tokens import ALGORITHM, AUDIENCE, ISSUER, User, issue_token, verify_token

SECRET = "n" * 48


def _signed(**claims: Any) -> str:
    """A token signed with the right key whose claims did not pass through :func:`issue_token`."""
    now = int(time.time())
    base = {"sub": "user-1", "iat": now, "exp": now + 60, "iss": ISSUER, "aud": AUDIENCE}
    return jwt.encode({**base, **claims}, SECRET, algorithm=ALGORITHM)


def test_a_display_name_is_kept_stripped_and_no_name_is_fine() -> None:
    assert verify_token(SECRET, _signed(name="  Ada 👩🏽‍💻 ")) == User(id="user-1", name="Ada 👩🏽‍💻")
    assert verify_token(SECRET, _signed()) == User(id="user-1", name=None)


@pytest.mark.parametrize(
    "name",
    ["", "x" * 65, "Ada\nLovelace", "Ada\r\nL", "Ada\u0007", "\u202eadA", "Ada\u200b", 42, ["Ada"], {"n": 1}],
)
def test_a_token_whose_name_is_not_a_display_name_is_refused(name: Any) -> None:
    with pytest.raises(Unauthorized) as info:
        verify_token(SECRET, _signed(name=name))
    assert info.value.message == "invalid or expired bearer token"  # the same generic answer as any bad token


@pytest.mark.parametrize("name", ["", "x" * 65, "two\nlines", "rlo\u202e"])
def test_issue_token_refuses_names_it_could_not_verify(name: str) -> None:
    with pytest.raises(ValueError, match="characters"):
        issue_token(SECRET, "user-1", 60, name=name)
