"""API Gateway WebSocket event shapes: ids, timestamps, the three Lambda events and error frames.

This module owns the exact JSON the emulator hands to integrations and to clients. The shapes are copied
from events captured on AWS and published as SDK fixtures:

* ``$connect``: aws/aws-lambda-runtime-interface-emulator#25 (``headers``, ``multiValueHeaders``,
  ``requestContext`` with ``disconnectStatusCode: null``, ``messageId: null``, ``eventType: "CONNECT"``),
  plus ``queryStringParameters``/``multiValueQueryStringParameters`` when the URL has a query string.
* ``MESSAGE``: aws/aws-lambda-go ``events/testdata/apigw-websocket-request-send-message.json``
  (no headers; ``body`` and ``isBase64Encoded: false``).
* ``$disconnect``: aws/aws-lambda-go ``events/testdata/apigw-websocket-request-disconnect.json``
  (a reduced header set: ``Host``, ``x-api-key``, ``X-Forwarded-For``, ``x-restapi``, and
  ``disconnectStatusCode``/``disconnectReason`` in ``requestContext``).
* Error frames sent to the client: ``{"message": "Forbidden", "connectionId":"...", "requestId":"..."}``
  (aws-samples/simple-websockets-chat-app#24, no matching route) and the same shape with
  ``"Internal server error"`` when the integration fails (nearst/laconia#41,
  aws-samples/simple-websockets-chat-app#42). The odd spacing is AWS's and is reproduced byte for byte.

Rules:
    * Connection and request ids look like AWS's: 11 random bytes, URL-safe base64, so they end in ``=``
      (``R1kmxc2VNjMCFIA=``, ``JC1dgf9yoAMCK-g=``). The ``=`` makes clients URL-encode them (``%3D``).
    * ``requestTime`` is the CLF-style ``20/Jan/2024:11:55:08 +0000`` built without the C locale;
      epochs are integer milliseconds.
    * Every builder returns a new dict: integrations may mutate their event.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ConnectionInfo",
    "connect_event",
    "disconnect_event",
    "epoch_ms",
    "error_frame",
    "iso_timestamp",
    "message_event",
    "new_id",
    "request_time",
]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ID_BYTES = 11


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectionInfo:
    """What API Gateway knows about a connection from its upgrade request; fixed for its lifetime.

    Attributes:
        connection_id: The AWS-style id used by ``@connections``.
        connected_at: Epoch milliseconds of the upgrade request (``requestContext.connectedAt``).
        source_ip: TCP peer address (``identity.sourceIp``).
        user_agent: ``User-Agent`` of the upgrade request, ``""`` when absent (``identity.userAgent``).
        domain_name: The ``Host`` the client connected to (``requestContext.domainName``).
        stage: Stage name (``requestContext.stage``).
        api_id: API id (``requestContext.apiId``).
    """

    connection_id: str
    connected_at: int
    source_ip: str
    user_agent: str
    domain_name: str
    stage: str
    api_id: str


def new_id() -> str:
    """Return a fresh AWS-style connection/request id such as ``L0SM9cOFvHcCIhw=``."""
    return base64.urlsafe_b64encode(os.urandom(_ID_BYTES)).decode("ascii")


def epoch_ms() -> int:
    """Return the current wall-clock time in integer epoch milliseconds."""
    return time.time_ns() // 1_000_000


def request_time(ms: int) -> str:
    """Format epoch milliseconds as ``requestContext.requestTime`` (``20/Jan/2024:11:55:08 +0000``)."""
    t = time.gmtime(ms / 1000)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def iso_timestamp(ms: int) -> str:
    """Format epoch milliseconds as the ISO 8601 ``@connections`` GET timestamps (``...T11:54:57.419Z``)."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _request_context(info: ConnectionInfo, route_key: str, event_type: str) -> dict[str, Any]:
    now = epoch_ms()
    request_id = new_id()
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": request_time(now),
        "messageDirection": "IN",
        "stage": info.stage,
        "connectedAt": info.connected_at,
        "requestTimeEpoch": now,
        "identity": {"userAgent": info.user_agent, "sourceIp": info.source_ip},
        "requestId": request_id,
        "domainName": info.domain_name,
        "connectionId": info.connection_id,
        "apiId": info.api_id,
    }


def _multi(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        single[key] = value  # the last value wins, as in API Gateway's single-value maps
        multi.setdefault(key, []).append(value)
    return single, multi


def connect_event(
    info: ConnectionInfo,
    headers: Iterable[tuple[str, str]],
    query: Iterable[tuple[str, str]],
    *,
    forwarded_port: int,
) -> dict[str, Any]:
    """Build the ``$connect`` event for an upgrade request.

    Args:
        info: The pending connection.
        headers: Upgrade request headers in arrival order, original case.
        query: Decoded query string pairs in order.
        forwarded_port: Local port, reported as ``X-Forwarded-Port`` like AWS's edge does.

    Returns:
        The event; query keys are present only when the URL had a query string.
    """
    pairs = list(headers)
    names = {key.lower() for key, _ in pairs}
    edge = (
        ("X-Forwarded-For", info.source_ip),
        ("X-Forwarded-Port", str(forwarded_port)),
        ("X-Forwarded-Proto", "http"),
    )
    pairs.extend(item for item in edge if item[0].lower() not in names)
    single, multi = _multi(pairs)
    context = _request_context(info, "$connect", "CONNECT")
    context.update(disconnectStatusCode=None, messageId=None)
    event: dict[str, Any] = {"headers": single, "multiValueHeaders": multi}
    query_single, query_multi = _multi(query)
    if query_single:
        event["queryStringParameters"] = query_single
        event["multiValueQueryStringParameters"] = query_multi
    event["requestContext"] = context
    event["isBase64Encoded"] = False
    return event


def message_event(info: ConnectionInfo, route_key: str, body: str) -> dict[str, Any]:
    """Build the ``MESSAGE`` event for one inbound text message routed to ``route_key``."""
    context = _request_context(info, route_key, "MESSAGE")
    context["messageId"] = new_id()
    return {"requestContext": context, "body": body, "isBase64Encoded": False}


def disconnect_event(info: ConnectionInfo, code: int, reason: str) -> dict[str, Any]:
    """Build the ``$disconnect`` event for a connection that ended with close ``code``/``reason``."""
    headers = {"Host": info.domain_name, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
    context = _request_context(info, "$disconnect", "DISCONNECT")
    context.update(disconnectStatusCode=code, disconnectReason=reason)
    return {
        "headers": headers,
        "multiValueHeaders": {key: [value] for key, value in headers.items()},
        "requestContext": context,
        "isBase64Encoded": False,
    }


def error_frame(message: str, connection_id: str, request_id: str) -> str:
    """Return the text frame API Gateway sends a client when it cannot deliver its message.

    Args:
        message: ``"Forbidden"`` (no route), ``"Internal server error"`` (integration failed) or
            ``"Endpoint request timed out"`` (integration timeout).
        connection_id: The client's connection id.
        request_id: The id of the failed request.

    Returns:
        ``{"message": "Forbidden", "connectionId":"...", "requestId":"..."}`` with AWS's spacing.
    """
    return (
        f'{{"message": {json.dumps(message)}, "connectionId":{json.dumps(connection_id)}, '
        f'"requestId":{json.dumps(request_id)}}}'
    )
