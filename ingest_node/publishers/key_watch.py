"""The key watch: kicks a publisher whose stream key was rotated or whose owner asked to end the stream.

The API Lambda and this node share no state but DynamoDB, so the node polls: once per ``interval`` (1 s) one
``BatchGetItem`` (up to 100 keys a call, projected on the fields compared) reads the channel items of every
broadcast on the node that has not ended, plus the channels of the key checker's positive cache entries.

Rules:
- A broadcast is ended at once (``SessionRegistry.end_now``: the publisher's socket closes, no reconnect window)
  when its channel's stored key hash differs from the one its publish was accepted with (``key_rotated``), or
  its ``end_requested_at`` changed since (``end_requested``). Comparing with the values the node read at the
  publish needs no clock shared with the API.
- Every cache entry of a changed channel is dropped (:meth:`StreamKeyChecker.forget`), so the 5 s key cache never
  outlives a rotation or an end-stream on this node.
- A channel missing from an answer (unprocessed keys, a throttled call) is checked at the next tick; a failed
  call is logged and retried at the next tick; the watch never stops on an error.
- A rotation racing a reconnect with the *new* key inside the same tick may resume the old broadcast and then be
  ended as rotated (its channel still carries the old hash); OBS then reconnects into a new broadcast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from capturestream import table
from capturestream.models import Channel

from ..sessions.registry import SessionRegistry
from .stream_keys import StreamKeyChecker, is_transient

log = logging.getLogger(__name__)

#: Seconds between two reads of the watched channel items (a kick lands within about this long).
INTERVAL = 1.0
#: DynamoDB ``BatchGetItem`` takes at most 100 keys.
_BATCH = 100


class WatchedFields(BaseModel):
    """The fields of a channel item the watch compares: the read projects the item on them (a whole channel item
    is ~12 attributes to parse, 30 of them a second at 30 streams)."""

    channel_id: str
    stream_key_hash: str
    end_requested_at: datetime | None = None


_PROJECTION = {
    "ProjectionExpression": ", ".join(f"#{name}" for name in WatchedFields.model_fields),
    "ExpressionAttributeNames": {f"#{name}": name for name in WatchedFields.model_fields},
}


class KeyWatch:
    """Polls the channel items of live broadcasts and ends those whose key or end request changed."""

    def __init__(self, registry: SessionRegistry, keys: StreamKeyChecker, *, interval: float = INTERVAL) -> None:
        self.registry = registry
        self.keys = keys
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._ending: dict[str, asyncio.Task[Any]] = {}

    def start(self) -> None:
        """Start polling in the background."""
        self._task = asyncio.create_task(self._run(), name="key-watch")

    async def close(self) -> None:
        """Stop polling and wait for the kicks under way."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*self._ending.values(), return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check_once()
            except Exception as error:  # the watch outlives any one failed read
                if is_transient(error):
                    log.warning("key watch read failed (%s); retrying", type(error).__name__)
                else:
                    log.exception("key watch read failed")

    async def check_once(self) -> None:
        """One read of every watched channel item, and the kicks and cache drops it calls for."""
        live = {b.channel.channel_id: b.channel for b in self.registry.broadcasts}
        cached: dict[str, list[Channel]] = {}
        for channel in self.keys.cached_channels():
            cached.setdefault(channel.channel_id, []).append(channel)
        watched = sorted(live.keys() | cached.keys())
        for start in range(0, len(watched), _BATCH):
            stored = await self._read(watched[start : start + _BATCH])
            for channel_id, current in stored.items():
                seen = [*cached.get(channel_id, ()), *([live[channel_id]] if channel_id in live else [])]
                if any(_why_stale(old, current) for old in seen):
                    self.keys.forget(channel_id)
                if channel_id in live and (reason := _why_stale(live[channel_id], current)) is not None:
                    self._kick(channel_id, reason)

    async def _read(self, channel_ids: list[str]) -> dict[str, WatchedFields]:
        name = self.keys.table_name
        request = {
            name: {
                "Keys": [table.channel_key(cid) for cid in channel_ids],
                "ConsistentRead": True,
                **_PROJECTION,
            }
        }
        response = await self.keys.dynamodb.batch_get_item(RequestItems=request)
        channels = (table.read_model(WatchedFields, item) for item in response.get("Responses", {}).get(name, []))
        return {channel.channel_id: channel for channel in channels if channel is not None}

    def _kick(self, channel_id: str, reason: str) -> None:
        if channel_id in self._ending:
            return  # already being ended
        log.info("ending broadcast: %s", reason, extra={"channel_id": channel_id})
        task = asyncio.create_task(self.registry.end_now(channel_id, reason), name=f"kick-{channel_id}")
        self._ending[channel_id] = task
        task.add_done_callback(lambda _: self._ending.pop(channel_id, None))


def _why_stale(accepted: Channel, current: Channel | WatchedFields) -> str | None:
    """Why a publish accepted with ``accepted`` may no longer stand, given the stored ``current``; None if it may."""
    if accepted.stream_key_hash != current.stream_key_hash:
        return "key_rotated"
    if current.end_requested_at is not None and current.end_requested_at != accepted.end_requested_at:
        return "end_requested"
    return None
