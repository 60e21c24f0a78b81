"""FastAPI dependencies of the REST API: settings, the DynamoDB and S3 clients, the current user.

Rules:
- Nothing is read or created at import time. Settings come from ``capturestream.settings.get_settings``
  (cached; tests call ``get_settings.cache_clear()``), the boto3 clients are lazily built module singletons
  reused across warm invocations (STYLE §6 rule 8). Only recording deletion needs S3, so most invocations
  never build that client.
- The client's endpoint comes from ``AWS_ENDPOINT_URL`` (honoured by botocore itself), never from settings:
  that is how the same code talks to moto, LocalStack or AWS (rule 9).
- Every dependency is an ``Annotated`` alias (``SettingsDep``, ``DynamoDep``, ``S3Dep``, ``CurrentUser``) so
  routes read as plain parameters and tests can swap any of them with ``app.dependency_overrides``.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import Depends, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from capturestream.errors import Unauthorized
from capturestream.settings import ApiSettings, get_settings
from capturestream.tokens import User, verify_token

#: A boto3 ``dynamodb`` client (typed ``Any``: boto3-stubs are not a dependency).
DynamoDBClient = Any
#: A boto3 ``s3`` client.
S3Client = Any

#: Bounded AWS calls: an API request must fail fast rather than hang until the gateway's 30 s timeout.
_CLIENT_TIMEOUTS = {"connect_timeout": 2, "read_timeout": 5, "retries": {"max_attempts": 3, "mode": "standard"}}

_client_lock = threading.Lock()
_dynamodb: DynamoDBClient | None = None
_s3: S3Client | None = None


def get_api_settings() -> ApiSettings:
    """The REST function's settings (read from the environment once, then cached)."""
    return get_settings(ApiSettings)


def get_dynamodb() -> DynamoDBClient:
    """The process-wide boto3 DynamoDB client, created on first use.

    The lock matters locally: devstack runs concurrent invocations in threads, and creating clients from
    boto3's default session is not thread-safe.
    """
    global _dynamodb
    if _dynamodb is None:
        with _client_lock:
            if _dynamodb is None:
                import boto3  # deferred: ~130 ms of a cold start that /docs and /openapi.json never need
                from botocore.config import Config

                _dynamodb = boto3.client("dynamodb", config=Config(**_CLIENT_TIMEOUTS))
    return _dynamodb


def get_s3() -> S3Client:
    """The process-wide boto3 S3 client, created on first use (same rules as :func:`get_dynamodb`)."""
    global _s3
    if _s3 is None:
        with _client_lock:
            if _s3 is None:
                import boto3
                from botocore.config import Config

                _s3 = boto3.client("s3", config=Config(**_CLIENT_TIMEOUTS))
    return _s3


def reset_clients() -> None:
    """Forget the cached clients (tests: after changing ``AWS_ENDPOINT_URL`` or credentials)."""
    global _dynamodb, _s3
    with _client_lock:
        _dynamodb = None
        _s3 = None


_bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="HS256 JWT signed with JWT_SECRET (claims: sub, exp, iat, iss, aud).",
)


def current_user(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    settings: Annotated[ApiSettings, Depends(get_api_settings)],
) -> User:
    """The caller identified by ``Authorization: Bearer <JWT>``.

    Raises:
        Unauthorized: when the header is missing, not a bearer token, or the token is invalid or expired.
    """
    if credentials is None:
        raise Unauthorized("missing bearer token")
    return verify_token(settings.jwt_secret.get_secret_value(), credentials.credentials)


def no_store(response: Response) -> None:
    """Mark the response uncacheable (owner data must not sit in browser or proxy caches)."""
    response.headers["Cache-Control"] = "no-store"


SettingsDep = Annotated[ApiSettings, Depends(get_api_settings)]
DynamoDep = Annotated[DynamoDBClient, Depends(get_dynamodb)]
S3Dep = Annotated[S3Client, Depends(get_s3)]
CurrentUser = Annotated[User, Depends(current_user)]
