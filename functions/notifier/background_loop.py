"""A process-wide asyncio event loop in a daemon thread, for synchronous Lambda handlers.

Owned here: :class:`BackgroundLoop` and the process's one instance (:func:`shared`, :func:`run`).

Why: the Python runtime calls a handler synchronously, and the devstack calls each invocation in its own thread,
possibly several at once. ``asyncio.run`` per invocation would close the loop, and with it the aiohttp session and
its keep-alive connections, every time. Coroutines submitted here all run on one loop that outlives invocations,
so the notifier's :class:`~functions.notifier.connections.ConnectionPoster` (created lazily *inside* this loop, as
aiohttp requires) keeps its connections warm across invocations.

Rules:
- One loop per process, started on first use; its thread is a daemon, so it never keeps a process alive. Lambda
  freezes and thaws it with the execution environment (connections that went stale meanwhile are the poster's
  business).
- :meth:`BackgroundLoop.run` may be called from any number of threads at once, but never from the loop's own
  thread (it would wait for itself): that raises ``RuntimeError``.
- A timeout cancels the coroutine on the loop, then raises ``TimeoutError`` in the caller; the coroutine's own
  exceptions are re-raised in the caller unchanged.
- uvloop when installed (as ``capturestream up`` runs), else asyncio's default loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["BackgroundLoop", "run", "shared"]

T = TypeVar("T")


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class BackgroundLoop:
    """An event loop running forever in a daemon thread.

    Args:
        name: The thread's name.
        loop_factory: Makes the loop; uvloop when installed, else asyncio's default.
    """

    def __init__(
        self, name: str = "background-loop", loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    ):
        self.loop = (loop_factory or _new_loop)()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result.

        Args:
            coro: The coroutine to run.
            timeout: Seconds to wait; ``None`` waits as long as it takes.

        Returns:
            What ``coro`` returned.

        Raises:
            TimeoutError: Not done within ``timeout`` (the coroutine was cancelled).
            RuntimeError: Called from the loop's own thread, or the loop is closed.
        """
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("BackgroundLoop.run() called from its own loop; await the coroutine instead")
        if self.loop.is_closed():
            coro.close()
            raise RuntimeError("the background loop is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"coroutine did not finish within {timeout} s") from None

    def close(self, timeout: float = 5.0) -> None:
        """Stop the loop and wait for its thread (tests; the process-wide loop is never closed).

        Tasks still pending are dropped with the loop.
        """
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)


_shared: BackgroundLoop | None = None
_shared_lock = threading.Lock()


def shared() -> BackgroundLoop:
    """The process's background loop, started on first use (thread-safe)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = BackgroundLoop(name="notifier-loop")
        return _shared


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the process's background loop and return its result (see :meth:`BackgroundLoop.run`)."""
    return shared().run(coro, timeout)
