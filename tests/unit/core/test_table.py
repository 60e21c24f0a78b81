"""Single-table item mapping: wire-format (de)serialization and channel items."""

from __future__ import annotations

from decimal import Decimal

import pytest

from capturestream import table
from capturestream.models import Channel

VALUES = [
    ("text", {"S": "text"}),
    (3, {"N": "3"}),
    (2.5, {"N": "2.5"}),
    (True, {"BOOL": True}),
    (None, {"NULL": True}),
    ({"a": [1, "b"]}, {"M": {"a": {"L": [{"N": "1"}, {"S": "b"}]}}}),
]


@pytest.mark.parametrize(("python", "wire"), VALUES)
def test_serialize_round_trip(python: object, wire: dict) -> None:
    assert table.serialize(python) == wire
    assert table.deserialize(wire) == python


def test_decimal_and_unsupported() -> None:
    assert table.serialize(Decimal("1.10")) == {"N": "1.10"}
    assert table.deserialize({"N": "4.0"}) == 4 and isinstance(table.deserialize({"N": "4.0"}), int)
    with pytest.raises(TypeError):
        table.serialize(object())
    with pytest.raises(TypeError):
        table.deserialize({"NS": ["1"]})
    assert table.deserialize({"SS": ["a", "b"]}) == {"a", "b"}  # connection items' subscription sets
    assert table.string_set("b", "a", "b") == {"SS": ["a", "b"]}
    with pytest.raises(ValueError):
        table.string_set()


def test_forgetting_a_connection_deletes_its_subscriptions_then_itself() -> None:
    item = table.connection_to_item({"connection_id": "C1=", "expires_at": 1})
    item["subscriptions"] = table.string_set("pb2", "pb1")
    assert table.connection_forget_keys(item) == [
        table.subscription_key("pb1", "C1="),
        table.subscription_key("pb2", "C1="),
        table.connection_key("C1="),
    ]
    assert table.connection_forget_keys(table.connection_to_item({"connection_id": "C2="})) == [
        table.connection_key("C2=")
    ]


def test_chat_range_is_half_open_on_media_time() -> None:
    query = table.chat_range_query("s1", 1500, 3000, 50)
    values = query["ExpressionAttributeValues"]
    low, high = values[":lo"]["S"], values[":hi"]["S"]
    assert low <= table.chat_sort_key(1500, "00a-x") < high
    assert not table.chat_sort_key(3000, "00a-x") < high
    assert not low <= table.chat_sort_key(1499, "fff-x")


def test_channel_item_round_trip_and_layout() -> None:
    channel, issued = Channel.create(name="Show", owner="user-9")
    item = table.channel_to_item(channel)
    assert item[table.PK] == {"S": f"CHANNEL#{channel.channel_id}"}
    assert item[table.SK] == {"S": "CHANNEL"}
    assert item[table.GSI1_PK] == {"S": "OWNER#user-9"}
    assert item[table.GSI1_SK]["S"].startswith("CHANNEL#") and item[table.GSI1_SK]["S"].endswith(channel.channel_id)
    assert table.channel_key(channel.channel_id) == {k: item[k] for k in (table.PK, table.SK)}
    assert issued.value.get_secret_value() not in str(item)
    assert table.channel_from_item(item) == channel


def test_rotate_update_is_conditional_on_previous_hash() -> None:
    channel, _ = Channel.create(name="Show", owner="o")
    rotated, _ = channel.with_rotated_key()
    update = table.rotate_key_update(rotated, channel.stream_key_hash)
    assert update["ConditionExpression"] == "#h = :old"
    assert update["ExpressionAttributeValues"][":old"] == {"S": channel.stream_key_hash}
    assert update["ExpressionAttributeValues"][":new"] == {"S": rotated.stream_key_hash}
