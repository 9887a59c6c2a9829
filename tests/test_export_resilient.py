"""The circuit breaker around real OTLP exporters: refused, hung and recovering backends, counts, deadlines."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence

import pytest
from _otlp_receiver import BlackholeServer, OtlpGrpcReceiver, unused_port
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_telemetry.exporters.resilient import DropCounts
from llm_telemetry.exporters.resilient_exporters import ResilientMetricExporter, ResilientSpanExporter

RESILIENT_LOGGER = "llm_telemetry.exporters.resilient"


@pytest.fixture
def spans() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for index in range(3):
        with tracer.start_as_current_span(f"span-{index}"):
            pass
    return list(memory.get_finished_spans())


def _otlp(endpoint: str, timeout_s: float) -> OTLPSpanExporter:
    return OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=timeout_s)


@pytest.fixture
def closing() -> Iterator[list[SpanExporter]]:
    """Exporters to shut down after the test (their worker threads end with them)."""
    made: list[SpanExporter] = []
    yield made
    for exporter in made:
        exporter.shutdown()


def test_refused_backend_fails_once_then_skips(spans: list[ReadableSpan], closing: list[SpanExporter],
                                               caplog: pytest.LogCaptureFixture) -> None:
    endpoint = f"http://127.0.0.1:{unused_port()}"
    # timeout 0.5 s < the exporter's first backoff (0.8-1.2 s): one attempt, no retry
    exporter = ResilientSpanExporter(_otlp(endpoint, 0.5), endpoint, timeout_s=0.5, retry_backoff_s=60, retry_buffer_items=0)
    closing.append(exporter)
    with caplog.at_level(logging.WARNING, logger=RESILIENT_LOGGER):
        assert exporter.export(spans) is SpanExportResult.FAILURE
        assert exporter.export(spans) is SpanExportResult.FAILURE
        assert exporter.export(spans[:1]) is SpanExportResult.FAILURE
    assert exporter.guard.counts == DropCounts(exported_items=0, failed_items=3, skipped_items=4, failed_batches=1, skipped_batches=2)
    assert exporter.guard.unreachable
    warnings = [r.getMessage() for r in caplog.records if r.name == RESILIENT_LOGGER]
    assert warnings == [f"llm-telemetry: traces export to {endpoint} failed; skipping exports for 60.0 s (their data is "
                        "counted as dropped)"]


def test_hung_backend_is_abandoned_at_the_deadline(spans: list[ReadableSpan], closing: list[SpanExporter]) -> None:
    with BlackholeServer() as blackhole:
        # the exporter itself would wait 10 s; the guard gives up at 0.3 s (the delay this test injects)
        exporter = ResilientSpanExporter(_otlp(blackhole.endpoint, 10.0), blackhole.endpoint, timeout_s=0.3, retry_backoff_s=0,
                                         retry_buffer_items=0)
        closing.append(exporter)
        started = time.monotonic()
        assert exporter.export(spans) is SpanExportResult.FAILURE
        elapsed = time.monotonic() - started
        assert 0.3 <= elapsed < 0.3 + 1.0
        # no backoff configured, but the first export is still stuck in the socket: the next one is skipped, not queued
        assert exporter.export(spans) is SpanExportResult.FAILURE
        assert exporter.guard.counts == DropCounts(failed_items=3, skipped_items=3, failed_batches=1, skipped_batches=1)


def test_shutdown_deadline_stops_the_exporters_own_retries(spans: list[ReadableSpan], closing: list[SpanExporter]) -> None:
    endpoint = f"http://127.0.0.1:{unused_port()}"
    # With a 10 s timeout the stock exporter retries a refused connection after 0.8-1.2 s, then 2 s, 4 s...
    exporter = ResilientSpanExporter(_otlp(endpoint, 10.0), endpoint, timeout_s=10.0, retry_backoff_s=60, retry_buffer_items=0)
    closing.append(exporter)
    exporter.guard.begin_shutdown(time.monotonic() + 5.0)
    started = time.monotonic()
    assert exporter.export(spans) is SpanExportResult.FAILURE
    assert time.monotonic() - started < 0.8, "the exporter slept in its retry backoff"
    assert exporter.guard.counts.failed_items == 3


def test_export_works_again_after_the_backoff(spans: list[ReadableSpan], closing: list[SpanExporter],
                                              caplog: pytest.LogCaptureFixture) -> None:
    port = unused_port()
    endpoint = f"http://127.0.0.1:{port}"
    exporter = ResilientSpanExporter(_otlp(endpoint, 0.5), endpoint, timeout_s=0.5, retry_backoff_s=0.2)
    closing.append(exporter)
    assert exporter.export(spans[:1]) is SpanExportResult.FAILURE
    with OtlpGrpcReceiver(port=port) as rx:
        time.sleep(0.25)  # past retry_backoff_s
        with caplog.at_level(logging.INFO, logger=RESILIENT_LOGGER):
            assert exporter.export(spans[1:]) is SpanExportResult.SUCCESS
        # the failed batch was kept and went out in front of the next one
        assert sorted(s.name for s in rx.spans()) == ["span-0", "span-1", "span-2"]
    assert exporter.guard.counts == DropCounts(exported_items=3, failed_batches=1)
    assert not exporter.guard.unreachable
    assert any("works again (0 items dropped meanwhile)" in r.getMessage() for r in caplog.records)


class _SlowExporter(SpanExporter):
    """Answers after ``delay_s``; records whether instrumentation was suppressed while exporting."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.instrumentation_enabled: list[bool] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.instrumentation_enabled.append(is_instrumentation_enabled())
        time.sleep(self.delay_s)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def test_a_late_success_is_counted_as_exported(spans: list[ReadableSpan], closing: list[SpanExporter]) -> None:
    slow = _SlowExporter(delay_s=0.3)
    exporter = ResilientSpanExporter(slow, "slow", timeout_s=0.05, retry_backoff_s=60)
    closing.append(exporter)
    assert exporter.export(spans) is SpanExportResult.FAILURE
    assert exporter.guard.counts.failed_items == 3
    deadline = time.monotonic() + 5
    while exporter.guard.counts.failed_items and time.monotonic() < deadline:
        time.sleep(0.02)
    assert exporter.guard.counts == DropCounts(exported_items=3)
    assert not exporter.guard.unreachable
    # the export ran on the guard's thread with instrumentation suppressed (no spans about exporting spans)
    assert slow.instrumentation_enabled == [False]


class _FlakyExporter(SpanExporter):
    """Fails while ``down`` is set; records every span name it delivered."""

    def __init__(self) -> None:
        self.down = True
        self.delivered: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.down:
            return SpanExportResult.FAILURE
        self.delivered.extend(s.name for s in spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def test_batches_failed_or_skipped_during_an_outage_are_sent_after_it(closing: list[SpanExporter]) -> None:
    spans = _named_spans(10)
    flaky = _FlakyExporter()
    exporter = ResilientSpanExporter(flaky, "flaky", timeout_s=1.0, retry_backoff_s=0.1, retry_buffer_items=100)
    closing.append(exporter)
    assert exporter.export(spans[:4]) is SpanExportResult.FAILURE   # fails: kept
    assert exporter.export(spans[4:7]) is SpanExportResult.FAILURE  # circuit open: skipped, kept
    flaky.down = False
    time.sleep(0.15)
    assert exporter.export(spans[7:]) is SpanExportResult.SUCCESS
    assert flaky.delivered == [f"s{i}" for i in range(10)]  # all of them, in order, once
    assert exporter.guard.counts.exported_items == 10 and exporter.guard.counts.dropped_items == 0


def test_the_retry_buffer_is_bounded_and_counts_what_it_drops(closing: list[SpanExporter]) -> None:
    spans = _named_spans(10)
    flaky = _FlakyExporter()
    exporter = ResilientSpanExporter(flaky, "flaky", timeout_s=1.0, retry_backoff_s=0.0, retry_buffer_items=4)
    closing.append(exporter)
    for index in range(0, 10, 2):
        exporter.export(spans[index:index + 2])
    flaky.down = False
    assert exporter.export([]) is SpanExportResult.SUCCESS
    assert flaky.delivered == ["s6", "s7", "s8", "s9"]  # the newest 4; the oldest 6 dropped
    assert exporter.guard.counts.exported_items == 4 and exporter.guard.counts.failed_items == 6


def test_a_slow_export_is_not_sent_twice_and_later_batches_are_not_lost(closing: list[SpanExporter]) -> None:
    """Slower than the deadline: abandoned (it may still arrive: not re-sent); what came meanwhile is kept."""
    spans = _named_spans(6)
    slow = _SlowExporter(delay_s=0.4)
    exporter = ResilientSpanExporter(slow, "slow", timeout_s=0.1, retry_backoff_s=0.2)
    closing.append(exporter)
    delivered: list[str] = []
    original = slow.export
    slow.export = lambda batch: (delivered.extend(s.name for s in batch), original(batch))[1]  # type: ignore[method-assign]
    assert exporter.export(spans[:2]) is SpanExportResult.FAILURE   # abandoned at 0.1 s, arrives at 0.4 s
    assert exporter.export(spans[2:4]) is SpanExportResult.FAILURE  # busy / circuit open: kept
    time.sleep(0.6)
    assert exporter.export(spans[4:]) is SpanExportResult.FAILURE or True
    deadline = time.monotonic() + 5
    while (len(delivered) < 6 or exporter.guard.counts.dropped_items) and time.monotonic() < deadline:
        exporter.export([])
        time.sleep(0.05)
    assert sorted(delivered) == [f"s{i}" for i in range(6)]  # each exactly once
    assert exporter.guard.counts.dropped_items == 0  # the late successes were counted as exported


def _named_spans(count: int) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for index in range(count):
        with tracer.start_as_current_span(f"s{index}"):
            pass
    return list(memory.get_finished_spans())


def test_metric_wrapper_keeps_the_temporality_preference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
    with OtlpGrpcReceiver() as rx:
        wrapped = ResilientMetricExporter(OTLPMetricExporter(endpoint=rx.endpoint, insecure=True), rx.endpoint, 2.0, 5.0)
        provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(wrapped, export_interval_millis=math.inf)],
                                 shutdown_on_exit=False)
        counter = provider.get_meter("test").create_counter("test.requests")
        counter.add(2, {"route": "a"})
        counter.add(1, {"route": "b"})
        provider.force_flush()
        provider.shutdown()
        received = {m.name: m.metric for m in rx.metrics()}
    assert received["test.requests"].sum.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    assert wrapped.guard.counts.exported_items >= 2  # data points
    assert wrapped.guard.counts.dropped_items == 0
