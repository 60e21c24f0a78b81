"""Domain errors of CaptureStream: one base class, one subclass per thing that can go wrong.

Rules:
- Every error carries a stable machine-readable ``code`` (used in REST error bodies and WebSocket ``error``
  messages) and a human message. Messages never contain a stream key.
- Edges translate: FastAPI routes turn these into HTTP responses, WebSocket handlers into ``error`` messages,
  Lambda handlers let unexpected failures raise so retries and DLQs apply.
"""

from __future__ import annotations


class CaptureStreamError(Exception):
    """Base class of every CaptureStream domain error."""

    code: str = "internal_error"
    #: HTTP status an API edge should answer with.
    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidName(CaptureStreamError, ValueError):
    """A playback id, session id or channel id is not a valid name (see ``keys.NAME_PATTERN``)."""

    code = "invalid_name"
    status = 400


class InvalidKey(CaptureStreamError, ValueError):
    """An S3 object key does not belong to the CaptureStream key layout."""

    code = "invalid_key"
    status = 400


class InvalidEvent(CaptureStreamError, ValueError):
    """A Lambda event payload has a shape no parser recognises."""

    code = "invalid_event"
    status = 400


class InvalidMessage(CaptureStreamError, ValueError):
    """A WebSocket message is not valid JSON or does not match its type's schema."""

    code = "invalid_message"
    status = 400


class MessageTooLarge(InvalidMessage):
    """A WebSocket message exceeds the API Gateway payload limit (128 KB)."""

    code = "message_too_large"
    status = 413


class InvalidManifest(CaptureStreamError, ValueError):
    """A session manifest JSON object in S3 is malformed."""

    code = "invalid_manifest"
    status = 400


class NotSupported(CaptureStreamError):
    """A valid request this deployment does not implement."""

    code = "not_supported"
    status = 501


class Unauthorized(CaptureStreamError):
    """Missing or invalid credentials (bearer token or stream key)."""

    code = "unauthorized"
    status = 401


class Forbidden(CaptureStreamError):
    """Valid credentials that do not grant access to the resource."""

    code = "forbidden"
    status = 403


class NotFound(CaptureStreamError, LookupError):
    """The requested resource does not exist."""

    code = "not_found"
    status = 404


class Conflict(CaptureStreamError):
    """The request conflicts with the current state (e.g. a duplicate id)."""

    code = "conflict"
    status = 409


class RateLimited(CaptureStreamError):
    """Too many requests in too little time (e.g. a chat flood); try again later."""

    code = "rate_limited"
    status = 429
