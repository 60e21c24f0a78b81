"""Raw Lambda payloads → typed domain events: the only module that reads an S3/SQS/EventBridge event.

Handlers call :func:`parse` (or :func:`parse_sqs` when they report ``batchItemFailures``) on their first line
(house rule 7); nothing after that line indexes ``event["Records"][0]...``.

Accepted payloads, each as a direct Lambda event and wrapped in an SQS Lambda event (record ``body`` = the JSON):

- S3 event notifications ``{"Records": [{"eventSource": "aws:s3", "s3": {...}}]}`` from AWS, moto and
  LocalStack, and MinIO's webhook body ``{"EventName", "Key", "Records": [...]}`` (``eventSource minio:s3``);
- EventBridge ``Object Created`` events (``source aws.s3``) from AWS, moto and LocalStack;
- SNS-wrapped versions of both (a Lambda SNS event, or an SNS envelope in an SQS body);
- ``s3:TestEvent`` messages, which S3 sends when a notification configuration is saved (skipped).

Rules:
- **Keys are decoded exactly once, here.** S3 notification keys (AWS, moto, LocalStack, MinIO, SNS-wrapped) are
  form-encoded: AWS writes ``red flower.jpg`` as ``red+flower.jpg`` and a literal ``+`` as ``%2B`` (S3 user guide,
  "Event message structure"); moto also encodes ``/`` as ``%2F`` and LocalStack writes spaces as ``%20``. One
  plus-aware unquote in :func:`_notification_key` decodes all of them.
  **EventBridge keys are raw**: AWS does not encode ``detail.object.key`` (real events carry ``:`` and spaces
  unencoded; a key ``%2B++ %20.mp3`` arrives verbatim) and moto passes the key through, so EventBridge keys are
  never decoded: decoding them would turn a literal ``+`` into a space. LocalStack percent-encodes EventBridge
  keys (``quote(key)``); that emulator difference is invisible for layout keys, which are all URL-safe
  (``keys.NAME_PATTERN``), so the AWS behaviour wins.
- ``event_name`` is normalised to the S3 notification spelling, e.g. ``ObjectCreated:Put``: MinIO's ``s3:``
  prefix is stripped and EventBridge ``detail.reason`` is mapped (:data:`_REASONS`).
- Keys outside the layout, derived keys (``thumbs/``), other event types and TestEvents are **skipped with one
  log line each, never raised** (keys are logged with ``%r`` and as the ``key`` extra, so a key with a newline
  cannot forge log lines), so a foreign object in the bucket cannot poison a batch. A malformed SQS body
  is skipped the same way (logged as a warning). A payload that is no SQS/SNS/S3/EventBridge event at all raises
  :class:`~capturestream.errors.InvalidEvent`: that is a wiring bug, not data.
- Delivery is at-least-once and emitters duplicate: moto reports a multipart upload twice (``ObjectCreated:Put``
  then ``ObjectCreated:CompleteMultipartUpload``), S3 itself may redeliver. Events carry ``bucket``, ``key``,
  ``etag``, ``size`` and (when the emitter sends one) ``sequencer`` so consumers can be idempotent: the same
  ``(key, etag, size)`` is the same content; ``sequencer`` orders events for one key (hex, compare after
  left-padding) but moto's EventBridge sends a constant one and its notifications none, so never rely on it alone.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import keys
from .errors import InvalidEvent, InvalidKey

logger = logging.getLogger(__name__)

#: EventBridge ``detail.reason`` for ``Object Created`` → the S3 notification event name (S3 user guide,
#: "Using EventBridge"). moto sends the bare ``ObjectCreated`` for every creation, so it maps to a Put.
_REASONS = {
    "PutObject": "ObjectCreated:Put",
    "POST Object": "ObjectCreated:Post",
    "PostObject": "ObjectCreated:Post",
    "CopyObject": "ObjectCreated:Copy",
    "CompleteMultipartUpload": "ObjectCreated:CompleteMultipartUpload",
    "ObjectCreated": "ObjectCreated:Put",
}
_CREATED_PREFIX = "ObjectCreated:"
_S3_SOURCES = ("aws:s3", "minio:s3")


class Event:
    """Base class of the events this module produces. Concrete events are final: don't subclass them."""

    __slots__ = ()


@dataclass(frozen=True, kw_only=True)
class ObjectCreated(Event):
    """One object-created record, normalised across emitters.

    Attributes:
        bucket: bucket name.
        key: the object key exactly as stored (decoded once, see the module rules).
        size: object size in bytes, or None when the emitter omits it.
        etag: ETag without quotes (``…-N`` for multipart uploads), or None.
        sequencer: S3's per-key ordering token (hex string), or None (moto notifications omit it).
        event_time: when S3 processed the request (UTC), or None when absent or unparsable.
        event_name: ``ObjectCreated:Put`` / ``:Post`` / ``:Copy`` / ``:CompleteMultipartUpload``.
    """

    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    sequencer: str | None = None
    event_time: datetime | None = None
    event_name: str = "ObjectCreated:Put"

    def __post_init__(self) -> None:
        for name in ("bucket", "key", "event_name"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise InvalidEvent(f"object-created record needs a non-empty {name}")
        if not self.event_name.startswith(_CREATED_PREFIX):
            raise InvalidEvent(f"not an object-created event name: {self.event_name!r}")
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int)):
            raise InvalidEvent(f"object size must be an integer, got {self.size!r}")
        if self.size is not None and self.size < 0:
            raise InvalidEvent(f"object size must be >= 0, got {self.size}")


@dataclass(frozen=True, kw_only=True)
class MediaObjectCreated(Event):
    """An object of the CaptureStream key layout was created.

    Attributes:
        object: the normalised record.
        media_key: ``keys.decode(object.key)``: which segment, manifest, playlist or recording it is.
    """

    object: ObjectCreated
    media_key: keys.MediaKey

    def __post_init__(self) -> None:
        if self.media_key.key != self.object.key:
            raise InvalidEvent(f"media key {self.media_key.key!r} does not match object key {self.object.key!r}")


@dataclass(frozen=True, kw_only=True)
class SqsItem:
    """The domain events of one SQS message, kept together so a handler can report ``batchItemFailures``.

    Attributes:
        message_id: the SQS ``messageId`` (the ``itemIdentifier`` of a partial batch failure).
        events: the media events in the message body; empty when the body was skipped (TestEvent, foreign key,
            malformed body), which a handler treats as done.
    """

    message_id: str
    events: tuple[MediaObjectCreated, ...] = ()


def parse(event: Any) -> list[MediaObjectCreated]:
    """Turn any accepted Lambda payload into the media events it carries, in order.

    Args:
        event: the Lambda ``event`` (SQS, SNS, S3 notification, EventBridge or MinIO webhook body).

    Returns:
        One :class:`MediaObjectCreated` per object-created record whose key is in the layout.

    Raises:
        InvalidEvent: when ``event`` is not one of the accepted shapes (a wiring bug), or when a *direct*
            (unwrapped) record is malformed. Malformed SQS bodies are logged and skipped instead.
    """
    if _is_sqs_event(event):
        return [media for item in parse_sqs(event) for media in item.events]
    return _media_events(parse_objects(event))


def parse_sqs(event: Any) -> list[SqsItem]:
    """Parse a Lambda SQS event message by message.

    Args:
        event: ``{"Records": [{"eventSource": "aws:sqs", "messageId": ..., "body": ...}, ...]}``.

    Returns:
        One :class:`SqsItem` per SQS record, in order.

    Raises:
        InvalidEvent: when ``event`` is not an SQS event or a record lacks ``messageId``/``body``.
    """
    return [
        SqsItem(message_id=message_id, events=tuple(_media_events(_objects_of_body(message_id, body))))
        for message_id, body in _sqs_messages(event)
    ]


def parse_objects(event: Any) -> list[ObjectCreated]:
    """Every object-created record in a payload, keys decoded, *before* the key-layout filter.

    Most callers want :func:`parse`; this level exists for adapters (e.g. a MinIO webhook receiver) and
    tests. SQS events are flattened; malformed SQS bodies are logged and skipped.

    Raises:
        InvalidEvent: as :func:`parse`.
    """
    if _is_sqs_event(event):
        return [obj for message_id, body in _sqs_messages(event) for obj in _objects_of_body(message_id, body)]
    return list(_objects(event))


def _sqs_messages(event: Any) -> list[tuple[str, str]]:
    """``(messageId, body)`` of each record of a Lambda SQS event; the envelope itself must be well formed."""
    if not _is_sqs_event(event):
        raise InvalidEvent("not an SQS event: expected Records with eventSource aws:sqs")
    messages = []
    for record in event["Records"]:
        message_id, body = record.get("messageId"), record.get("body")
        if not isinstance(message_id, str) or not isinstance(body, str):
            raise InvalidEvent("SQS record without a string messageId and body")
        messages.append((message_id, body))
    return messages


def _is_sqs_event(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, Mapping) else None
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(r, Mapping) and r.get("eventSource") == "aws:sqs" for r in records)
    )


def _objects_of_body(message_id: str, body: str) -> list[ObjectCreated]:
    """Objects in one SQS message body; a body that is not an accepted payload is logged and skipped."""
    try:
        return list(_objects(json.loads(body)))
    except (ValueError, RecursionError, InvalidEvent) as exc:  # JSONDecodeError is a ValueError
        logger.warning(
            "skipping SQS message %s: malformed body (%s)", message_id, exc, extra={"message_id": message_id}
        )
        return []


def _objects(payload: Any) -> Iterator[ObjectCreated]:
    """Dispatch on the payload shape; yields object-created records, logs and drops everything else."""
    if not isinstance(payload, Mapping):
        raise InvalidEvent(f"event must be a JSON object, got {type(payload).__name__}")
    if payload.get("Event") == "s3:TestEvent":
        logger.info("skipping s3:TestEvent for bucket %r", payload.get("Bucket"))
        return
    if payload.get("source") == "aws.s3" and "detail-type" in payload:
        yield from _eventbridge(payload)
    elif payload.get("Type") == "Notification" and isinstance(payload.get("Message"), str):
        yield from _objects(_json(payload["Message"], "SNS Message"))  # SNS envelope in an SQS body
    elif isinstance(payload.get("Records"), list) and payload["Records"]:
        for record in payload["Records"]:
            yield from _record(record)
    else:
        raise InvalidEvent("unrecognised event: not an SQS, SNS, S3 notification or EventBridge S3 event")


def _record(record: Any) -> Iterator[ObjectCreated]:
    if not isinstance(record, Mapping):
        raise InvalidEvent("event record must be a JSON object")
    source = record.get("eventSource", record.get("EventSource"))
    if source in _S3_SOURCES or (source is None and "s3" in record):
        yield from _notification(record)
    elif source == "aws:sns":
        sns = record.get("Sns")
        if not isinstance(sns, Mapping) or not isinstance(sns.get("Message"), str):
            raise InvalidEvent("SNS record without Sns.Message")
        yield from _objects(_json(sns["Message"], "SNS Message"))
    elif source == "aws:sqs":
        raise InvalidEvent("SQS records mixed with other records")
    else:
        raise InvalidEvent(f"unsupported record eventSource {source!r}")


def _notification(record: Mapping[str, Any]) -> Iterator[ObjectCreated]:
    """One S3 notification record (AWS, moto, LocalStack, MinIO)."""
    s3, name = record.get("s3"), record.get("eventName")
    if not isinstance(s3, Mapping) or not isinstance(name, str):
        raise InvalidEvent("S3 record without s3 and eventName")
    bucket, obj = _mapping(s3, "bucket"), _mapping(s3, "object")
    key = _notification_key(_required_str(obj, "key"))
    name = name.removeprefix("s3:")
    if not name.startswith(_CREATED_PREFIX):
        logger.info("skipping %s event for %r", name, key, extra={"key": key})
        return
    yield ObjectCreated(
        bucket=_required_str(bucket, "name"),
        key=key,
        size=obj.get("size"),
        etag=_etag(obj),
        sequencer=_optional_str(obj.get("sequencer")),
        event_time=_time(record.get("eventTime")),
        event_name=name,
    )


def _eventbridge(event: Mapping[str, Any]) -> Iterator[ObjectCreated]:
    """One EventBridge event from ``aws.s3``; only ``Object Created`` yields a record."""
    detail = _mapping(event, "detail")
    obj = _mapping(detail, "object")
    key = _required_str(obj, "key")  # raw: EventBridge keys are not URL-encoded (module rules)
    if event.get("detail-type") != "Object Created":
        logger.info("skipping EventBridge %r event for %r", event.get("detail-type"), key, extra={"key": key})
        return
    reason = detail.get("reason")
    yield ObjectCreated(
        bucket=_required_str(_mapping(detail, "bucket"), "name"),
        key=key,
        size=obj.get("size"),
        etag=_etag(obj),
        sequencer=_optional_str(obj.get("sequencer")),
        event_time=_time(event.get("time")),
        event_name=_REASONS.get(reason, f"{_CREATED_PREFIX}{reason}" if reason else "ObjectCreated:Put"),
    )


def _media_events(objects: list[ObjectCreated]) -> list[MediaObjectCreated]:
    """Keep the objects whose key is in the layout and not derived; log one line per skipped object."""
    media = []
    for obj in objects:
        if keys.is_derived(obj.key):
            logger.info("skipping derived object %r", obj.key, extra={"key": obj.key})
            continue
        try:
            media_key = keys.decode(obj.key)
        except InvalidKey:
            logger.info("skipping object outside the key layout: %r", obj.key, extra={"key": obj.key})
            continue
        media.append(MediaObjectCreated(object=obj, media_key=media_key))
    return media


def _notification_key(raw: str) -> str:
    """Decode an S3 *notification* key; the module's single decoding point (see the module rules)."""
    return urllib.parse.unquote_plus(raw)


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidEvent(f"{what} is not JSON: {exc}") from None


def _mapping(parent: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = parent.get(name)
    if not isinstance(value, Mapping):
        raise InvalidEvent(f"event field {name!r} must be an object")
    return value


def _required_str(parent: Mapping[str, Any], name: str) -> str:
    value = parent.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"event field {name!r} must be a non-empty string")
    return value


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _etag(obj: Mapping[str, Any]) -> str | None:
    """``eTag`` (notifications, moto EventBridge) or ``etag`` (AWS/LocalStack EventBridge), quotes stripped."""
    value = _optional_str(obj.get("eTag", obj.get("etag")))
    return _optional_str(value.strip('"')) if value else None


def _time(value: Any) -> datetime | None:
    """ISO 8601 (``…Z`` or offset) or epoch seconds → aware UTC datetime; anything else → None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
