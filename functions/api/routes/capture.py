"""``POST /api/capture/config``: validate the browser studio's "Go live" capture settings.

Rules:
- Public and pure: no auth, no DynamoDB, no settings. The studio sends what the user picked; the answer is the
  normalised config (defaults filled) plus how to record it, or a 422 naming each bad field. Values are never
  clamped: an out-of-range width is the user's mistake to see, not ours to hide.
- The MIME types follow what Chromium's MediaRecorder really produces (``CHROMIUM.md``): H.264 in WebM/Matroska
  first (the ingest node can pass the video through without re-encoding), VP8 next, then bare WebM. MP4 is left
  out on purpose: Chromium ignores the timeslice for MP4 and delivers whole fragments seconds apart. Browsers
  never record AAC, so audio is Opus (the node converts it).
- There is no ingest WebSocket URL setting yet, so the response carries none; the studio derives it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from ..deps import no_store
from ..schemas import CaptureConfig, CaptureConfigRequest, ErrorResponse

#: ``MediaRecorder.start(timeslice)``: a chunk every 250 ms keeps the node's 1 s segments and ~250 ms LL-HLS parts fed.
TIMESLICE_MS = 250
#: (container, video codec) pairs in order of preference; ``opus`` is appended when audio is on.
_RECORDER_FORMATS = (
    ("video/webm", "h264"),
    ("video/x-matroska", "avc1"),
    ("video/webm", "vp8"),
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "Invalid or unknown field; `error.fields` names each one."},
}

router = APIRouter(prefix="/capture", tags=["capture"], dependencies=[Depends(no_store)], responses=_ERRORS)


def recommended_mime_types(audio: bool) -> list[str]:
    """MIME types for ``MediaRecorder`` in order of preference (the last one lets the browser pick codecs)."""
    audio_codec = ",opus" if audio else ""
    return [f"{container};codecs={video}{audio_codec}" for container, video in _RECORDER_FORMATS] + ["video/webm"]


@router.post("/config", response_model=CaptureConfig)
def capture_config(body: CaptureConfigRequest | None = None) -> CaptureConfig:
    """Validate capture settings and return them normalised, with how to record them."""
    settings = body if body is not None else CaptureConfigRequest()
    return CaptureConfig(
        **settings.model_dump(),
        recommended_mime_types=recommended_mime_types(settings.audio),
        timeslice_ms=TIMESLICE_MS,
    )
