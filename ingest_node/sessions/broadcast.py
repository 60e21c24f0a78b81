"""One broadcast (a session): media from whichever publisher is attached → CMAF HLS objects in S3.

A broadcast outlives its publisher's connection: when OBS drops and reconnects inside the reconnect window, the
new publisher attaches to the same broadcast and the output continues with a discontinuity (same session id,
one timeline, one recording). The registry in :mod:`ingest_node.sessions.registry` decides which broadcast a publisher
joins.

Rules:
- Object keys come only from :mod:`capturestream.keys`.
- Every live segment carries :class:`capturestream.keys.SegmentMetadata` (its init epoch, discontinuity flag and
  program date time) as object metadata, so functions and the recording builder need no playlist.
- Per broadcast, objects are queued in dependency order on one :class:`~ingest_node.storage.uploader.StreamUploadQueue`:
  init before the segments that use it, each segment before the playlist that names it, ``started.json`` after
  the first init (so its codecs are known), ``ended.json`` after the final playlist with ENDLIST.
- While live, ``health.json`` (bitrate, frame rate, keyframe interval samples: :mod:`ingest_node.sessions.health`) is
  rewritten every few seconds, checked only when a segment is cut, and once more before ``ended.json``.
- Media goes through the in-process :class:`~mediakit.cmaf.Segmenter`, unless it raises ``UnsupportedMedia``
  before producing its first init (MP3/Speex audio, ...): then the broadcast switches, once, to the ffmpeg
  fallback (:class:`~ingest_node.muxing.ffmpeg_remuxer.FfmpegRemuxer`) and replays the media fed so far into it.
  ``remuxer="ffmpeg"`` uses the fallback from the start.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from datetime import UTC, datetime
from typing import Any

from capturestream import keys
from capturestream.models import Channel, HealthManifestBody, MediaInfo, SessionManifestBody, new_session_id
from mediakit.cmaf import InitSegment, Segment, Segmenter, UnsupportedMedia
from mediakit.hls import MediaPlaylist, format_date_time

from ..muxing.ffmpeg_remuxer import FfmpegRemuxer, RemuxerError
from ..storage.uploader import MANIFEST, MEDIA, PLAYLIST, StreamUploadQueue, Uploader
from .health import HealthMonitor
from .stream_stats import StreamStats

log = logging.getLogger(__name__)

REMUXERS = ("inprocess", "ffmpeg")
_AUDIO, _VIDEO = "audio", "video"
_MAX_REPLAY = 1024  # messages kept for a fallback; past that without an init, no fallback (bounded memory)


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
    ) -> None:
        if remuxer not in REMUXERS:
            raise ValueError(f"remuxer must be one of {REMUXERS}, got {remuxer!r}")
        self.channel = channel
        self.started_at = datetime.now(UTC)
        self.session_id = new_session_id(self.started_at)
        self.node_id = node_id
        self.state = BroadcastState.LIVE
        self.metadata: dict[str, Any] = {}
        self.media = MediaInfo()
        self.ended_reason: str | None = None
        self._segment_seconds = segment_seconds
        self._part_seconds = part_seconds
        self._segmenter: Segmenter | None = None  # created at the first media message: its wall clock anchors PDT
        self._remuxer = remuxer
        self.stats = StreamStats()
        self._health = health or HealthMonitor()
        self._ffmpeg: FfmpegRemuxer | None = None  # the fallback, once chosen
        self._replay: list[tuple[str, int, bytes]] | None = []  # media fed before the first init (None after it)
        self._playlist = MediaPlaylist(target_duration=segment_seconds)
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
        """Objects queued for S3 and not yet stored (backpressure signal)."""
        return self._queue.pending

    async def on_metadata(self, metadata: dict[str, Any]) -> None:
        """``onMetaData`` from the publisher (fallback resolution/frame rate, bitrates)."""
        self.metadata = dict(metadata)
        if self._ffmpeg is not None:
            await self._handle(await self._ffmpeg.feed_metadata(metadata))
        elif self._segmenter is not None:
            await self._handle(self._segmenter.feed_metadata(metadata))

    async def on_audio(self, timestamp: int, payload: bytes) -> None:
        """One RTMP audio message body."""
        await self._feed(_AUDIO, timestamp, payload)

    async def on_video(self, timestamp: int, payload: bytes) -> None:
        """One RTMP video message body."""
        await self._feed(_VIDEO, timestamp, payload)

    async def resume(self) -> None:
        """A publisher (re)attached after a drop: continue the same timeline with a discontinuity.

        Coming back from ``reconnecting`` stores ``started.json`` again with a higher revision, so the catalog
        shows the stream live again whatever order S3 delivers the two manifests in.
        """
        was_reconnecting = self.state is BroadcastState.RECONNECTING
        self.state = BroadcastState.LIVE
        if was_reconnecting and self._announced:
            self._revision += 1
            await self._put_manifest(keys.ManifestKind.STARTED)  # with the last measurements of the old publisher
        self.stats.reset()  # the new publisher's timestamps start from its own zero
        self._health.restart()
        if self._ffmpeg is not None:
            await self._handle(await self._ffmpeg.discontinuity(anchor=datetime.now(UTC)))
        elif self._segmenter is not None:
            await self._handle(self._segmenter.discontinuity(anchor=datetime.now(UTC)))

    async def _feed(self, kind: str, timestamp: int, payload: bytes) -> None:
        (self.stats.on_audio if kind == _AUDIO else self.stats.on_video)(timestamp, payload)
        if self._ffmpeg is None and self._remuxer == "ffmpeg":
            self._ffmpeg = await self._start_ffmpeg()
        if self._ffmpeg is not None:
            feed = self._ffmpeg.feed_audio if kind == _AUDIO else self._ffmpeg.feed_video
            await self._handle(await feed(timestamp, payload))
            return
        segmenter = self._media_segmenter()
        try:
            outputs = (segmenter.feed_audio if kind == _AUDIO else segmenter.feed_video)(timestamp, payload)
        except UnsupportedMedia as error:
            if self._replay is None:
                raise  # an init is out: the broadcast's format is set, it cannot switch muxers mid-stream
            await self._fall_back(error, (kind, timestamp, payload))
            return
        if self._replay is not None:
            if len(self._replay) >= _MAX_REPLAY or any(isinstance(output, InitSegment) for output in outputs):
                self._replay = None
            else:
                self._replay.append((kind, timestamp, payload))
        await self._handle(outputs)

    async def _fall_back(self, error: UnsupportedMedia, current: tuple[str, int, bytes]) -> None:
        """Switch to ffmpeg for good and replay into it what the segmenter was fed (it produced nothing yet)."""
        log.warning("switching to the ffmpeg remuxer", extra={**self.log_extra, "reason": error.message})
        replay, self._replay, self._segmenter = self._replay or [], None, None
        self._ffmpeg = await self._start_ffmpeg()
        for kind, timestamp, payload in [*replay, current]:
            feed = self._ffmpeg.feed_audio if kind == _AUDIO else self._ffmpeg.feed_video
            await self._handle(await feed(timestamp, payload))

    async def _start_ffmpeg(self) -> FfmpegRemuxer:
        remuxer = FfmpegRemuxer(segment_seconds=self._segment_seconds, anchor=datetime.now(UTC))
        if self.metadata:
            await remuxer.feed_metadata(self.metadata)
        return remuxer

    def _media_segmenter(self) -> Segmenter:
        if self._segmenter is None:
            self._segmenter = Segmenter(
                target_duration=self._segment_seconds, part_target=self._part_seconds, anchor=datetime.now(UTC)
            )
            if self.metadata:
                self._segmenter.feed_metadata(self.metadata)
        return self._segmenter

    def suspend(self) -> None:
        """The publisher dropped; the registry decides when the window is over."""
        if self.state is BroadcastState.LIVE:
            self.state = BroadcastState.RECONNECTING
            self._revision += 1

    async def announce_reconnecting(self) -> None:
        """Store ``reconnecting.json`` (viewers see "reconnecting" instead of a frozen live stream)."""
        if self.state is BroadcastState.RECONNECTING and self._announced:
            await self._put_manifest(keys.ManifestKind.RECONNECTING)

    async def end(self, reason: str) -> None:
        """Flush the last segment, write the final playlist (ENDLIST) and ``ended.json``; wait for the uploads."""
        if self.state is BroadcastState.ENDED:
            return
        self.state = BroadcastState.ENDED
        self.ended_reason = reason
        if self._ffmpeg is not None:
            try:
                outputs = await self._ffmpeg.finish()
            except RemuxerError as error:  # publish what ffmpeg finished; the broadcast still ends cleanly
                log.error("ffmpeg remuxer failed: %s", error, extra=self.log_extra)
                outputs = error.outputs
            await self._handle(outputs, ended=True)
        elif self._segmenter is not None:
            await self._handle(self._segmenter.finish(), ended=True)
        if self._announced and self._health.pending:
            await self._put_health()
        if self._announced:
            await self._put_manifest(keys.ManifestKind.ENDED)
        await self._queue.close()
        log.info("broadcast ended", extra={**self.log_extra, "reason": reason, "seconds": self._media_seconds})

    async def _handle(self, outputs: list[Any], *, ended: bool = False) -> None:
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
