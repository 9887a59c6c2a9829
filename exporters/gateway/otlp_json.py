"""OTLP/HTTP's JSON encoding, in and out.

OTLP JSON is protobuf's JSON mapping with one twist: trace and span ids are hex strings, where the
mapping would use base64. `parse` rewrites the ids and lets ``json_format`` do the rest, ignoring unknown
fields as the OTLP spec asks of receivers. The gateway forwards protobuf whatever came in.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from llm_telemetry.exporters.gateway.otlp import SPECS, Signal

_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


def parse(signal: Signal, body: bytes) -> Message:
    """An ``Export*ServiceRequest`` from OTLP JSON; raises ``ValueError`` (with the reason) on bad input."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("the JSON body must be an object")
    _hex_ids_to_base64(data)
    request = SPECS[signal].request()
    try:
        json_format.ParseDict(data, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise ValueError(str(exc)) from None
    return request


def _hex_ids_to_base64(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                except ValueError:
                    raise ValueError(f"{key} {value!r} is not a hex string") from None
            else:
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for value in node:
            _hex_ids_to_base64(value)


def dumps(message: Message) -> bytes:
    """A response or ``google.rpc.Status`` as OTLP JSON (lowerCamelCase, default fields left out)."""
    return json_format.MessageToJson(message, indent=None).encode("utf-8")
