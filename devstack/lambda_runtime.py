"""Run a real Lambda handler in-process, with the Python runtime's observable semantics.

This module owns :class:`LocalFunction`: one deployed function (name, handler, timeout, memory, reserved
concurrency) that the devstack event sources and API adapters invoke instead of AWS Lambda. It mirrors what
the AWS Python runtime (``awslambdaric``: ``bootstrap.py``, ``lambda_context.py``,
``lambda_runtime_marshaller.py``) does around a handler call, so code that works here works there:

Rules:
    * The handler string is resolved like SAM does it: ``CodeUri: functions/`` plus
      ``Handler: api.handler.handler`` imports module ``functions.api.handler`` and calls ``handler``
      (:func:`resolve_handler_path`). The import happens lazily on the first invoke, so one broken function
      does not stop the stack; its cold import time is measured and logged.
    * Import failures surface as the runtime's ``Runtime.*`` error types on every invoke (Lambda re-runs
      the Init phase for the next invoke after a failed one).
    * The event is JSON round-tripped in (the handler gets a private copy) and the response is JSON
      round-tripped out with the runtime's encoder rules (``Decimal`` allowed, ``bytes`` passed through).
      Anything else that ``json`` cannot encode fails with ``Runtime.MarshalError``, as in AWS.
    * ``async def`` handlers are rejected: the Python runtime calls the handler synchronously and would try
      to serialize the returned coroutine.
    * A handler exception becomes :class:`FunctionError` carrying Lambda's error payload
      (``errorType``/``errorMessage``/``requestId``/``stackTrace``).
    * Each invoke runs in its own daemon thread. On timeout the caller gets ``Sandbox.Timedout`` at once,
      but **a Python thread cannot be killed**: the handler keeps running in the background until it
      returns, and its result is discarded. AWS would freeze and recycle the execution environment.
      Daemon threads never block interpreter exit (thread pools a handler opens do: ``concurrent.futures``
      joins its workers at exit).
    * An invocation that timed out, or that its caller abandoned (an event source cancelled at shutdown, a
      client gone), has no time left: its context's ``get_remaining_time_in_millis()`` answers 0 from then
      on. A handler that budgets its work by the remaining time, as long-running Lambda code should, so
      winds down (kills its ffmpeg, starts nothing new) instead of running on unseen, and ``up`` can exit.
    * All functions share one process: module globals, ``os.environ`` and ``/tmp`` are shared between
      "execution environments", unlike AWS. Handlers must not rely on per-environment isolation.
"""

from __future__ import annotations

import asyncio
import contextlib
import decimal
import importlib
import inspect
import json
import logging
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "FunctionError",
    "FunctionStats",
    "LambdaContext",
    "LocalFunction",
    "resolve_handler_path",
]

logger = logging.getLogger(__name__)

#: moto's default account, so ARNs built here match the ones moto returns.
DEFAULT_ACCOUNT_ID = "123456789012"
#: Synchronous invocation response limit (Lambda quotas: 6 MB request/response payload).
MAX_RESPONSE_BYTES = 6_291_556
#: Local cap on concurrent invocations of a function without reserved concurrency (AWS: account quota).
DEFAULT_LOCAL_CONCURRENCY = 32

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Handler = Callable[[Any, "LambdaContext"], Any]


class FunctionError(Exception):
    """An invocation failed the way Lambda reports it (``X-Amz-Function-Error: Unhandled``).

    Attributes:
        error_type: Lambda's ``errorType``: the exception class name for handler errors, or a runtime
            error such as ``Sandbox.Timedout``, ``Runtime.MarshalError``, ``Runtime.ImportModuleError``.
        error_message: Lambda's ``errorMessage``.
        request_id: The ``aws_request_id`` of the failed invocation.
        stack_trace: Formatted traceback lines, as the runtime reports them.
    """

    def __init__(
        self, error_type: str, error_message: str, *, request_id: str = "", stack_trace: list[str] | None = None
    ) -> None:
        super().__init__(f"{error_type}: {error_message}")
        self.error_type = error_type
        self.error_message = error_message
        self.request_id = request_id
        self.stack_trace = stack_trace or []

    @property
    def payload(self) -> dict[str, Any]:
        """The error document Lambda returns as the invocation payload."""
        return {
            "errorMessage": self.error_message,
            "errorType": self.error_type,
            "requestId": self.request_id,
            "stackTrace": self.stack_trace,
        }


class LambdaContext:
    """The ``context`` argument, shaped like ``awslambdaric.lambda_context.LambdaContext``.

    ``memory_limit_in_mb`` is a ``str`` because the real runtime reads it from an environment variable.
    """

    def __init__(
        self,
        *,
        function_name: str,
        memory_limit_in_mb: int,
        invoked_function_arn: str,
        aws_request_id: str,
        log_stream_name: str,
        deadline_monotonic: float,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = str(memory_limit_in_mb)
        self.aws_request_id = aws_request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = log_stream_name
        self.client_context = None
        self.identity = None
        self.tenant_id = None
        self._deadline = deadline_monotonic

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation times out (never negative)."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def _expire(self) -> None:
        """The runtime ended the invocation (timeout, or its caller gone): no time is left from now on."""
        self._deadline = min(self._deadline, time.monotonic())

    def log(self, msg: str) -> None:
        """Write to the function's log, like ``context.log`` (here: this module's logger)."""
        logger.info("[%s] %s", self.function_name, msg)

    def __repr__(self) -> str:
        return f"LambdaContext(function_name={self.function_name!r}, aws_request_id={self.aws_request_id!r})"


@dataclass
class FunctionStats:
    """Counters for metrics and benchmarks (``init_ms``: the last cold import time)."""

    invocations: int = 0
    errors: int = 0
    timeouts: int = 0
    cold_starts: int = 0
    init_ms: float = 0.0


def resolve_handler_path(code_uri: str, handler: str) -> tuple[str, str]:
    """Map a SAM ``CodeUri`` + ``Handler`` pair to ``(module, attribute)`` importable from the repo root.

    ``("functions/", "api.handler.handler")`` gives ``("functions.api.handler", "handler")``, and
    ``("functions/api", "handler.handler")`` gives the same. As in the runtime, ``/`` in the handler's module
    part is accepted as a package separator.

    Args:
        code_uri: The function's ``CodeUri``, a path relative to the template directory (``""``/``"."``
            for the root).
        handler: The function's ``Handler``, ``module.attribute``.

    Returns:
        The dotted module name and the handler attribute name.

    Raises:
        ValueError: If either value cannot be mapped to an importable module path.
    """
    if "://" in code_uri or code_uri.startswith("/"):
        raise ValueError(f"CodeUri {code_uri!r} must be a relative local path")
    prefix = [part for part in code_uri.strip().split("/") if part not in ("", ".")]
    module, dot, attribute = handler.strip().rpartition(".")
    if not dot or not module or not attribute:
        raise ValueError(f"Bad handler {handler!r}: expected 'module.function'")
    parts = prefix + module.replace("/", ".").split(".")
    for part in [*parts, attribute]:
        if not _IDENTIFIER.match(part):
            raise ValueError(f"Bad handler {handler!r} with CodeUri {code_uri!r}: {part!r} is not an identifier")
    return ".".join(parts), attribute


class LocalFunction:
    """One Lambda function, invoked in-process from asyncio code.

    Args:
        name: The function name (used in the context, ARN and log group).
        handler: A SAM handler string (resolved with ``code_uri``) or, for tests, the handler callable.
        code_uri: The function's ``CodeUri``; see :func:`resolve_handler_path`.
        timeout: Function timeout in seconds (AWS default 3).
        memory_mb: Memory size in MB (AWS default 128); reported in the context only.
        reserved_concurrency: Maximum concurrent invocations. Excess invocations wait for a slot (an event
            source mapping retries throttles the same way; a direct synchronous invoke would get a 429 in
            AWS). ``None`` uses a local cap of ``DEFAULT_LOCAL_CONCURRENCY``.
        region: Region used in the function ARN.
        account_id: Account used in the function ARN.
    """

    def __init__(
        self,
        name: str,
        handler: str | Handler,
        *,
        code_uri: str = "",
        timeout: float = 3.0,
        memory_mb: int = 128,
        reserved_concurrency: int | None = None,
        region: str = "us-east-1",
        account_id: str = DEFAULT_ACCOUNT_ID,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if reserved_concurrency is not None and reserved_concurrency < 1:
            raise ValueError("reserved_concurrency must be >= 1 (0 would disable the function)")
        self.name = name
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.reserved_concurrency = reserved_concurrency
        self.arn = f"arn:aws:lambda:{region}:{account_id}:function:{name}"
        self.stats = FunctionStats()
        self._source = handler
        self._code_uri = code_uri
        self._handler: Handler | None = None
        self._load_lock = threading.Lock()
        self._log_stream = f"{time.strftime('%Y/%m/%d', time.gmtime())}/[$LATEST]{uuid.uuid4().hex}"
        self._slots: asyncio.Semaphore | None = None
        self._slots_loop: asyncio.AbstractEventLoop | None = None
        self._orphans: list[threading.Thread] = []

    def __repr__(self) -> str:
        return f"LocalFunction({self.name!r}, handler={self._source!r})"

    @property
    def orphaned_threads(self) -> int:
        """Timed-out invocations whose handler thread is still running."""
        self._orphans = [thread for thread in self._orphans if thread.is_alive()]
        return len(self._orphans)

    async def load(self) -> None:
        """Import the handler now (normally done by the first invoke).

        Raises:
            FunctionError: With a ``Runtime.*`` error type if the handler cannot be loaded.
        """
        if self._handler is None:
            future, _ = _in_daemon_thread(self._load, f"lambda-init-{self.name}")
            await future

    async def invoke(self, event: Any) -> Any:
        """Invoke the function synchronously (``RequestResponse``) and return its decoded response.

        Args:
            event: The event; it must be JSON-serializable, as every Lambda payload is.

        Returns:
            The handler's return value after the JSON round trip Lambda applies (``bytes`` pass through).

        Raises:
            FunctionError: The handler raised, timed out, returned something not serializable, or could not
                be loaded.
            TypeError: ``event`` is not JSON-serializable (AWS would reject the request).
        """
        payload = json.dumps(event)
        async with self._concurrency_slot():
            self.stats.invocations += 1
            try:
                await self.load()
                return await self._run(payload, str(uuid.uuid4()))
            except FunctionError:
                self.stats.errors += 1
                raise

    async def _run(self, payload: str, request_id: str) -> Any:
        context = LambdaContext(
            function_name=self.name,
            memory_limit_in_mb=self.memory_mb,
            invoked_function_arn=self.arn,
            aws_request_id=request_id,
            log_stream_name=self._log_stream,
            deadline_monotonic=time.monotonic() + self.timeout,
        )
        future, thread = _in_daemon_thread(lambda: self._call(payload, context), f"lambda-{self.name}-{request_id[:8]}")
        try:
            return await asyncio.wait_for(future, self.timeout)
        except asyncio.CancelledError:
            context._expire()
            if thread.is_alive():
                self._orphans.append(thread)
                logger.info("function %s: request %s abandoned by its caller; no time left", self.name, request_id)
            raise
        except TimeoutError:
            context._expire()
            self.stats.timeouts += 1
            self._orphans.append(thread)
            logger.warning(
                "function %s timed out after %.2f s (request %s); its thread keeps running in the background",
                self.name,
                self.timeout,
                request_id,
            )
            raise FunctionError(
                "Sandbox.Timedout",
                f"RequestId: {request_id} Error: Task timed out after {self.timeout:.2f} seconds",
                request_id=request_id,
            ) from None

    def _concurrency_slot(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots_loop is not loop:
            self._slots = asyncio.Semaphore(self.reserved_concurrency or DEFAULT_LOCAL_CONCURRENCY)
            self._slots_loop = loop
        return self._slots

    def _load(self) -> Handler:
        """Import and validate the handler (runs in a worker thread; the lock makes it happen once)."""
        with self._load_lock:
            if self._handler is not None:
                return self._handler
            if not isinstance(self._source, str):
                _reject_async(self._source, repr(self._source))
                self._handler = self._source
                return self._handler
            started = time.perf_counter()
            handler = _import_handler(self._code_uri, self._source)
            _reject_async(handler, self._source)
            elapsed_ms = (time.perf_counter() - started) * 1000
            self.stats.cold_starts += 1
            self.stats.init_ms = elapsed_ms
            logger.info("function %s: cold start, imported %s in %.1f ms", self.name, self._source, elapsed_ms)
            self._handler = handler
            return handler

    def _call(self, payload: str, context: LambdaContext) -> Any:
        """Run the handler like ``bootstrap.handle_event_request`` does (in the invocation thread)."""
        assert self._handler is not None
        request_id = context.aws_request_id
        try:
            response = self._handler(json.loads(payload), context)
        except Exception as exc:
            raise _handler_error(exc, request_id) from None
        except SystemExit as exc:
            raise FunctionError(
                "Runtime.ExitError",
                f"RequestId: {request_id} Error: Runtime exited with error: exit status {exc.code}",
                request_id=request_id,
            ) from None
        return _marshal(response, request_id)


def _import_handler(code_uri: str, spec: str) -> Handler:
    """Import ``spec``; map failures to the runtime's ``FaultException`` types (``bootstrap._get_handler``)."""
    try:
        module_name, attribute = resolve_handler_path(code_uri, spec)
    except ValueError as exc:
        raise FunctionError("Runtime.MalformedHandlerName", str(exc)) from None
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise FunctionError(
            "Runtime.BuiltInModuleConflict", f"Cannot use built-in module {module_name} as a handler module"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FunctionError("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}") from None
    except SyntaxError as exc:
        raise FunctionError(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {exc}",
            stack_trace=[f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}'],
        ) from None
    except Exception as exc:  # an import-time crash in user code: Lambda reports it as an init error
        raise _handler_error(exc, "") from None
    handler = getattr(module, attribute, None)
    if handler is None:
        raise FunctionError("Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_name}'")
    return handler


def _reject_async(handler: Handler, spec: str) -> None:
    call_method = vars(type(handler)).get("__call__")  # a callable object with ``async def __call__``
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call_method):
        raise FunctionError(
            "Runtime.MarshalError",
            f"Handler {spec!r} is 'async def': the Lambda Python runtime calls handlers synchronously and cannot "
            "serialize the coroutine it returns (Object of type coroutine is not JSON serializable). "
            "Use a plain 'def' handler, e.g. one that calls asyncio.run(...).",
        )


def _handler_error(exc: BaseException, request_id: str) -> FunctionError:
    frames = traceback.extract_tb(exc.__traceback__)[1:]  # drop LocalFunction._call's own frame
    return FunctionError(type(exc).__name__, str(exc), request_id=request_id, stack_trace=traceback.format_list(frames))


def _encode_decimal(value: Any) -> Any:
    """Encode ``Decimal`` as a JSON number like the runtime's marshaller (it emits ``str(value)`` raw)."""
    if isinstance(value, decimal.Decimal):
        if value.is_nan():
            return float("nan")
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _marshal(response: Any, request_id: str) -> Any:
    """Apply the response JSON round trip, with the runtime's error types and the 6 MB limit."""
    if isinstance(response, bytes):
        return response
    if inspect.iscoroutine(response):
        response.close()
        raise FunctionError(
            "Runtime.MarshalError",
            "Unable to marshal response: Object of type coroutine is not JSON serializable "
            "(the handler returned a coroutine; async handlers are not supported by the Python runtime)",
            request_id=request_id,
        )
    try:
        encoded = json.dumps(response, default=_encode_decimal, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise FunctionError(
            "Runtime.MarshalError", f"Unable to marshal response: {exc}", request_id=request_id
        ) from None
    if len(encoded.encode()) > MAX_RESPONSE_BYTES:
        raise FunctionError(
            "Function.ResponseSizeTooLarge",
            f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
            request_id=request_id,
        )
    return json.loads(encoded)


def _in_daemon_thread(fn: Callable[[], Any], name: str) -> tuple[asyncio.Future[Any], threading.Thread]:
    """Run ``fn`` in a new daemon thread and return a future for its outcome, and the thread.

    A dedicated daemon thread (not an executor) is used so that a handler that never returns can neither
    exhaust a pool nor block interpreter or event-loop shutdown (``asyncio.to_thread``'s default executor is
    joined by ``asyncio.run``). If the future was cancelled (timeout), the outcome is dropped.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def run() -> None:
        try:
            ok, value = True, fn()
        except BaseException as exc:  # delivered to the awaiting coroutine, never swallowed
            ok, value = False, exc
        with contextlib.suppress(RuntimeError):  # the loop closed while the handler ran: nobody waits
            loop.call_soon_threadsafe(deliver, ok, value)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return future, thread
