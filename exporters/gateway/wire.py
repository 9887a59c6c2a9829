"""Protobuf wire encoding of what the gateway appends to a span: attributes (``KeyValue``) and events.

Why by hand: setting eight attributes on a parsed span through the protobuf API costs ~8 µs (a wrapper
object per field, and the message then re-serializes slowly); appending the same attributes as
pre-encoded bytes with ``span.MergeFromString`` costs ~0.4 µs — protobuf's merge appends repeated fields,
which is exactly "add these attributes". Most enrichment values repeat from span to span (pricing
model, pricing source, safety action, ``True``), so encoded pairs are cached; floats (costs) are packed
directly. Only the OTel attribute value types are encoded: str, bool, int, float and homogeneous
sequences of them (the enricher chain validates values before they get here).

Field numbers (opentelemetry/proto): ``Span.attributes`` 9, ``Span.events`` 11; ``Span.Event``
time_unix_nano 1 (fixed64), name 2, attributes 3; ``KeyValue`` key 1, value 2; ``AnyValue`` string 1,
bool 2, int 3, double 4, array 5; ``ArrayValue`` values 1.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any

SPAN_ATTRIBUTES = 9
SPAN_EVENTS = 11
EVENT_ATTRIBUTES = 3
_CACHE_LIMIT = 4096
_pairs: dict[tuple[int, str, Any], bytes] = {}
_float_heads: dict[tuple[int, str], bytes] = {}
_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack


def varint(value: int) -> bytes:
    """Unsigned LEB128; negative int64 values as their 64-bit two's complement (10 bytes), as protobuf does."""
    if value < 0:
        value += 1 << 64
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def any_value(value: Any) -> bytes:
    """The serialized ``AnyValue`` of an OTel attribute value."""
    if isinstance(value, bool):  # before int: bool is an int
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, str):
        return _field(1, value.encode("utf-8"))
    if isinstance(value, (list, tuple)):
        return _field(5, b"".join(_field(1, any_value(item)) for item in value))
    raise TypeError(f"not an OTel attribute value: {value!r}")


def key_value(number: int, key: str, value: Any) -> bytes:
    """``key``/``value`` as a ``KeyValue`` field ``number`` of its parent (9 on a span, 3 on an event)."""
    kind = type(value)
    if kind is float:  # costs: different on every span, so packed behind a cached head, not cached whole
        head = _float_heads.get((number, key))
        if head is None:
            key_field = _field(1, key.encode("utf-8"))
            head = _float_heads[(number, key)] = varint(number << 3 | 2) + varint(len(key_field) + 11) + key_field + b"\x12\x09\x21"
        return head + _pack_double(value)
    # The type is part of the cache key: True == 1 and (1.0,) == (1,) in Python, not on the wire.
    if kind is tuple or kind is list:
        cache_key: tuple[Any, ...] = (number, key, type(value[0]) if value else None, tuple(value))
    else:
        cache_key = (number, key, kind, value)
    encoded = _pairs.get(cache_key)
    if encoded is None:
        encoded = _field(number, _field(1, key.encode("utf-8")) + _field(2, any_value(value)))
        if len(_pairs) >= _CACHE_LIMIT:
            _pairs.clear()
        _pairs[cache_key] = encoded
    return encoded


def attributes(values: Mapping[str, Any], number: int = SPAN_ATTRIBUTES) -> bytes:
    """``values`` as repeated ``KeyValue`` fields, ready for ``MergeFromString`` on a span (or event with 3)."""
    return b"".join(key_value(number, key, value) for key, value in values.items())


def events(items: Iterable[tuple[str, Mapping[str, Any], int]]) -> bytes:
    """(name, attributes, time in ns) triples as repeated ``Span.events`` fields."""
    out = []
    for name, values, time_unix_nano in items:
        body = b"\x09" + _pack_fixed64(time_unix_nano) + _field(2, name.encode("utf-8")) + attributes(values, EVENT_ATTRIBUTES)
        out.append(_field(SPAN_EVENTS, body))
    return b"".join(out)
