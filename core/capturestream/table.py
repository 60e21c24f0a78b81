"""DynamoDB single-table design: key schema, item layout, and model ↔ item mapping (pure; no client).

The table (``MediaTable`` in template.yaml) has a string partition key ``pk``, a string sort key ``sk``, one
overloaded global secondary index ``gsi1`` (``gsi1pk``/``gsi1sk``), a TTL attribute ``expires_at`` (epoch
seconds) and a stream with new and old images.

Item layout::

    entity        pk                    sk                      gsi1pk              gsi1sk
    channel       CHANNEL#<id>          CHANNEL                 OWNER#<owner>       CHANNEL#<created_at>#<id>
    stream        STREAM#<playback_id>  STREAM                  STREAMS#<status>    <started_at>#<playback_id>
    subscription  STREAM#<playback_id>  SUB#<connection_id>     -                   -      (expires_at = TTL)
    session       SESSION#<id>          SESSION                 BROADCASTS#<pb_id>  <started_at>#<id>  (+ health rows)
    chat          CHAT#<session_id>     <media_ms>#<message_id> -                   -
    connection    CONN#<id>             CONN                    LOBBY (registered)  <id>   (expires_at = TTL)

- A *stream* is a channel's public face (its playback id): the state of its latest broadcast, its viewer count
  and thumbnail. A *session* is one broadcast. Subscriptions share the stream's partition, so one ``Query``
  returns a stream's audience and DynamoDB Streams delivers a stream's changes in order (same shard).
- Chat messages sort by media time (milliseconds since the broadcast started, zero-padded) so a VOD can replay
  them with a range query.
- Connections that sent ``register`` are listed under ``LOBBY``: they get every ``streamLive``/``streamEnded``.

Rules:
- Items are produced and read in DynamoDB's wire format (``{"S": ...}`` attribute values) so the same mapping
  serves boto3 clients in functions and aiobotocore clients in the ingest node; nothing here imports either.
- Every attribute name used in an expression goes through ``#names`` (DynamoDB reserved words).
- A half-written item reads as absent (:func:`read_model`): an item missing an attribute its read model
  requires is what a reader sees while another writer's ``UpdateItem`` creates it (moto shows the bare keys
  first), so readers answer 404 or skip it in a list, never 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel

from .models import Channel, HealthSample

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
STREAM_PREFIX = "STREAM#"
STREAM_SK = "STREAM"
SUBSCRIPTION_PREFIX = "SUB#"
BROADCASTS_PREFIX = "BROADCASTS#"
CHAT_PREFIX = "CHAT#"
LOBBY = "LOBBY"
#: Digits of the zero-padded media time (milliseconds) in chat sort keys: up to ~31 years.
MEDIA_MS_DIGITS = 12
#: Largest media time a chat sort key can hold.
MAX_MEDIA_MS = 10**MEDIA_MS_DIGITS - 1
CHANNEL_SK = "CHANNEL"
OWNER_PREFIX = "OWNER#"
#: Stream-item attribute holding the channel's name as its owner last set it (:func:`stream_title_update`); the
#: catalog's manifests carry the name from when the broadcast started, so this one wins over theirs.
CHANNEL_NAME = "channel_name"

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
    if tag == "SS":
        return set(raw)
    raise TypeError(f"unsupported DynamoDB type {tag!r}")


def to_item(attributes: Mapping[str, Any]) -> Item:
    """A flat mapping of Python values → a DynamoDB item (``None`` values are left out)."""
    return {name: serialize(value) for name, value in attributes.items() if value is not None}


def from_item(item: Mapping[str, AttributeValue]) -> dict[str, Any]:
    """A DynamoDB item → a mapping of Python values."""
    return {name: deserialize(value) for name, value in item.items()}


Model = TypeVar("Model", bound=BaseModel)


def read_model(model: type[Model], item: Mapping[str, AttributeValue] | None) -> Model | None:
    """An item → ``model``, or None when there is no item or it is half-written.

    Half-written means an attribute that ``model`` requires (a field without a default) is missing or NULL:
    another writer's ``UpdateItem`` is creating the item, and until it lands the item does not exist for readers.

    Raises:
        pydantic.ValidationError: when every required attribute is there but some value is invalid (a corrupt
            item: that is a bug to see, not a moment to wait out).
    """
    if not item:
        return None
    attributes = from_item(item)
    for name, field in model.model_fields.items():
        if field.is_required() and attributes.get(field.alias or name) is None:
            return None
    return model.model_validate(attributes)


#: Session-item attribute holding the broadcast's live health series (:func:`health_row`), oldest first, and the
#: counter that makes its read-merge-write safe (``catalog.health_update``).
HEALTH = "health"
HEALTH_VERSION = "health_version"


def health_row(sample: HealthSample) -> list[int | float | None]:
    """A health sample as stored on a session item: ``[t in epoch ms, kbps, fps, keyframe interval s]``.

    Rows keep 120 samples near 3 KB, so reading the session item for the stream detail stays one or two read
    units; the time in milliseconds is the sample's identity when manifests are merged.
    """
    return [
        round(sample.t.timestamp() * 1000),
        sample.bitrate_kbps,
        sample.frame_rate,
        sample.keyframe_interval,
    ]


def health_sample(row: list[Any]) -> HealthSample:
    """A stored row → the sample (raises pydantic's ValidationError on a malformed row)."""
    t, bitrate_kbps, frame_rate, keyframe_interval = row
    return HealthSample(
        t=datetime.fromtimestamp(t / 1000, UTC),
        bitrate_kbps=bitrate_kbps,
        frame_rate=frame_rate,
        keyframe_interval=keyframe_interval,
    )


def channel_key(channel_id: str) -> Item:
    """Primary key of a channel item."""
    return {PK: {"S": f"{CHANNEL_PREFIX}{channel_id}"}, SK: {"S": CHANNEL_SK}}


def session_key(session_id: str) -> Item:
    """Primary key of a session (broadcast) item."""
    return {PK: {"S": f"{SESSION_PREFIX}{session_id}"}, SK: {"S": SESSION_SK}}


def connection_key(connection_id: str) -> Item:
    """Primary key of a WebSocket connection item."""
    return {PK: {"S": f"{CONNECTION_PREFIX}{connection_id}"}, SK: {"S": CONNECTION_SK}}


def stream_key(playback_id: str) -> Item:
    """Primary key of a stream item (one per playback id)."""
    return {PK: {"S": f"{STREAM_PREFIX}{playback_id}"}, SK: {"S": STREAM_SK}}


def subscription_key(playback_id: str, connection_id: str) -> Item:
    """Primary key of one connection's subscription to a stream."""
    return {PK: {"S": f"{STREAM_PREFIX}{playback_id}"}, SK: {"S": f"{SUBSCRIPTION_PREFIX}{connection_id}"}}


def subscription_to_item(playback_id: str, connection_id: str, viewer: str, expires_at: int) -> Item:
    """A subscription item: who watches (``viewer`` de-duplicates one person's connections) and until when."""
    return to_item(
        {
            **{name: value["S"] for name, value in subscription_key(playback_id, connection_id).items()},
            "entity": "subscription",
            "playback_id": playback_id,
            "connection_id": connection_id,
            "viewer": viewer,
            TTL_ATTRIBUTE: expires_at,
        }
    )


def subscriptions_query(playback_id: str) -> dict[str, Any]:
    """Keyword arguments for ``Query`` listing a stream's subscriptions (paginate with ``ExclusiveStartKey``)."""
    return {
        "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :sub)",
        "ExpressionAttributeNames": {"#pk": PK, "#sk": SK, "#c": "connection_id", "#v": "viewer"},
        "ExpressionAttributeValues": {
            ":pk": {"S": f"{STREAM_PREFIX}{playback_id}"},
            ":sub": {"S": SUBSCRIPTION_PREFIX},
        },
        "ProjectionExpression": "#c, #v",
    }


def lobby_query() -> dict[str, Any]:
    """Keyword arguments for ``Query`` on ``gsi1`` listing every registered connection."""
    return {
        "IndexName": GSI1,
        "KeyConditionExpression": "#gpk = :lobby",
        "ExpressionAttributeNames": {"#gpk": GSI1_PK, "#c": "connection_id"},
        "ExpressionAttributeValues": {":lobby": {"S": LOBBY}},
        "ProjectionExpression": "#c",
    }


def chat_sort_key(media_ms: int, message_id: str) -> str:
    """Sort key of a chat message: zero-padded media time, then its id (unique, time-ordered)."""
    return f"{min(max(media_ms, 0), MAX_MEDIA_MS):0{MEDIA_MS_DIGITS}d}#{message_id}"


def chat_partition(session_id: str) -> str:
    """Partition key holding one broadcast's chat."""
    return f"{CHAT_PREFIX}{session_id}"


def chat_range_query(session_id: str, from_ms: int, to_ms: int, limit: int) -> dict[str, Any]:
    """Keyword arguments for ``Query`` returning a broadcast's chat with media time in ``[from_ms, to_ms)``."""
    return {
        "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :lo AND :hi",
        "ExpressionAttributeNames": {"#pk": PK, "#sk": SK},
        "ExpressionAttributeValues": {
            ":pk": {"S": chat_partition(session_id)},
            ":lo": {"S": f"{min(max(from_ms, 0), MAX_MEDIA_MS):0{MEDIA_MS_DIGITS}d}#"},
            # '#' sorts before every id character; past the largest time, '~' sorts after every digit.
            ":hi": {"S": f"{max(to_ms, 0):0{MEDIA_MS_DIGITS}d}#" if to_ms <= MAX_MEDIA_MS else "~"},
        },
        "Limit": limit,
    }


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


def string_set(*values: str) -> AttributeValue:
    """A string-set attribute value (``ADD``/``DELETE`` operands); DynamoDB has no empty sets."""
    if not values:
        raise ValueError("a DynamoDB string set cannot be empty")
    return {"SS": sorted(set(values))}


def connection_forget_keys(connection: Mapping[str, AttributeValue]) -> list[Item]:
    """Keys to delete when a connection is gone: its subscriptions, then the connection item itself."""
    attributes = from_item(connection)
    connection_id = attributes["connection_id"]
    keys = [subscription_key(pb, connection_id) for pb in sorted(attributes.get("subscriptions") or ())]
    return [*keys, connection_key(connection_id)]


def streams_by_status_query(status: str, limit: int = 100) -> dict[str, Any]:
    """Keyword arguments for ``Query`` listing streams of one status, newest broadcast first."""
    return {
        "IndexName": GSI1,
        "KeyConditionExpression": "#gpk = :status",
        "ExpressionAttributeNames": {"#gpk": GSI1_PK},
        "ExpressionAttributeValues": {":status": {"S": streams_by_status(status)}},
        "ScanIndexForward": False,
        "Limit": limit,
    }


def streams_by_status(status: str) -> str:
    """``gsi1pk`` value under which streams of one status are listed, newest first by ``gsi1sk``."""
    return f"{STREAMS_BY_STATUS_PREFIX}{status}"


def broadcasts_of(playback_id: str) -> str:
    """``gsi1pk`` value under which a stream's sessions (broadcasts) are listed, newest first by ``gsi1sk``."""
    return f"{BROADCASTS_PREFIX}{playback_id}"


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


def read_channel(item: Mapping[str, AttributeValue] | None) -> Channel | None:
    """A channel item → :class:`Channel`, or None when there is none or it is half-written (:func:`read_model`)."""
    return read_model(Channel, item)


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


def channel_update(
    channel_id: str, owner: str, *, name: str | None = None, wait_on_unpublish: bool | None = None
) -> dict[str, Any]:
    """``UpdateItem`` arguments changing a channel's settings (those given), only if it exists and belongs to
    ``owner``.

    Returns the whole new item (``ALL_NEW``); ConditionalCheckFailed means "no such channel of yours".
    """
    names = {"#pk": PK, "#owner": "owner"}
    values: dict[str, AttributeValue] = {":owner": {"S": owner}}
    sets = []
    for field, value in (("name", name), ("wait_on_unpublish", wait_on_unpublish)):
        if value is not None:
            names[f"#{field}"] = field
            values[f":{field}"] = serialize(value)
            sets.append(f"#{field} = :{field}")
    if not sets:
        raise ValueError("channel_update needs at least one field to set")
    return {
        "Key": channel_key(channel_id),
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": "attribute_exists(#pk) AND #owner = :owner",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnValues": "ALL_NEW",
    }


def end_stream_update(channel_id: str, owner: str, requested_at: datetime) -> dict[str, Any]:
    """``UpdateItem`` arguments recording an owner's end-stream request (``end_requested_at``), only if the channel
    exists and belongs to ``owner``; the ingest node watches the field (ConditionalCheckFailed: not yours).
    """
    return {
        "Key": channel_key(channel_id),
        "UpdateExpression": "SET #end = :end",
        "ConditionExpression": "attribute_exists(#pk) AND #owner = :owner",
        "ExpressionAttributeNames": {"#end": "end_requested_at", "#pk": PK, "#owner": "owner"},
        "ExpressionAttributeValues": {":end": {"S": requested_at.isoformat()}, ":owner": {"S": owner}},
        "ReturnValues": "ALL_NEW",
    }


def stream_title_update(playback_id: str, name: str) -> dict[str, Any]:
    """``UpdateItem`` arguments showing a renamed channel's name on its stream item, if it has one.

    Sets the title and :data:`CHANNEL_NAME`, which the catalog prefers over the (older) title in the manifests of
    a broadcast that is still going. The condition keeps a channel that never went live without a stream item
    (an item of bare keys and a title would be a half-written one). ConditionalCheckFailed: no stream yet.
    """
    return {
        "Key": stream_key(playback_id),
        "UpdateExpression": "SET #title = :name, #channel_name = :name",
        "ConditionExpression": "attribute_exists(#sid)",
        "ExpressionAttributeNames": {"#title": "title", "#channel_name": CHANNEL_NAME, "#sid": "session_id"},
        "ExpressionAttributeValues": {":name": {"S": name}},
    }
