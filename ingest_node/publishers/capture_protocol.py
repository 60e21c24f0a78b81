"""The browser go-live protocol on the ingest node's ``/capture`` WebSocket. SANS-IO: messages in, events out.

Wire (text frames are JSON objects with a ``type``; binary frames are media)::

    client → node   {"type": "start_native_capture", "config": {"streamKey": "live_…", …}}   first, exactly once
                    <binary> …                 MediaRecorder chunks (WebM/Matroska), in recording order
                    {"type": "stop_capture"}   clean end: the broadcast ends at once
    node → client   {"type": "capture_started", "playbackId": …, "sessionId": …}
                    {"type": "capture_stats", "bytesReceived": …, "mediaSeconds": …, "segmentsUploaded": …, …}
                    {"type": "capture_stopped"}                         then close 1000
                    {"type": "error", "code": …, "message": …}          then close with a 4xxx code

Rules:
- The stream key travels only in ``start_native_capture`` (never in the URL); it is held as a ``SecretStr`` and
  never appears in an error message, a log line or an exception: validation messages name fields, not values.
- ``config`` takes the capture settings the API's ``POST /api/capture/config`` returns (camelCase, unknown fields
  ignored so the studio can send that answer back as is) plus ``streamKey``; the node reads only what shapes the
  media (bitrates and keyframe interval when it must encode). Bounds match the API's.
- Transitions are the table :data:`_TRANSITIONS` (h11 ``_state.py``); anything not in it is a
  :class:`CaptureError`. Sizes are checked before parsing: text ≤ :data:`MAX_TEXT_BYTES`, binary ≤
  :data:`MAX_CHUNK_BYTES`.
- Every error has a stable ``code`` and a WebSocket close code in the 4000-4999 private range, read as HTTP
  statuses (4400 bad request, 4401 unauthorized, 4408 timeout, 4409 conflict, 4413 too large, 4415 unsupported
  media, 4500 media pipeline failure).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic.alias_generators import to_camel

#: One MediaRecorder chunk at most (a 250 ms slice of 8 Mbit/s video is ~250 KB).
MAX_CHUNK_BYTES = 8 << 20
#: One control message at most.
MAX_TEXT_BYTES = 64 << 10


class ErrorCode(enum.StrEnum):
    """The ``code`` of an ``error`` message; each has one close code (:data:`CLOSE_CODES`)."""

    #: Not JSON, not an object, unknown ``type``, or a message the current state does not allow.
    INVALID_MESSAGE = "invalid_message"
    #: ``start_native_capture`` without a usable ``config``.
    INVALID_CONFIG = "invalid_config"
    #: The stream key is wrong, unknown or rotated.
    UNAUTHORIZED = "unauthorized"
    #: A message over :data:`MAX_CHUNK_BYTES` / :data:`MAX_TEXT_BYTES`.
    MESSAGE_TOO_LARGE = "message_too_large"
    #: The media is not a WebM/Matroska recording the node can read.
    UNSUPPORTED_MEDIA = "unsupported_media"
    #: The media pipeline (ffmpeg) failed.
    MEDIA_ERROR = "media_error"
    #: No ``start_native_capture`` in time, or no media for the idle timeout.
    TIMEOUT = "timeout"
    #: Another publisher with the right key took the channel over.
    TAKEN_OVER = "taken_over"


CLOSE_CODES = {
    ErrorCode.INVALID_MESSAGE: 4400,
    ErrorCode.INVALID_CONFIG: 4400,
    ErrorCode.UNAUTHORIZED: 4401,
    ErrorCode.TIMEOUT: 4408,
    ErrorCode.TAKEN_OVER: 4409,
    ErrorCode.MESSAGE_TOO_LARGE: 4413,
    ErrorCode.UNSUPPORTED_MEDIA: 4415,
    ErrorCode.MEDIA_ERROR: 4500,
}


class CaptureError(Exception):
    """Ends a capture: the client gets :meth:`message`, then the socket closes with :attr:`close_code`."""

    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def close_code(self) -> int:
        """The WebSocket close code (4xxx)."""
        return CLOSE_CODES[self.code]

    def message(self) -> str:
        """The ``error`` message sent before closing."""
        return _json({"type": "error", "code": str(self.code), "message": self.detail})


class CaptureRequest(BaseModel):
    """``start_native_capture.config``: the stream key and the settings that shape the media."""

    model_config = ConfigDict(alias_generator=to_camel, extra="ignore", frozen=True, strict=True)

    stream_key: SecretStr = Field(min_length=1, max_length=256)
    #: ``MediaRecorder.mimeType`` as the browser reports it; logged, never trusted (the stream's header decides).
    mime_type: str | None = Field(default=None, max_length=200)
    video_bitrate_kbps: int = Field(default=2500, ge=300, le=8000)
    audio_bitrate_kbps: int = Field(default=128, ge=32, le=320)
    keyframe_interval_seconds: int = Field(default=1, ge=1, le=4)


class CaptureState(enum.Enum):
    """Where a capture connection is."""

    #: Waiting for ``start_native_capture``.
    AWAITING_START = enum.auto()
    #: The start is being decided (stream key check): the caller reads nothing more until it accepts or rejects.
    STARTING = enum.auto()
    #: Accepted: media chunks flow.
    CAPTURING = enum.auto()
    #: ``stop_capture`` received, or the start was rejected: nothing more is accepted.
    DONE = enum.auto()


@dataclass(frozen=True, kw_only=True, slots=True)
class StartRequested:
    """The client asked to go live."""

    request: CaptureRequest


@dataclass(frozen=True, kw_only=True, slots=True)
class ChunkReceived:
    """One MediaRecorder chunk."""

    data: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class StopRequested:
    """The client ended the broadcast (clean unpublish)."""


CaptureEvent = StartRequested | ChunkReceived | StopRequested

_START, _STOP, _BINARY = "start_native_capture", "stop_capture", "binary"
#: (state, input) → next state. Rule: anything not in this table is an ``invalid_message`` error.
_TRANSITIONS = {
    (CaptureState.AWAITING_START, _START): CaptureState.STARTING,
    (CaptureState.CAPTURING, _BINARY): CaptureState.CAPTURING,
    (CaptureState.CAPTURING, _STOP): CaptureState.DONE,
}


class CaptureProtocol:
    """The server side of one ``/capture`` connection."""

    def __init__(self) -> None:
        self.state = CaptureState.AWAITING_START

    def receive_text(self, text: str) -> CaptureEvent:
        """One text message.

        Raises:
            CaptureError: oversized, not a known message, not allowed now, or an invalid ``config``.
        """
        if len(text) > MAX_TEXT_BYTES:  # characters ≤ bytes: a cheap first bound before encoding
            raise CaptureError(ErrorCode.MESSAGE_TOO_LARGE, f"text messages are limited to {MAX_TEXT_BYTES} bytes")
        try:
            message = json.loads(text)
        except ValueError:
            raise CaptureError(ErrorCode.INVALID_MESSAGE, "text messages must be JSON objects") from None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind not in (_START, _STOP):
            raise CaptureError(ErrorCode.INVALID_MESSAGE, "unknown message type")
        self._advance(kind)
        if kind == _STOP:
            return StopRequested()
        return StartRequested(request=_parse_config(message.get("config")))

    def receive_binary(self, data: bytes) -> ChunkReceived:
        """One media chunk.

        Raises:
            CaptureError: oversized, or before the capture was accepted.
        """
        if len(data) > MAX_CHUNK_BYTES:
            raise CaptureError(ErrorCode.MESSAGE_TOO_LARGE, f"media chunks are limited to {MAX_CHUNK_BYTES} bytes")
        self._advance(_BINARY)
        return ChunkReceived(data=data)

    def accept(self, *, playback_id: str, session_id: str) -> str:
        """The stream key is good: start capturing; returns the ``capture_started`` message."""
        self._expect(CaptureState.STARTING)
        self.state = CaptureState.CAPTURING
        return _json({"type": "capture_started", "playbackId": playback_id, "sessionId": session_id})

    def reject(self, error: CaptureError) -> str:
        """Refuse the start (or end the capture on a failure); returns the ``error`` message to send."""
        self.state = CaptureState.DONE
        return error.message()

    def _advance(self, kind: str) -> None:
        following = _TRANSITIONS.get((self.state, kind))
        if following is None:
            what = "media" if kind == _BINARY else kind
            raise CaptureError(ErrorCode.INVALID_MESSAGE, f"{what} is not allowed {_WHEN[self.state]}")
        self.state = following

    def _expect(self, state: CaptureState) -> None:
        if self.state is not state:
            raise RuntimeError(f"capture protocol misused: {self.state.name}, expected {state.name}")


_WHEN = {
    CaptureState.AWAITING_START: "before start_native_capture",
    CaptureState.STARTING: "while the start is being decided",
    CaptureState.CAPTURING: "once capturing",
    CaptureState.DONE: "after the capture ended",
}


def stopped_message() -> str:
    """``capture_stopped``: the broadcast ended cleanly."""
    return _json({"type": "capture_stopped"})


@dataclass(frozen=True, kw_only=True, slots=True)
class CaptureStats:
    """Upload health for the studio page (``capture_stats``, every couple of seconds)."""

    #: Media bytes received on this connection.
    bytes_received: int
    #: Media time (seconds) fed into the broadcast from this connection.
    media_seconds: float
    #: Live segments of this broadcast stored in S3 since this connection started.
    segments_uploaded: int
    #: Objects of the broadcast queued and not yet stored.
    pending_uploads: int
    #: Seconds the newest segment took from ready to stored, or how long the one being stored has waited.
    upload_lag_seconds: float | None
    bitrate_kbps: float | None
    frame_rate: float | None
    #: Measured keyframe interval (seconds): the segment duration follows it.
    keyframe_interval_seconds: float | None

    def message(self) -> str:
        """The ``capture_stats`` message."""
        fields = {to_camel(name): getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]
        return _json({"type": "capture_stats", **fields})


def _parse_config(config: Any) -> CaptureRequest:
    if not isinstance(config, dict):
        raise CaptureError(ErrorCode.INVALID_CONFIG, "config must be an object")
    try:
        return CaptureRequest.model_validate(config)
    except ValidationError as error:
        # Field names and reasons only: an input value could be the stream key.
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in error.errors())
        raise CaptureError(ErrorCode.INVALID_CONFIG, problems) from None


def _json(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))
