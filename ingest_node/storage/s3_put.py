"""A lean S3 ``PutObject`` for the ingest node's hot path: aiohttp keep-alive + SigV4 signed here.

Why not aiobotocore for this one call: measured on this machine, botocore spends ~1.4–2 ms of CPU per PUT in its
generic per-call machinery (user-agent building, endpoint rulesets, hooks, validation — ``../shared/FANOUT.md``,
``INGEST_COST.md``), which alone is ~0.4 % of a core per stream at one segment and one playlist a second — the
biggest item of the ingest budget. Signing itself is cheap (one SHA-256 of the body, two HMACs with a signing key
derived once a day). Everything else in the node (DynamoDB key checks) keeps using aiobotocore.

Rules:
- Credentials and region come from botocore's standard resolution (env, profile, container/instance role),
  re-read per request from the (possibly refreshing) credential object; nothing is configured twice.
- Endpoint: whatever botocore resolves (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` / profile: moto,
  LocalStack, MinIO) with path-style URLs, else AWS's virtual-hosted ``https://<bucket>.s3.<region>.amazonaws.com``.
- Signature Version 4 by :class:`capturestream.sigv4.Signer` for ``s3``, exactly as botocore's ``S3SigV4Auth``
  computes it (unit tests compare the two), with the payload hash in ``x-amz-content-sha256``.
- Errors keep S3's code and HTTP status so the uploader can tell retryable (5xx, 429, SlowDown), configuration
  errors (403 AccessDenied, 404 NoSuchBucket, a wrong region: the operator can fix those, so nothing is thrown away)
  and objects S3 refuses for good (:attr:`S3PutError.rejects_object`: a 400 about the request itself).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import aiohttp
from botocore.session import get_session as botocore_session

from capturestream.sigv4 import Signer

_ERROR_CODE = re.compile(rb"<Code>([^<]+)</Code>")
_UNRESERVED = "-_.~"
#: 400-class codes about the credentials, clock or configuration, not the object: fixable, so never final.
_NOT_ABOUT_THE_OBJECT = frozenset(
    {
        "AuthorizationHeaderMalformed",  # wrong region
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "RequestTimeTooSkewed",
        "InvalidBucketName",
        "IncompleteBody",
        "BadDigest",
        "RequestTimeout",
    }
)


@dataclass(frozen=True)
class Upload:
    """One object to store: everything its PUT needs."""

    key: str
    body: bytes
    content_type: str
    cache_control: str
    queued_at: float = field(default_factory=time.monotonic)
    #: User metadata (``x-amz-meta-*``), e.g. a live segment's :class:`capturestream.keys.SegmentMetadata`.
    metadata: dict[str, str] | None = None


class S3PutError(Exception):
    """A PutObject that failed; ``status`` 0 means no HTTP answer (connection error, timeout)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code

    @property
    def retryable(self) -> bool:
        """Worth trying again: no answer, a server error, or throttling."""
        return (
            self.status == 0 or self.status >= 500 or self.status == 429 or self.code in ("SlowDown", "RequestTimeout")
        )

    @property
    def rejects_object(self) -> bool:
        """S3 refuses this request for good (too large, bad argument): trying again can never store it.

        403/404/301 (AccessDenied, NoSuchBucket, wrong endpoint) are not: they are the node's configuration,
        which an operator fixes, after which the same object stores fine.
        """
        return self.status in (400, 411, 413, 414) and self.code not in _NOT_ABOUT_THE_OBJECT


@dataclass(frozen=True)
class Target:
    """Where and how to send PUTs for one bucket."""

    base: str  # scheme://host[:port][/bucket] — the prefix every key is appended to
    host: str
    path_prefix: str  # "/bucket" for path-style, "" for virtual-hosted
    region: str


def configured_endpoint(region: str) -> str | None:
    """The S3 endpoint botocore resolves from the standard configuration (``AWS_ENDPOINT_URL_S3``,
    ``AWS_ENDPOINT_URL``, ``endpoint_url`` in the profile), or None when that is AWS itself.

    Resolved once, at start-up, through a throwaway botocore client, so the rules are botocore's, not ours.
    """
    url = botocore_session().create_client("s3", region_name=region).meta.endpoint_url
    host = urlsplit(url).hostname or ""
    return None if host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn") else url


def resolve_target(bucket: str, region: str, endpoint_url: str | None = None) -> Target:
    """The URL layout for ``bucket``: path-style on a custom endpoint, virtual-hosted on AWS."""
    endpoint = endpoint_url or configured_endpoint(region)
    if endpoint:
        parts = urlsplit(endpoint.rstrip("/"))
        return Target(f"{parts.scheme}://{parts.netloc}/{bucket}", parts.netloc, f"/{bucket}", region)
    host = f"{bucket}.s3.{region}.amazonaws.com"
    return Target(f"https://{host}", host, "", region)


class S3Putter:
    """``async with S3Putter(bucket) as s3: await s3.put(key, body, content_type, cache_control)``."""

    def __init__(
        self,
        bucket: str,
        *,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        timeout: float = 15.0,
        connections: int = 64,
    ) -> None:
        session = botocore_session()
        self._credentials = session.get_credentials()
        if self._credentials is None:
            raise S3PutError(0, "NoCredentials", "no AWS credentials found (env, profile or role)")
        region = region_name or session.get_config_variable("region") or "us-east-1"
        self.target = resolve_target(bucket, region, endpoint_url)
        self._signer = Signer("s3", region)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._connections = connections
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> S3Putter:
        connector = aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=30)
        self._http = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, skip_auto_headers=("User-Agent",)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def put(
        self, key: str, body: bytes, *, content_type: str, cache_control: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        """Store ``body`` at ``key`` (``metadata``: user metadata, sent as signed ``x-amz-meta-<name>`` headers).

        Raises:
            S3PutError: with S3's status and error code (status 0 when no answer came back).
        """
        path = self.target.path_prefix + "/" + quote(key, safe="/" + _UNRESERVED)
        headers = self._signer.sign(
            "PUT",
            self.target.host,
            path,
            payload_sha256=hashlib.sha256(body).hexdigest(),
            headers={
                "content-type": content_type,
                "cache-control": cache_control,
                "content-length": str(len(body)),
                **{f"x-amz-meta-{name}": value for name, value in (metadata or {}).items()},
            },
            credentials=self._credentials.get_frozen_credentials(),
        )
        assert self._http is not None, "use S3Putter as an async context manager"
        url = self.target.base + path[len(self.target.path_prefix) :]
        try:
            async with self._http.put(url, data=body, headers=headers) as response:
                if response.status == 200:
                    await response.read()
                    return
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise S3PutError(0, type(error).__name__, str(error)) from None
        match = _ERROR_CODE.search(raw)
        raise S3PutError(
            response.status, match.group(1).decode() if match else "HTTPError", raw[:300].decode("utf-8", "replace")
        )
