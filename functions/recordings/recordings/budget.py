"""The invocation's time, as a recording build spends it.

Rules:
- ``time_left`` is a callable answering the seconds the invocation has left: the Lambda context's
  ``get_remaining_time_in_millis() / 1000`` (:func:`of_context`), :func:`unlimited` without a context (tools,
  tests, the bench).
- :func:`check` raises :class:`OutOfTime` once less than :data:`RESERVE` seconds are left. Every step of a build
  and every S3 read or part upload its thread pools run begins with it, so a build that cannot finish stops
  cleanly (the multipart upload is aborted, the message fails and is retried) instead of being killed by the
  runtime mid-way; and, locally, a build that ``up`` abandons as it stops (the runtime then leaves it no time)
  ends within one request instead of running on, behind ``up``'s exit, against a moto that is gone.
- An ffmpeg run already started finishes (the image step's runs take about a second; see :mod:`.images`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

#: Seconds kept back for what follows a stop: aborting the multipart upload, reporting the failure.
RESERVE = 10.0

TimeLeft = Callable[[], float]


class OutOfTime(Exception):
    """Less than :data:`RESERVE` seconds of the invocation are left: the build stops (and is retried)."""


def unlimited() -> float:
    """``time_left`` without an invocation deadline."""
    return math.inf


def of_context(context: Any) -> TimeLeft:
    """``time_left`` of a Lambda context (``None``: :func:`unlimited`)."""
    if context is None:
        return unlimited
    return lambda: context.get_remaining_time_in_millis() / 1000


def check(time_left: TimeLeft, what: str) -> None:
    """Raise :class:`OutOfTime` naming ``what`` when less than :data:`RESERVE` seconds are left."""
    left = time_left()
    if left < RESERVE:
        raise OutOfTime(f"{what}: {max(left, 0.0):.1f} s of the invocation left, {RESERVE:g} s kept in reserve")
