"""Lambda entry point of the REST API: FastAPI behind Mangum (``Handler: api.handler.handler``).

Rules:
- Import cost is the cold start: this module builds the app (no settings, no clients) and nothing else.
  Settings and the boto3 client are created on first use (``deps``).
- Inside the package only relative imports (Lambda imports it as ``api``, tests as ``functions.api``).
- Mangum drives the ASGI app with ``loop.run_until_complete`` on the calling thread's event loop. The Lambda
  runtime always calls from its main thread, where one loop is kept for the life of the execution environment
  (warm invocations reuse it). devstack and tests call from worker threads that have no loop: those get a
  private loop for the one invocation, closed afterwards.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from mangum import Mangum
from starlette.types import ASGIApp

from .app import create_app


def _mangum(app: ASGIApp) -> Mangum:
    """``Mangum(app, lifespan="off")`` without its import-time side effect.

    Mangum's constructor calls ``asyncio.get_event_loop()`` and, off the main thread, creates and sets a loop
    that nobody closes (devstack imports functions in a worker thread). It only needs *a* loop to exist, so
    it gets a scratch one; :func:`handler` manages the loops that actually run requests.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return Mangum(app, lifespan="off")
    scratch = asyncio.new_event_loop()
    asyncio.set_event_loop(scratch)
    try:
        return Mangum(app, lifespan="off")
    finally:
        asyncio.set_event_loop(None)
        scratch.close()


app = create_app()
_asgi_handler = _mangum(app)
_main_loop: asyncio.AbstractEventLoop | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Serve one API Gateway HTTP API (payload 2.0) event.

    Args:
        event: the API Gateway event.
        context: the Lambda context object.

    Returns:
        The API Gateway response (``statusCode``, ``headers``, ``body``, ...).

    Raises:
        RuntimeError: when called from a thread whose event loop is running (call it via a worker thread).
    """
    global _main_loop
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("the Lambda handler is synchronous: call it from a thread, not inside an event loop")
    if threading.current_thread() is threading.main_thread():
        if _main_loop is None or _main_loop.is_closed():
            _main_loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_main_loop)
        return _asgi_handler(event, context)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return _asgi_handler(event, context)
    finally:
        asyncio.set_event_loop(None)
        loop.close()
