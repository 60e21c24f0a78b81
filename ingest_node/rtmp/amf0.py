"""AMF0 encoding and decoding (Adobe "Action Message Format -- AMF 0", December 2007).

Owns: the mapping between AMF0 bytes and Python values used by RTMP command and data messages
(RTMP 1.0 §7.1.1 "Command Message (20, 17)", §7.1.2 "Data Message (18, 15)").

Type mapping (AMF0 §2.1 "Types Overview"):

    ====================  ======  ==========================================================
    AMF0 type             marker  Python
    ====================  ======  ==========================================================
    number                0x00    ``float`` (``int`` accepted when encoding)
    boolean               0x01    ``bool``
    string / long string  0x02/0C ``str`` (long string chosen when UTF-8 is > 65535 bytes)
    object                0x03    ``dict[str, Any]`` (anonymous object)
    null                  0x05    ``None``
    undefined             0x06    :data:`UNDEFINED`
    ECMA array            0x08    :class:`EcmaArray` (a ``dict`` subclass, so it round-trips)
    object end            0x09    only as the terminator of an object / ECMA array
    strict array          0x0A    ``list`` (``tuple`` accepted when encoding)
    date                  0x0B    :class:`Date`
    ====================  ======  ==========================================================

Rules:
- Decoding never raises anything but ``RemoteProtocolError``: truncated input, an unknown or unsupported marker
  (movieclip, reference, unsupported, recordset, XML document, typed object, AVM+ switch), a stray object-end
  marker, nesting deeper than :data:`MAX_DEPTH`, or a strict array longer than the bytes left.
- Strings are UTF-8 (AMF0 §1.3 "UTF-8"); invalid sequences decode with ``surrogateescape`` so that every string
  round-trips byte for byte and a sloppy encoder name in ``onMetaData`` cannot kill a stream.
- Encoding a Python value AMF0 cannot carry raises ``LocalProtocolError`` (the caller's mistake).
- ``encode(*decode(data)) == data`` whenever ``data`` is canonical: booleans are 0/1, strings use the shortest
  form, ECMA array counts are exact.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final

from .errors import LocalProtocolError, RemoteProtocolError

__all__ = ["MAX_DEPTH", "UNDEFINED", "Date", "EcmaArray", "decode", "encode"]

#: Deepest nesting of objects/arrays accepted; RTMP commands nest 2-3 levels, so this only stops recursion bombs.
MAX_DEPTH: Final = 32

NUMBER, BOOLEAN, STRING, OBJECT, MOVIECLIP, NULL, UNDEFINED_MARKER, REFERENCE = range(8)
ECMA_ARRAY, OBJECT_END, STRICT_ARRAY, DATE, LONG_STRING, UNSUPPORTED, RECORDSET, XML_DOCUMENT = range(8, 16)
TYPED_OBJECT, AVMPLUS_OBJECT = 0x10, 0x11

_UNSUPPORTED_NAMES: Final = {
    MOVIECLIP: "movieclip (reserved)",
    REFERENCE: "reference",
    UNSUPPORTED: "unsupported-marker",
    RECORDSET: "recordset (reserved)",
    XML_DOCUMENT: "XML document",
    TYPED_OBJECT: "typed object",
    AVMPLUS_OBJECT: "AVM+ (AMF3) switch",
}
_DOUBLE = struct.Struct(">d")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_DATE = struct.Struct(">dh")


class _Undefined:
    """The AMF0 ``undefined`` value (distinct from ``null``/``None``)."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __reduce__(self) -> str:
        return "UNDEFINED"


#: AMF0 §2.8 "Undefined Type": "The undefined type is represented by the undefined type marker."
UNDEFINED: Final = _Undefined()


class EcmaArray(dict[str, Any]):
    """AMF0 §2.10 "ECMA Array Type": an associative array; kept distinct from an object so it re-encodes alike."""

    def __repr__(self) -> str:
        return f"EcmaArray({dict.__repr__(self)})"


@dataclass(frozen=True, slots=True)
class Date:
    """AMF0 §2.13 "Date Type": milliseconds since the Unix epoch (UTC) plus a reserved time-zone field."""

    milliseconds: float
    #: "time-zone = S16 ; reserved, not supported should be set to 0x0000"
    timezone: int = 0


class _Decoder:
    """One pass over an AMF0 byte string."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise RemoteProtocolError(f"AMF0: truncated value at byte {self.pos} (needs {size} more bytes)")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def u8(self) -> int:
        if self.pos >= len(self.data):
            raise RemoteProtocolError(f"AMF0: truncated value at byte {self.pos}")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def utf8(self, size: int) -> str:
        return self.take(size).decode("utf-8", "surrogateescape")

    def value(self, depth: int) -> Any:
        marker = self.u8()
        reader = _READERS.get(marker)
        if reader is None:
            name = _UNSUPPORTED_NAMES.get(marker)
            what = f"unsupported type {name}" if name else f"unknown type marker 0x{marker:02x}"
            raise RemoteProtocolError(f"AMF0: {what} at byte {self.pos - 1}")
        if depth > MAX_DEPTH:
            raise RemoteProtocolError(f"AMF0: values nested deeper than {MAX_DEPTH} levels")
        return reader(self, depth)

    def properties(self, target: dict[str, Any], depth: int) -> dict[str, Any]:
        """AMF0 §2.5: ``*(object-property) object-end-type`` where a property is ``UTF-8 value-type``."""
        while True:
            (size,) = _U16.unpack(self.take(2))
            if size == 0 and self.pos < len(self.data) and self.data[self.pos] == OBJECT_END:
                self.pos += 1
                return target
            key = self.utf8(size)
            target[key] = self.value(depth + 1)


def _read_number(dec: _Decoder, depth: int) -> float:
    return float(_DOUBLE.unpack(dec.take(8))[0])


def _read_boolean(dec: _Decoder, depth: int) -> bool:
    return dec.u8() != 0


def _read_string(dec: _Decoder, depth: int) -> str:
    return dec.utf8(_U16.unpack(dec.take(2))[0])


def _read_long_string(dec: _Decoder, depth: int) -> str:
    return dec.utf8(_U32.unpack(dec.take(4))[0])


def _read_object(dec: _Decoder, depth: int) -> dict[str, Any]:
    return dec.properties({}, depth)


def _read_null(dec: _Decoder, depth: int) -> None:
    return None


def _read_undefined(dec: _Decoder, depth: int) -> _Undefined:
    return UNDEFINED


def _read_ecma_array(dec: _Decoder, depth: int) -> EcmaArray:
    dec.take(4)  # associative-count: advisory only; encoders disagree, the object-end marker is authoritative
    result = dec.properties(EcmaArray(), depth)
    assert isinstance(result, EcmaArray)
    return result


def _read_strict_array(dec: _Decoder, depth: int) -> list[Any]:
    (count,) = _U32.unpack(dec.take(4))
    left = len(dec.data) - dec.pos
    if count > left:  # every value takes at least its marker byte: refuse before looping 2**32 times
        raise RemoteProtocolError(f"AMF0: strict array announces {count} values but only {left} bytes remain")
    return [dec.value(depth + 1) for _ in range(count)]


def _read_date(dec: _Decoder, depth: int) -> Date:
    milliseconds, timezone = _DATE.unpack(dec.take(10))
    return Date(milliseconds, timezone)


def _read_object_end(dec: _Decoder, depth: int) -> Any:
    raise RemoteProtocolError(f"AMF0: object-end marker outside an object at byte {dec.pos - 1}")


_READERS: Final = {
    NUMBER: _read_number,
    BOOLEAN: _read_boolean,
    STRING: _read_string,
    OBJECT: _read_object,
    NULL: _read_null,
    UNDEFINED_MARKER: _read_undefined,
    ECMA_ARRAY: _read_ecma_array,
    OBJECT_END: _read_object_end,
    STRICT_ARRAY: _read_strict_array,
    DATE: _read_date,
    LONG_STRING: _read_long_string,
}


def decode(data: bytes) -> list[Any]:
    """Decode a sequence of AMF0 values that fills ``data`` exactly.

    Args:
        data: the AMF0 body of a command or data message.

    Returns:
        The values in order.

    Raises:
        RemoteProtocolError: the bytes are not a complete sequence of supported AMF0 values.
    """
    dec = _Decoder(bytes(data))
    values = []
    while dec.pos < len(dec.data):
        values.append(dec.value(0))
    return values


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _encode_key(key: str) -> bytes:
    raw = _utf8(key)
    if len(raw) > 0xFFFF:
        raise LocalProtocolError("AMF0: object keys are limited to 65535 UTF-8 bytes")
    return _U16.pack(len(raw)) + raw


def _encode_properties(mapping: dict[str, Any], out: bytearray, depth: int) -> None:
    for key, item in mapping.items():
        if not isinstance(key, str):
            raise LocalProtocolError(f"AMF0: object keys must be str, not {type(key).__name__}")
        out += _encode_key(key)
        _encode_into(item, out, depth + 1)
    out += b"\x00\x00\x09"


def _write_null(value: None, out: bytearray, depth: int) -> None:
    out.append(NULL)


def _write_undefined(value: _Undefined, out: bytearray, depth: int) -> None:
    out.append(UNDEFINED_MARKER)


def _write_boolean(value: bool, out: bytearray, depth: int) -> None:
    out += bytes((BOOLEAN, int(value)))


def _write_number(value: float, out: bytearray, depth: int) -> None:
    try:
        number = _DOUBLE.pack(value)
    except (OverflowError, struct.error) as error:
        raise LocalProtocolError(f"AMF0 cannot encode the number {value!r}") from error
    out.append(NUMBER)
    out += number


def _write_string(value: str, out: bytearray, depth: int) -> None:
    raw = _utf8(value)
    if len(raw) > 0xFFFF:
        out.append(LONG_STRING)
        out += _U32.pack(len(raw)) + raw
    else:
        out.append(STRING)
        out += _U16.pack(len(raw)) + raw


def _write_ecma_array(value: EcmaArray, out: bytearray, depth: int) -> None:
    out.append(ECMA_ARRAY)
    out += _U32.pack(len(value))
    _encode_properties(value, out, depth)


def _write_object(value: dict[str, Any], out: bytearray, depth: int) -> None:
    out.append(OBJECT)
    _encode_properties(value, out, depth)


def _write_strict_array(value: list[Any] | tuple[Any, ...], out: bytearray, depth: int) -> None:
    out.append(STRICT_ARRAY)
    out += _U32.pack(len(value))
    for item in value:
        _encode_into(item, out, depth + 1)


def _write_date(value: Date, out: bytearray, depth: int) -> None:
    try:
        date = _DATE.pack(value.milliseconds, value.timezone)
    except (OverflowError, struct.error) as error:
        raise LocalProtocolError(f"AMF0 cannot encode {value!r}") from error
    out.append(DATE)
    out += date


#: Checked in order: bool before int (bool is an int), EcmaArray before dict (it is a dict).
_WRITERS: Final[tuple[tuple[type | tuple[type, ...], Any], ...]] = (
    (type(None), _write_null),
    (_Undefined, _write_undefined),
    (bool, _write_boolean),
    ((int, float), _write_number),
    (str, _write_string),
    (EcmaArray, _write_ecma_array),
    (dict, _write_object),
    ((list, tuple), _write_strict_array),
    (Date, _write_date),
)


def _encode_into(value: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise LocalProtocolError(f"AMF0: values nested deeper than {MAX_DEPTH} levels")
    for kind, writer in _WRITERS:
        if isinstance(value, kind):
            writer(value, out, depth)
            return
    raise LocalProtocolError(f"AMF0 cannot encode a {type(value).__name__}")


def encode(*values: Any) -> bytes:
    """Encode values as a sequence of AMF0 values.

    Raises:
        LocalProtocolError: a value (or a nested one) has no AMF0 representation.
    """
    out = bytearray()
    for value in values:
        _encode_into(value, out, 0)
    return bytes(out)
