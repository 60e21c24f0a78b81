"""Request and response bodies of the REST API: the JSON contract, in one place.

Rules:
- JSON is camelCase on the wire (``channelId``, ``streamKey``, ``nextCursor``), like the WebSocket messages and
  the web app; Python attributes stay snake_case. Every model uses :data:`_WIRE`, so a field cannot drift.
- Request bodies forbid unknown fields: a typo (``nmae``) is a 422 naming the field, not a silent default.
- A stream key appears in exactly one model, :class:`ChannelCredentials`, returned once at creation or
  rotation. Its hash never appears in any model; :class:`ChannelOut` is built field by field from a
  :class:`~capturestream.models.Channel` so a new model field cannot leak by accident.
- Likewise public stream and chat models (:class:`StreamOut`, :class:`ChatMessageOut`) are built field by field
  from the core read models, never from raw items: no key attribute (``pk``, ``gsi1pk``) or internal field
  (``revision``, ``channel_id``) reaches a viewer.
- Recording models (:class:`RecordingOut`, :class:`RecordingDetail`) are built field by field from
  :class:`~capturestream.recordings.Recording`; they carry the channel id (the library filters by it) and
  object paths only as CDN URLs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from capturestream.chat import ChatEntry
from capturestream.models import Channel, HealthSample, MediaInfo
from capturestream.recordings import BroadcastStats, Recording, Storyboard
from capturestream.streams import SessionView, StreamView, media_url

_WIRE = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

#: Longest channel name, in characters (the same bound as :class:`capturestream.models.Channel`).
MAX_CHANNEL_NAME = 100


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must contain only printable characters (no control characters or line breaks)")
    return value


ChannelName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CHANNEL_NAME),
    AfterValidator(_printable),
]


class CreateChannelRequest(BaseModel):
    """``POST /api/channels`` body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ChannelName = Field(description="Display name, 1-100 printable characters.", examples=["My channel"])


class UpdateChannelRequest(BaseModel):
    """``PATCH /api/channels/{channelId}`` body: the settings to change (at least one), camelCase only; a name
    follows a new channel's rules."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=False, validate_by_alias=True, extra="forbid", frozen=True
    )

    name: ChannelName | None = Field(
        default=None, description="Display name, 1-100 printable characters.", examples=["Friday show"]
    )
    wait_on_unpublish: StrictBool | None = Field(
        default=None,
        description='A clean stop (OBS "Stop Streaming") waits the reconnect window instead of ending the broadcast.',
    )

    @model_validator(mode="after")
    def _something_to_change(self) -> UpdateChannelRequest:
        if self.name is None and self.wait_on_unpublish is None:
            raise ValueError("give at least one of name, waitOnUnpublish")
        return self


def watch_url(web_base_url: str, playback_id: str) -> str:
    """The web app's watch page of a stream (relative when no ``WEB_BASE_URL`` is configured)."""
    return f"{web_base_url.rstrip('/')}/watch.html?v={playback_id}"


class ChannelOut(BaseModel):
    """A channel as its owner sees it; never carries the stream key or its hash."""

    model_config = _WIRE

    channel_id: str
    name: str
    playback_id: str = Field(description="Public id used in watch URLs and media paths.")
    created_at: datetime
    key_rotated_at: datetime
    wait_on_unpublish: bool = Field(description="A clean stop waits the reconnect window (see PATCH).")

    @classmethod
    def of(cls, channel: Channel) -> ChannelOut:
        """The public view of ``channel``."""
        return cls(
            channel_id=channel.channel_id,
            name=channel.name,
            playback_id=channel.playback_id,
            created_at=channel.created_at,
            key_rotated_at=channel.key_rotated_at,
            wait_on_unpublish=channel.wait_on_unpublish,
        )


class EndStreamResponse(BaseModel):
    """``POST /api/channels/{channelId}/end-stream``: the request is recorded; the ingest node acts on it."""

    model_config = _WIRE

    channel_id: str
    end_requested_at: datetime
    publish_held_until: datetime = Field(
        description="Until then the ingest node refuses the channel's publishes (OBS's automatic reconnects too)."
    )


class IngestInfo(BaseModel):
    """What to type into OBS: Settings → Stream → Service "Custom"."""

    model_config = _WIRE

    server: str = Field(description="OBS 'Server' URL (RTMP ingest).", examples=["rtmp://localhost:1935/live"])
    stream_key: str = Field(description="OBS 'Stream Key'. Shown only in this response.")


class ChannelCredentials(BaseModel):
    """A channel with its freshly issued stream key: the only response that ever contains a key."""

    model_config = _WIRE

    channel: ChannelOut
    stream_key: str = Field(description="The clear stream key. It is stored hashed and cannot be shown again.")
    ingest: IngestInfo
    watch_url: str = Field(examples=["http://localhost:8000/watch.html?v=k3x9q2m8a1b2c3d4"])


class ChannelList(BaseModel):
    """One page of the caller's channels, oldest first."""

    model_config = _WIRE

    channels: list[ChannelOut]
    next_cursor: str | None = Field(default=None, description="Pass as ?cursor= for the next page; null at the end.")


class MediaOut(BaseModel):
    """What the publisher sends, as the ingest node measured it (any field may be null: OBS may omit metadata)."""

    model_config = _WIRE

    video_codec: str | None = Field(default=None, examples=["avc1.64001f"])
    audio_codec: str | None = Field(default=None, examples=["mp4a.40.2"])
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    bitrate_kbps: float | None = None
    keyframe_interval: float | None = Field(default=None, description="Seconds between keyframes.")

    @classmethod
    def of(cls, media: MediaInfo) -> MediaOut:
        """The public view of ``media``."""
        return cls(
            video_codec=media.video_codec,
            audio_codec=media.audio_codec,
            width=media.width,
            height=media.height,
            frame_rate=media.frame_rate,
            bitrate_kbps=media.bitrate_kbps,
            keyframe_interval=media.keyframe_interval,
        )


class StreamOut(BaseModel):
    """A channel's stream as viewers see it: the state of its latest broadcast."""

    model_config = _WIRE

    id: str = Field(description="The playback id (public; never the stream key).", examples=["k3x9q2m8a1b2c3d4"])
    title: str
    status: Literal["live", "reconnecting", "ended"]
    playback_url: str | None = Field(description="HLS playlist of the latest broadcast on the CDN.")
    thumbnail_url: str | None
    watch_url: str
    viewer_count: int
    started_at: datetime | None
    ended_at: datetime | None
    duration: float | None = Field(description="Seconds; set once the broadcast has ended.")
    session_id: str = Field(description="The latest broadcast's id (``?session=`` of the chat endpoint).")
    media: MediaOut

    @classmethod
    def fields_of(cls, view: StreamView, *, cdn_base_url: str, web_base_url: str) -> dict[str, object]:
        """Constructor arguments of the public view of ``view`` (shared with :class:`StreamDetail`)."""
        return {
            "id": view.playback_id,
            "title": view.title,
            "status": view.status.value,
            "playback_url": media_url(cdn_base_url, view.playlist_path),
            "thumbnail_url": media_url(cdn_base_url, view.thumbnail_path),
            "watch_url": watch_url(web_base_url, view.playback_id),
            "viewer_count": max(view.viewer_count, 0),
            "started_at": view.started_at,
            "ended_at": view.ended_at,
            "duration": view.duration,
            "session_id": view.session_id,
            "media": MediaOut.of(view.media),
        }

    @classmethod
    def of(cls, view: StreamView, *, cdn_base_url: str, web_base_url: str) -> StreamOut:
        """The public view of a stream item."""
        return cls(**cls.fields_of(view, cdn_base_url=cdn_base_url, web_base_url=web_base_url))


class StreamDetail(StreamOut):
    """A stream with how much of its latest broadcast is in storage."""

    segment_count: int = Field(description="Media segments of the latest broadcast stored so far.")
    last_segment_at: datetime | None = Field(description="When the newest segment was stored.")

    @classmethod
    def of_session(
        cls, view: StreamView, session: SessionView | None, *, cdn_base_url: str, web_base_url: str
    ) -> StreamDetail:
        """The public view of a stream item and its latest session item (None: not catalogued yet)."""
        return cls(
            **cls.fields_of(view, cdn_base_url=cdn_base_url, web_base_url=web_base_url),
            segment_count=session.segment_count if session else 0,
            last_segment_at=session.last_segment_at if session else None,
        )


class StreamList(BaseModel):
    """One page of streams of one status, newest broadcast first."""

    model_config = _WIRE

    items: list[StreamOut]
    next_cursor: str | None = Field(default=None, description="Pass as ?cursor= for the next page; null at the end.")


class HealthSampleOut(BaseModel):
    """What the publisher sent over one window of a few seconds ending at ``t`` (null: nothing to measure)."""

    model_config = _WIRE

    t: datetime = Field(description="End of the window (UTC).")
    bitrate_kbps: float | None = Field(description="Audio + video kbit/s over the window.")
    frame_rate: float | None = Field(description="Video frames per second over the window.")
    keyframe_interval: float | None = Field(
        description="Seconds between the latest keyframes, or since the last one when that is longer already."
    )

    @classmethod
    def of(cls, sample: HealthSample) -> HealthSampleOut:
        """The public view of a health sample."""
        return cls(
            t=sample.t,
            bitrate_kbps=sample.bitrate_kbps,
            frame_rate=sample.frame_rate,
            keyframe_interval=sample.keyframe_interval,
        )


class StreamHealth(BaseModel):
    """A broadcast's live health: the ingest node's samples (newest last) and what it measured most recently."""

    model_config = _WIRE

    session_id: str = Field(description="The broadcast the samples belong to (``?session=``).")
    status: Literal["live", "reconnecting", "ended"]
    samples: list[HealthSampleOut] = Field(description="Oldest first; one every ~5 s, at most the last 120.")
    media: MediaOut

    @classmethod
    def of_session(cls, session: SessionView) -> StreamHealth:
        """The public view of a session item's health."""
        return cls(
            session_id=session.session_id,
            status=session.status.value,
            samples=[HealthSampleOut.of(sample) for sample in session.health],
            media=MediaOut.of(session.media),
        )


class ChatMessageOut(BaseModel):
    """One stored chat message, placed on the broadcast's timeline."""

    model_config = _WIRE

    id: str
    user: str
    text: str
    ts: int = Field(description="Arrival time, epoch milliseconds.")
    media_time: float = Field(description="Seconds since the broadcast started (the VOD player's currentTime).")

    @classmethod
    def of(cls, entry: ChatEntry) -> ChatMessageOut:
        """The public view of a chat item (no user id, no stream ids)."""
        return cls(id=entry.id, user=entry.user, text=entry.text, ts=entry.ts, media_time=entry.media_ms / 1000)


class ChatPage(BaseModel):
    """One page of a broadcast's chat, in media-time order."""

    model_config = _WIRE

    session_id: str = Field(description="The broadcast this chat belongs to; pass it with the cursor.")
    items: list[ChatMessageOut]
    next_cursor: str | None = Field(default=None, description="Pass as ?cursor= for the next page; null at the end.")


class RecordingOut(BaseModel):
    """A recording as the VOD library lists it (ready ones only)."""

    model_config = _WIRE

    id: str = Field(description="The recording id: the broadcast's session id.", examples=["20261125T153527Z-k3x9q2"])
    title: str
    channel_id: str
    playback_id: str = Field(description="The channel's public playback id (the live stream's id).")
    started_at: datetime
    ended_at: datetime | None
    duration: float | None = Field(description="Seconds of media in the MP4.")
    size: int | None = Field(description="Bytes of the MP4.")
    poster_url: str | None
    codecs: str | None = Field(description="RFC 6381 codecs of the MP4.", examples=["avc1.64001f,mp4a.40.2"])
    video_codec: str | None
    audio_codec: str | None
    width: int | None
    height: int | None

    @classmethod
    def fields_of(cls, recording: Recording, *, cdn_base_url: str) -> dict[str, object]:
        """Constructor arguments of the public view of ``recording`` (shared with :class:`RecordingDetail`)."""
        return {
            "id": recording.recording_id,
            "title": recording.title,
            "channel_id": recording.channel_id,
            "playback_id": recording.playback_id,
            "started_at": recording.started_at,
            "ended_at": recording.ended_at,
            "duration": recording.duration,
            "size": recording.size,
            "poster_url": media_url(cdn_base_url, recording.poster_path),
            "codecs": recording.codecs,
            "video_codec": recording.video_codec,
            "audio_codec": recording.audio_codec,
            "width": recording.width,
            "height": recording.height,
        }

    @classmethod
    def of(cls, recording: Recording, *, cdn_base_url: str) -> RecordingOut:
        """The public view of a recording item."""
        return cls(**cls.fields_of(recording, cdn_base_url=cdn_base_url))


class RecordingList(BaseModel):
    """One page of ready recordings, newest broadcast first."""

    model_config = _WIRE

    items: list[RecordingOut]
    next_cursor: str | None = Field(default=None, description="Pass as ?cursor= for the next page; null at the end.")


class StoryboardOut(BaseModel):
    """Seek previews: a WebVTT file whose cues point at tiles (``#xywh=``) of the sprite sheets."""

    model_config = _WIRE

    vtt_url: str
    sprite_urls: list[str]
    interval: float = Field(description="Seconds of media per tile.")
    tile_width: int
    tile_height: int
    columns: int
    rows: int
    tiles: int

    @classmethod
    def of(cls, storyboard: Storyboard, *, cdn_base_url: str) -> StoryboardOut:
        """The public view of a recording's storyboard."""
        return cls(
            vtt_url=media_url(cdn_base_url, storyboard.vtt_path) or "",
            sprite_urls=[media_url(cdn_base_url, path) or "" for path in storyboard.sprite_paths],
            interval=storyboard.interval,
            tile_width=storyboard.tile_width,
            tile_height=storyboard.tile_height,
            columns=storyboard.columns,
            rows=storyboard.rows,
            tiles=storyboard.tiles,
        )


class BroadcastStatsOut(BaseModel):
    """How the broadcast went."""

    model_config = _WIRE

    duration: float = Field(description="Seconds.")
    peak_viewers: int
    average_viewers: float = Field(description="Time-weighted mean of concurrent viewers.")
    chat_messages: int
    reconnects: int = Field(description="Times the publisher came back inside the reconnect window.")

    @classmethod
    def of(cls, stats: BroadcastStats) -> BroadcastStatsOut:
        """The public view of a recording's broadcast stats."""
        return cls(
            duration=stats.duration,
            peak_viewers=stats.peak_viewers,
            average_viewers=stats.average_viewers,
            chat_messages=stats.chat_messages,
            reconnects=stats.reconnects,
        )


class ChatRange(BaseModel):
    """The chat replay of a recording: the query of ``GET /api/streams/{playbackId}/chat``."""

    model_config = _WIRE

    session: str = Field(description="The broadcast id (``?session=``).")
    from_: float = Field(alias="from", description="Media seconds (``?from=``).")
    to: float | None = Field(description="Media seconds, exclusive (``?to=``); null while the duration is unknown.")


def chat_url(playback_id: str, session_id: str, to: float | None) -> str:
    """The API path of a broadcast's chat between media time 0 and ``to``."""
    query = f"session={session_id}&from=0"
    if to is not None:
        query += "&to=" + f"{to:.3f}".rstrip("0").rstrip(".")
    return f"/api/streams/{playback_id}/chat?{query}"


class RecordingDetail(RecordingOut):
    """One recording: where it is, its media and preview URLs, how the broadcast went and where its chat is."""

    status: Literal["building", "ready", "failed"]
    error: str | None = Field(description="Why the build failed (``failed`` only).")
    mp4_url: str | None = Field(description="The whole broadcast as one faststart MP4.")
    playlist_url: str | None = Field(description="VOD HLS playlist over the live segments.")
    storyboard: StoryboardOut | None
    stats: BroadcastStatsOut | None
    chat: ChatRange
    chat_url: str = Field(description="API path of the chat replay (``chat`` as a query).")

    @classmethod
    def of_recording(cls, recording: Recording, *, cdn_base_url: str) -> RecordingDetail:
        """The public view of a recording item that is not deleted."""
        status = recording.status.value
        if status not in ("building", "ready", "failed"):
            raise ValueError(f"a {status} recording has no public view")
        duration = recording.duration if recording.duration is not None else _stats_duration(recording)
        return cls(
            **cls.fields_of(recording, cdn_base_url=cdn_base_url),
            status=status,
            error=recording.error if status == "failed" else None,
            mp4_url=media_url(cdn_base_url, recording.mp4_path),
            playlist_url=media_url(cdn_base_url, recording.playlist_path),
            storyboard=StoryboardOut.of(recording.storyboard, cdn_base_url=cdn_base_url)
            if recording.storyboard
            else None,
            stats=BroadcastStatsOut.of(recording.stats) if recording.stats else None,
            chat=ChatRange(session=recording.recording_id, from_=0.0, to=duration),
            chat_url=chat_url(recording.playback_id, recording.recording_id, duration),
        )


def _stats_duration(recording: Recording) -> float | None:
    return recording.stats.duration if recording.stats else None


class ChannelRecordingOut(RecordingOut):
    """A recording as its channel's owner lists it: ready, still building or failed, with how the broadcast went."""

    status: Literal["building", "ready", "failed"]
    error: str | None = Field(description="Why the build failed (``failed`` only).")
    stats: BroadcastStatsOut | None = Field(description="Set once the recording is built.")

    @classmethod
    def of_recording(cls, recording: Recording, *, cdn_base_url: str) -> ChannelRecordingOut:
        """The owner's view of a recording item that is not deleted."""
        return cls(
            **cls.fields_of(recording, cdn_base_url=cdn_base_url),
            status=recording.status.value,
            error=recording.error if recording.status.value == "failed" else None,
            stats=BroadcastStatsOut.of(recording.stats) if recording.stats else None,
        )


class ChannelRecordingList(BaseModel):
    """One page of a channel's recordings (all but deleted ones), newest broadcast first."""

    model_config = _WIRE

    items: list[ChannelRecordingOut]
    next_cursor: str | None = Field(default=None, description="Pass as ?cursor= for the next page; null at the end.")


CaptureSource = Literal["screen", "camera", "screen+camera"]


class CaptureSettings(BaseModel):
    """Browser studio capture settings (``getDisplayMedia``/``getUserMedia`` + ``MediaRecorder``)."""

    model_config = _WIRE

    source: CaptureSource = "screen"
    width: int = Field(default=1280, ge=320, le=3840, multiple_of=2, description="Pixels, even.")
    height: int = Field(default=720, ge=180, le=2160, multiple_of=2, description="Pixels, even.")
    frame_rate: int = Field(default=30, ge=15, le=60)
    video_bitrate_kbps: int = Field(default=2500, ge=300, le=8000)
    audio_bitrate_kbps: int = Field(default=128, ge=32, le=320)
    audio: bool = True
    keyframe_interval_seconds: int = Field(default=1, ge=1, le=4)


class CaptureConfigRequest(CaptureSettings):
    """``POST /api/capture/config`` body: every field optional, camelCase only, no unknown fields, no coercion."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=False,
        validate_by_alias=True,
        extra="forbid",
        strict=True,
        frozen=True,
    )


class CaptureConfig(CaptureSettings):
    """The normalised capture settings plus how the browser should record them."""

    recommended_mime_types: list[str] = Field(
        description="Try in order with MediaRecorder.isTypeSupported; the first supported one wins."
    )
    timeslice_ms: int = Field(description="MediaRecorder.start(timeslice): one chunk per interval to the socket.")


class StatusChecks(BaseModel):
    """Dependency checks of ``GET /api/status``."""

    model_config = _WIRE

    table: Literal["ok", "error"]


class StatusResponse(BaseModel):
    """Service health: ``status`` is ``ok`` only when every check is."""

    model_config = _WIRE

    status: Literal["ok", "error"]
    version: str
    time: datetime
    checks: StatusChecks


class FieldError(BaseModel):
    """One invalid input: where (``body.name``, ``query.limit``) and why."""

    model_config = _WIRE

    field: str
    message: str


class ErrorDetail(BaseModel):
    """Machine-readable ``code`` (stable) and a human ``message`` (may change)."""

    model_config = _WIRE

    code: str = Field(examples=["not_found"])
    message: str
    fields: list[FieldError] | None = Field(default=None, description="Present on 422 only.")


class ErrorResponse(BaseModel):
    """Every error body: ``{"error": {"code": ..., "message": ...}}``."""

    model_config = _WIRE

    error: ErrorDetail
