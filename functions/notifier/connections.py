"""The notifier's ``@connections`` client: one signed POST per WebSocket connection, many in flight.

Owned here: :class:`ConnectionPoster`, which fans one message out to N API Gateway WebSocket connections with
``POST {endpoint}/@connections/{connectionId}`` (PostToConnection, the only way AWS offers to push to a
connection), :class:`FanoutResult`, :class:`PostError` and :func:`shared_poster`.

Why not boto3/aiobotocore: botocore spends ~0.5 ms of CPU per call in its generic machinery (user agent,
endpoint rulesets, hooks), which makes 10k viewers take ~6 s on two cores; a keep-alive aiohttp client with the
SigV4 of :mod:`capturestream.sigv4` costs ~0.1 ms per message (``../shared/FANOUT.md``, ``bench/_fanout.py``).

Rules:
- ``endpoint`` is the management endpoint ``https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`` (or
  the devstack gateway's ``http://127.0.0.1:PORT/{stage}``). The id is percent-encoded once as botocore's
  ``post_to_connection`` does (``C01=`` → ``C01%3D``, ``@`` left as is) and signed for ``execute-api``.
- Credentials and region come from botocore's standard resolution, nothing configured twice; the region of an
  AWS endpoint host wins over the configured one (a signature for another region is refused). Frozen
  credentials are re-read for every request, so refreshing role credentials keep working.
- Outcomes: 2xx delivered; 410 (``x-amzn-ErrorType: GoneException``) gone, the caller deletes exactly that id;
  429, 5xx, connection errors and timeouts are retried ``retries`` times with short jittered exponential
  backoff; any other answer (403 ``ForbiddenException`` for a malformed id, 413) fails at once.
- A keep-alive connection that went stale while the Lambda environment was frozen answers the next request
  with ``ServerDisconnectedError``: that first occurrence is retried at once, counted with the other retries.
  A retried POST may deliver twice if the first one did reach the gateway; notifications are at-least-once.
- Messages over 128 KB (API Gateway's payload quota) raise ``ValueError`` before anything is sent.
- At most ``in_flight`` requests per :meth:`ConnectionPoster.post_many` (that many workers over one iterator,
  cheaper than a task per id), and at most ``in_flight`` connections in the pool overall. ~64 is the measured
  sweet spot on two cores; more in flight is slower.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import logging
import random
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import aiohttp
from botocore.exceptions import NoCredentialsError
from botocore.session import get_session as botocore_session
from yarl import URL

from capturestream.sigv4 import Signer, canonical_uri, host_of

__all__ = [
    "DELIVERED",
    "GONE",
    "MAX_MESSAGE_BYTES",
    "ConnectionPoster",
    "FanoutResult",
    "PostError",
    "shared_poster",
]

log = logging.getLogger(__name__)

#: API Gateway WebSocket message payload quota (128 KB).
MAX_MESSAGE_BYTES = 128 * 1024
DELIVERED: Literal["delivered"] = "delivered"
GONE: Literal["gone"] = "gone"
_SERVICE = "execute-api"
_AWS_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
_ID_SAFE = "-_.~"  # botocore percent_encode: unreserved characters only
_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]+=*")  # AWS's ids (base64url + padding): only "=" needs encoding
_RETRYABLE = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)
_SKIP_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")  # boto3 sends none of them either


class PostError(Exception):
    """A PostToConnection that failed for good.

    Attributes:
        connection_id: The connection posted to.
        status: The HTTP status of the last answer; 0 when none came (connection error, timeout).
        error_type: ``x-amzn-ErrorType`` (``ForbiddenException``, ...) or the client exception's name.
    """

    def __init__(self, connection_id: str, status: int, error_type: str, message: str) -> None:
        super().__init__(f"{status} {error_type}: {message}")
        self.connection_id = connection_id
        self.status = status
        self.error_type = error_type


@dataclass
class FanoutResult:
    """What :meth:`ConnectionPoster.post_many` did.

    Attributes:
        delivered: Connections that accepted the message.
        gone: Ids that answered 410 ``GoneException``: stale, the caller deletes exactly these.
        failed: Id → error text, for posts that failed after bounded retries (neither delivered nor gone).
    """

    delivered: int = 0
    gone: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _region_of(host: str, configured: str | None) -> str:
    match = _AWS_HOST.match(host.split(":")[0])
    return match.group(1) if match else configured or "us-east-1"


class ConnectionPoster:
    """``async with ConnectionPoster(endpoint) as poster: result = await poster.post_many(ids, data)``.

    Args:
        endpoint: The management endpoint, ``https://{api-id}.execute-api.{region}.amazonaws.com/{stage}``.
        region: Signing region; by default the endpoint's (AWS hosts), else botocore's configured region.
        in_flight: Most requests in flight per :meth:`post_many`, and connections in the keep-alive pool.
        timeout: Seconds to connect, and seconds an answer may keep the client waiting; a timed-out attempt
            counts as a connection error.
        retries: Extra attempts after a retryable failure (429, 5xx, connection error, timeout).
        backoff: Base delay in seconds; attempt ``n`` waits up to ``backoff * 2**n`` (full jitter).
        max_rps: Most requests per second (retries included), or None for no cap. API Gateway allows 10,000
            requests per second per account across every API, ``@connections`` included; the cap is a token
            bucket holding one second's worth, so a single fan-out of up to ``max_rps`` goes out at full speed.

    An instance belongs to the event loop it was opened in (aiohttp's rule); from synchronous code, run its
    coroutines on :mod:`functions.notifier.background_loop`.

    Raises:
        botocore.exceptions.NoCredentialsError: No AWS credentials could be resolved.
        ValueError: ``in_flight`` < 1 or ``retries`` < 0.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        region: str | None = None,
        in_flight: int = 64,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.05,
        max_rps: float | None = None,
    ) -> None:
        if in_flight < 1 or retries < 0:
            raise ValueError("in_flight must be >= 1 and retries >= 0")
        endpoint = endpoint.rstrip("/")
        session = botocore_session()
        credentials = session.get_credentials()
        if credentials is None:
            raise NoCredentialsError()
        self.endpoint = endpoint
        self._credentials = credentials
        self._host = host_of(endpoint)
        self.region = region or _region_of(self._host, session.get_config_variable("region"))
        self._signer = Signer(_SERVICE, self.region)
        self._url_prefix = f"{endpoint}/@connections/"
        self._path_prefix = f"{urlsplit(endpoint).path}/@connections/"
        self._canonical_prefix = canonical_uri(self._path_prefix + "x", _SERVICE)[:-1]
        self._in_flight = in_flight
        self._rate = _RateLimit(max_rps) if max_rps else None
        # No total timeout: its per-request timer costs ~10 µs of the ~110 µs a message costs (measured); connect
        # and read timers bound every wait that matters, and callers bound the whole fan-out (BackgroundLoop.run).
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        self._retries = retries
        self._backoff = backoff
        self._http: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open(self) -> None:
        """Create the HTTP session in the running loop (synchronous: no other coroutine can interleave)."""
        if self._http is None:
            self._loop = asyncio.get_running_loop()
            connector = aiohttp.TCPConnector(limit=self._in_flight, keepalive_timeout=30)
            self._http = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                skip_auto_headers=_SKIP_HEADERS,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )

    @property
    def usable(self) -> bool:
        """Open, and bound to the running event loop."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return False
        return self._http is not None and not self._http.closed and self._loop is running

    async def __aenter__(self) -> ConnectionPoster:
        self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the keep-alive connections. Idempotent."""
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def post(self, connection_id: str, data: bytes) -> Literal["delivered", "gone"]:
        """Send ``data`` to one connection.

        Args:
            connection_id: The API Gateway connection id (``requestContext.connectionId``).
            data: The message, at most :data:`MAX_MESSAGE_BYTES`.

        Returns:
            :data:`DELIVERED`, or :data:`GONE` when the connection no longer exists (410).

        Raises:
            ValueError: ``data`` is over the 128 KB quota.
            PostError: Refused (4xx other than 410), or still failing after the retries.
        """
        _check_size(data)
        return await self._post(connection_id, data, hashlib.sha256(data).hexdigest())

    async def post_many(self, connection_ids: Iterable[str], data: bytes) -> FanoutResult:
        """Send the same ``data`` to every connection, at most ``in_flight`` at a time.

        Args:
            connection_ids: The connections to notify.
            data: The message, at most :data:`MAX_MESSAGE_BYTES`.

        Returns:
            How many were delivered, which are gone and which failed (with why).

        Raises:
            ValueError: ``data`` is over the 128 KB quota (nothing was sent).
        """
        _check_size(data)
        ids = list(connection_ids)
        result = FanoutResult()
        if not ids:
            return result
        payload_sha256 = hashlib.sha256(data).hexdigest()
        pending = iter(ids)

        async def worker() -> None:
            for connection_id in pending:  # one shared iterator: each id is taken by exactly one worker
                try:
                    outcome = await self._post(connection_id, data, payload_sha256)
                except PostError as error:
                    result.failed[connection_id] = str(error)
                    continue
                if outcome is DELIVERED:
                    result.delivered += 1
                else:
                    result.gone.append(connection_id)

        async with asyncio.TaskGroup() as group:
            for _ in range(min(self._in_flight, len(ids))):
                group.create_task(worker())
        if result.failed:
            log.warning("%d of %d posts failed", len(result.failed), len(ids), extra={"endpoint": self.endpoint})
        return result

    def _paths(self, connection_id: str) -> tuple[str, str | None]:
        """The id as sent (percent-encoded once) and, for AWS-shaped ids, the CanonicalURI without re-quoting."""
        if _PLAIN_ID.fullmatch(connection_id):
            return connection_id.replace("=", "%3D"), self._canonical_prefix + connection_id.replace("=", "%253D")
        return quote(connection_id, safe=_ID_SAFE), None

    async def _post(self, connection_id: str, data: bytes, payload_sha256: str) -> Literal["delivered", "gone"]:
        paths = self._paths(connection_id)
        attempt = 0
        stale_retried = False
        while True:
            try:
                status, error_type, text = await self._attempt(paths, data, payload_sha256)
            except _RETRYABLE as error:
                status, error_type, text = 0, type(error).__name__, str(error) or type(error).__name__
                if isinstance(error, aiohttp.ServerDisconnectedError) and not stale_retried and attempt < self._retries:
                    stale_retried = True  # a keep-alive connection closed while we were frozen: retry at once
                    attempt += 1
                    continue
            else:
                if 200 <= status < 300:
                    return DELIVERED
                if status == 410:
                    return GONE
                if status != 429 and status < 500:
                    raise PostError(connection_id, status, error_type, text)
            if attempt >= self._retries:
                raise PostError(connection_id, status, error_type, text)
            await asyncio.sleep(random.random() * self._backoff * 2**attempt)
            attempt += 1

    async def _attempt(self, paths: tuple[str, str | None], data: bytes, payload_sha256: str) -> tuple[int, str, str]:
        """One signed POST: ``(status, x-amzn-ErrorType, body text)``; the error text is empty on success."""
        http = self._http
        if http is None:
            raise RuntimeError("use ConnectionPoster as an async context manager")
        quoted_id, canonical_path = paths
        if self._rate is not None:
            await self._rate.take()
        headers = self._signer.sign(
            "POST",
            self._host,
            self._path_prefix + quoted_id,
            payload_sha256=payload_sha256,
            credentials=self._credentials.get_frozen_credentials(),
            canonical_path=canonical_path,
        )
        url = URL(self._url_prefix + quoted_id, encoded=True)
        async with http.post(url, data=data, headers=headers) as response:
            body = await response.read()  # read to the end so the connection goes back to the pool
            status = response.status
            if status < 300:
                return status, "", ""
            error_type = response.headers.get("x-amzn-ErrorType", "HTTPError").split(":")[0]
            return status, error_type, body[:300].decode("utf-8", "replace")


class _RateLimit:
    """A token bucket of ``rate`` tokens per second holding at most one second's worth (shared by the workers)."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("max_rps must be positive")
        self._rate = rate
        self._tokens = rate
        self._at = time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self._tokens = min(self._rate, self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await asyncio.sleep((1 - self._tokens) / self._rate)


def _check_size(data: bytes) -> None:
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {len(data)} bytes is over the {MAX_MESSAGE_BYTES}-byte WebSocket payload quota")


async def deliver_in_order(poster: ConnectionPoster, posts: Iterable[tuple[bytes, list[str]]]) -> set[str]:
    """Post each message to its connections, one message after the other (so every connection sees them in
    order); connections found gone are skipped for later messages. Returns the gone ids."""
    gone: set[str] = set()
    for data, ids in posts:
        result = await poster.post_many([i for i in ids if i not in gone], data)
        gone.update(result.gone)
    return gone


_shared: dict[str, ConnectionPoster] = {}


async def shared_poster(endpoint: str, **options: Any) -> ConnectionPoster:
    """The process's poster for ``endpoint``, opened on first use in the running loop and then kept open.

    Meant to be awaited on :mod:`functions.notifier.background_loop`'s loop, so warm Lambda invocations reuse its
    keep-alive connections. A poster bound to another (e.g. closed) loop is replaced.

    Args:
        endpoint: The management endpoint (see :class:`ConnectionPoster`).
        **options: :class:`ConnectionPoster` keyword arguments, used when the poster is created.

    Returns:
        An open :class:`ConnectionPoster`.
    """
    poster = _shared.get(endpoint)
    if poster is None or not poster.usable:
        poster = ConnectionPoster(endpoint, **options)
        poster._open()
        if not _shared:
            atexit.register(_close_at_exit)
        _shared[endpoint] = poster
    return poster


def _close_at_exit() -> None:
    """Close the shared posters on their own loop before the interpreter exits (no "Unclosed client session")."""
    loops = {poster._loop for poster in _shared.values() if poster._loop is not None and poster._loop.is_running()}
    for loop in loops:
        with contextlib.suppress(Exception):  # shutting down: a loop that is already gone has nothing to close
            asyncio.run_coroutine_threadsafe(close_shared(), loop).result(timeout=2)


async def close_shared() -> None:
    """Close and forget every shared poster (tests; a Lambda environment just freezes with them open)."""
    posters = list(_shared.values())
    _shared.clear()
    for poster in posters:
        await poster.close()
