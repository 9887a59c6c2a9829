"""Shared pieces for the gateway tests: a gateway on free ports, real SDK senders, raw OTLP requests.

Everything runs over real sockets on 127.0.0.1: the Python SDK's OTLP exporters (gRPC and HTTP) send to
an in-process `Gateway`, which forwards to a `tests/_otlp_receiver.py` receiver.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Tracer

from llm_telemetry.config import Settings, load_settings
from llm_telemetry.exporters.gateway import Gateway, GatewayConfig
from llm_telemetry.exporters.gateway.otlp import SPECS, encode_value

OUTPUT_WITH_EMAIL = '[{"role":"assistant","parts":[{"type":"text","content":"Write to bob@example.com for the invoice."}]}]'
GENAI: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 500,
}
"""A GenAI span as any current-semconv instrumentation sets it: gpt-4o, 1000 in / 500 out = $0.0075."""
GPT4O_COST = 1000 * 2.5e-6 + 500 * 10e-6
LEGACY: dict[str, Any] = {
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.prompt_tokens": 1000,
    "gen_ai.usage.completion_tokens": 500,
}
"""The same call with the legacy names other instrumentations and languages still send."""


def gateway_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings loaded the real way from ``env`` only (never the user's), review queue in the tests' scratch dir."""
    return load_settings({"LLM_TELEMETRY_REVIEW_DB_PATH": os.environ["LLM_TELEMETRY_REVIEW_DB_PATH"], **(env or {})})


@contextmanager
def running_gateway(upstream: str | None, settings: Settings | None = None, stop_timeout_s: float = 5.0,
                    **config: Any) -> Iterator[Gateway]:
    """A started gateway on free ports forwarding to ``upstream`` (an ``http://127.0.0.1:PORT`` gRPC endpoint)."""
    if upstream is not None and upstream.startswith("http://") and "upstream_protocol" not in config:
        config["upstream_protocol"] = "grpc"
    gateway = Gateway(
        GatewayConfig(listen_grpc="127.0.0.1:0", listen_http="127.0.0.1:0", upstream=upstream, **config),
        settings if settings is not None else gateway_settings(),
    )
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop(stop_timeout_s)


@dataclass
class Sender:
    """The Python SDK sending spans to a gateway with its stock OTLP exporter (``grpc`` or ``http``)."""

    provider: TracerProvider
    tracer: Tracer

    def close(self) -> None:
        self.provider.shutdown()


def sdk_sender(gateway: Gateway, protocol: str = "grpc", headers: dict[str, str] | None = None, service: str = "app") -> Sender:
    address = gateway.addresses()[protocol]
    if protocol == "grpc":
        exporter: Any = GrpcSpanExporter(endpoint=f"http://{address}", insecure=True, headers=headers, timeout=5)
    else:
        exporter = HttpSpanExporter(endpoint=f"http://{address}/v1/traces", headers=headers, timeout=5)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Sender(provider, provider.get_tracer("test.sender"))


def emit(tracer: Tracer, name: str, attributes: Mapping[str, Any], *, end_ns: int | None = None,
         events: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """One finished span (optionally ending at ``end_ns``, 1.5 s after its start)."""
    start = None if end_ns is None else end_ns - 1_500_000_000
    span = tracer.start_span(name, attributes=dict(attributes), start_time=start)
    for event_name, event_attributes in (events or {}).items():
        span.add_event(event_name, dict(event_attributes))
    span.end(end_time=end_ns)


def raw_trace_request(spans: list[dict[str, Any]], service: str = "other-language") -> ExportTraceServiceRequest:
    """An ``ExportTraceServiceRequest`` built by hand, as a non-Python sender would (one span per attribute dict)."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    kv = resource_spans.resource.attributes.add()
    kv.key = "service.name"
    kv.value.string_value = service
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "hand.made"
    for index, attributes in enumerate(spans):
        span = scope_spans.spans.add()
        span.trace_id = (index + 1).to_bytes(16, "big")
        span.span_id = (index + 1).to_bytes(8, "big")
        span.name = f"span {index}"
        span.start_time_unix_nano = 1_700_000_000_000_000_000
        span.end_time_unix_nano = 1_700_000_001_000_000_000
        for key, value in attributes.items():
            pair: KeyValue = span.attributes.add()
            pair.key = key
            encode_value(pair.value, value)
    return request


def grpc_export(address: str, signal: str, payload: bytes, metadata: tuple[tuple[str, str], ...] = (),
                credentials: grpc.ChannelCredentials | None = None, gzip: bool = False) -> tuple[grpc.StatusCode, str, dict[str, bytes]]:
    """One raw ``Export`` call: (status code, details, trailing metadata); OK when it succeeded.

    ``gzip``: compress the message, as the OpenTelemetry Collector's ``otlp`` exporter does by default.
    """
    if credentials is None:
        channel = grpc.insecure_channel(address, compression=grpc.Compression.Gzip if gzip else None)
    else:
        channel = grpc.secure_channel(address, credentials, options=[("grpc.ssl_target_name_override", "localhost")])
    with channel:
        call = channel.unary_unary(SPECS[signal].grpc_method, request_serializer=None, response_deserializer=None)  # type: ignore[index]
        try:
            call(payload, timeout=10, metadata=metadata)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or "", dict(exc.trailing_metadata() or ())
    return grpc.StatusCode.OK, "", {}
