"""Lifecycle shared by every local event source: one client, worker tasks, prompt stop, backoff.

Rules:
    * ``start()`` opens exactly one aiobotocore client (inside an ``AsyncExitStack``) and starts the worker
      tasks; ``stop()`` returns within about ``stop_grace`` seconds whatever the workers are doing.
    * Workers wrap every *waiting* call (long polls, sleeps) in :meth:`EventSource._until_stopped`, so a
      stop interrupts waiting at once, while work already in progress (an invocation, its deletes or
      checkpoint) gets ``stop_grace`` seconds to finish before it is cancelled too.
    * The client does no retries of its own (``total_max_attempts=1``): a worker logs a transient endpoint
      error, backs off exponentially and carries on. Workers never die from an error.
    * Endpoint: ``endpoint_url`` if given, else botocore's standard resolution (``AWS_ENDPOINT_URL``,
      ``AWS_ENDPOINT_URL_<SERVICE>``).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from typing import Any, Self, TypeVar

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Errors that mean "the endpoint had a problem": log, back off, retry. Anything else is a bug, but a
#: worker still survives it (logged with a traceback).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (BotoCoreError, ClientError, OSError, asyncio.TimeoutError)


@dataclass
class SourceStats:
    """Counters every event source keeps (for metrics and benchmarks).

    Attributes:
        invocations: Function invocations made.
        failures: Invocations that failed as a whole (function error, timeout, unusable batch response).
        records: Records delivered to the function (retries count again).
        endpoint_errors: Failed calls to the AWS endpoint (each followed by a backoff).
    """

    invocations: int = 0
    failures: int = 0
    records: int = 0
    endpoint_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return asdict(self)


@functools.cache
def _shared_session() -> AioSession:
    """One botocore session for every source: each service model is loaded and parsed once, not per client
    (seven sources used to parse their models seven times, ~1.5 s of ``up``'s start)."""
    return get_session()


class Backoff:
    """Exponential backoff: ``initial``, doubled per consecutive failure, capped at ``maximum``."""

    def __init__(self, initial: float = 0.05, maximum: float = 2.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next_delay(self) -> float:
        """The delay to wait now; the following one will be twice as long (up to ``maximum``)."""
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        """Start again from ``initial`` after a success."""
        self._next = self.initial


class EventSource(abc.ABC):
    """Base class: owns the client and the worker tasks of one event source.

    Args:
        service: The botocore service name of the client (``sqs``, ``dynamodbstreams``, ``dynamodb``), or ``""``
            for a source that calls no AWS API (a schedule).
        endpoint_url: Explicit endpoint, or ``None`` for the standard environment resolution.
        region_name: Region for the client, or ``None`` for the environment's.
        stop_grace: Seconds ``stop()`` lets in-progress work finish before cancelling it.
        max_pool_connections: Size of the client's HTTP connection pool.
    """

    def __init__(
        self,
        service: str,
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        stop_grace: float = 0.8,
        max_pool_connections: int = 10,
    ) -> None:
        self._service = service
        self._endpoint_url = endpoint_url
        self._region_name = region_name
        self._stop_grace = stop_grace
        self._max_pool_connections = max_pool_connections
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._stop_waiter: asyncio.Task[bool] | None = None

    @property
    def running(self) -> bool:
        """True between a successful ``start()`` and ``stop()``."""
        return self._stack is not None

    @property
    def client(self) -> Any:
        """The aiobotocore client (only while running)."""
        if self._client is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._client

    async def start(self) -> None:
        """Open the client, validate the configuration against the endpoint, and start the workers.

        Raises:
            RuntimeError: If already started.
            ValueError: If the configuration is rejected (as CreateEventSourceMapping would).
            botocore.exceptions.ClientError: If the source does not exist.
        """
        if self._stack is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._stopping = asyncio.Event()
        stack = contextlib.AsyncExitStack()
        try:
            if self._service:  # a source that only keeps time (a schedule) needs no client
                self._client = await self._open_client(stack, self._service)
            await self._prepare(stack)
        except BaseException:
            self._client = None
            await stack.aclose()
            raise
        self._stack = stack
        self._stop_waiter = asyncio.create_task(self._stopping.wait())
        for coro in self._workers():
            self._spawn(coro)
        logger.info("%s started", self)

    async def stop(self) -> None:
        """Stop promptly: interrupt waits now, give running work ``stop_grace`` s, then cancel it.

        Safe to call twice or before ``start()``.
        """
        if self._stack is None:
            return
        self._stopping.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._stop_grace
        while self._tasks:
            remaining = deadline - loop.time()
            if remaining <= 0:
                pending = list(self._tasks)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                break
            await asyncio.wait(list(self._tasks), timeout=remaining)
        if self._stop_waiter is not None:
            self._stop_waiter.cancel()
        stack, self._stack, self._client = self._stack, None, None
        await stack.aclose()
        logger.info("%s stopped (%s)", self, self.stats.as_dict())

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    @abc.abstractmethod
    def stats(self) -> SourceStats:
        """The source's counters."""

    @abc.abstractmethod
    async def _prepare(self, stack: contextlib.AsyncExitStack) -> None:
        """Validate the configuration and discover the source with the open client, before workers start.

        Args:
            stack: The exit stack that owns the client, for any further client the source needs.
        """

    async def _open_client(self, stack: contextlib.AsyncExitStack, service: str) -> Any:
        """Create an aiobotocore client for ``service`` that lives as long as ``stack``."""
        config = AioConfig(
            retries={"total_max_attempts": 1},
            connect_timeout=5,
            read_timeout=30,
            max_pool_connections=self._max_pool_connections,
        )
        return await stack.enter_async_context(
            _shared_session().create_client(
                service, endpoint_url=self._endpoint_url, region_name=self._region_name, config=config
            )
        )

    def _spawn(self, worker: Awaitable[None], name: str | None = None) -> asyncio.Task[None]:
        """Start a worker task that ``stop()`` will wait for and cancel."""
        task = asyncio.create_task(self._guard(worker), name=name or f"{self}-worker")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @abc.abstractmethod
    def _workers(self) -> list[Awaitable[None]]:
        """The coroutines to run as worker tasks until stop."""

    async def _guard(self, worker: Awaitable[None]) -> None:
        try:
            await worker
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in a worker: log it, the source keeps its other workers
            logger.exception("%s: worker crashed", self)

    @property
    def stopping(self) -> bool:
        """True once ``stop()`` was called."""
        return self._stopping.is_set()

    async def _until_stopped(self, awaitable: Awaitable[T]) -> T | None:
        """Await ``awaitable`` unless a stop comes first; then cancel it and return ``None``."""
        if self._stopping.is_set():
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            return None
        task = asyncio.ensure_future(awaitable)
        assert self._stop_waiter is not None
        try:
            await asyncio.wait({task, self._stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, *TRANSIENT_ERRORS):
            await task
        return None

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped meanwhile. Returns True if the source is stopping."""
        if seconds > 0:
            await self._until_stopped(asyncio.sleep(seconds))
        return self._stopping.is_set()

    async def _endpoint_error(self, backoff: Backoff, action: str, exc: BaseException) -> None:
        """Count and log a failed endpoint call, then wait the next backoff delay."""
        self.stats.endpoint_errors += 1
        delay = backoff.next_delay()
        detail = " ".join(str(exc).split())[:200]  # moto answers some errors with a whole HTML page
        logger.warning("%s: %s failed (%s: %s); retrying in %.2f s", self, action, type(exc).__name__, detail, delay)
        await self._sleep(delay)
