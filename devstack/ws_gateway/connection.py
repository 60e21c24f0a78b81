"""One live client connection: its socket, idle/duration timers, ordered dispatch and how it ended.

This module owns the per-connection state machine. A connection is *open* from the moment it is registered
(after ``$connect`` succeeded and the 101 was sent) until its :attr:`Connection.cause` is set; from then on
it is *ending* and every ``@connections`` call for it gets 410, even while the close handshake is still in
flight (a POST to a closing socket must fail fast, not hang).

Rules:
    * The first cause wins. Server-side closes (DELETE, idle timeout, 2-hour cap, binary frame, shutdown) go
      through :meth:`Connection.close`, which records the cause and sends that close code; a client-side
      close or a parser failure is recorded by the gateway from :meth:`Connection.run`'s result.
    * Inbound text messages are dispatched one at a time in arrival order, by a worker task that exists only
      while messages are pending (no idle task per connection). Different connections run concurrently.
    * Activity is one float (``last_active``, loop time) updated on every inbound message and every outbound
      frame: API Gateway's idle timeout counts messages in either direction (andyrichardson/subscriptionless#3,
      "direction agnostic"). WebSocket pings are answered by aiohttp and do not count. The idle timer re-arms
      itself lazily, so a busy connection costs no timer churn.
    * The socket never blocks a sender: the transport's high-water mark is set well above
      ``client_buffer_bytes`` so aiohttp never waits for a drain; :meth:`Connection.buffer_full` lets the
      management API answer 429 instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from aiohttp import WebSocketError, WSMsgType, web

from .config import (
    ABNORMAL,
    BINARY_FRAME,
    IDLE_TIMEOUT,
    MAX_DURATION,
    NO_STATUS,
    DisconnectCause,
    GatewayLimits,
    protocol_error_cause,
)
from .events import ConnectionInfo

__all__ = ["Connection", "Dispatcher"]

logger = logging.getLogger(__name__)

#: Handles one inbound text message for a connection; must not raise.
Dispatcher = Callable[["Connection", str], Awaitable[None]]

_TIMER_SLACK = 0.001  # asyncio may run a timer up to one clock resolution early


def _is_utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _client_cause(code: int | None, reason: str | None) -> DisconnectCause:
    """The client closed: API Gateway reports the client's own code and reason (aws-lambda-go fixture)."""
    if not code:
        return NO_STATUS
    return DisconnectCause(int(code), reason or "")


class Connection:
    """A registered WebSocket connection.

    Args:
        info: Identity and timestamps captured at upgrade time.
        ws: The prepared WebSocket response.
        transport: Its TCP transport (for write-buffer accounting).
        limits: Gateway limits.
        dispatch: Called for each inbound text message, in order.
    """

    __slots__ = (
        "info",
        "ws",
        "cause",
        "last_active",
        "_loop",
        "_opened",
        "_transport",
        "_limits",
        "_dispatch",
        "_pending",
        "_worker",
        "_close_task",
        "_idle_timer",
        "_max_timer",
    )

    def __init__(
        self,
        info: ConnectionInfo,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        limits: GatewayLimits,
        dispatch: Dispatcher,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.info = info
        self.ws = ws
        self.cause: DisconnectCause | None = None
        self._opened = self.last_active = self._loop.time()
        self._transport = transport
        self._limits = limits
        self._dispatch = dispatch
        self._pending: deque[str] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[bool] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._max_timer: asyncio.TimerHandle | None = None
        transport.set_write_buffer_limits(high=4 * limits.client_buffer_bytes)

    @property
    def connection_id(self) -> str:
        """The AWS-style connection id."""
        return self.info.connection_id

    @property
    def ending(self) -> bool:
        """Whether the connection is closing or closed (``@connections`` answers 410)."""
        return self.cause is not None or self.ws.closed

    def last_active_ms(self) -> int:
        """Epoch milliseconds of the last message in either direction."""
        return self.info.connected_at + round((self.last_active - self._opened) * 1000)

    def buffer_full(self) -> bool:
        """Whether more than ``client_buffer_bytes`` are queued towards the client."""
        return self._transport.get_write_buffer_size() > self._limits.client_buffer_bytes

    async def send(self, data: bytes) -> None:
        """Send ``data`` as one frame: text if it is valid UTF-8, binary otherwise.

        Raises:
            ConnectionError: The connection is ending or the socket is gone.
        """
        if self.cause is not None or self.ws.closed:
            raise ConnectionResetError("connection is closing")
        self.last_active = self._loop.time()
        await self.ws.send_frame(data, WSMsgType.TEXT if _is_utf8(data) else WSMsgType.BINARY)

    async def send_text(self, text: str) -> None:
        """Best-effort text frame (error frames, route responses); dropped if the connection is ending."""
        try:
            await self.send(text.encode("utf-8"))
        except ConnectionError:
            logger.debug("dropped a frame for closing connection", extra={"connection_id": self.connection_id})

    def start_timers(self) -> None:
        """Arm the idle timeout and the maximum connection duration."""
        self._idle_timer = self._loop.call_at(self.last_active + self._limits.idle_timeout, self._check_idle)
        deadline = self._opened + self._limits.max_connection_duration
        self._max_timer = self._loop.call_at(deadline, self.close, MAX_DURATION)

    def _check_idle(self) -> None:
        deadline = self.last_active + self._limits.idle_timeout
        if self._loop.time() + _TIMER_SLACK >= deadline:
            self.close(IDLE_TIMEOUT)
        else:
            self._idle_timer = self._loop.call_at(deadline, self._check_idle)

    def end(self, cause: DisconnectCause) -> None:
        """Record why the connection ended (unless a cause is already recorded) and stop its timers."""
        if self.cause is None:
            self.cause = cause
        for timer in (self._idle_timer, self._max_timer):
            if timer is not None:
                timer.cancel()

    def close(self, cause: DisconnectCause) -> None:
        """Start a server-side close with ``cause``; a no-op once the connection is ending."""
        if self.cause is not None:
            return
        self.end(cause)
        close = self.ws.close(code=cause.code, message=cause.reason.encode("utf-8"))
        self._close_task = self._loop.create_task(close)

    async def run(self) -> DisconnectCause:
        """Read frames until the socket closes; return what the socket itself reported.

        Returns:
            The client's close code/reason, the parser's error code (1009 for size limits), or 1006.
            A cause recorded by :meth:`close` takes precedence; the gateway applies that rule.
        """
        ws = self.ws
        while True:
            msg = await ws.receive()
            kind = msg.type
            if kind is WSMsgType.TEXT:
                self._enqueue(msg.data)
            elif kind is WSMsgType.BINARY:
                self.close(BINARY_FRAME)
            elif kind is WSMsgType.CLOSE:
                return _client_cause(msg.data, msg.extra)
            elif kind is WSMsgType.ERROR and isinstance(msg.data, WebSocketError):
                return protocol_error_cause(msg.data.code)
            else:  # CLOSING (our own close), CLOSED (connection lost) or a transport error
                return ABNORMAL

    def _enqueue(self, text: str) -> None:
        self.last_active = self._loop.time()
        self._pending.append(text)
        if self._worker is None:
            self._worker = self._loop.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._pending:
                text = self._pending.popleft()
                try:
                    await self._dispatch(self, text)
                except Exception:  # task boundary: a dispatcher bug must not strand the queued messages
                    logger.exception("message dispatch failed", extra={"connection_id": self.connection_id})
        finally:
            self._worker = None

    async def finish(self) -> None:
        """Wait until queued messages are dispatched and a server-side close has completed."""
        if self._worker is not None:
            await self._worker
        if self._close_task is not None:
            await self._close_task
