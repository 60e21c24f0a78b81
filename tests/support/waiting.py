"""Waiting for something asynchronous to become true in a test, with a bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(check: Callable[[], T], timeout: float = 5.0, interval: float = 0.02) -> T:
    """Poll ``check`` until it returns something truthy and return that.

    Raises:
        AssertionError: when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        await asyncio.sleep(interval)
    return value
