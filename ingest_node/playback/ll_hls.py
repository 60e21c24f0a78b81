"""One broadcast's LL-HLS from memory: the playlist with parts, the init/part/segment bytes, blocking reload.

The CMAF muxer already cuts ~0.25 s parts for S3 (:mod:`mediakit.cmaf.outputs`); this keeps the latest ones in
memory and renders the playlist with :class:`mediakit.hls.MediaPlaylist` (``EXT-X-PART``, ``EXT-X-PRELOAD-HINT``,
``EXT-X-SERVER-CONTROL``), so the node serves LL-HLS with no file or S3 round trip.

Rules (draft-pantos-hls-rfc8216bis §6.2.5.2 "Blocking Playlist Reload", §6.2.6 preload hints):
- ``_HLS_msn=M`` holds the request until segment M is complete; with ``_HLS_part=N`` until part N of segment M
  exists (or M is complete). A request already satisfied, or for a broadcast that ended, is answered at once
  (directives are ignored once the playlist carries ``EXT-X-ENDLIST``).
- 400 (:class:`DirectiveError`): a non-integer or negative value, ``_HLS_part`` without ``_HLS_msn``, ``_HLS_msn``
  more than the last segment in the playlist + 2, or ``_HLS_part`` beyond the last part by more than the Advance
  Part Limit ("three divided by the Part Target Duration if the Part Target Duration is less than one").
- 503 (:class:`NotYet`): not satisfied within three target durations.
- The part named by the preload hint (or any part up to the Advance Part Limit ahead) is held until it exists; a
  part that will never exist (its segment closed with fewer parts, or the broadcast ended) is 404
  (:class:`Gone`), and a wait past three target durations is 503.
- Memory is bounded: the playlist lists the last :data:`WINDOW` segments; segment bytes are kept for those,
  part bytes for the segments listed with parts plus one, init segments for the epochs still referenced.
- URIs carry the session id (``ll/<session>/part_<msn>.<index>.m4s``): a new broadcast of the same playback id
  restarts media sequence numbers, so a URI never names two different objects and caches cannot mix sessions.
- Synchronous updates (:meth:`LlHlsStream.add`, called by the observer) never wait; waiters are woken through one
  :class:`asyncio.Event` swapped per change.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from mediakit.cmaf import InitSegment, Output, Part, Segment
from mediakit.hls import PART_SEGMENTS, MediaPlaylist

#: Segments listed in the LL playlist (and kept in memory).
WINDOW = 6


class PlaybackError(Exception):
    """A playback request that cannot be answered with media; ``status`` is the HTTP status to send."""

    status = 404


class DirectiveError(PlaybackError):
    """A malformed or too-far-ahead delivery directive (400 Bad Request)."""

    status = 400


class NotYet(PlaybackError):
    """The request was not satisfied within three target durations (503 Service Unavailable)."""

    status = 503


class Gone(PlaybackError):
    """No such object, and none is coming (404)."""

    status = 404


class LlHlsStream:
    """The in-memory LL-HLS rendition of one broadcast."""

    def __init__(
        self,
        *,
        session_id: str,
        segment_seconds: float,
        part_seconds: float,
        window: int = WINDOW,
        block_timeout: float | None = None,
    ) -> None:
        self.session_id = session_id
        self._block_timeout = block_timeout
        self.part_seconds = part_seconds
        self.segment_seconds = segment_seconds
        self.playlist = MediaPlaylist(target_duration=segment_seconds, window=window, part_target=part_seconds)
        self._inits: dict[int, bytes] = {}
        self._segments: dict[int, tuple[int, bytes]] = {}  # msn → (epoch, data)
        self._parts: dict[tuple[int, int], bytes] = {}
        self._next_msn = 0
        self._next_part = 0
        self._first_msn = 0
        self._text: str | None = None
        self._changed = asyncio.Event()
        self.ended = False
        self.started = False

    # ------------------------------------------------------------------------------------------ updates

    def add(self, outputs: list[Output]) -> None:
        """The muxer's outputs, in publishing order."""
        for output in outputs:
            if isinstance(output, InitSegment):
                self._inits[output.epoch] = output.data
                self.playlist.add_init(output)
            elif isinstance(output, Part):
                uri = self.uri(f"part_{output.sequence}.{output.index}.m4s")
                self.playlist.add_part(output, uri, init_uri=self.uri(f"init_{output.epoch}.mp4"))
                self._parts[(output.sequence, output.index)] = output.data
                self._next_msn, self._next_part = output.sequence, output.index + 1
                self.started = True
            elif isinstance(output, Segment):
                uri = self.uri(f"seg_{output.sequence}.m4s")
                self.playlist.add_segment(output, uri, self.uri(f"init_{output.epoch}.mp4"))
                self._segments[output.sequence] = (output.epoch, output.data)
                self._next_msn, self._next_part = output.sequence + 1, 0
                self.started = True
        self._prune()
        self._wake()

    def end(self) -> None:
        """The broadcast ended: the playlist gets ``EXT-X-ENDLIST`` and every waiter is answered."""
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        self._text = None
        self._changed.set()
        self._changed = asyncio.Event()

    def _prune(self) -> None:
        window = self.playlist.window or WINDOW
        self._first_msn = max(0, self._next_msn - window)
        for msn in [m for m in self._segments if m < self._first_msn]:
            del self._segments[msn]
        keep_parts = self._next_msn - PART_SEGMENTS - 1
        for key in [k for k in self._parts if k[0] < keep_parts]:
            del self._parts[key]
        if self._segments:
            oldest_epoch = min(epoch for epoch, _ in self._segments.values())
            for epoch in [e for e in self._inits if e < oldest_epoch]:
                del self._inits[epoch]

    # ------------------------------------------------------------------------------------------ reading

    def uri(self, name: str) -> str:
        """A media URI relative to ``ll.m3u8``."""
        return f"ll/{self.session_id}/{name}"

    @property
    def target_duration(self) -> int:
        """``EXT-X-TARGETDURATION`` as a number of seconds (never below 1)."""
        return max(1, math.ceil(self.segment_seconds - 1e-9))

    @property
    def timeout(self) -> float:
        """How long a blocked request waits: three target durations (unless set)."""
        return self._block_timeout if self._block_timeout is not None else 3.0 * self.target_duration

    def render(self) -> str:
        """The playlist now (rendered once per change)."""
        if self._text is None:
            hint = None if self.ended else self.uri(f"part_{self._next_msn}.{self._next_part}.m4s")
            self._text = self.playlist.render(ended=self.ended, preload_hint=hint)
        return self._text

    @property
    def advance_part_limit(self) -> int:
        """How many parts past the last one a request may ask for (rfc8216bis §6.2.5.2)."""
        target = self.playlist.part_target or self.part_seconds
        return math.floor(3 / target) if target < 1 else 3

    def _parts_per_segment(self) -> int:
        return max(1, math.ceil(self.segment_seconds / self.part_seconds - 1e-9))

    def _parts_ahead(self, msn: int, part: int) -> int:
        """How many parts (msn, part) lies past the next part to be produced (negative: already there)."""
        return (msn - self._next_msn) * self._parts_per_segment() + part - self._next_part

    def _has(self, msn: int, part: int | None) -> bool:
        if self._next_msn > msn:
            return True
        return part is not None and self._next_msn == msn and self._next_part > part

    async def wait_playlist(self, msn: int | None, part: int | None) -> str:
        """The playlist once it holds segment ``msn`` (part ``part``), per the blocking reload rules.

        Raises:
            DirectiveError: the directives are malformed or ask too far ahead (400).
            NotYet: not satisfied within :attr:`timeout` (503).
        """
        if msn is None:
            if part is not None:
                raise DirectiveError("_HLS_part without _HLS_msn")
            return self.render()
        if not self.ended:
            if msn > self._next_msn + 1:
                raise DirectiveError(f"_HLS_msn={msn} is more than two segments past the playlist")
            if part is not None and self._parts_ahead(msn, part) >= self.advance_part_limit:
                raise DirectiveError(f"_HLS_part={part} is past the Advance Part Limit")
        if not await self._until(lambda: self._has(msn, part)) and not self.ended:
            raise NotYet(f"segment {msn} part {part} not ready within {self.timeout:g} s")
        return self.render()

    def init(self, epoch: int) -> bytes:
        """An init segment.

        Raises:
            Gone: not (or no longer) kept.
        """
        data = self._inits.get(epoch)
        if data is None:
            raise Gone(f"no init segment {epoch}")
        return data

    async def segment(self, msn: int) -> bytes:
        """A complete segment; the one in progress is held until it completes.

        Raises:
            Gone: outside the window (or the broadcast ended without it).
            NotYet: not complete within :attr:`timeout`.
        """
        if msn < self._first_msn or msn > self._next_msn:
            raise Gone(f"segment {msn} is not in the playlist window")
        if not await self._until(lambda: msn in self._segments or msn < self._first_msn):
            raise NotYet(f"segment {msn} not complete within {self.timeout:g} s")
        if (entry := self._segments.get(msn)) is None:
            raise Gone(f"segment {msn} is not in the playlist window")
        return entry[1]

    async def part(self, msn: int, index: int) -> bytes:
        """A part; one not produced yet (the preload hint) is held until it exists.

        Raises:
            Gone: not kept, or it will never exist (its segment closed first, or the broadcast ended).
            NotYet: not produced within :attr:`timeout`.
        """
        if (data := self._parts.get((msn, index))) is not None:
            return data
        ahead = self._parts_ahead(msn, index)
        if self._has(msn, index) or ahead >= self.advance_part_limit or index >= 4 * self._parts_per_segment():
            raise Gone(f"part {msn}.{index} is not kept")
        if not await self._until(lambda: self._has(msn, index)):
            raise NotYet(f"part {msn}.{index} not produced within {self.timeout:g} s")
        if (data := self._parts.get((msn, index))) is None:
            raise Gone(f"part {msn}.{index} was never produced")
        return data

    async def _until(self, done: Callable[[], bool]) -> bool:
        """Wait until ``done()`` or the broadcast ends; False after :attr:`timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while not done():
            if self.ended:
                return done()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return done()
        return True
