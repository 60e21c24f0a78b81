"""LocalFunction: handler resolution, context, error mapping, timeout, JSON round trip, concurrency.

The expected error types and messages are the ones the AWS Python runtime produces
(aws-lambda-python-runtime-interface-client: ``bootstrap.py``, ``lambda_runtime_marshaller.py``).
"""

from __future__ import annotations

import asyncio
import re
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from devstack.lambda_runtime import FunctionError, LocalFunction, resolve_handler_path

FIXTURES = "tests/unit/devstack/fixtures_handlers/"
FIXTURES_PACKAGE = "tests.unit.devstack.fixtures_handlers"


def fixture_function(handler: str, **kwargs: Any) -> LocalFunction:
    return LocalFunction("fixture-fn", handler, code_uri=FIXTURES, **kwargs)


@pytest.mark.parametrize(
    ("code_uri", "handler", "expected"),
    [
        ("functions/", "api.handler.handler", ("functions.api.handler", "handler")),
        ("functions/api", "handler.handler", ("functions.api.handler", "handler")),
        ("./functions/api/", "handler.handler", ("functions.api.handler", "handler")),
        ("functions", "api/handler.handler", ("functions.api.handler", "handler")),
        ("", "app.lambda_handler", ("app", "lambda_handler")),
        (".", "app.lambda_handler", ("app", "lambda_handler")),
    ],
)
def test_resolve_handler_path_maps_codeuri_to_package_prefix(
    code_uri: str, handler: str, expected: tuple[str, str]
) -> None:
    assert resolve_handler_path(code_uri, handler) == expected


@pytest.mark.parametrize(
    ("code_uri", "handler"),
    [
        ("s3://artifacts/fn.zip", "app.handler"),
        ("/abs/functions", "app.handler"),
        ("functions/", "handler"),
        ("functions/", ".handler"),
        ("functions/", "app."),
        ("functions/my-fn/", "app.handler"),
        ("functions/", "app.handler-v2"),
    ],
)
def test_resolve_handler_path_rejects_unmappable_values(code_uri: str, handler: str) -> None:
    with pytest.raises(ValueError):
        resolve_handler_path(code_uri, handler)


async def test_context_is_shaped_like_lambdas() -> None:
    function = LocalFunction(
        "catalog-media", "echo.handler", code_uri=FIXTURES, timeout=2, memory_mb=256, region="eu-west-1"
    )

    result = await function.invoke({"n": 1})

    assert result["event"] == {"n": 1}
    assert result["function_name"] == "catalog-media"
    assert result["function_version"] == "$LATEST"
    assert result["invoked_function_arn"] == "arn:aws:lambda:eu-west-1:123456789012:function:catalog-media"
    assert result["memory_limit_in_mb"] == "256"  # a str in the real runtime (read from the environment)
    assert uuid.UUID(result["aws_request_id"])
    assert result["log_group_name"] == "/aws/lambda/catalog-media"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", result["log_stream_name"])
    assert 1000 < result["remaining_ms"] <= 2000


async def test_each_invocation_gets_its_own_request_id_and_event_copy() -> None:
    function = fixture_function("echo.handler")
    event = {"n": 1}

    first = await function.invoke(event)
    second = await function.invoke(event)

    assert first["aws_request_id"] != second["aws_request_id"]
    assert event == {"n": 1}  # the handler mutated its own deserialized copy only


async def test_import_is_lazy_and_measured_once() -> None:
    sys.modules.pop(f"{FIXTURES_PACKAGE}.echo", None)
    function = fixture_function("echo.handler")
    assert function.stats.cold_starts == 0

    await function.invoke({})
    await function.invoke({})

    assert function.stats.cold_starts == 1
    assert function.stats.init_ms > 0
    assert function.stats.invocations == 2


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        ("broken_import.handler", "Runtime.ImportModuleError", "Unable to import module"),
        ("missing_module.handler", "Runtime.ImportModuleError", "No module named"),
        ("echo.no_such_function", "Runtime.HandlerNotFound", "Handler 'no_such_function' missing on module"),
        ("crashes_on_import.handler", "RuntimeError", "missing TABLE_NAME"),
        ("handler_without_module", "Runtime.MalformedHandlerName", "Bad handler"),
    ],
)
async def test_broken_function_fails_on_invoke_not_on_construction(handler: str, error_type: str, message: str) -> None:
    function = fixture_function(handler)  # must not raise: a broken function cannot stop the stack

    with pytest.raises(FunctionError) as caught:
        await function.invoke({})

    assert caught.value.error_type == error_type
    assert message in caught.value.error_message
    assert function.stats.errors == 1


async def test_syntax_error_in_handler_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "syntax_broken_fn.py").write_text("def handler(event, context)\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(FunctionError) as caught:
        await LocalFunction("f", "syntax_broken_fn.handler").invoke({})

    assert caught.value.error_type == "Runtime.UserCodeSyntaxError"
    assert "syntax_broken_fn" in caught.value.error_message


async def test_handler_exception_becomes_lambda_error_payload() -> None:
    function = fixture_function("behaviours.fail")

    with pytest.raises(FunctionError) as caught:
        await function.invoke({"why": "bad input"})

    payload = caught.value.payload
    assert payload["errorType"] == "ValueError"
    assert payload["errorMessage"] == "boom: bad input"
    assert uuid.UUID(payload["requestId"])
    assert any("behaviours.py" in line for line in payload["stackTrace"])
    assert not any("lambda_runtime.py" in line for line in payload["stackTrace"])


async def test_timeout_raises_sandbox_timedout_promptly_and_thread_finishes_later() -> None:
    from tests.unit.devstack.fixtures_handlers import behaviours

    behaviours.slow_finished.clear()
    function = fixture_function("behaviours.slow", timeout=0.2)

    started = time.monotonic()
    with pytest.raises(FunctionError) as caught:
        await function.invoke({"sleep": 0.6})
    elapsed = time.monotonic() - started

    assert caught.value.error_type == "Sandbox.Timedout"
    assert re.fullmatch(r"RequestId: \S+ Error: Task timed out after 0\.20 seconds", caught.value.error_message)
    assert elapsed < 0.5
    assert function.stats.timeouts == 1
    assert function.orphaned_threads == 1
    assert await asyncio.to_thread(behaviours.slow_finished.wait, 2)
    await asyncio.sleep(0.05)
    assert function.orphaned_threads == 0
    assert await function.invoke({"sleep": 0}) == "done"  # the function is still usable


async def test_a_timed_out_invocation_has_no_time_left() -> None:
    """After Sandbox.Timedout the handler's context answers 0 ms: a deadline-aware handler stops at once."""
    from tests.unit.devstack.fixtures_handlers import behaviours

    function = fixture_function("behaviours.until_no_time_left", timeout=0.2)
    with pytest.raises(FunctionError, match="Sandbox.Timedout"):
        await function.invoke({})
    assert await asyncio.to_thread(behaviours.out_of_time.wait, 0.5)


async def test_an_abandoned_invocation_has_no_time_left() -> None:
    """A caller cancelled mid-invocation (an event source stopping with ``up``) leaves the handler 0 ms, long
    before its 30 s timeout, so it winds down instead of holding the process's exit."""
    from tests.unit.devstack.fixtures_handlers import behaviours

    function = fixture_function("behaviours.until_no_time_left", timeout=30)
    call = asyncio.create_task(function.invoke({}))
    await asyncio.sleep(0.1)
    assert not behaviours.out_of_time.is_set()
    started = time.monotonic()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await asyncio.to_thread(behaviours.out_of_time.wait, 1)
    assert time.monotonic() - started < 0.5
    assert function.stats.timeouts == 0


async def test_non_serializable_response_is_a_marshal_error() -> None:
    with pytest.raises(FunctionError) as caught:
        await fixture_function("behaviours.returns_set").invoke({})

    assert caught.value.error_type == "Runtime.MarshalError"
    assert caught.value.error_message == "Unable to marshal response: Object of type set is not JSON serializable"


async def test_response_goes_through_the_runtimes_json_round_trip() -> None:
    result = await fixture_function("behaviours.returns_awkward_json").invoke({})

    assert result == {"price": 1.5, "count": 3, "pair": [1, 2], "7": "int key"}


async def test_bytes_response_passes_through_like_the_runtime() -> None:
    assert await fixture_function("behaviours.returns_bytes").invoke({}) == b"\x00raw"


async def test_response_over_6_mb_is_rejected() -> None:
    with pytest.raises(FunctionError) as caught:
        await fixture_function("behaviours.returns_huge").invoke({})

    assert caught.value.error_type == "Function.ResponseSizeTooLarge"


async def test_non_serializable_event_is_a_caller_error() -> None:
    with pytest.raises(TypeError):
        await fixture_function("echo.handler").invoke({"when": object()})


async def test_async_def_handler_is_rejected_clearly() -> None:
    with pytest.raises(FunctionError) as caught:
        await fixture_function("behaviours.async_handler").invoke({})

    assert caught.value.error_type == "Runtime.MarshalError"
    assert "async def" in caught.value.error_message


async def test_handler_returning_a_coroutine_is_rejected() -> None:
    with pytest.raises(FunctionError) as caught:
        await fixture_function("behaviours.returns_coroutine").invoke({})

    assert caught.value.error_type == "Runtime.MarshalError"
    assert "coroutine" in caught.value.error_message


async def test_sys_exit_in_handler_is_a_runtime_exit_error() -> None:
    with pytest.raises(FunctionError) as caught:
        await fixture_function("behaviours.exits").invoke({})

    assert caught.value.error_type == "Runtime.ExitError"
    assert "exit status 3" in caught.value.error_message


async def test_callable_handler_is_accepted_for_tests() -> None:
    function = LocalFunction("inline", lambda event, context: {"doubled": event["n"] * 2})

    assert await function.invoke({"n": 21}) == {"doubled": 42}


@pytest.mark.parametrize(("reserved", "expected_peak"), [(1, 1), (3, 3)])
async def test_reserved_concurrency_bounds_parallel_invocations(reserved: int, expected_peak: int) -> None:
    lock = threading.Lock()
    running = 0
    peak = 0

    def handler(event: Any, context: Any) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.1)
        with lock:
            running -= 1

    function = LocalFunction("bounded", handler, reserved_concurrency=reserved)

    await asyncio.gather(*(function.invoke({}) for _ in range(3)))

    assert peak == expected_peak
