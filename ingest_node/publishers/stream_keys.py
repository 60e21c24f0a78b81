"""Stream-key checks of the ingest node against the channel items in DynamoDB.

Rules:
- The key is never logged, never put in an exception message, never used in a URL or object key.
- The channel id embedded in the key (``live_<channel id>_<secret>``) selects one item; the key's SHA-256 is
  compared with the stored hash in constant time (:meth:`capturestream.models.Channel.verify_stream_key`).
- Answers are cached briefly by key hash (positive and negative), so a reconnect storm or 100 wrong-key attempts
  cost one read each per TTL. The cache never outlives a rotation or an end-stream on this node: the key watch
  (:mod:`.key_watch`) reads the cached channels' items with the live ones and calls :meth:`forget`.
- A channel whose owner asked to end the stream is held (:class:`PublishHeld`) until
  :meth:`capturestream.models.Channel.publish_held_until`, so OBS's automatic reconnect cannot restart it.
- A lookup that fails for a transient reason (throttling, a 5xx, a connection error or timeout, not a definite
  "no such key") is not cached. When the channel has a broadcast on this node (live or reconnecting) whose key
  hash is this key's, the publish is accepted from that broadcast's channel (grace: a DynamoDB blip during an
  OBS reconnect must not end a live broadcast); otherwise :class:`KeyCheckUnavailable` (OBS retries a reconnect).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from capturestream import table
from capturestream.errors import Unauthorized
from capturestream.models import Channel, hash_stream_key, stream_key_channel_id, utc_now

log = logging.getLogger(__name__)

#: How long a lookup result is reused.
CACHE_SECONDS = 5.0
#: How long one lookup may take before it counts as a transient failure (the SDK's own retries included).
LOOKUP_SECONDS = 3.0
_MAX_CACHE = 10_000
#: DynamoDB error codes that say "try again", not "no".
_TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "LimitExceededException",
    }
)


class KeyCheckUnavailable(Unauthorized):
    """The key could not be checked now (DynamoDB unavailable) and no live broadcast vouches for it."""


class PublishHeld(Unauthorized):
    """The key is right, but the channel's owner ended the stream moments ago (an end-stream request)."""


def is_transient(error: BaseException) -> bool:
    """True for failures worth retrying: throttling, server errors, connection errors and timeouts."""
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in _TRANSIENT_CODES or status >= 500
    return isinstance(error, (BotoCoreError, OSError, TimeoutError))


class StreamKeyChecker:
    """Resolves a stream key to its channel, or refuses it.

    Args:
        dynamodb: an aiobotocore DynamoDB client.
        table_name: the table holding the channel items.
        live_channels: the channels of this node's broadcasts that have not ended (the grace on a failed lookup).
    """

    def __init__(
        self,
        dynamodb: Any,
        table_name: str,
        *,
        cache_seconds: float = CACHE_SECONDS,
        lookup_seconds: float = LOOKUP_SECONDS,
        live_channels: Callable[[], Iterable[Channel]] = tuple,
    ) -> None:
        self._dynamodb = dynamodb
        self._table = table_name
        self._ttl = cache_seconds
        self._lookup_seconds = lookup_seconds
        self._live_channels = live_channels
        self._cache: dict[str, tuple[float, Channel | None]] = {}

    @property
    def dynamodb(self) -> Any:
        """The client (the key watch reads with it too)."""
        return self._dynamodb

    @property
    def table_name(self) -> str:
        """The table of the channel items."""
        return self._table

    async def channel_for(self, stream_key: str) -> Channel:
        """The channel whose current key is ``stream_key``.

        Raises:
            Unauthorized: the key is malformed, unknown, or no longer current (rotated).
            PublishHeld: an end-stream request holds the channel's publishes for a while.
            KeyCheckUnavailable: the lookup failed transiently and no live broadcast here vouches for the key.
        """
        digest = hash_stream_key(stream_key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            channel = cached[1]
        else:
            try:
                channel = await self._lookup(stream_key)
            except Exception as error:
                if not is_transient(error):
                    raise
                return self._grace(digest, error)
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
            self._cache[digest] = (now + self._ttl, channel)
        if channel is None:
            raise Unauthorized("stream key refused")
        held_until = channel.publish_held_until()
        if held_until is not None and utc_now() < held_until:
            raise PublishHeld("the channel's owner ended the stream")
        return channel

    def cached_channels(self) -> list[Channel]:
        """The channels of the positive cache entries that have not expired."""
        now = time.monotonic()
        return [channel for expiry, channel in self._cache.values() if channel is not None and expiry > now]

    def forget(self, channel_id: str) -> None:
        """Drop every cache entry of ``channel_id`` (its key was rotated or its stream ended)."""
        stale = [digest for digest, (_, ch) in self._cache.items() if ch is not None and ch.channel_id == channel_id]
        for digest in stale:
            del self._cache[digest]

    def _grace(self, digest: str, error: BaseException) -> Channel:
        for channel in self._live_channels():
            if hmac.compare_digest(channel.stream_key_hash, digest):
                log.warning(
                    "stream key check failed (%s); accepted for the channel's live broadcast",
                    type(error).__name__,
                    extra={"channel_id": channel.channel_id},
                )
                return channel
        log.warning("stream key check failed (%s); publish refused for now", type(error).__name__)
        raise KeyCheckUnavailable("stream key check unavailable")

    async def _lookup(self, stream_key: str) -> Channel | None:
        try:
            channel_id = stream_key_channel_id(stream_key)
        except Unauthorized:
            return None
        async with asyncio.timeout(self._lookup_seconds):
            response = await self._dynamodb.get_item(
                TableName=self._table, Key=table.channel_key(channel_id), ConsistentRead=True
            )
        item = response.get("Item")
        if item is None:
            return None
        channel = table.channel_from_item(item)
        return channel if channel.verify_stream_key(stream_key) else None
