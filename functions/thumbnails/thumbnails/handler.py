"""Live thumbnail function: sampled live segments (EventBridge → SQS) → JPEG + WebP → the stream item.

An EventBridge rule forwards one segment in five per stream (``seg_*0.m4s``, ``seg_*5.m4s``) to the queue. Per
batch only the newest segment of each session is cut (:func:`capturestream.thumbnails.plan_batch`); sessions run
side by side (ffmpeg is a subprocess, so threads suffice), each within ~0.3 s of ffmpeg time for a 1 s 720p30
segment. Partial batch failures are reported per SQS message (:mod:`.live` says which).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import boto3

from capturestream import events, thumbnails
from capturestream.settings import MediaFunctionSettings, get_settings

from .live import process_session

log = logging.getLogger(__name__)
#: Sessions cut at the same time (each ffmpeg also uses the cores it finds).
MAX_PARALLEL_SESSIONS = 4


@cache
def _clients() -> tuple[Any, Any]:
    return boto3.client("s3"), boto3.client("dynamodb")


def handler(event: dict, context: Any) -> dict:
    """Cut one thumbnail per session in the batch; report the messages whose segment failed."""
    batches = thumbnails.plan_batch(events.parse_sqs(event))
    s3, dynamodb = _clients()
    settings = get_settings(MediaFunctionSettings)
    failed: set[str] = set()
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL_SESSIONS, len(batches)))) as pool:
        work = [
            pool.submit(
                process_session,
                batch,
                s3=s3,
                dynamodb=dynamodb,
                table_name=settings.table_name,
                ffmpeg=settings.ffmpeg_binary,
            )
            for batch in batches
        ]
        for future in work:
            failed |= future.result()
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in sorted(failed)]}
