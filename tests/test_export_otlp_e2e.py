"""``opentelemetry-instrument python app.py`` end to end: our distro and configurator, real OTLP to a real receiver.

The sample app uses the OpenTelemetry API only; everything else (providers, the enrichment pipeline,
the Views, the exporter) comes from the entry points this package registers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _export_helpers import SAMPLE_APP_SPANS, run_instrumented
from _otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from llm_telemetry import __version__
from llm_telemetry import attributes as a

# Only the cost enricher: this file tests the export path, not the safety packs.
PIPELINE_ENV = {"LLM_TELEMETRY_PIPELINE_ENRICHERS": "cost"}


def _check_everything_arrived(rx: OtlpGrpcReceiver | OtlpHttpReceiver) -> None:
    spans = rx.wait_for_spans(SAMPLE_APP_SPANS, timeout=5)
    assert sorted(s.name for s in spans) == ["chat gpt-4o-mini", "sample_app.main", "sample_app.step", "sample_app.step",
                                             "sample_app.step"]
    resource = spans[0].resource
    assert resource["service.name"] == "e2e-sample"
    assert resource["deployment.environment.name"] == "test"
    assert resource["telemetry.distro.name"] == "llm-telemetry"
    assert resource["telemetry.distro.version"] == __version__
    assert resource["telemetry.auto.version"]  # set by opentelemetry-instrument through the configurator
    assert {s.scope for s in spans} == {"sample_app"}

    chat = next(s for s in spans if s.name == "chat gpt-4o-mini")
    assert chat.attributes[a.USAGE_INPUT_TOKENS] == 1000
    # The enrichment pipeline sits in front of the exporter: the GenAI span arrives priced.
    assert chat.attributes[a.COST_TOTAL_USD] == pytest.approx((1000 * 0.15 + 200 * 0.60) / 1e6)
    assert a.COST_TOTAL_USD not in next(s for s in spans if s.name == "sample_app.main").attributes

    rx.wait_for_metrics({"sample_app.requests", a.METRIC_TOKEN_USAGE, a.METRIC_OPERATION_DURATION, a.METRIC_COST}, timeout=5)
    metrics = {m.name: m.metric for m in rx.metrics()}
    assert metrics["sample_app.requests"].sum.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    assert sum(p.as_int for p in metrics["sample_app.requests"].sum.data_points) == 3
    # The app gave no bucket advice: these boundaries come from our Views.
    token_points = metrics[a.METRIC_TOKEN_USAGE].histogram.data_points
    assert {tuple(p.explicit_bounds) for p in token_points} == {tuple(float(b) for b in a.TOKEN_BUCKETS)}
    assert sorted(p.sum for p in token_points) == [200, 1000]
    duration_points = metrics[a.METRIC_OPERATION_DURATION].histogram.data_points
    assert tuple(duration_points[0].explicit_bounds) == a.DURATION_BUCKETS
    assert {m.resource["service.name"] for m in rx.metrics()} == {"e2e-sample"}

    assert any(h.get("x-tenant") == "acme" for h in rx.headers)  # OTEL_EXPORTER_OTLP_HEADERS reached the wire


def _env(**extra: str) -> dict[str, str]:
    return {
        "OTEL_SERVICE_NAME": "e2e-sample",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme",
        **PIPELINE_ENV,
        **extra,
    }


def test_grpc_export_end_to_end(tmp_path: Path) -> None:
    with OtlpGrpcReceiver() as rx:
        run = run_instrumented(rx.endpoint, env=_env(), cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert "sample_app: done" in run.stdout
        _check_everything_arrived(rx)
    assert "dropped" not in run.stderr


def test_http_protobuf_export_end_to_end(tmp_path: Path) -> None:
    with OtlpHttpReceiver() as rx:
        run = run_instrumented(rx.endpoint, env=_env(OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf"), cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        _check_everything_arrived(rx)
        assert {h.get("content-type") for h in rx.headers} == {"application/x-protobuf"}


def test_user_settings_win_over_distro_defaults(tmp_path: Path) -> None:
    """OTEL_METRICS_EXPORTER=none and a delta temporality preference are the user's: the distro keeps them."""
    with OtlpGrpcReceiver() as rx:
        run = run_instrumented(rx.endpoint, env=_env(OTEL_METRICS_EXPORTER="none"), cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert len(rx.wait_for_spans(SAMPLE_APP_SPANS, timeout=5)) == SAMPLE_APP_SPANS
        assert rx.metrics() == []


def test_bad_llm_telemetry_setting_is_reported_and_the_app_still_runs(tmp_path: Path) -> None:
    """A bad value: named on stderr with its fallback; the app exits 0 and spans still go out, enriched."""
    with OtlpGrpcReceiver() as rx:
        run = run_instrumented(rx.endpoint, env=_env(LLM_TELEMETRY_EXPORT_TIMEOUT_S="soon"), cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert "export.timeout_s = 'soon' (environment variable LLM_TELEMETRY_EXPORT_TIMEOUT_S)" in run.stderr
        assert "using the default 2.0 until this is fixed" in run.stderr
        spans = rx.wait_for_spans(SAMPLE_APP_SPANS, timeout=5)
        assert len(spans) == SAMPLE_APP_SPANS
        chat = next(s for s in spans if s.name == "chat gpt-4o-mini")
        assert a.COST_TOTAL_USD in chat.attributes  # the bad export setting did not cost the enrichment


def test_bad_otel_value_is_named_and_other_signals_still_export(tmp_path: Path) -> None:
    with OtlpGrpcReceiver() as rx:
        run = run_instrumented(rx.endpoint, env=_env(OTEL_TRACES_EXPORTER="zipkin"), cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert "OTEL_TRACES_EXPORTER='zipkin': no traces exporter named 'zipkin' is installed" in run.stderr
        assert "sample_app.requests" in rx.wait_for_metrics({"sample_app.requests"}, timeout=5)
        assert rx.spans() == []
