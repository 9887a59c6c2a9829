"""A backend that answers with a rejection is told apart from one that is down, and the report says what to do.

Arize Phoenix takes traces only: it answers OTLP/HTTP metrics and logs with 405 and OTLP/gRPC ones with
UNIMPLEMENTED. Before, the exit report said "backend unreachable … check that the collector is
running" — wrong advice for a backend that is up. Real exporters against real servers (traces-only
receivers, a receiver answering chosen statuses, a refused port) through `configure` and the guard.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _export_helpers import clear_otel_env, providers_factory
from _otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver, unused_port
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_telemetry.config import ExportSettings, PipelineSettings, Settings
from llm_telemetry.exporters import Providers, ResilientMetricExporter, ResilientSpanExporter

SETTINGS = Settings(pipeline=PipelineSettings(enrichers=("cost",)), export=ExportSettings(timeout_s=2.0))
PROVIDERS_LOGGER = "llm_telemetry.exporters.providers"


@pytest.fixture(autouse=True)
def _no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_otel_env(monkeypatch)


@pytest.fixture
def make() -> Iterator[Callable[..., Providers]]:
    """``configure(set_global=False, ...)``; every result is shut down after the test."""
    with providers_factory(SETTINGS) as build:
        yield build


def _use(providers: Providers) -> None:
    """One span and one metric point, then shutdown: the exit report is what the user reads."""
    with providers.tracer_provider.get_tracer("app").start_as_current_span("work"):
        pass
    providers.meter_provider.get_meter("app").create_counter("app.work").add(1)
    providers.shutdown(timeout_s=5.0)


def _reports(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == PROVIDERS_LOGGER and "dropped" in r.getMessage()]


@pytest.mark.parametrize(("protocol", "receiver", "answer"), [
    ("http/protobuf", OtlpHttpReceiver, "HTTP 405 Method Not Allowed"),
    ("grpc", OtlpGrpcReceiver, "gRPC UNIMPLEMENTED"),
])
def test_traces_only_backend_is_reported_as_reachable_but_rejecting_metrics_and_logs(
    make: Callable[..., Providers], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
    protocol: str, receiver: Any, answer: str,
) -> None:
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "otlp")
    with receiver(signals=("traces",)) as rx:
        providers = make(endpoint=rx.endpoint, protocol=protocol)
        providers.logger_provider.get_logger("app").emit(LogRecord(body="invoice 2291 processed"))
        with caplog.at_level(logging.WARNING):
            _use(providers)
        assert [s.name for s in rx.spans()] == ["work"]  # traces still arrive
    reports = _reports(caplog)
    assert len(reports) == 2, reports  # metrics and logs: the same answer twice is not swallowed as a duplicate line
    for signal, report in zip(("metrics", "logs"), reports, strict=True):
        url = f"{rx.endpoint}/v1/{signal}" if protocol == "http/protobuf" else rx.endpoint
        assert report.startswith(f"llm-telemetry: the OTLP backend at {url} is reachable but rejected our {signal} ({answer}"), report
        assert f"set OTEL_{signal.upper()}_EXPORTER=none" in report and "Arize Phoenix" in report
        assert "unreachable" not in report and "spans" not in report  # traces were delivered: not part of the report
    assert re.search(r"; dropped 1 metric batches \(\d+ points\)\. It does not take metrics at this address", reports[0])
    assert "; dropped 1 log records. It does not take logs at this address" in reports[1]
    for guard in providers.guards:
        if guard.signal != "traces":
            assert guard.last_failure is not None and guard.last_failure.kind == "rejected" and guard.last_failure.permanent


def test_refused_and_rejected_get_one_line_each(
    make: Callable[..., Providers], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Traces to a port nobody listens on, metrics to a backend that rejects them: two lines, two pieces of advice."""
    down = f"http://127.0.0.1:{unused_port()}/v1/traces"
    refused = ResilientSpanExporter(HttpSpanExporter(endpoint=down, timeout=0.5), down, 0.5, 5.0, 0)
    with OtlpHttpReceiver(signals=("traces",)) as rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"{rx.endpoint}/v1/metrics")
        providers = make(protocol="http/protobuf", span_exporters=[refused])
        providers.guards.append(refused.guard)  # exporters passed in are used as given: count this one too
        with caplog.at_level(logging.WARNING):
            _use(providers)
    reports = _reports(caplog)
    assert len(reports) == 2, reports
    rejected, unreachable = reports
    assert re.search(r"reachable but rejected our metrics \(HTTP 405 Method Not Allowed\); dropped 1 metric batches \(\d+ points\)",
                     rejected), rejected
    assert unreachable == (f"llm-telemetry: OTLP backend unreachable at {down}; dropped 1 spans. Check "
                           "OTEL_EXPORTER_OTLP_ENDPOINT and that the collector is running.")


@pytest.mark.parametrize(("status", "advice", "permanent"), [
    (401, "OTEL_EXPORTER_OTLP_HEADERS", True),
    (404, "OTEL_TRACES_EXPORTER=none", True),
    (415, "OTEL_EXPORTER_OTLP_PROTOCOL", True),
    (413, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", True),
    (500, "Its logs say why", True),
])
def test_each_rejection_names_the_answer_and_the_fix(status: int, advice: str, permanent: bool) -> None:
    with OtlpHttpReceiver() as rx:
        rx.answers.append(status)
        exporter = ResilientSpanExporter(HttpSpanExporter(endpoint=f"{rx.endpoint}/v1/traces", timeout=2.0), rx.endpoint, 2.0, 0.0, 0)
        try:
            assert exporter.export(_spans(1)) is SpanExportResult.FAILURE
        finally:
            exporter.shutdown()
    failure = exporter.guard.last_failure
    assert failure is not None and failure.kind == "rejected" and failure.code == status
    assert failure.detail.startswith(f"HTTP {status} ")
    assert advice in failure.advice("traces")
    assert failure.permanent is permanent


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_refused_connection_is_unreachable_not_rejected(protocol: str) -> None:
    """gRPC says UNAVAILABLE; the HTTP exporter logs the connection error when it retries (its 2 s allow one retry).
    (An HTTP export that fails without a retry logs no reason: the report then counts it as unreachable.)"""
    endpoint = f"http://127.0.0.1:{unused_port()}"
    if protocol == "grpc":
        otlp: Any = GrpcSpanExporter(endpoint=endpoint, insecure=True, timeout=0.5)
    else:
        otlp = HttpSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=2.0)
    exporter = ResilientSpanExporter(otlp, endpoint, 3.0, 0.0, 0)
    try:
        assert exporter.export(_spans(1)) is SpanExportResult.FAILURE
    finally:
        exporter.shutdown()
    failure = exporter.guard.last_failure
    assert failure is not None and failure.kind == "unreachable" and not failure.permanent, failure


def test_a_batch_refused_for_good_is_not_resent_in_front_of_later_ones() -> None:
    """A 400 (the backend cannot take that data) is permanent: keeping the batch for a retry would get every later
    batch refused with it. A 503 is transient: that batch is kept and arrives in front of the next one."""
    with OtlpHttpReceiver() as rx:
        # exporter timeout 0.5 s < its first backoff (0.8-1.2 s): one attempt per export, no retry of its own
        otlp = HttpSpanExporter(endpoint=f"{rx.endpoint}/v1/traces", timeout=0.5)
        exporter = ResilientSpanExporter(otlp, rx.endpoint, 2.0, 0.0, 100)
        try:
            rx.answers.append(400)
            assert exporter.export(_spans(2, "refused")) is SpanExportResult.FAILURE
            assert exporter.guard.refused_for_good and len(exporter.retry_buffer) == 0
            assert exporter.export(_spans(1, "later")) is SpanExportResult.SUCCESS
            rx.answers.append(503)
            assert exporter.export(_spans(1, "kept")) is SpanExportResult.FAILURE
            assert not exporter.guard.refused_for_good and len(exporter.retry_buffer) == 1
            assert exporter.export(_spans(1, "next")) is SpanExportResult.SUCCESS
        finally:
            exporter.shutdown()
        names = [s.name for s in rx.spans()]
    assert names == ["later-0", "kept-0", "next-0"]
    assert exporter.guard.counts.failed_items == 2  # only the refused batch is lost


def _spans(count: int, prefix: str = "span") -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for index in range(count):
        with provider.get_tracer("test").start_as_current_span(f"{prefix}-{index}"):
            pass
    return list(memory.get_finished_spans())


def test_a_rejection_while_the_app_runs_is_logged_once_with_the_fix(caplog: pytest.LogCaptureFixture) -> None:
    """Not only at exit: the first rejected export of a long-running app says what answered and what to set."""
    with OtlpHttpReceiver(signals=("traces",)) as rx:
        endpoint = f"{rx.endpoint}/v1/metrics"
        exporter = ResilientMetricExporter(HttpMetricExporter(endpoint=endpoint, timeout=2.0), endpoint, 2.0, 0.0)
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader])
        provider.get_meter("app").create_counter("app.work").add(1)
        try:
            with caplog.at_level(logging.WARNING, logger="llm_telemetry.exporters.resilient"):
                for _ in range(3):
                    exporter.export(reader.get_metrics_data())
        finally:
            exporter.shutdown()
            provider.shutdown()
    warnings = [r.getMessage() for r in caplog.records if r.name == "llm_telemetry.exporters.resilient"]
    assert warnings == [
        f"llm-telemetry: metrics export to {endpoint} failed: the backend is reachable but rejected them (HTTP 405 Method Not "
        "Allowed); skipping exports for 0.0 s (their data is counted as dropped). It does not take metrics at this address "
        "(Arize Phoenix, for one, accepts traces only): set OTEL_METRICS_EXPORTER=none, or send metrics to a backend that "
        "takes them (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)."
    ]
    assert exporter.guard.counts.failed_batches == 3
