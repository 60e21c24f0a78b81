"""capturestream.messages: the WebSocket contract (BRIEF §4) parses, rejects and encodes exactly."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from capturestream import messages as m
from capturestream.errors import CaptureStreamError, InvalidMessage, InvalidName, MessageTooLarge


def test_type_strings_follow_the_contract() -> None:
    assert m.CLIENT_MESSAGE_TYPES == ("register", "getStreams", "subscribe", "unsubscribe", "chat", "heartbeat")
    assert m.SERVER_MESSAGE_TYPES == (
        "streamList",
        "streamLive",
        "streamEnded",
        "viewerCount",
        "thumbnail",
        "chat",
        "error",
    )
    assert m.ERROR_CODES == (
        "invalid_message",
        "message_too_large",
        "not_found",
        "conflict",
        "rate_limited",
        "internal_error",
    )
    assert m.MAX_MESSAGE_BYTES == 128 * 1024
    assert m.MAX_CHAT_LENGTH == 500


# --- client → server: valid -------------------------------------------------------------------------------

VALID_CLIENT = [
    ('{"type":"register","role":"viewer"}', m.RegisterMessage(role="viewer")),
    ('{"type":"register","role":"streamer"}', m.RegisterMessage(role="streamer")),
    ('{"type":"getStreams"}', m.GetStreamsMessage()),
    ('{"type":"subscribe","streamId":"pb1"}', m.SubscribeMessage(stream_id="pb1")),
    ('{"type":"unsubscribe","streamId":"Pb_1-x"}', m.UnsubscribeMessage(stream_id="Pb_1-x")),
    ('{"type":"chat","streamId":"pb1","text":"hello"}', m.SendChatMessage(stream_id="pb1", text="hello")),
    ('{"type":"heartbeat"}', m.HeartbeatMessage()),
    # tolerant reading: unknown fields from seed clients are ignored
    ('{"type":"heartbeat","ts":1764082800000,"client":"seed"}', m.HeartbeatMessage()),
    ('{"streamId":"pb1","type":"subscribe","extra":{"a":[1]}}', m.SubscribeMessage(stream_id="pb1")),
]


@pytest.mark.parametrize(("raw", "expected"), VALID_CLIENT)
def test_each_client_type_parses(raw: str, expected: Any) -> None:
    assert m.parse_client_message(raw) == expected
    assert m.parse_client_message(raw.encode()) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  hi  ", "hi"),
        ("line one\r\nline two", "line one\nline two"),
        ("\n\tpadded\n", "padded"),
        ("x" * 500, "x" * 500),
        ("   " + "x" * 500 + "\n", "x" * 500),  # the limit applies after trimming
        ("👩‍💻 zero-width joiner is fine", "👩‍💻 zero-width joiner is fine"),
        # joiners and tags where real text needs them (module rules)
        ("🏳️‍🌈 👩🏽‍💻 🙂‍↔️ 👨‍👩‍👧", "🏳️‍🌈 👩🏽‍💻 🙂‍↔️ 👨‍👩‍👧"),  # after U+FE0F, a skin tone; before a Sm symbol
        ("ශ්‍රී ලංකා", "ශ්‍රී ලංකා"),  # Sinhala: ZWJ after a virama
        ("می‌خواهم", "می‌خواهم"),  # Persian: ZWNJ between letters
        ("🏴󠁧󠁢󠁳󠁣󠁴󠁿 go", "🏴󠁧󠁢󠁳󠁣󠁴󠁿 go"),  # the flag of Scotland: an emoji tag sequence
        ("🎉" * 500, "🎉" * 500),  # characters, not bytes
    ],
)
def test_chat_text_is_normalised(text: str, expected: str) -> None:
    raw = json.dumps({"type": "chat", "streamId": "pb1", "text": text})
    message = m.parse_client_message(raw)
    assert isinstance(message, m.SendChatMessage)
    assert message.text == expected


# --- client → server: invalid -----------------------------------------------------------------------------

INVALID_CLIENT: list[tuple[Any, str]] = [
    ({}, "type"),
    ({"type": None}, "type"),
    ({"type": 7}, "type"),
    ({"type": "Chat", "streamId": "pb1", "text": "x"}, "type"),
    ({"type": "streamList"}, "type"),  # a server type is not a client type
    ({"type": "register"}, "role"),
    ({"type": "register", "role": "admin"}, "role"),
    ({"type": "subscribe"}, "streamId"),
    ({"type": "subscribe", "stream_id": "pb1"}, "streamId"),  # the wire is camelCase only
    ({"type": "subscribe", "streamId": ""}, "streamId"),
    ({"type": "subscribe", "streamId": "../pb1"}, "streamId"),
    ({"type": "subscribe", "streamId": "pb1/other"}, "streamId"),
    ({"type": "subscribe", "streamId": "_pb1"}, "streamId"),
    ({"type": "subscribe", "streamId": "x" * 65}, "streamId"),
    ({"type": "subscribe", "streamId": 42}, "streamId"),
    ({"type": "unsubscribe", "streamId": ["pb1"]}, "streamId"),
    ({"type": "chat", "streamId": "pb1"}, "text"),
    ({"type": "chat", "streamId": "pb1", "text": ""}, "text"),
    ({"type": "chat", "streamId": "pb1", "text": " \n\t "}, "text"),
    ({"type": "chat", "streamId": "pb1", "text": "x" * 501}, "text"),
    ({"type": "chat", "streamId": "pb1", "text": "bell\u0007!"}, "text"),
    ({"type": "chat", "streamId": "pb1", "text": "nul\u0000byte"}, "text"),
    ({"type": "chat", "streamId": "pb1", "text": "tab\tinside"}, "text"),
    ({"type": "chat", "streamId": "pb1", "text": "lone\rreturn"}, "text"),
    ({"type": "chat", "streamId": "pb1", "text": "del\u007finside"}, "text"),
    ({"type": "chat", "streamId": "pb1", "text": "c1\u0085inside"}, "text"),
    ({"type": "chat", "streamId": "pb1", "text": 5}, "text"),
    # format characters (Cf): bidi controls, marks, zero-width characters, joiners out of context, stray tags
    *(
        ({"type": "chat", "streamId": "pb1", "text": f"abc{ch}def"}, "text")
        for ch in [
            *map(chr, range(0x202A, 0x202F)),  # LRE RLE PDF LRO RLO
            *map(chr, range(0x2066, 0x206A)),  # LRI RLI FSI PDI
            "\u200e",  # LRM
            "\u200f",  # RLM
            "\u061c",  # ALM
            "\u200b",  # zero-width space
            "\u2060",  # word joiner
            "\ufeff",  # zero-width no-break space (BOM)
            "\u00ad",  # soft hyphen
            "\u200d",  # ZWJ between letters
            "\U000e0041",  # a tag character outside a tag sequence
        ]
    ),
    ({"type": "chat", "streamId": "pb1", "text": "\u200d🙂"}, "text"),  # ZWJ with nothing before it
    ({"type": "chat", "streamId": "pb1", "text": "🙂\u200d"}, "text"),  # ...or after it
    ({"type": "chat", "streamId": "pb1", "text": "🙂\u200da"}, "text"),  # ...or a letter after it
    ({"type": "chat", "streamId": "pb1", "text": "ab\u200c1"}, "text"),  # ZWNJ before a digit
    ({"type": "chat", "streamId": "pb1", "text": "🏴\U000e0067\U000e0062"}, "text"),  # a tag sequence never ended
    ({"type": "chat", "streamId": "bad id", "text": "hi"}, "streamId"),
]


@pytest.mark.parametrize(("document", "field"), INVALID_CLIENT)
def test_invalid_client_messages_name_the_field(document: Any, field: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        m.parse_client_message(json.dumps(document))
    assert not isinstance(info.value, MessageTooLarge)
    assert f"field '{field}'" in info.value.message
    assert info.value.code == "invalid_message"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "not valid JSON"),
        ("hello", "not valid JSON"),
        ('{"type": "heartbeat"', "not valid JSON"),
        ("[]", "JSON object"),
        ('"heartbeat"', "JSON object"),
        ("null", "JSON object"),
        (b"\xff\xfe{}", "UTF-8"),
        ("[" * 100_000, "nested too deeply"),
    ],
)
def test_non_json_objects_are_invalid_messages(raw: str | bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        m.parse_client_message(raw)


def test_a_format_character_is_named_by_code_point_not_echoed() -> None:
    with pytest.raises(InvalidMessage) as info:
        m.parse_client_message(json.dumps({"type": "chat", "streamId": "pb1", "text": "evil\u202etxt.exe"}))
    assert "field 'text'" in info.value.message and "U+202E" in info.value.message
    assert "evil" not in info.value.message


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Ada", "Ada"), ("  Ada Lovelace ", "Ada Lovelace"), ("x" * 64, "x" * 64), ("Ada 👩🏽‍💻", "Ada 👩🏽‍💻")],
)
def test_display_names_are_stripped(name: str, expected: str) -> None:
    assert m.check_display_name(name) == expected


@pytest.mark.parametrize(
    "name",
    ["", "   ", "x" * 65, "Ada\nLovelace", "Ada\tL", "Ada\u0000", "\u202eadA", "Ada\u2066", "guest\u200b-1"],
)
def test_display_names_are_one_visible_line_of_at_most_64(name: str) -> None:
    with pytest.raises(ValueError, match="characters"):
        m.check_display_name(name)


def test_errors_never_echo_the_offending_value() -> None:
    junk = "x" * 5000 + "/"
    with pytest.raises(InvalidMessage) as info:
        m.parse_client_message(json.dumps({"type": "subscribe", "streamId": junk}))
    assert "xxxxxxxxxx" not in info.value.message
    assert len(info.value.message) < 200


@given(raw=st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_any_input_parses_or_raises_invalid_message(raw: str | bytes) -> None:
    """Rule 5's fuzz invariant: garbage in → InvalidMessage, never ValidationError or anything else."""
    try:
        message = m.parse_client_message(raw)
    except InvalidMessage:
        return
    assert message.type in m.CLIENT_MESSAGE_TYPES


@given(text=st.text(max_size=600))
def test_any_chat_text_is_accepted_clean_or_rejected(text: str) -> None:
    raw = json.dumps({"type": "chat", "streamId": "pb1", "text": text})
    try:
        message = m.parse_client_message(raw)
    except InvalidMessage as exc:
        assert "field 'text'" in exc.message
        return
    assert isinstance(message, m.SendChatMessage)
    assert 1 <= len(message.text) <= m.MAX_CHAT_LENGTH
    assert message.text == message.text.strip()
    assert all(ch == "\n" or ord(ch) >= 0x20 and not 0x7F <= ord(ch) <= 0x9F for ch in message.text)
    tags = range(0xE0020, 0xE0080)  # only inside an emoji tag sequence
    assert all(unicodedata.category(ch) != "Cf" or ch in (m.ZWJ, m.ZWNJ) or ord(ch) in tags for ch in message.text)


# --- size limit -------------------------------------------------------------------------------------------


def _padded(size: int) -> str:
    """A valid heartbeat of exactly ``size`` UTF-8 bytes (the padding is an ignored extra field)."""
    head = '{"type":"heartbeat","pad":"'
    return head + "x" * (size - len(head) - 2) + '"}'


def test_a_message_of_exactly_the_limit_is_accepted() -> None:
    raw = _padded(m.MAX_MESSAGE_BYTES)
    assert len(raw.encode()) == m.MAX_MESSAGE_BYTES
    assert m.parse_client_message(raw) == m.HeartbeatMessage()


@pytest.mark.parametrize(
    "raw",
    [
        _padded(m.MAX_MESSAGE_BYTES + 1),
        _padded(m.MAX_MESSAGE_BYTES + 1).encode(),
        '{"type":"chat","streamId":"pb1","text":"' + "é" * 70_000 + '"}',  # < limit in chars, > in bytes
        "not even json " * 20_000,
    ],
)
def test_oversized_input_is_rejected_before_parsing(raw: str | bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_parsing(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("oversized input reached the JSON parser")

    monkeypatch.setattr(m.json, "loads", no_parsing)
    with pytest.raises(MessageTooLarge) as info:
        m.parse_client_message(raw)
    assert info.value.code == "message_too_large"


def test_non_text_input_is_invalid() -> None:
    with pytest.raises(InvalidMessage):
        m.parse_client_message({"type": "heartbeat"})  # type: ignore[arg-type]


# --- server → client: exact wire JSON ---------------------------------------------------------------------

STARTED = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
SUMMARY = m.StreamSummary(
    stream_id="pb1",
    title="Friday Night Games",
    playback_url="https://cdn.example.com/live/pb1/s1/index.m3u8",
    viewer_count=3,
    started_at=STARTED,
)
SUMMARY_JSON = (
    '{"streamId":"pb1","title":"Friday Night Games","status":"live",'
    '"playbackUrl":"https://cdn.example.com/live/pb1/s1/index.m3u8","viewerCount":3,'
    '"startedAt":"2026-11-25T15:00:00Z"}'
)
SERVER_WIRE: list[tuple[Any, str]] = [
    (m.StreamListMessage(streams=(SUMMARY,)), '{"type":"streamList","streams":[' + SUMMARY_JSON + "]}"),
    (m.StreamListMessage(), '{"type":"streamList","streams":[]}'),
    (m.StreamLiveMessage(stream=SUMMARY), '{"type":"streamLive","stream":' + SUMMARY_JSON + "}"),
    (
        m.StreamLiveMessage(stream=m.StreamSummary(stream_id="pb2", thumbnail_url="https://cdn/t.jpg")),
        '{"type":"streamLive","stream":{"streamId":"pb2","title":"","status":"live",'
        '"thumbnailUrl":"https://cdn/t.jpg","viewerCount":0}}',
    ),
    (m.StreamEndedMessage(stream_id="pb1"), '{"type":"streamEnded","streamId":"pb1"}'),
    (m.ViewerCountMessage(stream_id="pb1", count=42), '{"type":"viewerCount","streamId":"pb1","count":42}'),
    (
        m.ThumbnailMessage(stream_id="pb1", url="https://cdn.example.com/thumbs/pb1/s1/live_00000007.jpg"),
        '{"type":"thumbnail","streamId":"pb1","url":"https://cdn.example.com/thumbs/pb1/s1/live_00000007.jpg"}',
    ),
    (
        m.ChatMessage(stream_id="pb1", id="01JDX0", user="ana", text="héllo\nthere", ts=1795618800123),
        '{"type":"chat","streamId":"pb1","id":"01JDX0","user":"ana","text":"héllo\\nthere","ts":1795618800123}',
    ),
    (
        m.ErrorMessage(code="invalid_message", message="nope"),
        '{"type":"error","code":"invalid_message","message":"nope"}',
    ),
]


@pytest.mark.parametrize(("message", "wire"), SERVER_WIRE)
def test_server_messages_encode_to_the_contract_json(message: Any, wire: str) -> None:
    assert m.encode(message) == wire
    assert m.parse_server_message(wire) == message  # round trip


@pytest.mark.parametrize(("raw", "expected"), VALID_CLIENT[:7])
def test_client_messages_round_trip(raw: str, expected: Any) -> None:
    assert m.parse_client_message(m.encode(expected)) == expected
    assert json.loads(m.encode(expected)) == json.loads(raw)


def test_encode_refuses_frames_over_the_limit() -> None:
    many = tuple(
        m.StreamSummary(stream_id=f"s{i}", title="t" * 200, playback_url="https://cdn/" + "p" * 400) for i in range(300)
    )
    with pytest.raises(MessageTooLarge):
        m.encode(m.StreamListMessage(streams=many))


def test_encode_only_takes_message_models() -> None:
    class Other(BaseModel):
        type: str = "heartbeat"

    with pytest.raises(TypeError):
        m.encode(Other())


@pytest.mark.parametrize(
    "build",
    [
        lambda: m.StreamEndedMessage(stream_id="bad/id"),
        lambda: m.ViewerCountMessage(stream_id="pb1", count=-1),
        lambda: m.ChatMessage(stream_id="pb1", id="1", user="ana", text="", ts=1),
        lambda: m.ChatMessage(stream_id="pb1", id="1", user="a\nb", text="hi", ts=1),
        lambda: m.StreamEndedMessage(stream_id="pb1", extra=1),  # server messages forbid unknown fields
    ],
)
def test_server_messages_validate_on_construction(build: Any) -> None:
    with pytest.raises(ValidationError):
        build()


def test_messages_are_frozen() -> None:
    message = m.SubscribeMessage(stream_id="pb1")
    with pytest.raises(ValidationError):
        message.stream_id = "pb2"  # type: ignore[misc]


# --- error messages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("err", "wire"),
    [
        (
            InvalidMessage("'chat' message: field 'text': too long"),
            '{"type":"error","code":"invalid_message","message":"\'chat\' message: field \'text\': too long"}',
        ),
        (
            MessageTooLarge("message exceeds 131072 bytes"),
            '{"type":"error","code":"message_too_large","message":"message exceeds 131072 bytes"}',
        ),
        # a code outside the contract (ERROR_CODES) goes out as internal_error
        (InvalidName("invalid stream id"), '{"type":"error","code":"internal_error","message":"invalid stream id"}'),
        (CaptureStreamError("boom"), '{"type":"error","code":"internal_error","message":"boom"}'),
    ],
)
def test_error_message_from_domain_errors(err: CaptureStreamError, wire: str) -> None:
    assert m.encode(m.error_message(err)) == wire


def test_long_error_texts_are_cut_so_the_error_can_always_be_sent() -> None:
    message = m.error_message(InvalidName("x" * 200_000))
    assert len(message.message) == m.MAX_ERROR_LENGTH
    assert message.message.endswith("…")
    assert m.encode(message)
