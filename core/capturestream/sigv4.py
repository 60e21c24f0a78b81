"""AWS Signature Version 4 for the hand-rolled hot-path clients (pure: hashlib, hmac and urllib only).

Owned here: :class:`Signer`, which signs one HTTP request for one (service, region) exactly as botocore does,
and :func:`host_of`, the ``Host`` value botocore signs for a URL. Two callers sign with it: the ingest node's
S3 ``PutObject`` (``ingest_node/storage/s3_put.py``) and the notifier's ``@connections`` POSTs
(``functions/notifier/connections.py``). They exist because botocore's generic per-call machinery costs
~0.5-2 ms of CPU per request while signing itself is ~6 µs (``../shared/FANOUT.md``): the signing key is
derived once a day, then each request costs one SHA-256 of the canonical request and one HMAC.

Rules (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html, checked against
botocore's ``SigV4Auth``/``S3SigV4Auth`` by ``tests/unit/core/test_sigv4.py``):
- Canonical URI: for ``s3`` the path exactly as sent (already percent-encoded once; S3 does not normalise).
  For every other service botocore's ``SigV4Auth._normalize_url_path``: dot segments and empty segments
  removed, then percent-encoded *again* with only ``/`` and ``~`` safe, so an id sent as ``C01%3D`` is signed as
  ``C01%253D`` and ``/@connections`` as ``/%40connections``.
- Signed headers: ``host``, ``x-amz-date``, ``x-amz-security-token`` (temporary credentials only), every header
  the caller passes, and for ``s3`` ``x-amz-content-sha256`` (S3 requires it). Other services get the payload
  hash in the canonical request only, as botocore does; it is not sent. Header values are trimmed and inner
  runs of spaces collapsed; names are lower-cased and sorted.
- No query strings: neither caller sends one.
- Credentials are any object with ``access_key``, ``secret_key`` and ``token`` (botocore's frozen
  credentials), passed per request so refreshed role credentials are picked up. The signing key is cached per
  (secret, day, region, service): one entry per :class:`Signer`, which is bound to one region and service.
- The ``x-amz-date`` stamp is formatted once per wall-clock second.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import quote, urlsplit

__all__ = ["EMPTY_SHA256", "Credentials", "Signer", "canonical_uri", "host_of"]

ALGORITHM = "AWS4-HMAC-SHA256"
#: SHA-256 of an empty payload (hex), for requests without a body.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Credentials(Protocol):
    """What the signer reads from credentials (``botocore.credentials.ReadOnlyCredentials`` fits)."""

    @property
    def access_key(self) -> str: ...

    @property
    def secret_key(self) -> str: ...

    @property
    def token(self) -> str | None: ...


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 plus AWS's removal of empty segments (botocore ``utils.remove_dot_segments``)."""
    if not path:
        return "/"
    output: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if output:
                output.pop()
        elif segment and segment != ".":
            output.append(segment)
    first = "/" if path[0] == "/" else ""
    last = "/" if path[-1] == "/" and output else ""
    return first + "/".join(output) + last


def canonical_uri(path: str, service: str) -> str:
    """The CanonicalURI of a request path (the path as sent, already percent-encoded once).

    Args:
        path: The URL path, e.g. ``/dev/@connections/C01%3D``.
        service: The signing name (``s3``, ``execute-api``, ...).

    Returns:
        ``path`` itself for ``s3``; otherwise the normalised, double-encoded path botocore signs.
    """
    if service == "s3":
        return path
    return quote(_remove_dot_segments(path), safe="/~")


def host_of(url: str) -> str:
    """The ``Host`` value botocore signs for ``url``: lower-case host, port only when it is not the default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


class Signer:
    """Signs requests for one service in one region.

    Args:
        service: The signing name: ``s3``, ``execute-api`` (API Gateway management API), ...
        region: The signing region, e.g. ``us-east-1``.
    """

    __slots__ = ("_key", "_stamp", "_s3", "region", "service")

    def __init__(self, service: str, region: str) -> None:
        self.service = service
        self.region = region
        self._s3 = service == "s3"
        self._key: tuple[str, str, bytes] = ("", "", b"")  # (secret, day, signing key)
        self._stamp: tuple[int, str] = (-1, "")  # (epoch second, x-amz-date)

    def signing_key(self, secret: str, day: str) -> bytes:
        """The derived key for ``day`` (``YYYYMMDD``); recomputed only when the secret or the day changes."""
        cached_secret, cached_day, key = self._key
        if cached_secret != secret or cached_day != day:
            key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), day), self.region), self.service), "aws4_request")
            self._key = (secret, day, key)
        return key

    def _now_stamp(self) -> str:
        second = int(time.time())
        if self._stamp[0] != second:
            self._stamp = (second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second)))
        return self._stamp[1]

    def sign(
        self,
        method: str,
        host: str,
        path: str,
        *,
        payload_sha256: str,
        credentials: Credentials,
        headers: Mapping[str, str] | None = None,
        now: dt.datetime | None = None,
        canonical_path: str | None = None,
    ) -> dict[str, str]:
        """Sign one request.

        Args:
            method: HTTP method, e.g. ``POST``.
            host: The ``Host`` header the HTTP client will send (see :func:`host_of`).
            path: The URL path exactly as sent (percent-encoded once).
            payload_sha256: Hex SHA-256 of the body (:data:`EMPTY_SHA256` for none).
            credentials: ``access_key``, ``secret_key``, ``token`` (botocore frozen credentials).
            headers: Further headers to sign and send (e.g. ``content-type`` for S3).
            now: Signing time (UTC); the current time when omitted.
            canonical_path: ``canonical_uri(path, service)`` when the caller already has it (a hot path that
                builds it from a precomputed prefix); computed from ``path`` when omitted.

        Returns:
            The headers to send, lower-case: ``headers`` plus ``x-amz-date``, ``x-amz-security-token`` (when
            the credentials carry a token), ``x-amz-content-sha256`` (S3 only) and ``authorization``. ``host``
            is signed but not returned: the HTTP client sends it.
        """
        stamp = now.strftime("%Y%m%dT%H%M%SZ") if now is not None else self._now_stamp()
        signed = {"host": host, "x-amz-date": stamp}
        if headers:
            signed.update({name.lower(): " ".join(value.split()) for name, value in headers.items()})
        if self._s3:
            signed["x-amz-content-sha256"] = payload_sha256
        token = credentials.token
        if token:
            signed["x-amz-security-token"] = token
        names = sorted(signed)
        signed_names = ";".join(names)
        canonical_headers = "".join([f"{name}:{signed[name]}\n" for name in names])
        uri = canonical_path or canonical_uri(path, self.service)
        canonical = f"{method}\n{uri}\n\n{canonical_headers}\n{signed_names}\n{payload_sha256}"
        day = stamp[:8]
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self.signing_key(credentials.secret_key, day), to_sign.encode(), hashlib.sha256)
        signed["authorization"] = (
            f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed_names}, Signature={signature.hexdigest()}"
        )
        del signed["host"]
        return signed
