"""What each WebSocket route does: connection items, token check, and answers to client messages.

Clients (DynamoDB, API Gateway management) are built once per execution environment from the standard AWS
environment and ``WS_ENDPOINT``; tests point them at moto and the devstack gateway through the same variables.
"""

from __future__ import annotations

import logging
import time
from functools import cache
from typing import Any

import boto3

from capturestream import messages, table, tokens
from capturestream.errors import NotSupported, Unauthorized
from capturestream.settings import WsSettings, get_settings

log = logging.getLogger(__name__)

#: API Gateway closes every WebSocket after 2 hours; the item outlives that by a margin, then TTL removes it.
CONNECTION_TTL_SECONDS = 2 * 3600 + 10 * 60
#: Most live streams a ``streamList`` answer carries.
STREAM_LIST_LIMIT = 100


@cache
def _dynamodb() -> Any:
    return boto3.client("dynamodb")


@cache
def _management() -> Any:
    return boto3.client("apigatewaymanagementapi", endpoint_url=get_settings(WsSettings).ws_endpoint)


def connect(connection_id: str, event: dict) -> dict:
    """Store the connection; refuse it (401) when a token is given but invalid."""
    settings = get_settings(WsSettings)
    token = (event.get("queryStringParameters") or {}).get("token")
    user = None
    if token:
        try:
            if settings.jwt_secret is None:
                raise Unauthorized("tokens are not accepted here")
            user = tokens.verify_token(settings.jwt_secret.get_secret_value(), token)
        except Unauthorized:
            return {"statusCode": 401}
    identity = event["requestContext"].get("identity") or {}
    now = int(time.time())
    item = table.connection_to_item(
        {
            "connection_id": connection_id,
            "user_id": user.id if user else None,
            "user_name": user.name if user else None,
            "role": "viewer",
            "source_ip": identity.get("sourceIp"),
            "connected_at": now,
            table.TTL_ATTRIBUTE: now + CONNECTION_TTL_SECONDS,
        }
    )
    _dynamodb().put_item(TableName=settings.table_name, Item=item)
    return {"statusCode": 200}


def disconnect(connection_id: str) -> None:
    """Forget the connection (idempotent: a repeated ``$disconnect`` is harmless)."""
    _dynamodb().delete_item(TableName=get_settings(WsSettings).table_name, Key=table.connection_key(connection_id))


def on_message(connection_id: str, message: Any) -> None:
    """Act on one validated client message."""
    settings = get_settings(WsSettings)
    if isinstance(message, messages.HeartbeatMessage):
        _touch(connection_id, settings, {})
    elif isinstance(message, messages.RegisterMessage):
        _touch(connection_id, settings, {"role": message.role})
    elif isinstance(message, messages.GetStreamsMessage):
        send(connection_id, messages.StreamListMessage(streams=tuple(_live_streams(settings))))
    else:
        raise NotSupported(f"{message.type!r} messages are not supported by this deployment yet")


def send(connection_id: str, message: Any) -> None:
    """Post one server message to a connection; a connection that is already gone is ignored."""
    client = _management()
    try:
        client.post_to_connection(ConnectionId=connection_id, Data=messages.encode(message).encode("utf-8"))
    except client.exceptions.GoneException:
        log.info("connection gone before reply", extra={"connection_id": connection_id})


def _touch(connection_id: str, settings: WsSettings, fields: dict[str, Any]) -> None:
    now = int(time.time())
    values = {"last_seen_at": now, table.TTL_ATTRIBUTE: now + CONNECTION_TTL_SECONDS, **fields}
    names = {f"#a{i}": name for i, name in enumerate(values)}
    client = _dynamodb()
    try:
        client.update_item(
            TableName=settings.table_name,
            Key=table.connection_key(connection_id),
            UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values))),
            ConditionExpression="attribute_exists(#pk)",
            ExpressionAttributeNames={**names, "#pk": table.PK},
            ExpressionAttributeValues={f":v{i}": table.serialize(v) for i, v in enumerate(values.values())},
        )
    except client.exceptions.ConditionalCheckFailedException:  # item already expired or deleted
        log.info("message from an unknown connection", extra={"connection_id": connection_id})


def _live_streams(settings: WsSettings) -> list[messages.StreamSummary]:
    response = _dynamodb().query(
        TableName=settings.table_name, **table.streams_by_status_query("live", STREAM_LIST_LIMIT)
    )
    summaries = []
    for item in response.get("Items", []):
        session = table.from_item(item)
        summaries.append(
            messages.StreamSummary(
                stream_id=session["playback_id"],
                status=session["status"],
                playback_url=f"{settings.cdn_base_url}/{session['playlist_path']}",
                started_at=session.get("started_at"),
            )
        )
    return summaries
