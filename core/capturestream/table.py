"""DynamoDB single-table design: key schema, item layout, and model ↔ item mapping (pure; no client).

The table (``MediaTable`` in template.yaml) has a string partition key ``pk``, a string sort key ``sk``, one
overloaded global secondary index ``gsi1`` (``gsi1pk``/``gsi1sk``), a TTL attribute ``expires_at`` (epoch
seconds) and a stream with new and old images.

Item layout (later issues add streams, sessions, connections, chat under their own ``pk`` prefixes)::

    entity     pk                  sk          gsi1pk            gsi1sk
    channel    CHANNEL#<id>        CHANNEL     OWNER#<owner>     CHANNEL#<created_at>#<id>
    session    SESSION#<id>        SESSION     STREAMS#<status>  <started_at>#<id>
    connection CONN#<id>           CONN        -                 -            (expires_at = TTL)

Rules:
- Items are produced and read in DynamoDB's wire format (``{"S": ...}`` attribute values) so the same mapping
  serves boto3 clients in functions and aiobotocore clients in the ingest node; nothing here imports either.
- Every attribute name used in an expression goes through ``#names`` (DynamoDB reserved words).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from .models import Channel

PK = "pk"
SK = "sk"
GSI1 = "gsi1"
GSI1_PK = "gsi1pk"
GSI1_SK = "gsi1sk"
TTL_ATTRIBUTE = "expires_at"

CHANNEL_PREFIX = "CHANNEL#"
SESSION_PREFIX = "SESSION#"
SESSION_SK = "SESSION"
STREAMS_BY_STATUS_PREFIX = "STREAMS#"
CONNECTION_PREFIX = "CONN#"
CONNECTION_SK = "CONN"
CHANNEL_SK = "CHANNEL"
OWNER_PREFIX = "OWNER#"

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]


def serialize(value: Any) -> AttributeValue:
    """One Python value → a DynamoDB attribute value (``str``, numbers, bool, None, datetime, dict, list)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int | float | Decimal):
        return {"N": str(value)}
    if isinstance(value, datetime):
        return {"S": value.isoformat()}
    if isinstance(value, Mapping):
        return {"M": {str(k): serialize(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [serialize(v) for v in value]}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def deserialize(value: AttributeValue) -> Any:
    """One DynamoDB attribute value → a Python value (numbers become ``int`` or ``float``)."""
    ((tag, raw),) = value.items()
    if tag == "S":
        return raw
    if tag == "N":
        number = Decimal(raw)
        return int(number) if number == number.to_integral_value() else float(number)
    if tag == "BOOL":
        return bool(raw)
    if tag == "NULL":
        return None
    if tag == "M":
        return {k: deserialize(v) for k, v in raw.items()}
    if tag == "L":
        return [deserialize(v) for v in raw]
    raise TypeError(f"unsupported DynamoDB type {tag!r}")


def to_item(attributes: Mapping[str, Any]) -> Item:
    """A flat mapping of Python values → a DynamoDB item (``None`` values are left out)."""
    return {name: serialize(value) for name, value in attributes.items() if value is not None}


def from_item(item: Mapping[str, AttributeValue]) -> dict[str, Any]:
    """A DynamoDB item → a mapping of Python values."""
    return {name: deserialize(value) for name, value in item.items()}


def channel_key(channel_id: str) -> Item:
    """Primary key of a channel item."""
    return {PK: {"S": f"{CHANNEL_PREFIX}{channel_id}"}, SK: {"S": CHANNEL_SK}}


def session_key(session_id: str) -> Item:
    """Primary key of a session (broadcast) item."""
    return {PK: {"S": f"{SESSION_PREFIX}{session_id}"}, SK: {"S": SESSION_SK}}


def connection_key(connection_id: str) -> Item:
    """Primary key of a WebSocket connection item."""
    return {PK: {"S": f"{CONNECTION_PREFIX}{connection_id}"}, SK: {"S": CONNECTION_SK}}


def connection_to_item(attributes: Mapping[str, Any]) -> Item:
    """A WebSocket connection's attributes (``connection_id``, ``expires_at``, ...) → its item."""
    return to_item(
        {
            PK: f"{CONNECTION_PREFIX}{attributes['connection_id']}",
            SK: CONNECTION_SK,
            "entity": "connection",
            **attributes,
        }
    )


def streams_by_status_query(status: str, limit: int = 100) -> dict[str, Any]:
    """Keyword arguments for ``Query`` listing sessions of one status, newest first."""
    return {
        "IndexName": GSI1,
        "KeyConditionExpression": "#gpk = :status",
        "ExpressionAttributeNames": {"#gpk": GSI1_PK},
        "ExpressionAttributeValues": {":status": {"S": streams_by_status(status)}},
        "ScanIndexForward": False,
        "Limit": limit,
    }


def streams_by_status(status: str) -> str:
    """``gsi1pk`` value under which sessions of one status are listed, newest first by ``gsi1sk``."""
    return f"{STREAMS_BY_STATUS_PREFIX}{status}"


def channel_to_item(channel: Channel) -> Item:
    """A channel → its DynamoDB item (the stream key appears only as its hash)."""
    fields = channel.model_dump()
    return to_item(
        {
            PK: f"{CHANNEL_PREFIX}{channel.channel_id}",
            SK: CHANNEL_SK,
            GSI1_PK: f"{OWNER_PREFIX}{channel.owner}",
            GSI1_SK: f"{CHANNEL_PREFIX}{channel.created_at.isoformat()}#{channel.channel_id}",
            "entity": "channel",
            **fields,
        }
    )


def channel_from_item(item: Mapping[str, AttributeValue]) -> Channel:
    """A channel item → :class:`Channel` (raises pydantic's ValidationError on a corrupt item)."""
    return Channel.model_validate(from_item(item))


def owner_channels_query(owner: str) -> dict[str, Any]:
    """Keyword arguments for ``Query`` listing an owner's channels, oldest first."""
    return {
        "IndexName": GSI1,
        "KeyConditionExpression": "#gpk = :owner AND begins_with(#gsk, :prefix)",
        "ExpressionAttributeNames": {"#gpk": GSI1_PK, "#gsk": GSI1_SK},
        "ExpressionAttributeValues": {":owner": {"S": f"{OWNER_PREFIX}{owner}"}, ":prefix": {"S": CHANNEL_PREFIX}},
    }


def put_new_condition() -> dict[str, Any]:
    """Condition arguments that make a ``PutItem`` fail when the item already exists."""
    return {"ConditionExpression": "attribute_not_exists(#pk)", "ExpressionAttributeNames": {"#pk": PK}}


def rotate_key_update(channel: Channel, previous_hash: str) -> dict[str, Any]:
    """``UpdateItem`` arguments storing ``channel``'s new key hash, only if the stored hash is still ``previous_hash``.

    The condition makes concurrent rotations safe: exactly one wins, the other gets ConditionalCheckFailed.
    """
    return {
        "Key": channel_key(channel.channel_id),
        "UpdateExpression": "SET #h = :new, #r = :rotated",
        "ConditionExpression": "#h = :old",
        "ExpressionAttributeNames": {"#h": "stream_key_hash", "#r": "key_rotated_at"},
        "ExpressionAttributeValues": {
            ":new": {"S": channel.stream_key_hash},
            ":old": {"S": previous_hash},
            ":rotated": {"S": channel.key_rotated_at.isoformat()},
        },
    }
