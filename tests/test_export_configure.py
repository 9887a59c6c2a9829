"""`configure` (the Python API the configurator runs) and the distro defaults, in process, with real SDK parts."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _export_helpers import clear_otel_env, providers_factory
from _otlp_receiver import BlackholeServer, OtlpGrpcReceiver, unused_port
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from llm_telemetry import attributes as a
from llm_telemetry.config import ConfigError, ExportSettings, PipelineSettings, Settings, set_settings
from llm_telemetry.exporters import Providers, ResilientSpanExporter, configure
from llm_telemetry.exporters.distro import DEFAULTS, LLMTelemetryDistro

COST_ONLY = Settings(pipeline=PipelineSettings(enrichers=("cost",)), export=ExportSettings(timeout_s=0.5))
GENAI_ATTRIBUTES = {
    a.OPERATION_NAME: "chat", a.PROVIDER_NAME: "openai", a.REQUEST_MODEL: "gpt-4o-mini",
    a.USAGE_INPUT_TOKENS: 1000, a.USAGE_OUTPUT_TOKENS: 200,
}


@pytest.fixture(autouse=True)
def _no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_otel_env(monkeypatch)


@pytest.fixture
def make() -> Iterator[Callable[..., Providers]]:
    """``configure(set_global=False, ...)``; every result is shut down after the test."""
    with providers_factory(COST_ONLY) as build:
        yield build


def _span_exporter(providers: Providers) -> Any:
    (processor,) = providers.export_processors
    return processor.span_exporter


def test_genai_spans_go_through_the_pipeline(make: Callable[..., Providers]) -> None:
    memory = InMemorySpanExporter()
    providers = make(span_exporters=[memory], metric_readers=[], batch_spans=False)
    assert providers.pipeline_installed
    tracer = providers.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=GENAI_ATTRIBUTES):
        pass
    with tracer.start_as_current_span("plain"):
        pass
    chat, plain = memory.get_finished_spans()
    assert chat.attributes[a.COST_TOTAL_USD] == pytest.approx((1000 * 0.15 + 200 * 0.60) / 1e6)
    assert a.COST_TOTAL_USD not in plain.attributes
    assert providers.guards == []  # exporters passed in are used as given


def test_genai_histograms_get_semconv_buckets(make: Callable[..., Providers]) -> None:
    reader = InMemoryMetricReader()
    providers = make(span_exporters=[], metric_readers=[reader])
    meter = providers.meter_provider.get_meter("some.other.instrumentation")
    expected = {
        a.METRIC_TOKEN_USAGE: a.TOKEN_BUCKETS,
        a.METRIC_OPERATION_DURATION: a.DURATION_BUCKETS,
        a.METRIC_TIME_TO_FIRST_CHUNK: a.TIME_TO_FIRST_CHUNK_BUCKETS,
        a.METRIC_TIME_PER_OUTPUT_CHUNK: a.TIME_PER_CHUNK_BUCKETS,
    }
    for name in expected:
        meter.create_histogram(name).record(3)  # no bucket advice: the default would be (0, 5, 10, 25, ...)
    meter.create_histogram("other.histogram").record(3)
    bounds = {
        metric.name: tuple(metric.data.data_points[0].explicit_bounds)
        for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for metric in sm.metrics
        if sm.scope.name == "some.other.instrumentation"
    }
    for name, buckets in expected.items():
        assert bounds[name] == tuple(float(b) for b in buckets), name
    assert bounds["other.histogram"][:3] == (0.0, 5.0, 10.0)


def test_resource_names_the_service_and_the_distro(make: Callable[..., Providers], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging")
    assert make(span_exporters=[], metric_readers=[]).tracer_provider.resource.attributes["service.name"] == "from-env"
    resource = make(service_name="checkout", span_exporters=[], metric_readers=[]).tracer_provider.resource.attributes
    assert resource["service.name"] == "checkout"
    assert resource["deployment.environment.name"] == "staging"
    assert resource["telemetry.distro.name"] == "llm-telemetry"


def test_exporters_come_from_the_otel_variables(make: Callable[..., Providers], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    providers = make()
    wrapped = _span_exporter(providers)
    assert isinstance(wrapped, ResilientSpanExporter)
    assert isinstance(wrapped.exporter, ConsoleSpanExporter)
    assert [g.signal for g in providers.guards] == ["traces"]
    assert providers.logger_provider is None


def test_endpoint_and_protocol_arguments(make: Callable[..., Providers]) -> None:
    providers = make(endpoint="http://collector:4318/", protocol="http/protobuf", metric_readers=[])
    wrapped = _span_exporter(providers)
    assert isinstance(wrapped.exporter, HttpSpanExporter)
    assert wrapped.guard.endpoint == "http://collector:4318/v1/traces"
    assert wrapped.guard.timeout_s == 0.5


def test_headers_reach_the_backend(make: Callable[..., Providers]) -> None:
    with OtlpGrpcReceiver() as rx:
        providers = make(endpoint=rx.endpoint, headers={"x-api-key": "k-123"}, metric_readers=[])
        with providers.tracer_provider.get_tracer("app").start_as_current_span("one"):
            pass
        assert providers.force_flush()
        assert [s.name for s in rx.wait_for_spans(1, timeout=5)] == ["one"]
        assert rx.headers[0]["x-api-key"] == "k-123"


def test_bad_otel_value_raises_when_strict_and_is_reported_otherwise(
    make: Callable[..., Providers], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ConfigError, match=r"OTEL_EXPORTER_OTLP_PROTOCOL='http/json': unsupported OTLP protocol"):
        make()
    providers = make(strict=False, metric_readers=[InMemoryMetricReader()])
    err = capsys.readouterr().err
    assert "llm-telemetry: OTEL_EXPORTER_OTLP_PROTOCOL='http/json': unsupported OTLP protocol" in err
    assert "No traces are exported" in err
    assert providers.export_processors == []
    assert providers.pipeline_installed  # the rest still works


def test_bad_llm_telemetry_setting_when_not_strict(
    make: Callable[..., Providers], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLM_TELEMETRY_EXPORT_RETRY_BACKOFF_S", "-1")
    set_settings(None)
    try:
        with pytest.raises(ConfigError, match=r"export\.retry_backoff_s"):
            make(settings=None)
        providers = make(settings=None, strict=False, span_exporters=[InMemorySpanExporter()], metric_readers=[])
    finally:
        set_settings(None)
    err = capsys.readouterr().err
    # The bad value costs only itself: it falls back to its default, and the enrichment pipeline stays on.
    assert "LLM_TELEMETRY_EXPORT_RETRY_BACKOFF_S" in err and "using the default 5.0 until this is fixed" in err
    assert providers.pipeline_installed
    assert providers.settings == Settings()


def test_dead_backend_is_counted_and_reported(make: Callable[..., Providers], caplog: pytest.LogCaptureFixture) -> None:
    endpoint = f"http://127.0.0.1:{unused_port()}"
    reader = InMemoryMetricReader()
    providers = make(endpoint=endpoint, metric_readers=[reader])
    tracer = providers.tracer_provider.get_tracer("app")
    for _ in range(4):
        with tracer.start_as_current_span("work"):
            pass
    providers.force_flush()  # fails: the circuit opens
    with tracer.start_as_current_span("after"):
        pass
    providers.force_flush()  # skipped
    dropped = {
        point.attributes[a.DROPPED_REASON]: point.value
        for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for metric in sm.metrics
        if metric.name == a.METRIC_DROPPED for point in metric.data.data_points
    }
    # Nothing is lost yet: the failed and the skipped batch wait in the retry buffer for the backend.
    assert dropped["export_failed"] == 0 and dropped["export_skipped"] == 0
    (span_exporter,) = [p.span_exporter for p in providers.export_processors]
    assert len(span_exporter.retry_buffer) == 5
    with caplog.at_level(logging.WARNING):
        providers.shutdown()
        providers.shutdown()  # idempotent: one report
    reports = [r.getMessage() for r in caplog.records if "OTLP backend unreachable" in r.getMessage()]
    assert reports == [f"llm-telemetry: OTLP backend unreachable at {endpoint}; dropped 5 spans. Check "
                       "OTEL_EXPORTER_OTLP_ENDPOINT and that the collector is running."]


def test_shutdown_is_bounded_with_a_hung_backend(make: Callable[..., Providers]) -> None:
    with BlackholeServer() as blackhole:
        providers = make(endpoint=blackhole.endpoint)
        with providers.tracer_provider.get_tracer("app").start_as_current_span("work"):
            pass
        providers.meter_provider.get_meter("app").create_counter("c").add(1)
        started = time.monotonic()
        providers.shutdown(timeout_s=0.3)  # the delay this test injects
        assert time.monotonic() - started < 0.3 + 1.0
    assert providers.dropped()["traces"].dropped_items == 1
    assert providers.dropped()["metrics"].dropped_batches == 1


def test_distro_sets_defaults_without_overriding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console")
    LLMTelemetryDistro().configure()
    assert os.environ["OTEL_METRICS_EXPORTER"] == "console"
    assert os.environ["OTEL_TRACES_EXPORTER"] == "otlp"
    assert os.environ["OTEL_LOGS_EXPORTER"] == "none"
    assert os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert os.environ["OTEL_PYTHON_CONFIGURATOR"] == "llm_telemetry"
    assert set(DEFAULTS) == {"OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL",
                             "OTEL_PYTHON_CONFIGURATOR"}


def test_logs_are_exported_when_asked_for(make: Callable[..., Providers], monkeypatch: pytest.MonkeyPatch) -> None:
    """GenAI content events travel as log records: OTEL_LOGS_EXPORTER=otlp turns that signal on."""
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "otlp")
    with OtlpGrpcReceiver() as rx:
        providers = make(endpoint=rx.endpoint, metric_readers=[], span_exporters=[])
        assert providers.logger_provider is not None
        providers.logger_provider.get_logger("app").emit(body="hello", event_name=a.EVENT_INFERENCE_DETAILS)
        providers.force_flush()
        (request,) = rx.log_requests
    (record,) = request.resource_logs[0].scope_logs[0].log_records
    assert record.body.string_value == "hello"
    assert record.event_name == a.EVENT_INFERENCE_DETAILS
    assert providers.dropped()["logs"].exported_items == 1


def test_an_enricher_that_cannot_be_built_costs_only_itself(
    make: Callable[..., Providers], capsys: pytest.CaptureFixture[str]
) -> None:
    broken = Settings(pipeline=PipelineSettings(enrichers=("no_such_enricher",)))
    with pytest.raises(ConfigError, match="no_such_enricher"):
        make(settings=broken, span_exporters=[], metric_readers=[])
    memory = InMemorySpanExporter()
    providers = make(settings=broken, strict=False, span_exporters=[memory], metric_readers=[], batch_spans=False)
    assert "unknown enricher 'no_such_enricher'" in capsys.readouterr().err
    assert providers.pipeline_installed  # content rules and every other enricher still apply
    with providers.tracer_provider.get_tracer("app").start_as_current_span("chat", attributes=GENAI_ATTRIBUTES):
        pass
    (span,) = memory.get_finished_spans()
    assert span.attributes[a.USAGE_INPUT_TOKENS] == 1000
    assert a.COST_TOTAL_USD not in span.attributes


def test_synchronous_export_shuts_down_quietly(caplog: pytest.LogCaptureFixture) -> None:
    """``batch_spans=False`` (scripts, demos): the exporter is shut down once, so the stock OTLP exporter does not
    log "Exporter already shutdown, ignoring call" at exit."""
    with OtlpGrpcReceiver() as rx:
        providers = configure(set_global=False, settings=COST_ONLY, endpoint=rx.endpoint, metric_readers=[], batch_spans=False)
        with providers.tracer_provider.get_tracer("app").start_as_current_span("work"):
            pass
        with caplog.at_level(logging.WARNING):
            providers.shutdown()
        assert [s.name for s in rx.spans()] == ["work"]
    assert not [r for r in caplog.records if "already shutdown" in r.getMessage()]
