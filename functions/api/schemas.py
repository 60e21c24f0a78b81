"""Request and response bodies of the REST API: the JSON contract, in one place.

Rules:
- JSON is camelCase on the wire (``channelId``, ``streamKey``, ``nextCursor``), like the WebSocket messages and
  the web app; Python attributes stay snake_case. Every model uses :data:`_WIRE`, so a field cannot drift.
- Request bodies forbid unknown fields: a typo (``nmae``) is a 422 naming the field, not a silent default.
- A stream key appears in exactly one model, :class:`ChannelCredentials`, returned once at creation or
  rotation. Its hash never appears in any model; :class:`ChannelOut` is built field by field from a
  :class:`~capturestream.models.Channel` so a new model field cannot leak by accident.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from capturestream.models import Channel

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


class ChannelOut(BaseModel):
    """A channel as its owner sees it; never carries the stream key or its hash."""

    model_config = _WIRE

    channel_id: str
    name: str
    playback_id: str = Field(description="Public id used in watch URLs and media paths.")
    created_at: datetime
    key_rotated_at: datetime

    @classmethod
    def of(cls, channel: Channel) -> ChannelOut:
        """The public view of ``channel``."""
        return cls(
            channel_id=channel.channel_id,
            name=channel.name,
            playback_id=channel.playback_id,
            created_at=channel.created_at,
            key_rotated_at=channel.key_rotated_at,
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
