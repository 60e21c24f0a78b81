"""Scheduled invocations (SAM ``Type: Schedule``): an EventBridge rule with a ``rate(...)`` expression → function.

Rules (EventBridge user guide, "Schedule expressions for rules"; Lambda developer guide, "Using Lambda with
EventBridge"):
    * ``rate(value unit)`` with unit ``minute(s)``/``hour(s)``/``day(s)``; the singular unit only with value 1,
      as EventBridge insists. ``cron(...)`` expressions are refused with a clear error (not modelled locally).
    * The function receives the "Scheduled Event" payload (``detail-type``, ``source aws.events``, the rule
      ARN in ``resources``, ``time`` at minute precision as EventBridge sends it, an empty ``detail``), or the
      rule's constant ``Input`` when the template sets one.
    * The first invocation comes one period after start (EventBridge never fires at creation time). A failed
      invocation is logged and counted; the schedule goes on (EventBridge retries asynchronous invokes, a
      scheduled job whose run failed simply runs again at the next tick).
    * ``period`` overrides the template's rate locally (``capturestream up --schedule-period``), e.g. so a test
      need not wait a minute for the reaper.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devstack.event_sources._base import EventSource, SourceStats

__all__ = ["ScheduleStats", "ScheduledInvoker", "rate_seconds"]

logger = logging.getLogger(__name__)

_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> float:
    """Seconds between runs of a ``rate(...)`` schedule expression.

    Raises:
        ValueError: a ``cron(...)`` expression, a malformed rate, or a unit that does not agree with the value.
    """
    match = _RATE.fullmatch(expression.strip())
    if match is None:
        raise ValueError(f"schedule {expression!r}: only rate(<n> minute[s]|hour[s]|day[s]) is run locally")
    value, unit = int(match[1]), match[2]
    if value <= 0 or (value == 1) != (not unit.endswith("s")):
        raise ValueError(f"schedule {expression!r}: EventBridge wants 'rate(1 minute)' or 'rate(5 minutes)'")
    return float(value * _UNIT_SECONDS[unit.rstrip("s")])


@dataclass
class ScheduleStats(SourceStats):
    """Schedule counters: ``invocations`` (runs) and ``failures`` among them."""


class ScheduledInvoker(EventSource):
    """Invoke ``function`` on a schedule, as an EventBridge rule with a schedule expression would.

    Args:
        function: The local function (``invoke(event)``).
        expression: The schedule expression, e.g. ``rate(1 minute)``.
        rule_arn: ARN the events name in ``resources``.
        period: Seconds between runs instead of the expression's (local override).
        input: The rule's constant ``Input`` (JSON text), sent instead of the Scheduled Event.
        region_name: Region named in the events.
        account_id: Account named in the events.
    """

    def __init__(
        self,
        function: Any,
        expression: str,
        *,
        rule_arn: str,
        period: float | None = None,
        input: str | None = None,  # noqa: A002 - the SAM property's name
        region_name: str = "us-east-1",
        account_id: str = "123456789012",
    ) -> None:
        super().__init__("", region_name=region_name, stop_grace=0.8)  # no client: nothing to call
        self.function = function
        self.period = period if period is not None else rate_seconds(expression)
        if self.period <= 0:
            raise ValueError("a schedule period must be positive")
        self.rule_arn = rule_arn
        self._input = json.loads(input) if input else None
        self._region = region_name
        self._account = account_id
        self._stats = ScheduleStats()

    def __str__(self) -> str:
        return f"ScheduledInvoker({self.rule_arn.rsplit('/', 1)[-1]} every {self.period:g} s)"

    @property
    def stats(self) -> ScheduleStats:
        """The schedule's counters."""
        return self._stats

    async def _prepare(self, stack: contextlib.AsyncExitStack) -> None:
        return None

    def _workers(self) -> list[Awaitable[None]]:
        return [self._run()]

    def event(self, now: datetime | None = None) -> Any:
        """The payload of one run."""
        if self._input is not None:
            return self._input
        moment = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self._account,
            "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self._region,
            "resources": [self.rule_arn],
            "detail": {},
        }

    async def _run(self) -> None:
        while not await self._sleep(self.period):
            self._stats.invocations += 1
            try:
                await self.function.invoke(self.event())
            except Exception as error:  # the function's own failure: logged, the schedule goes on
                self._stats.failures += 1
                logger.warning("%s: run failed (%s: %s)", self, type(error).__name__, error)
