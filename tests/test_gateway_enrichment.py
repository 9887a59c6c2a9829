"""The gateway enriches GenAI spans from any sender exactly once, leaves other telemetry alone, keeps content out.

SDK OTLP exporters (gRPC and HTTP) and hand-built requests (as other languages send them) → a real
gateway → a real OTLP receiver as its upstream.
"""

from __future__ import annotations

import gzip
import json
import time

import pytest
import requests
from _gateway_helpers import (
    GENAI,
    GPT4O_COST,
    LEGACY,
    OUTPUT_WITH_EMAIL,
    emit,
    gateway_settings,
    grpc_export,
    raw_trace_request,
    running_gateway,
    sdk_sender,
)
from _otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver, attributes
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

from llm_telemetry import attributes as a


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_genai_spans_arrive_enriched_once_and_other_spans_untouched(protocol: str) -> None:
    with OtlpGrpcReceiver() as upstream, running_gateway(upstream.endpoint) as gateway:
        sender = sdk_sender(gateway, protocol)
        emit(sender.tracer, "chat gpt-4o", {**GENAI, "gen_ai.output.messages": OUTPUT_WITH_EMAIL, "user.id": "u1"})
        emit(sender.tracer, "GET /orders", {"http.request.method": "GET", "url.path": "/orders"})
        sender.close()
        spans = {span.name: span for span in upstream.wait_for_spans(2)}
        assert set(spans) == {"chat gpt-4o", "GET /orders"}

        chat = spans["chat gpt-4o"].attributes
        assert chat[a.COST_TOTAL_USD] == pytest.approx(GPT4O_COST)
        assert chat[a.COST_PRICING_MODEL] == "gpt-4o"
        assert chat[a.SAFETY_FLAGGED] is True and chat[a.SAFETY_CATEGORIES] == ("pii",)
        assert chat[a.ENRICHED] is True
        assert a.OUTPUT_MESSAGES not in chat, "content capture is off: the output must not be forwarded"
        assert spans["chat gpt-4o"].resource["service.name"] == "app"
        assert spans["GET /orders"].attributes == {"http.request.method": "GET", "url.path": "/orders"}
        assert gateway.health()[1]["counts"]["enriched"] == 1


def test_spans_enriched_in_process_are_not_enriched_twice() -> None:
    already = {**GENAI, a.ENRICHED: True, a.COST_TOTAL_USD: 0.5}
    with OtlpGrpcReceiver() as upstream, running_gateway(upstream.endpoint) as gateway:
        sender = sdk_sender(gateway)
        emit(sender.tracer, "chat gpt-4o", already)
        sender.close()
        [span] = upstream.wait_for_spans(1)
        assert span.attributes == already, "an enriched span passes through unchanged"
        assert gateway.enricher.spans_enriched == 0
        assert gateway.chain is not None and gateway.chain.calls_measured == 0

        # ...and one enriched by a gateway is not measured again by a second gateway behind it.
        with running_gateway(f"http://{gateway.addresses()['grpc']}") as front:
            sender = sdk_sender(front)
            emit(sender.tracer, "chat gpt-4o", GENAI)
            sender.close()
            spans = upstream.wait_for_spans(2)
            assert spans[-1].attributes[a.COST_TOTAL_USD] == pytest.approx(GPT4O_COST)
            assert front.enricher.spans_enriched == 1
            assert gateway.enricher.spans_enriched == 0


def test_budget_windows_follow_the_calls_time_not_the_arrival_time() -> None:
    settings = gateway_settings({"LLM_TELEMETRY_BUDGET_USER_HOURLY_USD": "0.01"})  # each call costs 0.0075
    now = time.time_ns()
    next_hour = (now // 3_600_000_000_000 + 1) * 3_600_000_000_000 + 60_000_000_000
    with OtlpGrpcReceiver() as upstream, running_gateway(upstream.endpoint, settings) as gateway:
        sender = sdk_sender(gateway)
        emit(sender.tracer, "now", {**GENAI, "user.id": "u1"}, end_ns=now)
        emit(sender.tracer, "next hour", {**GENAI, "user.id": "u1"}, end_ns=next_hour)
        emit(sender.tracer, "next hour again", {**GENAI, "user.id": "u1"}, end_ns=next_hour + 1_000_000_000)
        sender.close()
        spans = {span.name: span for span in upstream.wait_for_spans(3)}
    crossed = {name: [attributes(e.attributes)[a.BUDGET_LEVEL] for e in span.span.events if e.name == a.EVENT_BUDGET_CROSSED]
               for name, span in spans.items()}
    # Received within a second, the three calls would share one hour (0.0225 > 0.01 at the second call);
    # by their own end times the second call opens a new hour and only the third crosses.
    assert crossed == {"now": [], "next hour": [], "next hour again": ["warning", "critical"]}
    event = next(e for e in spans["next hour again"].span.events if e.name == a.EVENT_BUDGET_CROSSED)
    assert event.time_unix_nano == next_hour + 1_000_000_000, "the event carries the call's time"


def test_legacy_attribute_names_from_another_language_are_priced() -> None:
    """A hand-built request (another language's SDK), gzip-compressed as the Collector's otlp exporter sends it."""
    request = raw_trace_request([LEGACY, {"db.system": "postgresql"}])
    with OtlpGrpcReceiver() as upstream, running_gateway(upstream.endpoint) as gateway:
        code, details, _ = grpc_export(gateway.addresses()["grpc"], "traces", request.SerializeToString(), gzip=True)
        assert code.name == "OK", details
        spans = {span.name: span for span in upstream.wait_for_spans(2)}
        legacy = spans["span 0"].attributes
        assert legacy[a.COST_TOTAL_USD] == pytest.approx(GPT4O_COST)
        assert legacy["gen_ai.system"] == "openai", "the sender's own attributes are kept"
        assert spans["span 1"].attributes == {"db.system": "postgresql"}
        assert spans["span 0"].resource["service.name"] == "other-language"
        assert spans["span 0"].span.trace_id == (1).to_bytes(16, "big")


def test_otlp_json_over_http_with_gzip_is_accepted_and_forwarded_as_protobuf() -> None:
    body = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "node-app"}}]},
            "scopeSpans": [{"scope": {"name": "js"}, "spans": [{
                "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "chat",
                "kind": 3, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000",
                "attributes": [
                    {"key": "gen_ai.system", "value": {"stringValue": "openai"}},
                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                    {"key": "gen_ai.usage.prompt_tokens", "value": {"intValue": "1000"}},
                    {"key": "gen_ai.usage.completion_tokens", "value": {"intValue": 500}},
                ],
                "someFieldFromTheFuture": True,
            }]}],
        }],
    }
    with OtlpGrpcReceiver() as upstream, running_gateway(upstream.endpoint) as gateway:
        response = requests.post(
            f"http://{gateway.addresses()['http']}/v1/traces", data=gzip.compress(json.dumps(body).encode()),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}, timeout=10,
        )
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/json" and response.json() == {}
        [span] = upstream.wait_for_spans(1)
        assert span.span.trace_id.hex() == "5b8efff798038103d269b633813fc60c"
        assert span.span.span_id.hex() == "eee19b7ec3c1b174"
        assert span.attributes[a.COST_TOTAL_USD] == pytest.approx(GPT4O_COST)


def test_content_is_stripped_from_spans_events_and_logs_with_capture_off() -> None:
    events = {"gen_ai.client.inference.operation.details": {a.OUTPUT_MESSAGES: OUTPUT_WITH_EMAIL, "gen_ai.response.id": "r1"}}
    foreign = {**LEGACY, "gen_ai.prompt.0.content": "my card is 4111", "gen_ai.completion.0.content": "noted"}
    with OtlpGrpcReceiver() as upstream, running_gateway(upstream.endpoint) as gateway:
        sender = sdk_sender(gateway)
        emit(sender.tracer, "chat gpt-4o", {**GENAI, a.INPUT_MESSAGES: "[]"}, events=events)
        emit(sender.tracer, "openllmetry", foreign)
        sender.close()
        _send_log(gateway, {a.OUTPUT_MESSAGES: OUTPUT_WITH_EMAIL, "event.name": "gen_ai.client.inference.operation.details"})
        spans = {span.name: span for span in upstream.wait_for_spans(2)}
        chat = spans["chat gpt-4o"]
        assert a.INPUT_MESSAGES not in chat.attributes
        [event] = chat.span.events
        assert attributes(event.attributes) == {"gen_ai.response.id": "r1"}
        kept = spans["openllmetry"].attributes
        assert not [key for key in kept if key.startswith(("gen_ai.prompt", "gen_ai.completion"))]
        assert kept[a.COST_TOTAL_USD] == pytest.approx(GPT4O_COST)
        assert upstream._store.wait_for(lambda: len(upstream.log_requests) == 1, 10)
        record = upstream.log_requests[0].resource_logs[0].scope_logs[0].log_records[0]
        assert attributes(record.attributes) == {"event.name": "gen_ai.client.inference.operation.details"}
        assert gateway.health()[1]["counts"]["dropped"]["content_stripped"] == 5


def test_content_is_forwarded_when_capture_is_on() -> None:
    settings = gateway_settings({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_AND_EVENT"})
    with OtlpGrpcReceiver() as upstream, running_gateway(upstream.endpoint, settings) as gateway:
        sender = sdk_sender(gateway, "http")
        emit(sender.tracer, "chat gpt-4o", {**GENAI, a.OUTPUT_MESSAGES: OUTPUT_WITH_EMAIL})
        sender.close()
        [span] = upstream.wait_for_spans(1)
        assert span.attributes[a.OUTPUT_MESSAGES] == OUTPUT_WITH_EMAIL
        assert span.attributes[a.SAFETY_MATCHES] == ("pii.email: bob@example.com",)


def test_metrics_and_logs_are_forwarded_with_the_gateways_own_metrics() -> None:
    with OtlpHttpReceiver() as upstream, running_gateway(upstream.endpoint, metrics_interval_s=0.5,
                                                          upstream_protocol="http/protobuf") as gateway:
        address = gateway.addresses()["grpc"]
        provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"http://{address}", insecure=True), export_interval_millis=60_000)])
        provider.get_meter("app").create_counter("orders").add(3, {"shop": "north"})
        provider.shutdown()
        _send_log(gateway, {"order.id": "o-1"})
        sender = sdk_sender(gateway)
        emit(sender.tracer, "chat gpt-4o", GENAI)
        sender.close()
        names = upstream.wait_for_metrics({"orders", a.METRIC_GATEWAY_RECEIVED, a.METRIC_GATEWAY_ENRICHED, a.METRIC_COST})
        assert {"orders", a.METRIC_GATEWAY_RECEIVED, a.METRIC_GATEWAY_ENRICHED, a.METRIC_GATEWAY_EXPORTED,
                a.METRIC_GATEWAY_QUEUE_SIZE, a.METRIC_COST} <= names
        assert upstream._store.wait_for(lambda: len(upstream.log_requests) == 1, 10)
        assert upstream.log_requests[0].resource_logs[0].scope_logs[0].log_records[0].body.string_value == "order placed"
        orders = next(m for m in upstream.metrics() if m.name == "orders")
        assert orders.metric.sum.data_points[0].as_int == 3
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            received = _latest_points(upstream, a.METRIC_GATEWAY_RECEIVED)
            if received.get("traces") == 1:
                break
            time.sleep(0.2)
        assert received == {"traces": 1, "metrics": 1, "logs": 1}
        own = next(m for m in upstream.metrics() if m.name == a.METRIC_GATEWAY_RECEIVED)
        assert own.resource["service.name"] == "llm-telemetry-gateway"


def _latest_points(receiver: OtlpHttpReceiver, name: str) -> dict[str, int]:
    metrics = [m for m in receiver.metrics() if m.name == name]
    if not metrics:
        return {}
    return {attributes(p.attributes)[a.GATEWAY_SIGNAL]: p.as_int for p in metrics[-1].metric.sum.data_points}


def _send_log(gateway: object, record_attributes: dict[str, str]) -> None:
    from opentelemetry._logs import LogRecord

    address = gateway.addresses()["grpc"]  # type: ignore[attr-defined]
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"http://{address}", insecure=True)))
    provider.get_logger("app").emit(LogRecord(body="order placed", attributes=record_attributes))
    provider.shutdown()


def test_pass_through_mode_forwards_unenriched_but_still_without_content() -> None:
    with OtlpGrpcReceiver() as upstream, running_gateway(upstream.endpoint, enrich=False) as gateway:
        sender = sdk_sender(gateway)
        emit(sender.tracer, "chat gpt-4o", {**GENAI, a.OUTPUT_MESSAGES: OUTPUT_WITH_EMAIL})
        sender.close()
        [span] = upstream.wait_for_spans(1)
        assert span.attributes == GENAI
        assert gateway.chain is None and gateway.health()[1]["enrichment"] == "off (pass-through)"
        assert gateway.health()[1]["counts"]["dropped"] == {"content_stripped": 1}
