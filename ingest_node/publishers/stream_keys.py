"""Stream-key checks of the ingest node against the channel items in DynamoDB.

Rules:
- The key is never logged, never put in an exception message, never used in a URL or object key.
- The channel id embedded in the key (``live_<channel id>_<secret>``) selects one item; the key's SHA-256 is
  compared with the stored hash in constant time (:meth:`capturestream.models.Channel.verify_stream_key`).
- Answers are cached briefly by key hash (positive and negative), so a reconnect storm or 100 wrong-key attempts
  cost one read each per TTL, and a rotated key stops working within :data:`CACHE_SECONDS`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from capturestream import table
from capturestream.errors import Unauthorized
from capturestream.models import Channel, hash_stream_key, stream_key_channel_id

log = logging.getLogger(__name__)

#: How long a lookup result is reused.
CACHE_SECONDS = 5.0
_MAX_CACHE = 10_000


class StreamKeyChecker:
    """Resolves a stream key to its channel, or refuses it."""

    def __init__(self, dynamodb: Any, table_name: str, *, cache_seconds: float = CACHE_SECONDS) -> None:
        self._dynamodb = dynamodb
        self._table = table_name
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[float, Channel | None]] = {}

    async def channel_for(self, stream_key: str) -> Channel:
        """The channel whose current key is ``stream_key``.

        Raises:
            Unauthorized: the key is malformed, unknown, or no longer current (rotated).
        """
        digest = hash_stream_key(stream_key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            channel = cached[1]
        else:
            channel = await self._lookup(stream_key)
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
            self._cache[digest] = (now + self._ttl, channel)
        if channel is None:
            raise Unauthorized("stream key refused")
        return channel

    async def _lookup(self, stream_key: str) -> Channel | None:
        try:
            channel_id = stream_key_channel_id(stream_key)
        except Unauthorized:
            return None
        response = await self._dynamodb.get_item(
            TableName=self._table, Key=table.channel_key(channel_id), ConsistentRead=True
        )
        item = response.get("Item")
        if item is None:
            return None
        channel = table.channel_from_item(item)
        return channel if channel.verify_stream_key(stream_key) else None
