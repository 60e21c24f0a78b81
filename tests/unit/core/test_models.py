"""Channels and stream keys: generation, hashing, constant-time verification, manifests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from capturestream import keys
from capturestream.errors import Unauthorized
from capturestream.models import (
    STREAM_KEY_PATTERN,
    Channel,
    SessionManifestBody,
    hash_stream_key,
    new_session_id,
    stream_key_channel_id,
)


def test_created_channel_has_independent_ids_and_only_a_key_hash() -> None:
    channel, issued = Channel.create(name="  My show ", owner="user-1")
    key = issued.value.get_secret_value()
    assert channel.name == "My show"
    assert STREAM_KEY_PATTERN.fullmatch(key)
    assert stream_key_channel_id(key) == channel.channel_id
    assert channel.stream_key_hash == hash_stream_key(key) == issued.hash
    assert channel.playback_id not in key and key not in channel.model_dump_json()
    assert key not in repr(issued) and key not in str(issued)
    keys.validate_name(channel.playback_id)


def test_stream_keys_carry_at_least_128_bits_and_never_repeat() -> None:
    issued = {Channel.create(name="x", owner="o")[1].value.get_secret_value() for _ in range(200)}
    assert len(issued) == 200
    secret = STREAM_KEY_PATTERN.fullmatch(next(iter(issued)))["secret"]  # type: ignore[index]
    assert len(secret) * 5.95 >= 128  # log2(62) bits per character


def test_verify_stream_key() -> None:
    channel, issued = Channel.create(name="x", owner="o")
    key = issued.value.get_secret_value()
    assert channel.verify_stream_key(key)
    assert not channel.verify_stream_key(key[:-1] + ("A" if key[-1] != "A" else "B"))
    assert not channel.verify_stream_key("")


def test_rotation_invalidates_the_old_key() -> None:
    channel, old = Channel.create(name="x", owner="o", now=datetime(2026, 1, 1, tzinfo=UTC))
    rotated, new = channel.with_rotated_key(now=datetime(2026, 2, 1, tzinfo=UTC))
    assert rotated.channel_id == channel.channel_id and rotated.playback_id == channel.playback_id
    assert rotated.verify_stream_key(new.value.get_secret_value())
    assert not rotated.verify_stream_key(old.value.get_secret_value())
    assert rotated.key_rotated_at > channel.key_rotated_at


@pytest.mark.parametrize("bad", ["", "live_", "live_abc_def", "x" * 51, "live_ABCDEFGHIJKL_" + "a" * 32, None])
def test_malformed_stream_keys_are_unauthorized_without_echo(bad: str | None) -> None:
    with pytest.raises(Unauthorized) as info:
        stream_key_channel_id(bad)  # type: ignore[arg-type]
    if bad:
        assert bad not in str(info.value)


@pytest.mark.parametrize("name", ["", "   ", "a\x00b", "x" * 101])
def test_channel_names_are_validated(name: str) -> None:
    with pytest.raises((ValidationError, ValueError)):
        Channel.create(name=name, owner="o")


def test_session_ids_are_valid_names_and_sort_by_time() -> None:
    early = new_session_id(datetime(2026, 1, 1, tzinfo=UTC))
    late = new_session_id(datetime(2026, 1, 2, tzinfo=UTC))
    assert early < late
    assert keys.validate_name(early) and early.startswith("20260101T000000Z-")


def test_manifest_body_parses_and_ignores_unknown_fields() -> None:
    body = SessionManifestBody.model_validate_json(
        '{"channel_id":"abcdefghijkl","playback_id":"pb1","session_id":"s1","started_at":"2026-11-25T15:00:00Z",'
        '"media":{"video_codec":"avc1.64001f","width":1280,"height":720,"frame_rate":30},"future_field":1}'
    )
    assert body.media.width == 1280 and body.ended_at is None


@pytest.mark.parametrize(
    "payload",
    [
        '{"playback_id":"pb1","session_id":"s1","started_at":"2026-11-25T15:00:00Z"}',
        '{"channel_id":"c","playback_id":"../x","session_id":"s1","started_at":"2026-11-25T15:00:00Z"}',
        '{"channel_id":"c","playback_id":"p","session_id":"s1","started_at":"yesterday"}',
        '{"channel_id":"c","playback_id":"p","session_id":"s1","started_at":"2026-11-25T15:00:00Z","duration":-1}',
    ],
)
def test_manifest_body_rejects_bad_input(payload: str) -> None:
    with pytest.raises(ValidationError):
        SessionManifestBody.model_validate_json(payload)
