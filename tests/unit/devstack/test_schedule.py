"""Scheduled invocations (devstack.event_sources.schedule): rate expressions as EventBridge reads them, the
Scheduled Event payload, and a schedule that survives a failing run."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from devstack.event_sources.schedule import ScheduledInvoker, rate_seconds


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(1 hour)", 3600), ("rate(2 days)", 172800)],
)
def test_rates(expression: str, seconds: float) -> None:
    assert rate_seconds(expression) == seconds


@pytest.mark.parametrize(
    "expression", ["rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "cron(0 12 * * ? *)", "rate(1 week)", ""]
)
def test_refused_expressions(expression: str) -> None:
    """EventBridge's own rule: singular unit only with 1; cron is not run locally (said, not ignored)."""
    with pytest.raises(ValueError, match="rate"):
        rate_seconds(expression)


class FakeFunction:
    def __init__(self, fail_first: int = 0) -> None:
        self.events: list[Any] = []
        self._fail = fail_first

    async def invoke(self, event: Any) -> Any:
        self.events.append(event)
        if self._fail:
            self._fail -= 1
            raise RuntimeError("boom")
        return None


def test_scheduled_event_shape() -> None:
    invoker = ScheduledInvoker(FakeFunction(), "rate(1 minute)", rule_arn="arn:aws:events:us-east-1:1:rule/r")
    event = invoker.event(datetime(2026, 12, 3, 12, 34, 56, tzinfo=UTC))
    assert (event["source"], event["detail-type"], event["detail"]) == ("aws.events", "Scheduled Event", {})
    assert event["time"] == "2026-12-03T12:34:00Z" and event["resources"] == ["arn:aws:events:us-east-1:1:rule/r"]


async def test_runs_every_period_and_survives_a_failure(moto_endpoint: str) -> None:
    function = FakeFunction(fail_first=1)
    invoker = ScheduledInvoker(function, "rate(1 minute)", rule_arn="arn:aws:events:us-east-1:1:rule/r", period=0.05)
    await invoker.start()
    await asyncio.sleep(0.3)
    await invoker.stop()
    assert len(function.events) >= 3  # the first run failed, the schedule went on
    assert invoker.stats.invocations == len(function.events) and invoker.stats.failures == 1
    assert function.events[0] != function.events[1]  # a fresh event id each run


def test_constant_input_replaces_the_event() -> None:
    invoker = ScheduledInvoker(FakeFunction(), "rate(1 minute)", rule_arn="r", input='{"dryRun": true}')
    assert invoker.event() == {"dryRun": True}
