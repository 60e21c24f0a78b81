"""Live thumbnail function: sampled live segments (EventBridge → SQS) → JPEG + WebP → the stream item.

An EventBridge rule forwards one segment in five per stream (``seg_*0.m4s``, ``seg_*5.m4s``) to the queue. Per
batch only the newest segment of each session is cut (:func:`capturestream.thumbnails.plan_batch`); two sessions
run side by side (ffmpeg is a subprocess, so threads suffice; the function has one vCPU, so a second ffmpeg only
fills the first one's S3 waits), each within ~0.1 s of ffmpeg time for a 720p keyframe. The work is budgeted by
the context's remaining time (:mod:`.live`): the invocation returns before its timeout, never leaving ffmpeg or
a whole batch to be redone. Partial batch failures are reported per SQS message (:mod:`.live` says which).
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
from .render import unlimited

log = logging.getLogger(__name__)
#: Sessions cut at the same time (each ffmpeg decodes on one thread).
MAX_PARALLEL_SESSIONS = 2


@cache
def _clients() -> tuple[Any, Any]:
    return boto3.client("s3"), boto3.client("dynamodb")


def handler(event: dict, context: Any) -> dict:
    """Cut one thumbnail per session in the batch; report the messages whose segment failed."""
    batches = thumbnails.plan_batch(events.parse_sqs(event))
    s3, dynamodb = _clients()
    settings = get_settings(MediaFunctionSettings)
    time_left = unlimited if context is None else lambda: context.get_remaining_time_in_millis() / 1000
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
                time_left=time_left,
            )
            for batch in batches
        ]
        for future in work:
            failed |= future.result()
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in sorted(failed)]}
