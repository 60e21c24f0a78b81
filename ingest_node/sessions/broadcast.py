"""One broadcast (a session): media from whichever publisher is attached → CMAF HLS objects in S3.

A broadcast outlives its publisher's connection: when OBS drops and reconnects inside the reconnect window, the
new publisher attaches to the same broadcast and the output continues with a discontinuity (same session id,
one timeline, one recording). The registry in :mod:`ingest_node.sessions.registry` decides which broadcast a publisher
joins.

Rules:
- Object keys come only from :mod:`capturestream.keys`.
- Every live segment carries :class:`capturestream.keys.SegmentMetadata` (its init epoch, discontinuity flag and
  program date time) as object metadata, so functions and the recording builder need no playlist.
- Per broadcast, objects are queued in dependency order on one
  :class:`~ingest_node.storage.stream_queue.StreamUploadQueue`: init before the segments that use it, each
  segment before the playlist that names it, ``started.json`` after the first init (so its codecs are known),
  ``ended.json`` after the final playlist with ENDLIST.
- While live, ``health.json`` (bitrate, frame rate, keyframe interval samples: :mod:`ingest_node.sessions.health`) is
  rewritten every few seconds, checked only when a segment is cut, and once more before ``ended.json``.
- Media goes through one :class:`~ingest_node.muxing.muxer.Muxer` (the in-process segmenter, or the ffmpeg
  fallback behind the same interface). Muxer and upload-queue steps are serialized by one lock, so a takeover's
  new publisher never interleaves with the old one's last message. The hot path, :meth:`Broadcast.feed_now`,
  muxes a message without awaiting when the lock is free; what it produces for S3 is queued, in order, by the
  next step that takes the lock (:meth:`Broadcast.store_outputs` or any other).
- A drop closes the segment in progress at once (:meth:`Broadcast.dropped`), so viewers get the last second now,
  not after the reconnect window; the next publisher's media starts a new session with a discontinuity.
- The live playlist keeps :data:`PLAYLIST_WINDOW` segments by default.
- An optional :class:`BroadcastObserver` sees every tag, output and state change (the node's low-latency playback:
  HTTP-FLV, LL-HLS); it must not block.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from datetime import UTC, datetime
from typing import Any, Protocol

from capturestream import keys
from capturestream.models import Channel, HealthManifestBody, MediaInfo, SessionManifestBody, new_session_id
from mediakit.cmaf import InitSegment, Output, Segment
from mediakit.hls import MediaPlaylist, format_date_time

from ..muxing.muxer import Muxer, RemuxerError, TagKind
from ..storage.uploader import MANIFEST, MEDIA, PLAYLIST, StreamUploadQueue, Uploader
from .health import HealthMonitor
from .stream_stats import StreamStats

log = logging.getLogger(__name__)

#: Live playlist window, in segments, by default: long enough that the burst of segments after a stalled upload
#: does not push segments a player has not loaded yet out of the playlist (an 8.8 s stall was followed by 16
#: segments in 2 s).
PLAYLIST_WINDOW = 30


class BroadcastObserver(Protocol):
    """Sees a broadcast's media as it flows (low-latency playback). Calls are synchronous and must not block."""

    def on_tag(self, broadcast: Broadcast, kind: TagKind, timestamp: int, payload: bytes) -> None:
        """One audio/video message body as the publisher sent it (timestamps restart at each publisher)."""

    def on_metadata(self, broadcast: Broadcast, metadata: dict[str, Any]) -> None:
        """``onMetaData`` from the publisher."""

    def on_outputs(self, broadcast: Broadcast, outputs: list[Output]) -> None:
        """Init segments, parts and segments, in publishing order."""

    def on_state(self, broadcast: Broadcast) -> None:
        """``broadcast.state`` changed (live, reconnecting, ended); ENDED comes after the final ``on_outputs``."""


class BroadcastState(enum.StrEnum):
    """Where a broadcast is; mirrors ``capturestream.models.StreamStatus``."""

    #: A publisher is attached and media flows.
    LIVE = "live"
    #: The publisher dropped; waiting for it to come back within the window.
    RECONNECTING = "reconnecting"
    #: Finished: final playlist and ended.json queued.
    ENDED = "ended"


class Broadcast:
    """The output side of one session."""

    def __init__(
        self,
        channel: Channel,
        uploader: Uploader,
        *,
        segment_seconds: float,
        node_id: str,
        part_seconds: float | None = 0.25,
        remuxer: str = "inprocess",
        health: HealthMonitor | None = None,
        playlist_window: int = PLAYLIST_WINDOW,
        observer: BroadcastObserver | None = None,
    ) -> None:
        self._muxer = Muxer(mode=remuxer, segment_seconds=segment_seconds, part_seconds=part_seconds)
        self.channel = channel
        self.started_at = datetime.now(UTC)
        self.session_id = new_session_id(self.started_at)
        self.node_id = node_id
        self.state = BroadcastState.LIVE
        self.metadata: dict[str, Any] = {}
        self.media = MediaInfo()
        self.ended_reason: str | None = None
        self.stats = StreamStats()
        self._health = health or HealthMonitor()
        self._observer = observer
        self._lock = asyncio.Lock()  # one muxer/queue step at a time (old and new publisher around a takeover)
        self._unstored: list[Output] = []  # feed_now's outputs waiting for the lock (store_outputs)
        self._suspended_at: float | None = None
        self._playlist = MediaPlaylist(target_duration=segment_seconds, window=playlist_window)
        self._queue = StreamUploadQueue(uploader, self.session_id)
        self._announced = False
        self._revision = 0  # orders this session's manifests (SessionManifestBody.revision)
        self._media_seconds = 0.0
        self.log_extra = {"playback_id": channel.playback_id, "session_id": self.session_id}

    @property
    def playback_id(self) -> str:
        """The channel's public playback id."""
        return self.channel.playback_id

    @property
    def pending_uploads(self) -> int:
        """Objects queued for S3 and not yet stored."""
        return self._queue.pending

    @property
    def upload_backpressure(self) -> bool:
        """True when the publisher must wait for storage (memory budget spent and the spool can take no more)."""
        return self._queue.backpressure

    @property
    def engine(self) -> str:
        """What cuts the segments: ``"inprocess"`` or ``"ffmpeg"``."""
        return self._muxer.engine

    def away_seconds(self) -> float:
        """Seconds since the publisher dropped (0 while one is attached)."""
        return 0.0 if self._suspended_at is None else time.monotonic() - self._suspended_at

    async def on_metadata(self, metadata: dict[str, Any]) -> None:
        """``onMetaData`` from the publisher (fallback resolution/frame rate, bitrates)."""
        self.metadata = dict(metadata)
        if self._observer is not None:
            self._observer.on_metadata(self, self.metadata)
        async with self._lock:
            await self._store_unstored()
            await self._handle(await self._muxer.feed_metadata(metadata))

    async def on_audio(self, timestamp: int, payload: bytes) -> None:
        """One RTMP audio message body."""
        await self._feed(TagKind.AUDIO, timestamp, payload)

    async def on_video(self, timestamp: int, payload: bytes) -> None:
        """One RTMP video message body."""
        await self._feed(TagKind.VIDEO, timestamp, payload)

    async def resume(self) -> None:
        """A publisher (re)attached after a drop: continue the same timeline with a discontinuity.

        Coming back from ``reconnecting`` stores ``started.json`` again with a higher revision, so the catalog
        shows the stream live again whatever order S3 delivers the two manifests in.
        """
        was_reconnecting = self.state is BroadcastState.RECONNECTING
        self._set_state(BroadcastState.LIVE)
        self._suspended_at = None
        async with self._lock:
            await self._store_unstored()
            if was_reconnecting and self._announced:
                self._revision += 1
                await self._put_manifest(keys.ManifestKind.STARTED)  # with the last measurements of the old publisher
            self.stats.reset()  # the new publisher's timestamps start from its own zero
            self._health.restart()
            await self._handle(await self._muxer.discontinuity(anchor=datetime.now(UTC)))

    def feed_now(self, kind: TagKind, timestamp: int, payload: bytes) -> bool:
        """Take one audio/video message body without awaiting (the receive hot path); False: not taken, use
        :meth:`on_audio`/:meth:`on_video`.

        Taken when no other step holds the lock and the muxer cuts in process with its format set. Outputs that
        must be queued for S3 (an init, a segment and its playlist) wait in order for :meth:`store_outputs`,
        which every later step also runs first; True then means the caller must await it soon.

        Raises:
            UnsupportedMedia, SegmentTooLarge: as :meth:`Muxer.feed`.
        """
        if self._lock.locked() or self.state is BroadcastState.ENDED:
            return False
        outputs = self._muxer.feed_now(kind, timestamp, payload)
        if outputs is None:
            return False
        self._received(kind, timestamp, payload)
        if not outputs:
            return True
        if self._unstored or any(isinstance(output, InitSegment | Segment) for output in outputs):
            self._unstored += outputs
        elif self._observer is not None:
            self._observer.on_outputs(self, outputs)  # LL-HLS parts only: nothing to store
        return True

    @property
    def outputs_unstored(self) -> bool:
        """Outputs of :meth:`feed_now` wait for :meth:`store_outputs`."""
        return bool(self._unstored)

    async def store_outputs(self) -> None:
        """Queue what :meth:`feed_now` produced for S3, in order (waits while storage pushes back)."""
        async with self._lock:
            await self._store_unstored()

    async def _store_unstored(self) -> None:
        """Under the lock: first of every step, so outputs stay in publishing order."""
        while self._unstored:
            outputs, self._unstored = self._unstored, []
            await self._handle(outputs)

    def _received(self, kind: TagKind, timestamp: int, payload: bytes) -> None:
        """What every taken media message does besides muxing, on either path: measured, shown to the observer."""
        (self.stats.on_audio if kind is TagKind.AUDIO else self.stats.on_video)(timestamp, payload)
        if self._observer is not None:
            self._observer.on_tag(self, kind, timestamp, payload)

    async def _feed(self, kind: TagKind, timestamp: int, payload: bytes) -> None:
        if self.state is BroadcastState.ENDED:
            return
        self._received(kind, timestamp, payload)
        async with self._lock:
            if self.state is BroadcastState.ENDED:
                return  # a message in flight when the broadcast was ended (a kick, a shutdown): dropped
            await self._store_unstored()
            await self._handle(await self._muxer.feed(kind, timestamp, payload))

    def suspend(self) -> None:
        """The publisher left; the registry decides when the window is over."""
        if self.state is BroadcastState.LIVE:
            self._suspended_at = time.monotonic()
            self._set_state(BroadcastState.RECONNECTING)
            self._revision += 1

    async def dropped(self) -> None:
        """The publisher dropped: close the segment in progress now and store ``reconnecting.json`` (viewers see
        "reconnecting" instead of a frozen live stream)."""
        async with self._lock:
            await self._store_unstored()
            if self.state is not BroadcastState.RECONNECTING:
                return
            await self._handle(await self._muxer.cut())
            if self._announced:
                await self._put_manifest(keys.ManifestKind.RECONNECTING)

    async def end(self, reason: str) -> None:
        """Flush the last segment, write the final playlist (ENDLIST) and ``ended.json``; wait for the uploads."""
        if self.state is BroadcastState.ENDED:
            return
        self.state = BroadcastState.ENDED  # at once (end() is idempotent); observers hear it after the last outputs
        self.ended_reason = reason
        async with self._lock:
            try:
                await self._store_unstored()
                try:
                    outputs = await self._muxer.finish()
                except RemuxerError as error:  # publish what ffmpeg finished; the broadcast still ends cleanly
                    log.error("ffmpeg remuxer failed: %s", error, extra=self.log_extra)
                    outputs = error.outputs
                await self._handle(outputs, ended=True)
            finally:  # viewers of the node's playback are ended even if storing the last outputs failed
                if self._observer is not None:
                    self._observer.on_state(self)
            if self._announced and self._health.pending:
                await self._put_health()
            if self._announced:
                await self._put_manifest(keys.ManifestKind.ENDED)
        await self._queue.close()
        seconds = round(self._media_seconds, 1)
        log.info("broadcast ended", extra={**self.log_extra, "reason": reason, "seconds": seconds})

    def _set_state(self, state: BroadcastState) -> None:
        self.state = state
        if self._observer is not None:
            self._observer.on_state(self)

    async def _handle(self, outputs: list[Output], *, ended: bool = False) -> None:
        if outputs and self._observer is not None:
            self._observer.on_outputs(self, outputs)
        playlist_changed = False
        for output in outputs:
            if isinstance(output, InitSegment):
                await self._put_init(output)
            elif isinstance(output, Segment):
                key = keys.LiveSegment(
                    playback_id=self.playback_id, session_id=self.session_id, sequence=output.sequence
                )
                meta = keys.SegmentMetadata(
                    epoch=output.epoch,
                    discontinuity=output.discontinuity,
                    program_date_time=format_date_time(output.program_date_time),
                )
                await self._queue.put(key.key, output.data, MEDIA, metadata=meta.headers())
                self._playlist.add_segment(output, uri=_relative(key), init_uri=self._init_uri(output.epoch))
                self._media_seconds += output.duration
                playlist_changed = True
        if playlist_changed or (ended and self._announced):
            playlist = keys.LivePlaylist(playback_id=self.playback_id, session_id=self.session_id)
            await self._queue.put(playlist.key, self._playlist.render(ended=ended).encode(), PLAYLIST)
        if playlist_changed and not ended and self._announced and self._health.tick(self.stats):
            await self._put_health()

    async def _put_init(self, init: InitSegment) -> None:
        key = keys.LiveInit(playback_id=self.playback_id, session_id=self.session_id, epoch=init.epoch)
        await self._queue.put(key.key, init.data, MEDIA)
        self._playlist.add_init(init)
        self.media = self.media.model_copy(
            update={
                "video_codec": init.video_codec,
                "audio_codec": init.audio_codec,
                "width": init.width,
                "height": init.height,
            }
        )
        if not self._announced:
            self._announced = True
            await self._put_manifest(keys.ManifestKind.STARTED)

    def _init_uri(self, epoch: int) -> str:
        return _relative(keys.LiveInit(playback_id=self.playback_id, session_id=self.session_id, epoch=epoch))

    def _refresh_measurements(self) -> None:
        """Measured frame rate, bitrate and keyframe interval; the encoder's onMetaData claims as a fallback."""
        self.media = self.media.model_copy(
            update={
                "frame_rate": self.stats.frame_rate or _number(self.metadata.get("framerate")),
                "bitrate_kbps": self.stats.bitrate_kbps
                or _number(sum(_number(self.metadata.get(k)) or 0 for k in ("videodatarate", "audiodatarate"))),
                "keyframe_interval": self.stats.keyframe_interval,
            }
        )

    async def _put_manifest(self, kind: keys.ManifestKind) -> None:
        ended = kind is keys.ManifestKind.ENDED
        self._refresh_measurements()
        body = SessionManifestBody(
            channel_id=self.channel.channel_id,
            playback_id=self.playback_id,
            session_id=self.session_id,
            started_at=self.started_at,
            ended_at=datetime.now(UTC) if ended else None,
            duration=round(self._media_seconds, 3) if ended else None,
            media=self.media,
            ingest_node=self.node_id,
            reason=self.ended_reason if ended else None,
            revision=self._revision,
            title=self.channel.name,
        )
        key = keys.SessionManifest(playback_id=self.playback_id, session_id=self.session_id, kind=kind)
        await self._queue.put(key.key, body.model_dump_json(exclude_none=True).encode(), MANIFEST)

    async def _put_health(self) -> None:
        self._refresh_measurements()
        body = HealthManifestBody(
            channel_id=self.channel.channel_id,
            playback_id=self.playback_id,
            session_id=self.session_id,
            media=self.media,
            samples=self._health.report(),
        )
        key = keys.HealthManifest(playback_id=self.playback_id, session_id=self.session_id)
        await self._queue.put(key.key, body.model_dump_json(exclude_none=True).encode(), MANIFEST)


def _relative(key: keys.MediaKey) -> str:
    """A playlist URI relative to the playlist (same folder): the key's last path segment."""
    return key.key.rsplit("/", 1)[1]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value > 0 else None


async def cancel_quietly(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait for it, swallowing its cancellation."""
    if task is None:
        return
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
