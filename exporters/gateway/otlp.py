"""OTLP protobuf plumbing the gateway shares: the three signals, attribute codecs, item counts, splitting.

The gateway never turns OTLP into SDK objects: it reads and edits the decoded protobuf messages in place
(`ExportTraceServiceRequest` …), and forwards bytes. Two properties of protobuf keep that cheap:

- a message whose only field is a repeated one (every ``Export*ServiceRequest``) can be *merged by
  concatenating* serialized messages, so upstream batches are ``b"".join(payloads)``;
- a request that did not change is forwarded as the bytes that came in, never re-serialized.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

Signal = Literal["traces", "metrics", "logs"]
SIGNALS: tuple[Signal, ...] = ("traces", "metrics", "logs")


@dataclass(frozen=True)
class SignalSpec:
    """Where one signal lives in OTLP: message types, gRPC method, HTTP path and the nesting field names."""

    name: Signal
    request: type[Message]
    response: type[Message]
    grpc_service: str
    http_path: str
    resource_field: str
    scope_field: str
    item_field: str

    @property
    def grpc_method(self) -> str:
        return f"/{self.grpc_service}/Export"


SPECS: dict[Signal, SignalSpec] = {
    "traces": SignalSpec(
        "traces", trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse,
        "opentelemetry.proto.collector.trace.v1.TraceService", "/v1/traces", "resource_spans", "scope_spans", "spans",
    ),
    "metrics": SignalSpec(
        "metrics", metrics_service_pb2.ExportMetricsServiceRequest, metrics_service_pb2.ExportMetricsServiceResponse,
        "opentelemetry.proto.collector.metrics.v1.MetricsService", "/v1/metrics", "resource_metrics", "scope_metrics", "metrics",
    ),
    "logs": SignalSpec(
        "logs", logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse,
        "opentelemetry.proto.collector.logs.v1.LogsService", "/v1/logs", "resource_logs", "scope_logs", "log_records",
    ),
}
BY_PATH: dict[str, SignalSpec] = {spec.http_path: spec for spec in SPECS.values()}

_DATA_POINT_FIELDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


# --- attribute values ----------------------------------------------------------------------------------

def decode_value(value: AnyValue) -> Any:
    """The Python value of an ``AnyValue``: str/bool/int/float, a tuple for arrays, a dict for kvlists."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return tuple(decode_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return decode_attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value
    return None


def decode_attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """``repeated KeyValue`` as a plain dict (a later duplicate key wins, as the SDKs do)."""
    return {kv.key: decode_value(kv.value) for kv in pairs}


def encode_value(target: AnyValue, value: Any) -> None:
    """Write a Python attribute value (an OTel ``AttributeValue``) into ``target``."""
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, (list, tuple)):
        array = target.array_value
        array.SetInParent()
        for item in value:
            encode_value(array.values.add(), item)
    elif isinstance(value, bytes):
        target.bytes_value = value
    else:
        target.string_value = str(value)


def remove_keys(pairs: Any, keys: Iterable[str]) -> int:
    """Delete every entry of ``keys`` from a ``repeated KeyValue``; returns how many were removed."""
    doomed = set(keys)
    removed = 0
    for index in range(len(pairs) - 1, -1, -1):
        if pairs[index].key in doomed:
            del pairs[index]
            removed += 1
    return removed


# --- counting and splitting ------------------------------------------------------------------------------

def count_items(signal: Signal, request: Message) -> int:
    """Spans, metric data points or log records in ``request`` (what the OTLP partial-success fields count)."""
    spec = SPECS[signal]
    total = 0
    for resource in getattr(request, spec.resource_field):
        for scope in getattr(resource, spec.scope_field):
            items = getattr(scope, spec.item_field)
            if signal == "metrics":
                total += sum(_data_points(metric) for metric in items)
            else:
                total += len(items)
    return total


def _data_points(metric: Any) -> int:
    kind = metric.WhichOneof("data")
    return len(getattr(metric, kind).data_points) if kind in _DATA_POINT_FIELDS else 0


def split(signal: Signal, request: Message, max_bytes: int) -> list[tuple[bytes, int]]:
    """``request`` as several serialized requests of at most ``max_bytes`` each (one item may exceed it alone).

    Why: the gateway's enrichment makes requests larger, and upstreams refuse oversized messages for good
    (the Collector's gRPC receiver takes 4 MiB by default). Returns ``(payload, item count)`` pairs.
    """
    spec = SPECS[signal]
    out: list[tuple[bytes, int]] = []
    for chunk, count in _chunks(spec, request, max_bytes):
        out.append((chunk.SerializeToString(), count))
    return out


def _chunks(spec: SignalSpec, request: Message, max_bytes: int) -> Iterator[tuple[Message, int]]:
    current = spec.request()
    size = count = 0
    for resource in getattr(request, spec.resource_field):
        target_resource = None
        for scope in getattr(resource, spec.scope_field):
            target_scope = None
            for item in getattr(scope, spec.item_field):
                item_size = item.ByteSize() + 8
                if count and size + item_size > max_bytes:
                    yield current, count
                    current, size, count = spec.request(), 0, 0
                    target_resource = target_scope = None
                if target_resource is None:
                    target_resource = _copy_header(getattr(current, spec.resource_field).add(), resource, spec.scope_field)
                    size += resource.ByteSize() - sum(s.ByteSize() for s in getattr(resource, spec.scope_field)) + 8
                    target_scope = None
                if target_scope is None:
                    target_scope = _copy_header(getattr(target_resource, spec.scope_field).add(), scope, spec.item_field)
                    size += scope.scope.ByteSize() + len(scope.schema_url) + 16
                getattr(target_scope, spec.item_field).add().CopyFrom(item)
                size += item_size
                count += 1
    if count:
        yield current, count


def _copy_header(entry: Any, source: Message, children: str) -> Any:
    """Copy every field of ``source`` but its ``children`` list into ``entry`` (a resource or scope envelope)."""
    for descriptor, value in source.ListFields():
        if descriptor.name == children:
            continue
        target = getattr(entry, descriptor.name)
        if _is_repeated(descriptor):
            target.extend(value)
        elif descriptor.message_type is not None:
            target.CopyFrom(value)
        else:
            setattr(entry, descriptor.name, value)
    return entry


def _is_repeated(descriptor: Any) -> bool:
    flag = getattr(descriptor, "is_repeated", None)  # protobuf >= 5.29; ``label`` is deprecated there
    return bool(flag) if flag is not None else descriptor.label == descriptor.LABEL_REPEATED
