"""Which broadcast a publisher joins: one live publisher per channel, takeover, and the reconnect window.

Rules (BRIEF §3 "Ingest node", OBS.md "Reconnect"):
- A channel has at most one broadcast on this node and at most one attached publisher.
- A publisher with the right key always gets in. If another publisher is attached (OBS reconnected while the old
  TCP connection is still half-open), the new one **takes over**: the old connection is closed and the broadcast
  continues with a discontinuity. OBS reconnects are never refused.
- When a publisher leaves (clean unpublish or a dropped connection), the broadcast waits ``reconnect_window``
  seconds for a publisher of the same channel, then ends. A window of 0 ends it at once, and so does a publisher
  that leaves with ``wait=False`` (browser go-live's ``stop_capture``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from capturestream.models import Channel

from ..storage.uploader import Uploader
from .broadcast import Broadcast, BroadcastState, cancel_quietly

log = logging.getLogger(__name__)


class Publisher:
    """What the registry needs from a publishing connection: a way to drop it."""

    def __init__(self, name: str, close: Callable[[str], None]) -> None:
        self.name = name
        #: False once another publisher took over: media still queued from this one must be dropped.
        self.active = True
        self._close = close

    def close(self, reason: str) -> None:
        """Stop this publisher: its queued media is ignored from now on and its connection is closed."""
        self.active = False
        self._close(reason)


@dataclass
class _Slot:
    broadcast: Broadcast
    publisher: Publisher | None = None
    expiry: asyncio.Task[None] | None = field(default=None, repr=False)


class SessionRegistry:
    """All broadcasts of this node, keyed by channel id."""

    def __init__(
        self,
        uploader: Uploader,
        *,
        reconnect_window: float,
        segment_seconds: float,
        node_id: str,
        remuxer: str = "inprocess",
    ) -> None:
        self._uploader = uploader
        self.remuxer = remuxer
        self.reconnect_window = reconnect_window
        self.segment_seconds = segment_seconds
        self.node_id = node_id
        self._slots: dict[str, _Slot] = {}

    @property
    def broadcasts(self) -> list[Broadcast]:
        """Every broadcast that has not ended."""
        return [slot.broadcast for slot in self._slots.values()]

    async def attach(self, channel: Channel, publisher: Publisher) -> Broadcast:
        """Give ``publisher`` the channel's broadcast: a new one, the one waiting for it, or by takeover."""
        slot = self._slots.get(channel.channel_id)
        if slot is None or slot.broadcast.state is BroadcastState.ENDED:
            broadcast = Broadcast(
                channel,
                self._uploader,
                segment_seconds=self.segment_seconds,
                node_id=self.node_id,
                remuxer=self.remuxer,
            )
            self._slots[channel.channel_id] = _Slot(broadcast, publisher)
            log.info("broadcast started", extra=broadcast.log_extra)
            return broadcast
        await cancel_quietly(slot.expiry)
        slot.expiry = None
        previous, slot.publisher = slot.publisher, publisher
        if previous is not None:
            log.info("publisher takeover", extra={**slot.broadcast.log_extra, "old": previous.name})
            previous.close("taken over by a new publisher")
        await slot.broadcast.resume()
        return slot.broadcast

    def detach(self, channel_id: str, publisher: Publisher, reason: str, *, wait: bool = True) -> None:
        """``publisher`` left; start the reconnect window (unless it was already replaced).

        ``wait=False`` ends the broadcast at once instead (a publisher that said it is done: browser go-live's
        ``stop_capture``).
        """
        slot = self._slots.get(channel_id)
        if slot is None or slot.publisher is not publisher:
            return  # taken over (or already released): the broadcast belongs to the new publisher now
        slot.publisher = None
        slot.broadcast.suspend()
        window = self.reconnect_window if wait else 0.0
        slot.expiry = asyncio.create_task(self._expire(channel_id, slot, reason, window), name=f"window-{channel_id}")

    async def _expire(self, channel_id: str, slot: _Slot, reason: str, window: float) -> None:
        if window > 0:
            await slot.broadcast.announce_reconnecting()
        await asyncio.sleep(window)
        if self._slots.get(channel_id) is slot and slot.publisher is None:
            del self._slots[channel_id]
            await slot.broadcast.end(reason)

    async def close(self) -> None:
        """End every broadcast now (node shutdown): final playlists and ended.json are stored."""
        slots, self._slots = list(self._slots.values()), {}
        for slot in slots:
            await cancel_quietly(slot.expiry)
            if slot.publisher is not None:
                slot.publisher.close("ingest node shutting down")
        await asyncio.gather(*(slot.broadcast.end("node_shutdown") for slot in slots))
