"""Typed settings, one class per deployable, loaded from the environment.

Rules:
- ``os.environ`` is read nowhere else in CaptureStream code: everything goes through :func:`get_settings`.
- Environment variable names equal the ``Environment.Variables`` names in template.yaml (``TABLE_NAME``,
  ``MEDIA_BUCKET``, ...), so the same handler runs under ``capturestream up`` and in Lambda.
- AWS endpoints are *not* settings: boto3/aiobotocore read ``AWS_ENDPOINT_URL`` (and per-service variants such
  as ``AWS_ENDPOINT_URL_S3``) themselves, which is how LocalStack/MinIO/moto are selected.
- Secrets have no default and placeholders are refused (full-stack-fastapi-template ``core/config.py``).
- Nothing is read at import time; tests call ``get_settings.cache_clear()`` after changing the environment.
"""

from __future__ import annotations

import os
import tempfile
from functools import cache
from typing import Annotated, TypeVar

from pydantic import AfterValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_PLACEHOLDERS = {"changethis", "changeme", "secret", "test", "password", "dev"}
MIN_SECRET_LENGTH = 32


def _strong_secret(value: SecretStr) -> SecretStr:
    secret = value.get_secret_value()
    if secret.lower() in _PLACEHOLDERS or len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"JWT_SECRET must be a random string of at least {MIN_SECRET_LENGTH} characters")
    return value


#: The HMAC key of bearer tokens: random, at least :data:`MIN_SECRET_LENGTH` characters, never a placeholder.
JwtSecret = Annotated[SecretStr, AfterValidator(_strong_secret)]


class _Base(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    log_level: str = Field(default="INFO", alias="LOG_LEVEL")


class FunctionSettings(_Base):
    """What every Lambda function needs: where the table and the media bucket are."""

    table_name: str = Field(alias="TABLE_NAME")
    media_bucket: str = Field(alias="MEDIA_BUCKET")


class WsSettings(FunctionSettings):
    """The WebSocket route function: also posts to connections and checks optional viewer tokens."""

    #: API Gateway management endpoint ``https://{api}.execute-api.{region}.amazonaws.com/{stage}``.
    ws_endpoint: str = Field(alias="WS_ENDPOINT")
    #: Verifies viewer tokens, and keys the HMAC that names anonymous chatters (``guest-…``, functions/ws/chat.py).
    jwt_secret: JwtSecret = Field(alias="JWT_SECRET")
    #: Base URL of the CDN serving the media bucket; stream lists carry playlist URLs under it.
    cdn_base_url: str = Field(default="", alias="CDN_BASE_URL")
    #: Chat messages one connection may send at once (token bucket size).
    chat_burst: int = Field(default=5, ge=1, le=100, alias="CHAT_BURST")
    #: Chat messages per second one connection may send after a burst (token refill rate).
    chat_rate: float = Field(default=1.0, gt=0, le=100, alias="CHAT_RATE")


class NotifierSettings(FunctionSettings):
    """The notifier: DynamoDB Streams → ``@connections`` fan-out."""

    #: API Gateway management endpoint ``https://{api}.execute-api.{region}.amazonaws.com/{stage}``.
    ws_endpoint: str = Field(alias="WS_ENDPOINT")
    #: Base URL of the CDN serving the media bucket (thumbnail and playlist URLs in messages).
    cdn_base_url: str = Field(default="", alias="CDN_BASE_URL")
    #: Posts in flight per fan-out (FANOUT.md: ~64 is fastest; more only adds scheduling cost).
    fanout_concurrency: int = Field(default=64, ge=1, le=512, alias="FANOUT_CONCURRENCY")
    #: Most ``@connections`` posts per second from one notifier; API Gateway's account quota (10,000 RPS) is
    #: shared with every other API call, so the default leaves room for the WebSocket function's replies.
    fanout_max_rps: float = Field(default=8000, gt=0, le=100_000, alias="FANOUT_MAX_RPS")


class ApiSettings(FunctionSettings):
    """The REST API function (FastAPI behind Mangum)."""

    jwt_secret: JwtSecret = Field(alias="JWT_SECRET")
    #: The OBS "Server" URL streamers are told to use, e.g. ``rtmp://ingest.example.com:1935/live``.
    rtmp_ingest_url: str = Field(default="", alias="RTMP_INGEST_URL")
    #: Base URL of the CDN serving the media bucket (``live/``, ``vod/``, ``thumbs/``).
    cdn_base_url: str = Field(default="", alias="CDN_BASE_URL")
    #: Base URL of the web app (watch pages).
    web_base_url: str = Field(default="", alias="WEB_BASE_URL")
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, alias="CORS_ALLOW_ORIGINS")

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value


class MediaFunctionSettings(FunctionSettings):
    """Functions that run ffmpeg (thumbnails, recordings): the FfmpegLayer puts it on PATH as /opt/bin/ffmpeg."""

    ffmpeg_binary: str = Field(default="ffmpeg", alias="FFMPEG_BINARY")


class RecordingSettings(MediaFunctionSettings):
    """The recording builder: ended sessions → MP4 + VOD playlist + poster + storyboard + recording item."""

    #: Multipart part size of the MP4 upload in MiB (S3: ≥ 5 MiB, ≤ 10,000 parts, so 8 MiB covers 78 GiB).
    part_size_mib: int = Field(default=16, ge=8, le=512, alias="RECORDING_PART_MIB")
    #: Segment reads in flight while building.
    read_concurrency: int = Field(default=16, ge=1, le=128, alias="RECORDING_READ_CONCURRENCY")


class ReaperSettings(FunctionSettings):
    """The reaper: ends sessions whose ingest node died."""

    #: The ingest node's reconnect window (seconds); a session with no new segment for longer (+ the margin)
    #: has lost its node.
    reconnect_window: float = Field(default=60.0, ge=0, le=1800, alias="RECONNECT_WINDOW")
    #: Extra seconds before the reaper steps in (the node ends its own sessions first when it is alive). At least
    #: 10: a session's last-segment time reaches the catalog in batches gathered for up to 5 s (SegmentQueue),
    #: so a smaller margin could end a healthy broadcast.
    reaper_margin: float = Field(default=30.0, ge=10, le=3600, alias="REAPER_MARGIN")


class IngestSettings(_Base):
    """The RTMP ingest node (``python -m ingest_node``)."""

    table_name: str = Field(alias="TABLE_NAME")
    media_bucket: str = Field(alias="MEDIA_BUCKET")
    rtmp_host: str = Field(default="0.0.0.0", alias="RTMP_HOST")
    rtmp_port: int = Field(default=1935, ge=0, le=65535, alias="RTMP_PORT")
    segment_seconds: float = Field(default=1.0, gt=0, le=10, alias="SEGMENT_SECONDS")
    reconnect_window: float = Field(default=60.0, ge=0, le=1800, alias="RECONNECT_WINDOW")
    #: ``text`` or ``json`` (one object per line, with stream ids as fields). Lambda functions use the
    #: runtime's JSON log format instead (``LoggingConfig`` in template.yaml).
    log_format: str = Field(default="text", pattern="^(text|json)$", alias="LOG_FORMAT")
    #: ``inprocess`` (the CMAF segmenter; falls back to ffmpeg for codecs it rejects) or ``ffmpeg`` (always).
    remuxer: str = Field(default="inprocess", pattern="^(inprocess|ffmpeg)$", alias="REMUXER")
    #: A publisher that sends no media for this long is dropped.
    idle_timeout: float = Field(default=30.0, gt=0, le=600, alias="IDLE_TIMEOUT")
    #: The handshake and commands up to an accepted ``publish`` must fit in this (slowloris, stalled clients).
    setup_timeout: float = Field(default=10.0, gt=0, le=120, alias="SETUP_TIMEOUT")
    #: Open RTMP connections per node; more are refused at once.
    max_connections: int = Field(default=1000, ge=1, alias="MAX_CONNECTIONS")
    #: RTMP connections per remote address that have not published yet (publishing ones count only toward
    #: ``MAX_CONNECTIONS``, so many publishers behind one NAT are fine). 64: a studio's encoders (or the bench's 30
    #: publishers) reconnecting at once from one address all get in; 64 x PREAUTH_BYTES bounds what one address holds.
    max_preauth_per_address: int = Field(default=64, ge=1, alias="MAX_PREAUTH_PER_ADDRESS")
    #: Bytes an RTMP connection may send before its publish is accepted (the handshake is 3073).
    preauth_bytes: int = Field(default=64 * 1024, ge=4096, alias="PREAUTH_BYTES")
    #: Unhandled media one connection may hold in memory before reading pauses (resumes below half).
    connection_buffer_bytes: int = Field(default=4 * 1024 * 1024, ge=65536, alias="CONNECTION_BUFFER_BYTES")
    #: A publishing connection reads at most this often (merged read, as SRS's ``mr``); 0 reads on every arrival.
    read_coalesce_ms: int = Field(default=50, ge=0, le=500, alias="READ_COALESCE_MS")
    #: Seconds between the key watch's reads of live channels (rotate-key / end-stream kicks land within it).
    key_watch_interval: float = Field(default=1.0, gt=0, le=60, alias="KEY_WATCH_INTERVAL")
    #: Where finished objects wait when S3 is slow or unreachable; stored in order once it answers, and by the next
    #: node started on the same directory (one node per directory). Default: ``<system temp>/capturestream-spool``.
    spool_dir: str = Field(
        default_factory=lambda: os.path.join(tempfile.gettempdir(), "capturestream-spool"), alias="SPOOL_DIR"
    )
    #: ``false``: no disk spool: what S3 cannot take waits in memory, then the publisher waits; lost at a restart.
    spool_enabled: bool = Field(default=True, alias="SPOOL_ENABLED")
    #: Disk the spool may use (default 4 GiB: ~3.5 h of one 2.5 Mb/s stream); when full, publishers wait.
    spool_max_bytes: int = Field(default=4 * 1024**3, ge=1024**2, alias="SPOOL_MAX_BYTES")
    #: A spooled stream whose newest object is older than this many seconds is dropped whole (default 24 h).
    spool_max_age: float = Field(default=86400.0, gt=0, alias="SPOOL_MAX_AGE")
    #: Upload bytes one stream may hold in memory before its objects go to the spool (8 MiB: ~10 s at 6 Mb/s).
    upload_stream_memory_bytes: int = Field(default=8 * 1024**2, ge=65536, alias="UPLOAD_STREAM_MEMORY_BYTES")
    #: Upload bytes every stream of the node together may hold in memory before objects go to the spool.
    upload_node_memory_bytes: int = Field(default=256 * 1024**2, ge=1024**2, alias="UPLOAD_NODE_MEMORY_BYTES")
    #: Seconds an ending broadcast, then the node's shutdown, may spend storing what is queued (the rest stays
    #: in the spool for the next start).
    upload_close_timeout: float = Field(default=10.0, ge=0, le=600, alias="UPLOAD_CLOSE_TIMEOUT")
    #: The node's HTTP listener: browser go-live (``/capture``), and the node's other HTTP routes.
    capture_host: str = Field(default="0.0.0.0", alias="CAPTURE_HOST")
    #: The node's HTTP port; 0 picks a free one (as ``RTMP_PORT=0`` does).
    capture_port: int = Field(default=8090, ge=0, le=65535, alias="CAPTURE_PORT")
    #: ``false``: no browser go-live (RTMP only).
    capture_enabled: bool = Field(default=True, alias="CAPTURE_ENABLED")


_S = TypeVar("_S", bound=BaseSettings)


@cache
def get_settings(cls: type[_S]) -> _S:
    """The settings of one deployable, read from the environment once and cached.

    Args:
        cls: e.g. :class:`ApiSettings`.

    Raises:
        pydantic.ValidationError: naming every missing or invalid variable.
    """
    return cls()
