"""Merged reads: a paused connection reads again after the pause, and connections due together share one timer."""

from __future__ import annotations

import asyncio
from typing import Any

from ingest_node.publishers.rtmp_server import CoalescedReads


class _Connection:
    def __init__(self) -> None:
        self.resumed_at: float | None = None

    def end_coalescing(self) -> None:
        self.resumed_at = asyncio.get_running_loop().time()


async def test_each_pause_lasts_between_the_delay_and_one_tick_more() -> None:
    reads = CoalescedReads(delay=0.05, tick=0.01)
    loop = asyncio.get_running_loop()
    paused: list[tuple[float, _Connection]] = []
    for _ in range(5):
        connection = _Connection()
        paused.append((loop.time(), connection))
        reads.resume_later(connection)  # type: ignore[arg-type]
        await asyncio.sleep(0.013)
    await asyncio.sleep(0.08)
    for started, connection in paused:
        assert connection.resumed_at is not None
        assert 0.05 - 1e-3 <= connection.resumed_at - started <= 0.06 + 0.02  # + the loop's timer slack


async def test_connections_due_in_the_same_tick_share_one_timer(monkeypatch: Any) -> None:
    loop = asyncio.get_running_loop()
    timers: list[float] = []
    call_at = loop.call_at

    def counted(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        if getattr(callback, "__self__", None) is reads:
            timers.append(when)
        return call_at(when, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", counted)
    reads = CoalescedReads(delay=0.05, tick=1.0)  # a long tick: every pause below falls into the same one
    connections = [_Connection() for _ in range(30)]
    for connection in connections:
        reads.resume_later(connection)  # type: ignore[arg-type]
    assert len(timers) == 1
    await asyncio.sleep(max(0.0, timers[0] - loop.time()) + 0.05)
    assert all(connection.resumed_at is not None for connection in connections)
