"""Routers of the REST API, aggregated under ``/api`` (full-stack-fastapi-template ``api/main.py``)."""

from __future__ import annotations

from fastapi import APIRouter

from . import capture, channels, recordings, status, streams

api_router = APIRouter(prefix="/api")
api_router.include_router(status.router)
api_router.include_router(channels.router)
api_router.include_router(streams.router)
api_router.include_router(recordings.router)
api_router.include_router(capture.router)

__all__ = ["api_router"]
