"""Wait for a DynamoDB stream write instead of polling for it: the client of moto's ``/_devstack/stream-changes``.

The embedded moto child (:mod:`devstack.moto_tuning`) counts every stream record it stores and parks a
``GET /_devstack/stream-changes?after=N&timeout=S`` until the count passes ``N``. One :class:`StreamChangeFeed`
per stream source keeps one such request parked and wakes the source's shard consumers when the version moves,
so an idle stream costs one request every :data:`PARK_SECONDS` instead of GetRecords every 40-250 ms.

Rules:
    * A consumer notes :attr:`StreamChangeFeed.version` *before* its GetRecords and waits for a version beyond
      it, so a write between the two is never missed.
    * The feed is an optimisation only. An endpoint that answers anything but 200 with a version (LocalStack,
      an external moto, an older child) leaves :attr:`StreamChangeFeed.available` False and the source polls as
      before; a feed that fails later turns itself off the same way.
    * Waits are bounded (``fallback`` seconds) so even a lost wake-up only delays a record, never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

__all__ = ["PARK_SECONDS", "StreamChangeFeed"]

logger = logging.getLogger(__name__)

PATH = "/_devstack/stream-changes"
#: How long one request stays parked in moto (seconds).
PARK_SECONDS = 20.0


class StreamChangeFeed:
    """Follows the stream-change version of one endpoint.

    Args:
        endpoint_url: The AWS endpoint the stream is read from (``http://host:port``).
    """

    def __init__(self, endpoint_url: str) -> None:
        self.url = endpoint_url.rstrip("/") + PATH
        self.version = -1
        self.available = False
        self._session: aiohttp.ClientSession | None = None
        self._changed = asyncio.Event()

    async def open(self, stack: contextlib.AsyncExitStack) -> bool:
        """Open the HTTP session (closed with ``stack``) and ask for the current version; True if served."""
        timeout = aiohttp.ClientTimeout(total=PARK_SECONDS + 10)
        self._session = await stack.enter_async_context(aiohttp.ClientSession(timeout=timeout))
        self.available = await self._ask(-1, 0.0)
        return self.available

    async def _ask(self, after: int, timeout: float) -> bool:
        assert self._session is not None
        try:
            async with self._session.get(self.url, params={"after": str(after), "timeout": str(timeout)}) as response:
                if response.status != 200:
                    return False
                version = int((await response.json())["version"])
        except (TimeoutError, aiohttp.ClientError, ValueError, KeyError, TypeError):
            return False
        if version != self.version:
            self.version = version
            self._changed.set()
            self._changed = asyncio.Event()
        return True

    async def follow(self) -> None:
        """Keep a request parked until cancelled; turns the feed off (consumers poll) if the endpoint fails."""
        while self.available:
            if not await self._ask(self.version, PARK_SECONDS):
                logger.warning("stream-change feed %s stopped answering; stream consumers poll instead", self.url)
                self.available = False
                self._changed.set()  # waiters go back to polling now

    async def wait_beyond(self, seen: int, fallback: float) -> None:
        """Return once the version is beyond ``seen``, the feed turned off, or ``fallback`` seconds passed."""
        if self.version > seen or not self.available:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), fallback)
