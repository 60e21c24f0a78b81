"""The WebSocket message contract between browsers and the WebSocket functions (BRIEF §4, seed-compatible).

Every message is one JSON object whose ``type`` selects the route (API Gateway route selection on
``$request.body.type``). Fields are camelCase on the wire, snake_case in Python.

Client → server: ``register {role}``, ``getStreams``, ``subscribe {streamId}``, ``unsubscribe {streamId}``,
``chat {streamId, text}``, ``heartbeat``.
Server → client: ``streamList {streams}``, ``streamLive {stream}``, ``streamEnded {streamId}``,
``viewerCount {streamId, count}``, ``thumbnail {streamId, url}``, ``chat {streamId, id, user, text, ts}``,
``error {code, message}``.

Rules:
- **Read tolerantly, write strictly.** Client messages ignore unknown fields (older or newer seed clients send
  extras such as timestamps) but every known field is validated; an unknown ``type`` is rejected. Server
  messages forbid unknown fields, so a typo in a handler fails in tests, not in a browser.
- A ``streamId`` is a playback id: :data:`capturestream.keys.NAME_PATTERN`. Chat text is stripped, ``\\r\\n``
  becomes ``\\n``, then it must be 1–:data:`MAX_CHAT_LENGTH` characters with no control character except ``\\n``.
  A display name (``chat.user``, a token's ``name``: :func:`check_display_name`) is 1–:data:`MAX_USER_LENGTH`
  characters on one line.
- **Nothing invisible.** Chat text and display names refuse format characters (Unicode category Cf): bidi
  embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) and marks (U+200E, U+200F, U+061C) that
  make text display in an order other than the one stored ("Trojan Source", CVE-2021-42574), zero-width
  spaces, word joiners, BOMs, soft hyphens, tag characters. Three uses that real text needs are kept, each in
  the only context where it means something: U+200D ZERO WIDTH JOINER between two symbols (emoji ZWJ
  sequences: 👩‍💻 is 👩 U+200D 💻; the left symbol may carry U+FE0F or a skin tone) or after a virama (Indic
  conjuncts, RFC 5892 A.2); U+200C ZERO WIDTH NON-JOINER between letters (Persian spelling) or after a virama
  (RFC 5892 A.1); tag characters only as an emoji tag sequence (UTS #51: 🏴 + tags + CANCEL TAG, the flags of
  England, Scotland and Wales).
- Size: API Gateway WebSocket frames are limited to 128 KB (:data:`MAX_MESSAGE_BYTES`). Input is measured
  *before* JSON parsing; :func:`encode` refuses to produce a bigger frame.
- Errors are :class:`~capturestream.errors.InvalidMessage` / ``MessageTooLarge`` naming the field, never
  pydantic's ``ValidationError``, and they never echo the offending value (it may be 128 KB of junk).
- ``error.code`` is one of :data:`ERROR_CODES`, the codes of what the WebSocket routes raise; a new code is
  added there first. Any other error goes out as ``internal_error`` (an ``error`` must always be sendable).
- ``ts`` in ``chat`` is epoch milliseconds (what ``Date.now()`` gives the browser); datetimes are ISO 8601.
- ``web/js`` mirrors :data:`CLIENT_MESSAGE_TYPES` and :data:`SERVER_MESSAGE_TYPES`; a test keeps them equal.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from . import keys
from .errors import CaptureStreamError, InvalidMessage, MessageTooLarge

#: API Gateway WebSocket frame limit (128 KB); applies to both directions.
MAX_MESSAGE_BYTES = 128 * 1024
#: Longest chat message, in characters, after stripping.
MAX_CHAT_LENGTH = 500
#: Longest display name shown next to a chat message.
MAX_USER_LENGTH = 64
#: Longest ``error.message``; longer texts are cut so an error can always be sent.
MAX_ERROR_LENGTH = 300
#: Roles a ``register`` message may claim.
ROLES = ("viewer", "streamer")
#: The ``code`` of an ``error`` message, one per thing a client can do about it.
ErrorCode = Literal[
    "invalid_message",  # the message is not JSON or a field is invalid (the text names the field)
    "message_too_large",  # over MAX_MESSAGE_BYTES
    "not_found",  # the stream does not exist or is not live, or this connection is no longer registered
    "conflict",  # e.g. already watching the most streams a connection may watch
    "rate_limited",  # too many messages of this type; the text says when to retry
    "internal_error",  # anything else
]
#: Every ``error.code`` the server sends.
ERROR_CODES: tuple[str, ...] = get_args(ErrorCode)

#: U+200D ZERO WIDTH JOINER (emoji ZWJ sequences, Indic conjuncts).
ZWJ = "\u200d"
#: U+200C ZERO WIDTH NON-JOINER (Persian and Indic spelling).
ZWNJ = "\u200c"
_EMOJI_PRESENTATION = "\ufe0f"  # VARIATION SELECTOR-16: 🏳️‍🌈 is 🏳 U+FE0F U+200D 🌈
_VIRAMA = 9  # canonical combining class of viramas (RFC 5892 A.1, A.2)
#: UTS #51 emoji tag sequence: 🏴, tag characters, CANCEL TAG.
_TAG_SEQUENCE = re.compile("\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f")


def _stream_id(value: str) -> str:
    if keys.NAME_PATTERN.fullmatch(value) is None:
        raise ValueError("must be 1-64 characters of A-Z a-z 0-9 _ - starting with a letter or digit")
    return value


def _joiner_allowed(joiner: str, before: str, after: str) -> bool:
    """Whether a ZWJ/ZWNJ between ``before`` and ``after`` (``""`` at either end) is real text (module rules)."""
    if before and unicodedata.combining(before) == _VIRAMA:
        return True
    kind_before, kind_after = (unicodedata.category(ch)[0] if ch else "" for ch in (before, after))
    if joiner == ZWJ:
        return (kind_before == "S" or before == _EMOJI_PRESENTATION) and kind_after == "S"
    return kind_before in ("L", "M") and kind_after == "L"


def _invisible(value: str, *, newline: bool) -> str | None:
    """The first character of ``value`` the module rules refuse (a control or format character), or None."""
    text = _TAG_SEQUENCE.sub("\U0001f3f4", value)
    for index, ch in enumerate(text):
        category = unicodedata.category(ch)
        if category == "Cc" and not (newline and ch == "\n"):
            return ch
        if category == "Cf" and not (
            ch in (ZWJ, ZWNJ) and _joiner_allowed(ch, text[index - 1] if index else "", text[index + 1 : index + 2])
        ):
            return ch
    return None


def _visible(value: str, *, newline: bool) -> str:
    found = _invisible(value, newline=newline)
    if found is None:
        return value
    if unicodedata.category(found) == "Cc":
        raise ValueError("must not contain control characters" + (" (newline is allowed)" if newline else ""))
    raise ValueError(
        f"must not contain invisible format characters (found U+{ord(found):04X}; bidi controls and zero-width "
        "characters are refused, joiners are allowed only inside emoji and words)"
    )


def _chat_text(value: str) -> str:
    value = value.replace("\r\n", "\n").strip()
    if not 1 <= len(value) <= MAX_CHAT_LENGTH:
        raise ValueError(f"must be 1-{MAX_CHAT_LENGTH} characters after trimming whitespace")
    return _visible(value, newline=True)


def check_display_name(value: str) -> str:
    """A display name as shown beside chat messages (``chat.user``, a token's ``name`` claim), stripped.

    Raises:
        ValueError: unless it is 1-:data:`MAX_USER_LENGTH` characters on one line with nothing invisible
            (module rules); the reason, without the value.
    """
    value = value.strip()
    if not 1 <= len(value) <= MAX_USER_LENGTH or "\n" in value:
        raise ValueError(f"must be 1-{MAX_USER_LENGTH} characters on one line")
    return _visible(value, newline=False)


StreamId = Annotated[StrictStr, AfterValidator(_stream_id)]
ChatText = Annotated[StrictStr, AfterValidator(_chat_text)]
UserName = Annotated[StrictStr, AfterValidator(check_display_name)]


class _Message(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,  # Python code builds messages with snake_case names...
        serialize_by_alias=True,  # ...the wire always sees camelCase.
        frozen=True,
    )


class _ClientMessage(_Message):
    model_config = ConfigDict(extra="ignore")


class _ServerMessage(_Message):
    model_config = ConfigDict(extra="forbid")


# --- client → server -------------------------------------------------------------------------------------


class RegisterMessage(_ClientMessage):
    """Announce what this connection is for (the seed's first message)."""

    type: Literal["register"] = "register"
    role: Literal["viewer", "streamer"]


class GetStreamsMessage(_ClientMessage):
    """Ask for the current live streams; answered with ``streamList``."""

    type: Literal["getStreams"] = "getStreams"


class SubscribeMessage(_ClientMessage):
    """Watch a stream: counts this connection as a viewer and delivers its ``chat``/``viewerCount``."""

    type: Literal["subscribe"] = "subscribe"
    stream_id: StreamId


class UnsubscribeMessage(_ClientMessage):
    """Stop watching a stream."""

    type: Literal["unsubscribe"] = "unsubscribe"
    stream_id: StreamId


class SendChatMessage(_ClientMessage):
    """Post a chat message to a stream's room."""

    type: Literal["chat"] = "chat"
    stream_id: StreamId
    text: ChatText


class HeartbeatMessage(_ClientMessage):
    """Keep-alive (API Gateway closes a connection after 10 idle minutes)."""

    type: Literal["heartbeat"] = "heartbeat"


# --- server → client -------------------------------------------------------------------------------------


class StreamSummary(_ServerMessage):
    """What a stream card and the watch page need to know about one stream."""

    stream_id: StreamId
    title: str = Field(default="", max_length=200)
    status: Literal["live", "reconnecting", "ended"] = "live"
    playback_url: str | None = None
    thumbnail_url: str | None = None
    viewer_count: int = Field(default=0, ge=0)
    started_at: datetime | None = None


class StreamListMessage(_ServerMessage):
    """Answer to ``getStreams``."""

    type: Literal["streamList"] = "streamList"
    streams: tuple[StreamSummary, ...] = ()


class StreamLiveMessage(_ServerMessage):
    """A stream went live (or came back from reconnecting)."""

    type: Literal["streamLive"] = "streamLive"
    stream: StreamSummary


class StreamEndedMessage(_ServerMessage):
    """A broadcast ended."""

    type: Literal["streamEnded"] = "streamEnded"
    stream_id: StreamId


class ViewerCountMessage(_ServerMessage):
    """The number of connections subscribed to a stream."""

    type: Literal["viewerCount"] = "viewerCount"
    stream_id: StreamId
    count: int = Field(ge=0)


class ThumbnailMessage(_ServerMessage):
    """A fresh live thumbnail of a stream."""

    type: Literal["thumbnail"] = "thumbnail"
    stream_id: StreamId
    url: str = Field(min_length=1, max_length=2048)


class ChatMessage(_ServerMessage):
    """A chat message as delivered to every subscriber (and replayed with the VOD)."""

    type: Literal["chat"] = "chat"
    stream_id: StreamId
    id: str = Field(min_length=1, max_length=128)
    user: UserName
    text: ChatText
    ts: int = Field(ge=0, description="epoch milliseconds")


class ErrorMessage(_ServerMessage):
    """Why the last client message was refused; ``code`` is a ``CaptureStreamError.code``."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: str = Field(max_length=MAX_ERROR_LENGTH)


_CLIENT_MODELS = (
    RegisterMessage,
    GetStreamsMessage,
    SubscribeMessage,
    UnsubscribeMessage,
    SendChatMessage,
    HeartbeatMessage,
)
_SERVER_MODELS = (
    StreamListMessage,
    StreamLiveMessage,
    StreamEndedMessage,
    ViewerCountMessage,
    ThumbnailMessage,
    ChatMessage,
    ErrorMessage,
)

ClientMessage = Annotated[
    RegisterMessage | GetStreamsMessage | SubscribeMessage | UnsubscribeMessage | SendChatMessage | HeartbeatMessage,
    Field(discriminator="type"),
]
ServerMessage = Annotated[
    StreamListMessage
    | StreamLiveMessage
    | StreamEndedMessage
    | ViewerCountMessage
    | ThumbnailMessage
    | ChatMessage
    | ErrorMessage,
    Field(discriminator="type"),
]


def _type_of(model: type[BaseModel]) -> str:
    (value,) = get_args(model.model_fields["type"].annotation)
    return value


#: The ``type`` strings a browser may send, in contract order.
CLIENT_MESSAGE_TYPES: tuple[str, ...] = tuple(_type_of(m) for m in _CLIENT_MODELS)
#: The ``type`` strings the server sends, in contract order.
SERVER_MESSAGE_TYPES: tuple[str, ...] = tuple(_type_of(m) for m in _SERVER_MODELS)

_CLIENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(ClientMessage)
_SERVER_ADAPTER: TypeAdapter[Any] = TypeAdapter(ServerMessage)


def parse_client_message(raw: str | bytes) -> ClientMessage:
    """Parse and validate one frame a browser sent.

    Args:
        raw: the WebSocket frame (API Gateway's ``event["body"]``), text or UTF-8 bytes.

    Returns:
        The typed message (``SubscribeMessage``, ``SendChatMessage``, ...).

    Raises:
        MessageTooLarge: when ``raw`` exceeds :data:`MAX_MESSAGE_BYTES` (checked before parsing).
        InvalidMessage: when it is not a JSON object, has an unknown ``type``, or a field is invalid; the
            message names the field.
    """
    _check_size(raw)
    document = _load_json(raw)
    return _validate(_CLIENT_ADAPTER, document, CLIENT_MESSAGE_TYPES)


def parse_server_message(raw: str | bytes) -> ServerMessage:
    """Parse a frame the server sent (for tests, the devstack gateway and Python clients).

    Raises:
        MessageTooLarge, InvalidMessage: as :func:`parse_client_message`.
    """
    _check_size(raw)
    return _validate(_SERVER_ADAPTER, _load_json(raw), SERVER_MESSAGE_TYPES)


def encode(message: BaseModel) -> str:
    """Serialise a message for the wire: compact JSON, camelCase, ``None`` fields omitted.

    Args:
        message: any message model of this module (server messages in production; client ones in tests).

    Returns:
        The JSON text to send.

    Raises:
        MessageTooLarge: when the UTF-8 encoding exceeds :data:`MAX_MESSAGE_BYTES` (e.g. a huge ``streamList``).
    """
    if not isinstance(message, _Message):
        raise TypeError(f"not a WebSocket message model: {type(message).__name__}")
    text = message.model_dump_json(by_alias=True, exclude_none=True)
    size = len(text.encode("utf-8"))
    if size > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"{_type_of(type(message))} message is {size} bytes; the limit is {MAX_MESSAGE_BYTES}")
    return text


def error_message(err: CaptureStreamError) -> ErrorMessage:
    """The ``error`` message telling a client why its request failed (text cut to :data:`MAX_ERROR_LENGTH`;
    a code outside :data:`ERROR_CODES` goes out as ``internal_error``)."""
    text = err.message if len(err.message) <= MAX_ERROR_LENGTH else err.message[: MAX_ERROR_LENGTH - 1] + "…"
    code = err.code if err.code in ERROR_CODES else "internal_error"
    return ErrorMessage(code=code, message=text)


def _check_size(raw: str | bytes) -> None:
    if not isinstance(raw, str | bytes | bytearray):
        raise InvalidMessage(f"a message must be text or bytes, not {type(raw).__name__}")
    # A str needs at least one byte per character, so the cheap length test settles most oversized input.
    size = len(raw) if isinstance(raw, bytes | bytearray) or len(raw) > MAX_MESSAGE_BYTES else len(raw.encode())
    if size > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"message exceeds {MAX_MESSAGE_BYTES} bytes")


def _load_json(raw: str | bytes) -> dict[str, Any]:
    try:
        text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
        document = json.loads(text)
    except UnicodeDecodeError:
        raise InvalidMessage("message is not valid UTF-8") from None
    except RecursionError:
        raise InvalidMessage("message is nested too deeply") from None
    except ValueError as exc:
        raise InvalidMessage(f"message is not valid JSON ({exc.args[0] if exc.args else exc})") from None
    if not isinstance(document, dict):
        raise InvalidMessage("message must be a JSON object")
    return document


def _validate(adapter: TypeAdapter[Any], document: dict[str, Any], types: tuple[str, ...]) -> Any:
    kind = document.get("type")
    if not isinstance(kind, str) or kind not in types:
        problem = "missing" if kind is None else "unknown"
        raise InvalidMessage(f"field 'type': {problem} message type; expected one of {', '.join(types)}")
    try:
        return adapter.validate_python(document, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise InvalidMessage(_describe(kind, exc)) from None


def _describe(kind: str, exc: ValidationError) -> str:
    """``'chat' message: field 'text': must be 1-500 characters ...`` from the first pydantic error."""
    error = exc.errors(include_url=False, include_input=False)[0]
    location = [str(part) for part in error["loc"]]
    if location and location[0] == kind:  # discriminated unions prefix the location with the tag
        location = location[1:]
    field = ".".join(location) or "message"
    reason = error["msg"].removeprefix("Value error, ")
    return f"{kind!r} message: field {field!r}: {reason}"
