"""Configuration of the local system (``capturestream up``): flags, their environment variables, defaults.

Every option is a field here with a ``CAPTURESTREAM_*`` environment variable and a ``--flag`` of the same name
(``reconnect_window`` ↔ ``CAPTURESTREAM_RECONNECT_WINDOW`` ↔ ``--reconnect-window``); flags win over the
environment. ``capturestream up --help`` and the README's configuration table list them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Default ports follow the seed and LocalStack (BRIEF §4).
DEFAULT_PORTS = {"aws": 4566, "http": 8000, "ws": 3001, "rtmp": 1935, "capture": 8090}


class StackConfig(BaseSettings):
    """Options of ``capturestream up``."""

    model_config = SettingsConfigDict(env_prefix="CAPTURESTREAM_", extra="ignore", frozen=True)

    state_dir: Path = Field(default=Path(".capturestream"), description="where stack.json, secrets and data live")
    host: str = Field(default="127.0.0.1", description="interface every server binds to")
    ports: str = Field(default="default", pattern="^(default|auto)$", description="'auto' picks free ports")
    aws_port: int = Field(default=DEFAULT_PORTS["aws"], ge=0, le=65535, description="embedded AWS endpoint (moto)")
    http_port: int = Field(default=DEFAULT_PORTS["http"], ge=0, le=65535, description="web app, REST API, CDN edge")
    ws_port: int = Field(default=DEFAULT_PORTS["ws"], ge=0, le=65535, description="WebSocket API")
    rtmp_port: int = Field(default=DEFAULT_PORTS["rtmp"], ge=0, le=65535, description="RTMP ingest")
    capture_port: int = Field(
        default=DEFAULT_PORTS["capture"],
        ge=0,
        le=65535,
        description="browser go-live WebSocket of the ingest node (ws://host:port/capture); 0 turns it off",
    )
    aws_endpoint: str | None = Field(
        default=None, description="use this S3/SQS/DynamoDB endpoint (LocalStack, MinIO+moto) instead of moto"
    )
    s3_endpoint: str | None = Field(
        default=None,
        description="MinIO mode: S3 on this endpoint (its webhook → POST /_local/minio/events), the rest on moto",
    )
    stage: str = Field(default="dev", pattern="^[A-Za-z0-9_-]{1,64}$", description="WebSocket API stage name")
    reconnect_window: float = Field(default=60.0, ge=0, le=1800, description="seconds a dropped stream may resume")
    segment_seconds: float = Field(default=1.0, gt=0, le=10, description="target HLS segment duration")
    reaper_margin: float = Field(
        default=30.0, ge=10, le=3600, description="seconds past the reconnect window before the reaper ends a session"
    )
    schedule_period: float | None = Field(
        default=None,
        gt=0,
        le=86400,
        description="run scheduled functions (the reaper) every N seconds instead of their template schedule",
    )
    remuxer: str = Field(
        default="inprocess",
        pattern="^(inprocess|ffmpeg)$",
        description="'ffmpeg': cut HLS with ffmpeg instead of the in-process segmenter (which falls back by itself)",
    )
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    log_format: str = Field(default="text", pattern="^(text|json)$")


@dataclass(frozen=True)
class Ports:
    """The ports the stack actually listens on."""

    aws: int
    http: int
    ws: int
    rtmp: int
    #: ``None``: browser go-live is off.
    capture: int | None


def requested_ports(config: StackConfig) -> Ports:
    """The ports to bind: the configured ones, or 0 everywhere for ``--ports auto`` (each server then reports
    the free port the kernel gave it, so there is no window in which another process can take it). A
    ``capture_port`` of 0 means go-live off in both modes."""
    capture = None if config.capture_port == 0 else config.capture_port
    if config.ports == "auto":
        return Ports(aws=0, http=0, ws=0, rtmp=0, capture=None if capture is None else 0)
    return Ports(aws=config.aws_port, http=config.http_port, ws=config.ws_port, rtmp=config.rtmp_port, capture=capture)
