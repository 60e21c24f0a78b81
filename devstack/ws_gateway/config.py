"""Configuration of the WebSocket API emulator: limits, the invoker contract and close causes.

This module owns the constants that make the emulator behave like API Gateway WebSocket APIs. Every
default is an AWS quota from "Quotas for configuring and running a WebSocket in API Gateway"
(https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html):

    WebSocket frame size 32 KB, message payload size 128 KB, connection duration 2 hours, idle connection
    timeout 10 minutes, integration timeout 29 seconds. "If a larger message (or larger frame size) is
    received, the connection is closed with code 1009."

Rules:
    * Limits are a frozen, keyword-only dataclass validated in ``__post_init__``; tests shrink them.
    * A route is wired to one :data:`Invoker` (``LocalFunction.invoke`` in the devstack). The gateway
      never knows about Lambda itself.
    * Close causes are :class:`DisconnectCause` values: the code goes on the wire in the close frame and
      both fields go into the ``$disconnect`` event (``requestContext.disconnectStatusCode`` and
      ``disconnectReason``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "ABNORMAL",
    "BINARY_FRAME",
    "DELETED",
    "GATEWAY_SHUTDOWN",
    "IDLE_TIMEOUT",
    "KB",
    "MAX_DURATION",
    "NO_STATUS",
    "DisconnectCause",
    "GatewayLimits",
    "Invoker",
    "protocol_error_cause",
]

KB = 1024

#: One route integration: receives the API Gateway event (a fresh dict per call) and returns the Lambda
#: response (usually a dict with ``statusCode``), or raises when the function errors. In the devstack this
#: is ``LocalFunction.invoke``.
Invoker = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, kw_only=True, slots=True)
class GatewayLimits:
    """Runtime limits. Defaults are the AWS quotas (see the module docstring).

    Attributes:
        max_message_bytes: Largest inbound message and largest ``@connections`` POST body (128 KB).
        max_frame_bytes: Largest inbound WebSocket data frame (32 KB); larger frames close with 1009.
        idle_timeout: Seconds without a message in either direction before the gateway closes (600).
        max_connection_duration: Seconds after which every connection is closed (7200).
        integration_timeout: Seconds an integration may run before API Gateway gives up (29).
        client_buffer_bytes: Bytes queued towards a slow client before ``@connections`` POSTs get 429
            ``LimitExceededException`` ("the WebSocket client side buffer is full"). AWS does not publish
            this number; 1 MiB is a local choice that keeps a stuck viewer from growing memory unbounded.
        close_timeout: Seconds to wait for a client's close reply before dropping the TCP connection.
            Local only; AWS does not document it.
    """

    max_message_bytes: int = 128 * KB
    max_frame_bytes: int = 32 * KB
    idle_timeout: float = 600.0
    max_connection_duration: float = 7200.0
    integration_timeout: float = 29.0
    client_buffer_bytes: int = 1024 * KB
    close_timeout: float = 5.0

    def __post_init__(self) -> None:
        for name in (
            "max_message_bytes",
            "max_frame_bytes",
            "idle_timeout",
            "max_connection_duration",
            "integration_timeout",
            "client_buffer_bytes",
            "close_timeout",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"GatewayLimits.{name} must be positive")
        if self.max_frame_bytes > self.max_message_bytes:
            raise ValueError("GatewayLimits.max_frame_bytes cannot exceed max_message_bytes")


class DisconnectCause(NamedTuple):
    """Why a connection ended: the close code and the ``disconnectReason`` reported to ``$disconnect``."""

    code: int
    reason: str


#: ``DELETE @connections/{id}``. A captured ``$disconnect`` after ``delete_connection`` reads
#: ``"disconnectStatusCode": 1000, "disconnectReason": "Connection Closed Normally"`` (aws/chalice#2060).
DELETED = DisconnectCause(1000, "Connection Closed Normally")
#: Idle timeout. A captured ``$disconnect`` 603.9 s after ``connectedAt`` (10-minute idle quota) reads
#: ``"disconnectStatusCode": 1001, "disconnectReason": "Going away"``.
IDLE_TIMEOUT = DisconnectCause(1001, "Going away")
#: The 2-hour cap. AWS's exact reason is not published; 1001 "going away" (RFC 6455 §7.4.1) like idle.
MAX_DURATION = DisconnectCause(1001, "Going away")
#: The emulator is shutting down: RFC 6455 §7.4.1 "1001 indicates that an endpoint is going away, such as a
#: server going down".
GATEWAY_SHUTDOWN = DisconnectCause(1001, "Going away")
#: "If a client app sends a binary frame, API Gateway rejects it and disconnects the client with code 1003"
#: (https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-develop-binary-media-types.html).
#: The reason text is ours (RFC 6455 name).
BINARY_FRAME = DisconnectCause(1003, "Unsupported data")
#: The client's close frame carried no status code (RFC 6455 §7.1.5 reports 1005). Reason text as seen in
#: API Gateway execution logs; not in the public docs.
NO_STATUS = DisconnectCause(1005, "Client-side close frame status not set")
#: The TCP connection dropped without a close frame (RFC 6455 §7.1.5: 1006). Reason text is ours.
ABNORMAL = DisconnectCause(1006, "Connection closed abnormally")

# RFC 6455 §7.4.1 names for codes the parser produces; AWS publishes only the codes (1009 for size limits).
_PROTOCOL_REASONS = {
    1002: "Protocol error",
    1007: "Invalid frame payload data",
    1009: "Message too big",
}


def protocol_error_cause(code: int) -> DisconnectCause:
    """Cause for a connection the WebSocket parser failed (oversized frame/message, bad UTF-8, ...).

    Args:
        code: The close code the parser chose (1009 for the size quotas).

    Returns:
        The cause with the RFC 6455 name of the code as its reason.
    """
    return DisconnectCause(code, _PROTOCOL_REASONS.get(code, "Protocol error"))
