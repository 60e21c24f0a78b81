"""The REST API's error contract: every failure becomes ``{"error": {"code", "message"[, "fields"]}}``.

This module is the FastAPI edge of ``capturestream.errors`` (STYLE §6 rule 4): routes raise domain errors
(:class:`~capturestream.errors.NotFound`, ``Unauthorized``, ...) and the handlers installed by
:func:`install_error_handlers` translate them.

Rules:
- ``CaptureStreamError`` → its ``.status`` and ``.code``; 401 adds ``WWW-Authenticate: Bearer`` (RFC 6750 §3).
- Invalid input → 422 ``validation_error`` with ``fields``: ``[{"field": "body.name", "message": ...}]``. The
  offending *value* is never echoed (it could be a secret pasted into the wrong field).
- Framework HTTP errors (unknown route 404, 405, ...) keep their status with a code derived from it.
- Anything else → 500 ``internal_error`` with a fixed message; the traceback goes to the log only.
- Error responses are never cached (``Cache-Control: no-store``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from capturestream.errors import CaptureStreamError, Conflict

logger = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


class LimitExceeded(Conflict):
    """The caller already owns as many resources of this kind as allowed."""

    code = "limit_exceeded"
    status = 409


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    fields: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """Build an error response in the API's one error shape.

    Args:
        status: HTTP status.
        code: stable machine-readable code, e.g. ``not_found``.
        message: human-readable text; must never contain a secret.
        fields: per-field problems (422 only).
        headers: extra response headers.
    """
    detail: dict[str, Any] = {"code": code, "message": message}
    if fields is not None:
        detail["fields"] = fields
    merged = {"Cache-Control": "no-store", **(headers or {})}
    return JSONResponse({"error": detail}, status_code=status, headers=merged)


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Pydantic/FastAPI error dicts → ``[{"field": "body.name", "message": ...}]`` (inputs dropped)."""
    result = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if error.get("type") == "json_invalid":
            loc = loc[:1]  # ("body", <char offset>) → "body"
        result.append({"field": ".".join(loc) or "request", "message": str(error.get("msg", "invalid value"))})
    return result


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CaptureStreamError)
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="capturestream"'
    if exc.status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc.code)
    return error_response(exc.status, exc.code, exc.message, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "validation_error", "invalid request", fields=field_errors(exc.errors()))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES.get(exc.status_code, "internal_error" if exc.status_code >= 500 else "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error in %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error response the contract's shape."""
    app.add_exception_handler(CaptureStreamError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
