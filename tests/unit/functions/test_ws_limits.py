"""functions.ws.limits against moto: one bucket per message type on the connection item, safe under concurrency."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from capturestream import messages, table
from capturestream.chat import take_token
from capturestream.errors import NotFound, RateLimited
from capturestream.settings import WsSettings, get_settings
from functions.ws import clients, limits
from tests.support.aws import create_media_table

TABLE = "capturestream-MediaTable"
CONN = "Cabc123="


@pytest.fixture
def dynamodb(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    for name, value in {
        "TABLE_NAME": TABLE,
        "MEDIA_BUCKET": "media",
        "WS_ENDPOINT": "http://127.0.0.1:9/dev",
        "JWT_SECRET": "j" * 48,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    clients.reset()
    client = boto3.client("dynamodb")
    create_media_table(client, TABLE)
    client.put_item(TableName=TABLE, Item=table.connection_to_item({"connection_id": CONN, "viewer": "anon:a"}))
    yield client
    get_settings.cache_clear()
    clients.reset()


def read(dynamodb: Any) -> dict[str, Any]:
    return table.from_item(
        dynamodb.get_item(TableName=TABLE, Key=table.connection_key(CONN), ConsistentRead=True)["Item"]
    )


def test_every_client_message_type_has_a_limit_and_it_reads_as_prose() -> None:
    settings = WsSettings(TABLE_NAME="t", MEDIA_BUCKET="m", WS_ENDPOINT="http://x", JWT_SECRET="j" * 48)
    assert {*limits.LIMITS, "chat"} == set(messages.CLIENT_MESSAGE_TYPES)
    assert limits.limit_of("chat", settings) == limits.Limit(burst=5, rate=1.0)
    assert str(limits.LIMITS["subscribe"]) == "at most 20 at once, then one every 2 s"
    assert str(limits.Limit(burst=5, rate=4)) == "at most 5 at once, then 4 per second"


def test_a_busy_page_never_meets_the_limits() -> None:
    """Two hours of a page: connect (register, getStreams, 10 subscriptions), a heartbeat every 30 s, a reconnect
    of the socket's messages every 10 minutes, and a stream switch (unsubscribe + subscribe) every minute."""
    sent: dict[str, list[int]] = {kind: [] for kind in limits.LIMITS}
    for start in range(0, 7200_000, 600_000):
        sent["register"].append(start)
        sent["getStreams"].append(start)
        sent["subscribe"] += [start] * 10
    sent["heartbeat"] = list(range(30_000, 7200_000, 30_000))
    for minute in range(60_000, 7200_000, 60_000):
        sent["unsubscribe"].append(minute)
        sent["subscribe"].append(minute)
    for kind, times in sent.items():
        limit, state = limits.LIMITS[kind], None
        for now_ms in sorted(times):
            state = take_token(state, now_ms, burst=limit.burst, rate=limit.rate)
            assert state is not None, f"{kind} refused at {now_ms / 1000:g} s"


def test_a_token_is_spent_with_the_routes_fields_in_one_write(dynamodb: Any) -> None:
    limits.spend(get_settings(WsSettings), read(dynamodb), "heartbeat", fields={"last_seen_at": 7})
    item = read(dynamodb)
    assert (item["heartbeat_tokens"], item["last_seen_at"]) == (4, 7)
    assert "subscribe_tokens" not in item  # one bucket per type


def test_over_the_limit_is_refused_saying_when_to_retry_and_writes_nothing(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(limits.LIMITS, "getStreams", limits.Limit(burst=2, rate=0.25))
    settings = get_settings(WsSettings)
    for _ in range(2):
        limits.spend(settings, read(dynamodb), "getStreams")
    before = read(dynamodb)
    with pytest.raises(RateLimited) as info:
        limits.spend(settings, before, "getStreams", fields={"role": "streamer"})
    assert info.value.message.startswith("too many 'getStreams' messages: at most 2 at once, then one every 4 s")
    assert 3.5 <= float(info.value.message.rsplit("retry in ", 1)[1].removesuffix(" s")) <= 4.0
    assert read(dynamodb) == before


def test_a_concurrent_message_that_spent_first_is_seen_and_the_bucket_decides_again(dynamodb: Any) -> None:
    settings = get_settings(WsSettings)
    stale = read(dynamodb)  # both messages read the connection before either wrote
    limits.spend(settings, stale, "subscribe")
    limits.spend(settings, stale, "subscribe")  # its write fails on the first one's; it retries on what that left
    assert read(dynamodb)["subscribe_tokens"] == pytest.approx(18, abs=0.5)  # (+ what refilled meanwhile)


def test_the_last_token_goes_to_one_of_two_concurrent_messages(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(limits.LIMITS, "register", limits.Limit(burst=1, rate=0.001))
    settings = get_settings(WsSettings)
    stale = read(dynamodb)
    limits.spend(settings, stale, "register", fields={"role": "viewer"})
    with pytest.raises(RateLimited):
        limits.spend(settings, stale, "register", fields={"role": "streamer"})
    assert read(dynamodb)["role"] == "viewer"


def test_a_connection_gone_meanwhile_is_not_found_and_not_recreated(dynamodb: Any) -> None:
    stale = read(dynamodb)
    dynamodb.delete_item(TableName=TABLE, Key=table.connection_key(CONN))
    with pytest.raises(NotFound):
        limits.spend(get_settings(WsSettings), stale, "heartbeat", fields={"last_seen_at": 1})
    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key=table.connection_key(CONN))
