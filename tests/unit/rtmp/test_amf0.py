"""AMF0 codec: hand-written vectors, round trips (table + hypothesis), truncation, and refusals."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest_node.rtmp import UNDEFINED, Date, EcmaArray, LocalProtocolError, RemoteProtocolError, amf0

# (value, exact AMF0 bytes) -- written by hand from the AMF0 spec, not produced by the encoder under test.
VECTORS: list[tuple[Any, bytes]] = [
    (0.0, bytes.fromhex("000000000000000000")),
    (1.0, bytes.fromhex("003ff0000000000000")),
    (-2.5, bytes.fromhex("00c004000000000000")),
    (True, bytes.fromhex("0101")),
    (False, bytes.fromhex("0100")),
    ("", bytes.fromhex("020000")),
    ("live", bytes.fromhex("0200046c697665")),
    ("é", bytes.fromhex("020002c3a9")),
    (None, bytes.fromhex("05")),
    (UNDEFINED, bytes.fromhex("06")),
    ({}, bytes.fromhex("03000009")),
    ({"a": 1.0}, bytes.fromhex("03 0001 61 00 3ff0000000000000 000009")),
    (EcmaArray(), bytes.fromhex("0800000000000009")),
    (EcmaArray(w=320.0), bytes.fromhex("08 00000001 0001 77 00 4074000000000000 000009")),
    ([], bytes.fromhex("0a00000000")),
    (["hvc1", "av01"], bytes.fromhex("0a 00000002 02 0004 68766331 02 0004 61763031")),
    (Date(1.0, 0), bytes.fromhex("0b3ff00000000000000000")),
    ("x" * 70000, b"\x0c" + (70000).to_bytes(4, "big") + b"x" * 70000),
    ({"": None}, bytes.fromhex("03 0000 05 000009")),
]


@pytest.mark.parametrize(("value", "data"), VECTORS, ids=[repr(v)[:30] for v, _ in VECTORS])
def test_vectors_encode_and_decode(value: Any, data: bytes) -> None:
    """Each vector encodes to its bytes and decodes back to its value (types included)."""
    assert amf0.encode(value) == data
    (decoded,) = amf0.decode(data)
    assert decoded == value
    assert type(decoded) is type(value) or isinstance(value, int | float)


@pytest.mark.parametrize(("value", "data"), VECTORS, ids=[repr(v)[:30] for v, _ in VECTORS])
def test_every_prefix_is_truncated(value: Any, data: bytes) -> None:
    """A value cut short anywhere is refused as truncated, never half-decoded (byte by byte)."""
    for end in range(1, len(data), max(1, len(data) // 50)):
        with pytest.raises(RemoteProtocolError, match="truncated|announces"):
            amf0.decode(data[:end])


@pytest.mark.parametrize(("value", "data"), VECTORS, ids=[repr(v)[:30] for v, _ in VECTORS])
def test_trailing_values_are_left_for_the_next_value(value: Any, data: bytes) -> None:
    """Bytes after a value are the next value, untouched by the first."""
    assert amf0.decode(data + amf0.encode("next")) == [value, "next"]


def test_connect_command_from_the_wire() -> None:
    """FFmpeg's real ``connect`` body (captured) decodes to the expected structure and re-encodes identically."""
    body = bytes.fromhex(
        "02 0007 636f6e6e656374  00 3ff0000000000000  03 0003 617070 02 0004 6c697665"
        " 0004 74797065 02 000a 6e6f6e70726976617465  000009"
    )
    values = amf0.decode(body)
    assert values == ["connect", 1.0, {"app": "live", "type": "nonprivate"}]
    assert amf0.encode(*values) == body


def test_ecma_array_count_is_advisory() -> None:
    """Encoders disagree on the associative count (some write 0): the object-end marker decides."""
    data = bytes.fromhex("08 00000000 0001 77 00 4074000000000000 000009")
    assert amf0.decode(data) == [EcmaArray(w=320.0)]


def test_invalid_utf8_round_trips() -> None:
    """Invalid UTF-8 in a string survives decode/encode byte for byte (surrogateescape)."""
    data = bytes.fromhex("020002ff41")
    assert amf0.encode(*amf0.decode(data)) == data


def test_nonzero_boolean_is_true() -> None:
    """AMF0 §2.3: "0 is false, <> 0 is true"."""
    assert amf0.decode(b"\x01\x07") == [True]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x04", "movieclip"),
        (b"\x07\x00\x01", "reference"),
        (b"\x0d", "unsupported-marker"),
        (b"\x0e", "recordset"),
        (b"\x0f\x00\x00\x00\x00", "XML document"),
        (b"\x10\x00\x01A\x00\x00\x09", "typed object"),
        (b"\x11\x01", "AVM\\+"),
        (b"\x12", "unknown type marker 0x12"),
        (b"\x09", "object-end marker outside"),
        (b"\x0a\xff\xff\xff\xff\x05", "strict array announces 4294967295"),
    ],
)
def test_unsupported_and_malformed_values_are_refused(data: bytes, message: str) -> None:
    """References, typed objects, AMF3 and friends are refused with a RemoteProtocolError naming them."""
    with pytest.raises(RemoteProtocolError, match=message):
        amf0.decode(data)


def test_nesting_is_bounded() -> None:
    """A deeply nested value is refused before Python's recursion limit is anywhere near."""
    data = b"\x0a\x00\x00\x00\x01" * 10_000 + b"\x05"
    with pytest.raises(RemoteProtocolError, match="nested deeper"):
        amf0.decode(data)
    nested: Any = None
    for _ in range(amf0.MAX_DEPTH + 2):
        nested = [nested]
    with pytest.raises(LocalProtocolError, match="nested deeper"):
        amf0.encode(nested)


@pytest.mark.parametrize("value", [object(), b"bytes", {1: "non-str key"}, 10**400, Date(0.0, 1 << 20)])
def test_unencodable_values_are_a_local_error(value: Any) -> None:
    """Encoding something AMF0 cannot carry is the caller's mistake."""
    with pytest.raises(LocalProtocolError):
        amf0.encode(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return type(a) is type(b) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


_scalars = (
    st.floats(allow_nan=True)
    | st.booleans()
    | st.text(max_size=20)
    | st.none()
    | st.just(UNDEFINED)
    | st.builds(Date, st.floats(allow_nan=False), st.integers(-(2**15), 2**15 - 1))
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4).map(EcmaArray)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_values, max_size=5))
def test_round_trip_any_value(values: list[Any]) -> None:
    """decode(encode(values)) == values, and re-encoding is byte-identical (canonical output)."""
    data = amf0.encode(*values)
    decoded = amf0.decode(data)
    assert _same(decoded, values)
    assert amf0.encode(*decoded) == data


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_remote_protocol_error(data: bytes) -> None:
    """Garbage either decodes or raises RemoteProtocolError -- nothing else (h11 fuzz invariant)."""
    try:
        values = amf0.decode(data)
    except RemoteProtocolError:
        return
    assert amf0.decode(amf0.encode(*values)) is not None
