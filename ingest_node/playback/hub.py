"""The node's low-latency playback hub: the :class:`~ingest_node.sessions.broadcast.BroadcastObserver` that routes
each live broadcast's media to its HTTP-FLV/WS-FLV fan-out and its in-memory LL-HLS, by playback id.

Rules:
- Keyed by playback id only (the public id in watch URLs), never the stream key or the channel id.
- One entry per live broadcast object: a new broadcast of the same playback id (the old one ended) replaces the
  entry; calls about a broadcast that is no longer the entry's are ignored.
- ``on_state`` with the broadcast live again (a reconnect or a takeover resumed it) restarts the FLV timeline
  mapping: the new publisher's clock starts at 0 (:mod:`.timeline`).
- Ended (``on_state`` with ``ENDED``, which the broadcast sends after its final ``on_outputs``): FLV viewers drain
  what they have queued and their responses end, the LL-HLS playlist gets ``EXT-X-ENDLIST`` after its last
  segment (held reloads are answered), and the entry is removed: later requests get 404. Calls about the ended
  broadcast after that are ignored.
- Every observer call is synchronous and only appends to memory: a viewer can never slow the publisher.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mediakit.cmaf import Output

from ..sessions.broadcast import BroadcastState
from .flv_stream import MAX_VIEWER_BYTES, FlvStream
from .ll_hls import WINDOW, LlHlsStream

if TYPE_CHECKING:
    from ..muxing.muxer import TagKind
    from ..sessions.broadcast import Broadcast

log = logging.getLogger(__name__)

#: The muxer's part duration (``Broadcast``'s default): the LL playlist's initial ``PART-TARGET``.
PART_SECONDS = 0.25


@dataclass(eq=False, slots=True)
class _Entry:
    broadcast: Broadcast
    flv: FlvStream
    hls: LlHlsStream


class PlaybackHub:
    """Every live broadcast's low-latency outputs on this node, by playback id."""

    def __init__(
        self,
        *,
        segment_seconds: float,
        part_seconds: float = PART_SECONDS,
        ll_window: int = WINDOW,
        max_viewer_bytes: int = MAX_VIEWER_BYTES,
        max_gop_bytes: int | None = None,
    ) -> None:
        self.segment_seconds = segment_seconds
        self.part_seconds = part_seconds
        self.ll_window = ll_window
        self.max_viewer_bytes = max_viewer_bytes
        self.max_gop_bytes = max_gop_bytes
        self._entries: dict[str, _Entry] = {}

    # ------------------------------------------------------------------------------------------ lookups

    def flv(self, playback_id: str) -> FlvStream | None:
        """The FLV fan-out of the live broadcast with this playback id (``None``: unknown or ended)."""
        entry = self._entries.get(playback_id)
        return entry.flv if entry is not None and not entry.flv.ended else None

    def ll_hls(self, playback_id: str) -> LlHlsStream | None:
        """The LL-HLS rendition of the broadcast with this playback id, once its first part exists."""
        entry = self._entries.get(playback_id)
        return entry.hls if entry is not None and entry.hls.started else None

    @property
    def flv_viewers(self) -> int:
        """FLV viewers connected now, over every broadcast."""
        return sum(len(entry.flv.viewers) for entry in self._entries.values())

    # ------------------------------------------------------------------------------------------ observer

    def on_tag(self, broadcast: Broadcast, kind: TagKind, timestamp: int, payload: bytes) -> None:
        """An audio/video message body → the FLV fan-out."""
        entry = self._entries.get(broadcast.playback_id)  # per tag: the known broadcast's path takes no call
        if entry is None or entry.broadcast is not broadcast:
            entry = self._entry(broadcast)
            if entry is None:
                return
        flv = entry.flv
        if not flv.ended:
            flv.on_tag(int(kind), timestamp, payload)

    def on_metadata(self, broadcast: Broadcast, metadata: dict[str, Any]) -> None:
        """``onMetaData`` → the FLV fan-out."""
        if (entry := self._entry(broadcast)) is not None and not entry.flv.ended:
            entry.flv.on_metadata(metadata)

    def on_outputs(self, broadcast: Broadcast, outputs: list[Output]) -> None:
        """CMAF init/parts/segments → the LL-HLS rendition."""
        if (entry := self._entry(broadcast)) is not None and not entry.hls.ended:
            entry.hls.add(outputs)

    def on_state(self, broadcast: Broadcast) -> None:
        """Live again: a new publisher clock. Ended (after the final outputs): FLV and LL-HLS end now."""
        entry = self._entries.get(broadcast.playback_id)
        if entry is None or entry.broadcast is not broadcast:
            return
        if broadcast.state is BroadcastState.LIVE:
            entry.flv.new_publisher()
        elif broadcast.state is BroadcastState.ENDED:
            entry.flv.end()
            self._finish(entry)

    def close(self) -> None:
        """Node shutdown: end every stream now."""
        for entry in list(self._entries.values()):
            entry.flv.end()
            self._finish(entry)

    # ------------------------------------------------------------------------------------------ internals

    def _entry(self, broadcast: Broadcast) -> _Entry | None:
        entry = self._entries.get(broadcast.playback_id)
        if entry is not None and entry.broadcast is broadcast:
            return entry
        if broadcast.state is BroadcastState.ENDED:
            return None
        if entry is not None:  # a broadcast of the same channel that we did not see end
            entry.flv.end()
            entry.hls.end()
        entry = _Entry(
            broadcast,
            FlvStream(max_gop_bytes=self.max_gop_bytes, max_viewer_bytes=self.max_viewer_bytes),
            LlHlsStream(
                session_id=broadcast.session_id,
                segment_seconds=self.segment_seconds,
                part_seconds=self.part_seconds,
                window=self.ll_window,
            ),
        )
        self._entries[broadcast.playback_id] = entry
        log.debug("playback stream added", extra=broadcast.log_extra)
        return entry

    def _finish(self, entry: _Entry) -> None:
        entry.hls.end()
        if self._entries.get(entry.broadcast.playback_id) is entry:
            del self._entries[entry.broadcast.playback_id]
