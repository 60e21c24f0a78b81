"""One broadcast's HTTP-FLV/WS-FLV fan-out: publisher tags → one encoded FLV tag → every viewer's bounded queue.

Rules:
- Each tag is encoded once (timestamp rebased by :class:`~.timeline.Timeline`) and the same bytes go to every
  viewer: the cost per viewer is a queue append and its socket writes. With no viewer nothing is encoded: the tag
  only goes to the GOP cache, by reference (most broadcasts have no FLV viewer, and this runs for every tag).
- A new viewer gets the FLV header, ``onMetaData``, the sequence headers and the GOP cache
  (:class:`~.gop_cache.GopCache`), so its first bytes hold a keyframe; without a GOP cached it waits for the next
  keyframe (nothing else is queued until then).
- Sequence headers and metadata are forwarded only when they change (a reconnecting OBS sends the same ones again).
- **Slow viewers skip to the next keyframe.** Each viewer's queue is bounded in bytes (``max_bytes``); a tag that
  would pass the bound empties the queue and the viewer waits for the next video keyframe, then gets the current
  headers and continues from that keyframe (a gap in time, never a broken GOP). Nothing ever waits on a viewer:
  :meth:`FlvStream.on_tag` is synchronous and only appends. A viewer whose socket takes no bytes at all for a
  while is dropped by the handler (:mod:`.http_flv`).
- :meth:`FlvStream.end` lets every viewer drain what it has queued, then its response ends.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from . import flv
from .gop_cache import GopCache, Role, classify
from .timeline import Timeline

# Globals: an Enum attribute lookup costs ~10x a global one, and these run per tag.
_SEQUENCE_HEADER, _KEYFRAME = Role.SEQUENCE_HEADER, Role.KEYFRAME

#: A viewer's queue bound: about 6 s of a 8 Mb/s stream; a GOP cache (≤ 6 MiB) fits with room to spare.
MAX_VIEWER_BYTES = 12 << 20


class FlvViewer:
    """One viewer's queue of FLV bytes; the handler drains it with :meth:`next_chunk`."""

    def __init__(self, max_bytes: int = MAX_VIEWER_BYTES) -> None:
        self.max_bytes = max_bytes
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._ready = asyncio.Event()
        self._closed = False
        #: Waiting for a video keyframe before anything else is queued (joined without a GOP, or fell behind).
        self.waiting_keyframe = False
        #: How many times the viewer fell behind and skipped to the next keyframe.
        self.skips = 0
        #: Bytes handed to the handler so far.
        self.sent = 0

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting for the socket."""
        return self._queued

    def push(self, chunks: list[bytes]) -> None:
        """Queue whole tags (never waits)."""
        for chunk in chunks:
            self._queue.append(chunk)
            self._queued += len(chunk)
        if chunks:
            self._ready.set()

    def offer(self, role: Role, kind: int, encoded: bytes, cache: GopCache, timestamp: int) -> None:
        """A live tag: queued, skipped while waiting for a keyframe, or the start of a skip when over the bound."""
        if self._closed:
            return
        if self.waiting_keyframe:
            if role is not _KEYFRAME:
                return
            self.waiting_keyframe = False
            self.push([*cache.headers(timestamp), encoded])
            return
        size = len(encoded)
        if self._queued + size > self.max_bytes and self._queued:
            self._queue.clear()
            self._queued = 0
            self.skips += 1
            self.waiting_keyframe = cache.has_video
            if self.waiting_keyframe:
                return
        self._queue.append(encoded)  # push([encoded]) without the list: once per tag and viewer
        self._queued += size
        self._ready.set()

    def close(self) -> None:
        """No more tags: :meth:`next_chunk` returns what is queued, then ``None``."""
        self._closed = True
        self._ready.set()

    async def next_chunk(self) -> bytes | None:
        """Everything queued, joined (waits for at least one tag); ``None`` once closed and drained."""
        while not self._queue:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        data = b"".join(self._queue)
        self._queue.clear()
        self._queued = 0
        self.sent += len(data)
        return data


class FlvStream:
    """The FLV side of one broadcast: timeline, GOP cache and viewers."""

    def __init__(self, *, max_gop_bytes: int | None = None, max_viewer_bytes: int = MAX_VIEWER_BYTES) -> None:
        self.timeline = Timeline()
        self.cache = GopCache() if max_gop_bytes is None else GopCache(max_gop_bytes)
        self.max_viewer_bytes = max_viewer_bytes
        self.viewers: set[FlvViewer] = set()
        self.ended = False

    def new_publisher(self) -> None:
        """A publisher (re)attached: its clock restarts."""
        self.timeline.new_publisher()

    def on_metadata(self, metadata: dict[str, Any]) -> None:
        """``onMetaData``: kept for new viewers and forwarded to the others when it changed."""
        if metadata == self.cache.metadata:
            return
        self.cache.set_metadata(metadata)
        if not self.viewers:
            return
        encoded = flv.metadata_tag(metadata, self.timeline.now)
        for viewer in self.viewers:
            if not viewer.waiting_keyframe:
                viewer.push([encoded])

    def on_tag(self, kind: int, timestamp: int, body: bytes) -> None:
        """One audio/video message body from the publisher."""
        role = classify(kind, body)
        cache = self.cache
        if role is _SEQUENCE_HEADER and not cache.sequence_header_changed(kind, body):
            return
        at = self.timeline.map(timestamp)
        if not self.viewers:
            cache.add(role, kind, at, body)
            return
        encoded = flv.tag(kind, at, body)
        cache.add(role, kind, at, body, encoded)
        for viewer in self.viewers:
            viewer.offer(role, kind, encoded, cache, at)

    def join(self) -> FlvViewer:
        """A new viewer, its queue already holding the start (header, headers, GOP)."""
        viewer = FlvViewer(self.max_viewer_bytes)
        viewer.waiting_keyframe = self.cache.has_video and not self.cache.has_gop
        if viewer.waiting_keyframe:  # the headers come with the keyframe
            viewer.push([self.cache.file_header()])
        else:
            viewer.push(self.cache.start(self.timeline.now))
        if self.ended:
            viewer.close()
        else:
            self.viewers.add(viewer)
        return viewer

    def leave(self, viewer: FlvViewer) -> None:
        """The viewer's response ended."""
        viewer.close()
        self.viewers.discard(viewer)

    def end(self) -> None:
        """The broadcast ended: every viewer drains its queue and its response ends."""
        self.ended = True
        for viewer in self.viewers:
            viewer.close()
        self.viewers.clear()
