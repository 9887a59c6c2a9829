"""The hand-written wire encoding appends exactly what protobuf's own API would, for every OTel value type."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llm_telemetry.exporters.gateway import wire
from llm_telemetry.exporters.gateway.otlp import decode_attributes, encode_value, split

VALUES: dict[str, Any] = {
    "text": "héllo ✓ 日本",
    "empty": "",
    "yes": True,
    "no": False,
    "zero": 0,
    "one": 1,
    "big": 2**62 + 7,
    "negative": -42,
    "cost": 0.000291,
    "float_whole": 3.0,
    "negative_float": -1e-300,
    "words": ("pii", "secrets"),
    "flags": (True, False),
    "counts": (1, -2, 300),
    "ratios": (0.5, 2.0),
    "none_yet": (),
}


def _via_api(values: dict[str, Any]) -> Span:
    span = Span(name="s")
    for key, value in values.items():
        kv = span.attributes.add()
        kv.key = key
        encode_value(kv.value, value)
    return span


@pytest.mark.parametrize("key", list(VALUES))
def test_each_value_type_round_trips(key: str) -> None:
    span = Span(name="s")
    span.MergeFromString(wire.attributes({key: VALUES[key]}))
    assert span == _via_api({key: VALUES[key]})
    assert decode_attributes(span.attributes) == {key: VALUES[key]}


def test_cached_pairs_keep_bool_and_int_apart() -> None:
    span = Span()
    for value in (True, 1, (True,), (1,), 1.0):
        span.MergeFromString(wire.attributes({"k": value}))
    kinds = [kv.value.WhichOneof("value") for kv in span.attributes]
    assert kinds == ["bool_value", "int_value", "array_value", "array_value", "double_value"]
    assert [v.WhichOneof("value") for kv in span.attributes[2:4] for v in kv.value.array_value.values] == ["bool_value", "int_value"]


def test_merge_appends_to_existing_attributes_and_events() -> None:
    span = _via_api({"http.method": "GET"})
    span.end_time_unix_nano = 99
    span.events.add(name="first")
    span.MergeFromString(wire.attributes(VALUES) + wire.events([("llm_telemetry.budget.crossed", {"level": "warning", "x": 0.5}, 42)]))
    assert decode_attributes(span.attributes) == {"http.method": "GET", **VALUES}
    assert [e.name for e in span.events] == ["first", "llm_telemetry.budget.crossed"]
    event = span.events[1]
    assert event.time_unix_nano == 42 and decode_attributes(event.attributes) == {"level": "warning", "x": 0.5}
    assert span.name == "s" and span.end_time_unix_nano == 99, "a merge changes nothing else"


def test_varint_matches_protobuf() -> None:
    for value in (0, 1, 127, 128, 300, 2**32, 2**63 - 1, -1, -(2**63)):
        span = Span()
        kv = span.attributes.add()
        kv.value.int_value = value
        assert wire.varint(value if value >= 0 else value + 2**64) in kv.SerializeToString()


def test_split_keeps_resources_scopes_and_every_item() -> None:
    from _gateway_helpers import raw_trace_request

    request = raw_trace_request([{"pad": "x" * 1000, "i": i} for i in range(50)])
    parts = split("traces", request, 8 * 1024)
    assert len(parts) >= 6 and sum(count for _, count in parts) == 50
    seen = []
    for payload, count in parts:
        assert len(payload) <= 8 * 1024 + 1200
        part = type(request).FromString(payload)
        [resource_spans] = part.resource_spans
        assert resource_spans.resource == request.resource_spans[0].resource
        assert resource_spans.scope_spans[0].scope.name == "hand.made"
        spans = resource_spans.scope_spans[0].spans
        assert len(spans) == count
        seen += [decode_attributes(s.attributes)["i"] for s in spans]
    assert seen == list(range(50))
