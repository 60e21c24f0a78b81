"""Bearer tokens: HS256 JWTs signed with ``JWT_SECRET`` (pure; shared by the REST API and the WebSocket routes).

Owned here: the token format (claims, algorithm, issuer, audience, clock leeway), :func:`issue_token` (used
by ``capturestream up`` to mint a local developer token) and :func:`verify_token` (used by ``deps``).

Rules:
- Only ``HS256`` is accepted; the algorithm list is fixed so a token cannot pick its own (``alg: none``,
  RS/HS confusion).
- Required claims: ``sub`` (the owner id, 1-256 characters), ``exp``, ``iat``, ``iss`` = :data:`ISSUER`,
  ``aud`` = :data:`AUDIENCE`. Expiry is checked with :data:`LEEWAY_SECONDS` of clock skew.
- The optional ``name`` claim is shown beside the user's chat messages, so it must be a display name
  (:func:`capturestream.messages.check_display_name`: 1-64 characters, one line, no control or format
  characters); a token with any other ``name`` is invalid. Checked here, at the door: a long or multi-line name
  would otherwise be stored with every chat message and fail the notifier batch that delivers it.
- PyJWT is imported on first use, not at module import: it pulls in ``cryptography`` (~30 ms of cold start)
  for RSA/EC algorithms this module never uses, and ``/docs`` or ``/api/status`` need no token at all.
- Every failure is the same :class:`~capturestream.errors.Unauthorized` with a generic message: the client
  learns nothing about *why* (expired vs. bad signature vs. wrong audience). The reason is logged at DEBUG,
  never the token itself.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from capturestream.errors import Unauthorized
from capturestream.messages import check_display_name

logger = logging.getLogger(__name__)

ALGORITHM = "HS256"
#: ``iss`` of every CaptureStream token.
ISSUER = "capturestream"
#: ``aud`` of tokens accepted by the REST API (and the WebSocket ``$connect`` route).
AUDIENCE = "capturestream"
#: Clock skew tolerated on ``exp``/``iat``/``nbf``, in seconds.
LEEWAY_SECONDS = 30
#: Longest accepted ``sub``; the owner id is stored in DynamoDB keys.
MAX_SUBJECT_LENGTH = 256
#: Longest accepted token; real ones are ~250 bytes, so anything huge is garbage.
MAX_TOKEN_LENGTH = 4096

_REQUIRED_CLAIMS = ["sub", "exp", "iat", "iss", "aud"]
_INVALID = "invalid or expired bearer token"


@dataclass(frozen=True, slots=True)
class User:
    """The authenticated caller.

    Attributes:
        id: the token's ``sub``; owns channels (``Channel.owner``).
        name: optional display name from the ``name`` claim.
    """

    id: str
    name: str | None = None


def issue_token(secret: str, subject: str, ttl_seconds: int, name: str | None = None) -> str:
    """Sign a bearer token for ``subject`` that expires after ``ttl_seconds``.

    Args:
        secret: the ``JWT_SECRET`` the API verifies with.
        subject: the user id (``sub``), 1-256 characters.
        ttl_seconds: lifetime; must be positive.
        name: optional display name (``name`` claim; see the module rules).

    Returns:
        The compact JWT (``header.payload.signature``).

    Raises:
        ValueError: on an empty or oversized subject, an invalid name, or a non-positive ttl.
    """
    if not subject or len(subject) > MAX_SUBJECT_LENGTH:
        raise ValueError(f"subject must be 1-{MAX_SUBJECT_LENGTH} characters")
    if name is not None:
        name = check_display_name(name)
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": subject,
        "iat": now,
        "exp": now + int(ttl_seconds),
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    if name is not None:
        claims["name"] = name
    import jwt  # deferred (see module docstring)

    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str) -> User:
    """Check a bearer token's signature and claims and return its user.

    Args:
        secret: the ``JWT_SECRET``.
        token: the compact JWT from ``Authorization: Bearer <token>``.

    Raises:
        Unauthorized: for any invalid, expired, foreign or malformed token (one generic message).
    """
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized(_INVALID)
    import jwt  # deferred (see module docstring)

    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=LEEWAY_SECONDS,
            options={"require": _REQUIRED_CLAIMS},
        )
    except jwt.PyJWTError as exc:
        logger.debug("bearer token rejected: %s", type(exc).__name__)
        raise Unauthorized(_INVALID) from None
    subject = claims["sub"]
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT_LENGTH:
        raise Unauthorized(_INVALID)
    return User(id=subject, name=_display_name(claims.get("name")))


def _display_name(claim: object) -> str | None:
    if claim is None:
        return None
    try:
        if not isinstance(claim, str):
            raise ValueError("not a string")
        return check_display_name(claim)
    except ValueError as exc:
        logger.debug("bearer token rejected: name claim %s", exc)
        raise Unauthorized(_INVALID) from None
