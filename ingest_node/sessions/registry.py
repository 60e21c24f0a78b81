"""Which broadcast a publisher joins: one live publisher per channel, takeover, and the reconnect window.

Rules (BRIEF §3 "Ingest node", OBS.md "Reconnect"):
- A channel has at most one broadcast on this node and at most one attached publisher.
- A publisher with the right key always gets in. If another publisher is attached (OBS reconnected while the old
  TCP connection is still half-open), the new one **takes over**: the old connection is closed and the broadcast
  continues with a discontinuity. OBS reconnects are never refused.
- A publisher that **drops** (connection lost, idle, protocol error) leaves the broadcast waiting
  ``reconnect_window`` seconds for a publisher of the same channel, then it ends. A **clean stop** (RTMP
  ``FCUnpublish``/``deleteStream``, go-live ``stop_capture``) ends it at once, unless the channel asks to wait
  (:attr:`~capturestream.models.Channel.wait_on_unpublish`). A window of 0 ends every broadcast at once.
- :meth:`SessionRegistry.end_now` (key rotated, owner's "end stream") closes the publisher and ends the broadcast
  without a window.
- Node shutdown: after :meth:`SessionRegistry.begin_shutdown` a publisher that leaves (its connection closed by
  the shutdown) is only released, not dropped: no ``reconnecting.json``, no window; :meth:`SessionRegistry.close`
  then ends every broadcast.
- Every publish, resume, takeover, drop, clean stop and kick is logged once, with the stream ids, and counted in
  :data:`ingest_node.metrics.SESSION_EVENTS`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from capturestream.models import Channel

from .. import metrics
from ..storage.uploader import Uploader
from .broadcast import PLAYLIST_WINDOW, Broadcast, BroadcastObserver, BroadcastState, cancel_quietly

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
    #: Closing the segment in progress after a drop; never cancelled (a returning publisher waits for it).
    dropping: asyncio.Task[None] | None = field(default=None, repr=False)


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
        playlist_window: int = PLAYLIST_WINDOW,
        observer: BroadcastObserver | None = None,
    ) -> None:
        self._uploader = uploader
        self.playlist_window = playlist_window
        #: Sees every broadcast's media (the node's low-latency playback), if set.
        self.observer = observer
        self.remuxer = remuxer
        self.reconnect_window = reconnect_window
        self.segment_seconds = segment_seconds
        self.node_id = node_id
        self._slots: dict[str, _Slot] = {}
        self._shutting_down = False
        for state in BroadcastState:
            if state is not BroadcastState.ENDED:
                metrics.watch(metrics.ACTIVE_STREAMS, lambda state=state: self._count(state), state=state.value)
        metrics.watch(metrics.INGEST_BITRATE, self.live_bitrate)

    def _count(self, state: BroadcastState) -> int:
        return sum(slot.broadcast.state is state for slot in self._slots.values())

    def live_bitrate(self) -> float:
        """Bits per second arriving now: the measured bitrates (:class:`~.stream_stats.StreamStats`, last ~10 s
        of media) of the live broadcasts summed; a broadcast waiting for its publisher counts 0."""
        live = (slot.broadcast for slot in self._slots.values() if slot.broadcast.state is BroadcastState.LIVE)
        return sum((broadcast.stats.bitrate_kbps or 0.0) * 1000 for broadcast in live)

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
                playlist_window=self.playlist_window,
                observer=self.observer,
            )
            self._slots[channel.channel_id] = _Slot(broadcast, publisher)
            _event("publish", broadcast, publisher)
            return broadcast
        await cancel_quietly(slot.expiry)
        slot.expiry = None
        if slot.dropping is not None:
            await slot.dropping
            slot.dropping = None
        previous, slot.publisher = slot.publisher, publisher
        if previous is not None:
            _event("takeover", slot.broadcast, publisher, old=previous.name)
            previous.close("taken over by a new publisher")
        else:
            _event("resume", slot.broadcast, publisher, away=slot.broadcast.away_seconds())
        await slot.broadcast.resume()
        return slot.broadcast

    def detach(self, channel_id: str, publisher: Publisher, reason: str, *, clean: bool = False) -> None:
        """``publisher`` left: a drop waits the reconnect window; a ``clean`` stop ends the broadcast at once
        (unless the channel asks to wait). Nothing happens when the publisher was already replaced.
        """
        slot = self._slots.get(channel_id)
        if slot is None or slot.publisher is not publisher:
            return  # taken over (or already released): the broadcast belongs to the new publisher now
        slot.publisher = None
        if self._shutting_down:
            return  # the node closed this publisher: close() ends the broadcast, no drop and no window
        slot.broadcast.suspend()
        wait = not clean or slot.broadcast.channel.wait_on_unpublish
        window = self.reconnect_window if wait else 0.0
        _event("clean_stop" if clean else "drop", slot.broadcast, publisher, reason=reason, window=window)
        if window > 0:
            slot.dropping = asyncio.create_task(slot.broadcast.dropped(), name=f"drop-{channel_id}")
        slot.expiry = asyncio.create_task(self._expire(channel_id, slot, reason, window), name=f"window-{channel_id}")

    async def end_now(self, channel_id: str, reason: str) -> bool:
        """Close the channel's publisher (if any) and end its broadcast without a window; False when none."""
        slot = self._slots.get(channel_id)
        if slot is None:
            return False
        if slot.publisher is not None:
            _event("kicked", slot.broadcast, slot.publisher, reason=reason)
            publisher, slot.publisher = slot.publisher, None
            publisher.close(reason)
        await cancel_quietly(slot.expiry)
        if slot.dropping is not None:
            await slot.dropping
        if self._slots.get(channel_id) is slot:
            del self._slots[channel_id]
        slot.broadcast.suspend()
        await slot.broadcast.end(reason)
        return True

    async def _expire(self, channel_id: str, slot: _Slot, reason: str, window: float) -> None:
        await asyncio.sleep(window)
        if slot.dropping is not None:
            await asyncio.shield(slot.dropping)
        if self._slots.get(channel_id) is slot and slot.publisher is None:
            del self._slots[channel_id]
            await slot.broadcast.end(reason)
            metrics.SESSION_EVENTS.labels(event="ended").inc()

    def begin_shutdown(self) -> None:
        """The node is about to close every publisher connection: from now on, they are not drops."""
        self._shutting_down = True

    async def close(self) -> None:
        """End every broadcast now (node shutdown): the segment in progress, the final playlist and ``ended.json``
        are queued, and each broadcast's uploads get the uploader's ``close_timeout``."""
        self._shutting_down = True
        slots, self._slots = list(self._slots.values()), {}
        for slot in slots:
            await cancel_quietly(slot.expiry)
            if slot.publisher is not None:
                slot.publisher.close("ingest node shutting down")
        await asyncio.gather(*(slot.broadcast.end("node_shutdown") for slot in slots))


def _event(event: str, broadcast: Broadcast, publisher: Publisher, **fields: object) -> None:
    """Log and count one publisher lifecycle event (durations rounded to 0.1 s)."""
    metrics.SESSION_EVENTS.labels(event=event).inc()
    rounded = {k: round(v, 1) if isinstance(v, float) else v for k, v in fields.items()}
    extra = {**broadcast.log_extra, "connection": publisher.name, **rounded}
    log.info("publisher %s", event.replace("_", " "), extra=extra)
