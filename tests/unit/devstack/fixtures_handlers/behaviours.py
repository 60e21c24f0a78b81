"""Handlers that fail, stall or return awkward values, selected by attribute name."""

import decimal
import sys
import threading
import time
from typing import Any

#: Set by ``slow`` when it finally returns, so a test can see a timed-out thread finish.
slow_finished = threading.Event()


def fail(event: dict[str, Any], context: Any) -> None:
    """Raise a plain exception."""
    raise ValueError(f"boom: {event.get('why', 'no reason')}")


def slow(event: dict[str, Any], context: Any) -> str:
    """Sleep ``event['sleep']`` seconds, then return."""
    time.sleep(event["sleep"])
    slow_finished.set()
    return "done"


#: Set by ``until_no_time_left`` when its context reports no time left (or after 5 s, never in a passing test).
out_of_time = threading.Event()


def until_no_time_left(event: dict[str, Any], context: Any) -> str:
    """Work in 10 ms steps while the context says there is time left, as a deadline-aware handler does."""
    out_of_time.clear()
    give_up = time.monotonic() + 5
    while context.get_remaining_time_in_millis() > 0 and time.monotonic() < give_up:
        time.sleep(0.01)
    out_of_time.set()
    return "stopped"


def returns_set(event: dict[str, Any], context: Any) -> set[int]:
    """Return a value ``json`` cannot encode."""
    return {1, 2}


def returns_awkward_json(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Return values that change shape in the JSON round trip (Decimal, tuple, int keys)."""
    return {"price": decimal.Decimal("1.50"), "count": decimal.Decimal(3), "pair": (1, 2), 7: "int key"}


def returns_bytes(event: dict[str, Any], context: Any) -> bytes:
    """Return raw bytes (the runtime passes them through as application/unknown)."""
    return b"\x00raw"


def returns_huge(event: dict[str, Any], context: Any) -> str:
    """Return more than the 6 MB synchronous response limit."""
    return "x" * (7 * 1024 * 1024)


def exits(event: dict[str, Any], context: Any) -> None:
    """Call sys.exit inside the handler."""
    sys.exit(3)


async def async_handler(event: dict[str, Any], context: Any) -> str:
    """An ``async def`` handler, which the Python runtime does not support."""
    return "never"


def returns_coroutine(event: dict[str, Any], context: Any) -> Any:
    """A sync handler that returns a coroutine object."""
    return async_handler(event, context)


value = "not callable: a module attribute that exists"
