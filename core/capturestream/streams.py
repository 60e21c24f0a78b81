"""Read models of the catalog: a stream item or session item as the API, the WebSocket routes and the notifier see it.

Rules:
- Built only from items the catalog, notifier and thumbnail functions write (:mod:`capturestream.table` layout);
  unknown attributes are ignored, so older readers survive newer writers.
- Items hold object *paths*; URLs are made here from the CDN base URL the caller passes (it differs per
  deployment, the items do not).
- Nothing here carries a stream key or its hash: channel items are never read into these models.
- Readers that answer requests use ``read`` (an item missing ``playback_id``/``session_id`` is absent, not an
  error); ``from_item`` raises on it, for callers that hold whole items only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import table
from .messages import StreamSummary
from .models import HealthSample, MediaInfo, StreamStatus


def media_url(cdn_base_url: str, path: str | None) -> str | None:
    """The URL viewers fetch ``path`` (an object key) from, or None when there is no path."""
    if not path:
        return None
    return f"{cdn_base_url.rstrip('/')}/{path}" if cdn_base_url else f"/{path}"


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    playback_id: str
    session_id: str
    channel_id: str | None = None
    title: str = ""
    status: StreamStatus = StreamStatus.LIVE
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration: float | None = None
    playlist_path: str | None = None
    media: MediaInfo = Field(default_factory=MediaInfo)
    revision: int = 0

    @classmethod
    def read(cls, item: Mapping[str, Any] | None) -> Self | None:
        """An item (wire format) → the view, or None when there is none or it is half-written.

        A key-only item (moto shows one while the catalog's ``UpdateItem`` creates it) reads as absent: see
        :func:`capturestream.table.read_model`. A corrupt item still raises pydantic's ValidationError.
        """
        return table.read_model(cls, item)


class StreamView(_View):
    """A channel's stream: the state of its latest broadcast, its audience and its latest thumbnail."""

    viewer_count: int = 0
    thumbnail_path: str | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> StreamView:
        """A stream item (wire format) → the view (raises pydantic's ValidationError on a corrupt item)."""
        return cls.model_validate(table.from_item(item))

    def summary(self, cdn_base_url: str) -> StreamSummary:
        """What a stream card and ``streamList``/``streamLive`` carry."""
        return StreamSummary(
            stream_id=self.playback_id,
            title=self.title[:200],
            status=self.status.value,
            playback_url=media_url(cdn_base_url, self.playlist_path),
            thumbnail_url=media_url(cdn_base_url, self.thumbnail_path),
            viewer_count=self.viewer_count,
            started_at=self.started_at,
        )


class SessionView(_View):
    """One broadcast: its state and how much of it is in S3."""

    segment_count: int = 0
    last_segment_at: datetime | None = None
    #: Live health samples, oldest first (the catalog keeps the newest 120, see ``catalog.health_update``).
    health: list[HealthSample] = Field(default_factory=list)

    @field_validator("health", mode="before")
    @classmethod
    def _health_rows(cls, value: Any) -> Any:
        if isinstance(value, list) and all(isinstance(row, list) for row in value):
            return [table.health_sample(row) for row in value]
        return value

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> SessionView:
        """A session item (wire format) → the view."""
        return cls.model_validate(table.from_item(item))

    def media_time_ms(self, at: datetime) -> int:
        """Milliseconds of this broadcast's timeline at wall-clock ``at`` (0 before it started)."""
        if self.started_at is None:
            return 0
        return max(0, int((at - self.started_at).total_seconds() * 1000))
