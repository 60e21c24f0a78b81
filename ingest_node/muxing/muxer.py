"""The one muxer interface a broadcast talks to: FLV tag bodies in, CMAF outputs (init, parts, segments) out.

:class:`Muxer` hides which engine cuts the segments:
- the in-process :class:`~mediakit.cmaf.Segmenter` (H.264/HEVC/AV1 + AAC: what OBS sends; ~0.03 % of a core per
  stream, ``../shared/CMAF_COST.md``);
- the ffmpeg fallback (:class:`~.ffmpeg_remuxer.FfmpegRemuxer`, one process per stream) for what the segmenter
  rejects (MP3/Speex audio, ...).

Rules:
- ``mode="inprocess"`` starts with the segmenter; when it raises ``UnsupportedMedia`` **before its first init**,
  the muxer switches, once, to ffmpeg and replays what it was fed (kept up to :data:`MAX_REPLAY_BYTES`; past that
  without an init there is no fallback). After an init the format is set: ``UnsupportedMedia`` propagates.
  ``mode="ffmpeg"`` uses ffmpeg from the start.
- The wall clock of the first media tag anchors program date times (the engine is created then).
- Memory is bounded in bytes: a segment that grows past :data:`MAX_SEGMENT_BYTES` (a publisher that never sends a
  keyframe) raises :class:`SegmentTooLarge`; the caller drops that publisher.
- :meth:`Muxer.cut` closes the segment in progress now (a publisher dropped: viewers get its last second at once);
  :meth:`Muxer.discontinuity` then starts the next publisher's media as a new session.
"""

from __future__ import annotations

import enum
import logging
from datetime import UTC, datetime
from typing import Any

from mediakit.cmaf import InitSegment, Output, Segment, Segmenter, UnsupportedMedia

from .ffmpeg_remuxer import FfmpegRemuxer, RemuxerError

log = logging.getLogger(__name__)

MODES = ("inprocess", "ffmpeg")
#: Media kept to replay into the ffmpeg fallback, at most.
MAX_REPLAY_BYTES = 16 << 20
#: A segment (its parts so far) larger than this is refused: 10 s of 50 Mb/s.
MAX_SEGMENT_BYTES = 64 << 20


class TagKind(enum.IntEnum):
    """FLV tag types, as RTMP message types carry them."""

    AUDIO = 8
    VIDEO = 9


class SegmentTooLarge(Exception):
    """The segment in progress passed :data:`MAX_SEGMENT_BYTES` without a keyframe to close it."""


class Muxer:
    """One broadcast's muxer. ``await feed(kind, ts, payload)`` and friends return the outputs ready now."""

    def __init__(self, *, mode: str = "inprocess", segment_seconds: float, part_seconds: float | None) -> None:
        if mode not in MODES:
            raise ValueError(f"remuxer must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self._segment_seconds = segment_seconds
        self._part_seconds = part_seconds
        self._segmenter: Segmenter | None = None
        self._ffmpeg: FfmpegRemuxer | None = None
        self._metadata: dict[str, Any] = {}
        self._replay: list[tuple[TagKind, int, bytes]] | None = []  # None once an init is out
        self._replay_bytes = 0
        self._segment_bytes = 0

    @property
    def engine(self) -> str:
        """``"inprocess"`` or ``"ffmpeg"``: what cuts the segments now."""
        return "ffmpeg" if self._ffmpeg is not None else "inprocess"

    async def feed_metadata(self, metadata: dict[str, Any]) -> list[Output]:
        """``onMetaData`` (fallback resolution and frame rate)."""
        self._metadata = dict(metadata)
        if self._ffmpeg is not None:
            return await self._ffmpeg.feed_metadata(metadata)
        if self._segmenter is not None:
            return self._checked(self._segmenter.feed_metadata(metadata))
        return []

    async def feed(self, kind: TagKind, timestamp: int, payload: bytes) -> list[Output]:
        """One RTMP audio or video message body.

        Raises:
            UnsupportedMedia: the codec changed to one the segmenter can't mux after the format was set.
            SegmentTooLarge: see the module docstring.
            RemuxerError: the ffmpeg fallback failed.
        """
        outputs = self.feed_now(kind, timestamp, payload)
        if outputs is not None:
            return outputs
        if self._ffmpeg is None and self.mode == "ffmpeg":
            self._ffmpeg = await self._start_ffmpeg()
        if self._ffmpeg is not None:
            return await self._feed_ffmpeg(kind, timestamp, payload)
        segmenter = self._engine()
        self._segment_bytes += len(payload)
        try:
            outputs = (segmenter.feed_audio if kind is TagKind.AUDIO else segmenter.feed_video)(timestamp, payload)
        except UnsupportedMedia as error:
            if self._replay is None:
                raise
            return await self._fall_back(error, (kind, timestamp, payload))
        if self._replay is not None:
            if self._replay_bytes >= MAX_REPLAY_BYTES or any(isinstance(o, InitSegment) for o in outputs):
                self._replay = None
            else:
                self._replay.append((kind, timestamp, payload))
                self._replay_bytes += len(payload)
        return self._checked(outputs)

    def feed_now(self, kind: TagKind, timestamp: int, payload: bytes) -> list[Output] | None:
        """:meth:`feed` without awaiting, for the hot path: ``None`` (nothing done) unless the format is set and
        the in-process segmenter cuts it (the ffmpeg fallback and the first tags before an init need ``feed``).

        Raises:
            UnsupportedMedia, SegmentTooLarge: as :meth:`feed`.
        """
        segmenter = self._segmenter
        if segmenter is None or self._replay is not None:
            return None
        self._segment_bytes += len(payload)
        outputs = (segmenter.feed_audio if kind is TagKind.AUDIO else segmenter.feed_video)(timestamp, payload)
        return self._checked(outputs)

    async def cut(self) -> list[Output]:
        """Close the segment in progress now (the publisher dropped); the next media is a new session."""
        if self._ffmpeg is not None:
            return await self._ffmpeg.discontinuity()
        if self._segmenter is not None:
            return self._checked(self._segmenter.discontinuity())
        return []

    async def discontinuity(self, *, anchor: datetime) -> list[Output]:
        """A publisher (re)attached: its media continues the timeline as a new session starting at ``anchor``."""
        if self._ffmpeg is not None:
            return await self._ffmpeg.discontinuity(anchor=anchor)
        if self._segmenter is not None:
            return self._checked(self._segmenter.discontinuity(anchor=anchor))
        return []

    async def finish(self) -> list[Output]:
        """Flush the last segment; nothing can be fed afterwards.

        Raises:
            RemuxerError: ffmpeg failed; ``error.outputs`` holds what it finished anyway.
        """
        if self._ffmpeg is not None:
            return await self._ffmpeg.finish()
        if self._segmenter is not None:
            return self._checked(self._segmenter.finish())
        return []

    async def aclose(self) -> None:
        """Release the ffmpeg process, if any, without waiting for its output."""
        if self._ffmpeg is not None:
            await self._ffmpeg.aclose()

    # ------------------------------------------------------------------ internals

    def _engine(self) -> Segmenter:
        if self._segmenter is None:
            self._segmenter = Segmenter(
                target_duration=self._segment_seconds, part_target=self._part_seconds, anchor=datetime.now(UTC)
            )
            if self._metadata:
                self._segmenter.feed_metadata(self._metadata)
        return self._segmenter

    async def _feed_ffmpeg(self, kind: TagKind, timestamp: int, payload: bytes) -> list[Output]:
        assert self._ffmpeg is not None
        feed = self._ffmpeg.feed_audio if kind is TagKind.AUDIO else self._ffmpeg.feed_video
        return await feed(timestamp, payload)

    async def _fall_back(self, error: UnsupportedMedia, current: tuple[TagKind, int, bytes]) -> list[Output]:
        """Switch to ffmpeg for good and replay into it what the segmenter was fed (it produced nothing yet)."""
        log.warning("switching to the ffmpeg remuxer", extra={"reason": error.message})
        replay, self._replay, self._segmenter = self._replay or [], None, None
        self._ffmpeg = await self._start_ffmpeg()
        outputs: list[Output] = []
        for kind, timestamp, payload in [*replay, current]:
            outputs += await self._feed_ffmpeg(kind, timestamp, payload)
        return outputs

    async def _start_ffmpeg(self) -> FfmpegRemuxer:
        remuxer = FfmpegRemuxer(segment_seconds=self._segment_seconds, anchor=datetime.now(UTC))
        if self._metadata:
            await remuxer.feed_metadata(self._metadata)
        return remuxer

    def _checked(self, outputs: list[Output]) -> list[Output]:
        """Bytes fed since the last segment closed are what the segmenter holds; past the limit, refuse."""
        if any(isinstance(output, Segment) for output in outputs):
            self._segment_bytes = 0
        if self._segment_bytes > MAX_SEGMENT_BYTES:
            raise SegmentTooLarge(f"segment passed {MAX_SEGMENT_BYTES >> 20} MiB without a keyframe")
        return outputs


__all__ = ["MODES", "Muxer", "RemuxerError", "SegmentTooLarge", "TagKind"]
