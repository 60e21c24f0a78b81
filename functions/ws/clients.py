"""AWS clients of the WebSocket function, built once per execution environment and reused across warm starts.

They come from the standard AWS environment (``AWS_ENDPOINT_URL`` and friends) plus ``WS_ENDPOINT`` for the
``@connections`` management API; tests point them at moto and the devstack gateway through the same variables
and call :func:`reset` after changing them.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

import boto3

from capturestream import messages
from capturestream.settings import WsSettings, get_settings

log = logging.getLogger(__name__)


@cache
def dynamodb() -> Any:
    """The DynamoDB client."""
    return boto3.client("dynamodb")


@cache
def management() -> Any:
    """The API Gateway ``@connections`` client of this stage."""
    return boto3.client("apigatewaymanagementapi", endpoint_url=get_settings(WsSettings).ws_endpoint)


def reset() -> None:
    """Forget the clients (tests, after changing the environment)."""
    dynamodb.cache_clear()
    management.cache_clear()


def send(connection_id: str, message: Any) -> None:
    """Post one server message to a connection; a connection that is already gone is ignored."""
    client = management()
    try:
        client.post_to_connection(ConnectionId=connection_id, Data=messages.encode(message).encode("utf-8"))
    except client.exceptions.GoneException:
        log.info("connection gone before reply", extra={"connection_id": connection_id})
