"""A clean run prints nothing but what the user needs: no SDK warnings caused by our own set-up."""

from __future__ import annotations

import io
import json
import re

from _export_helpers import APPS, run_instrumented
from _otlp_receiver import OtlpGrpcReceiver
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from llm_telemetry import attributes as a
from llm_telemetry.exporters.providers import configure


def test_a_clean_llm_app_run_writes_nothing_to_stderr(fake_provider, tmp_path):
    env = {
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "",
        "FAKE_PROVIDER_URL": fake_provider.base_url,
        "LLM_TELEMETRY_REVIEW_DB_PATH": str(tmp_path / "review.db"),
    }
    with OtlpGrpcReceiver() as rx:
        run = run_instrumented(rx.endpoint, script=APPS / "llm_app.py", env=env, timeout=120)
        rx.wait_for_metrics({a.METRIC_TOKEN_USAGE}, timeout=10)
    assert run.returncode == 0, run.stderr
    assert "conflicting metrics identities" not in run.stderr  # OpenAI and Anthropic scopes both record GenAI histograms
    assert run.stderr == ""


def test_our_histograms_keep_semconv_buckets_in_every_scope_without_a_warning(caplog) -> None:
    reader = InMemoryMetricReader()
    providers = configure(span_exporters=[], metric_readers=[reader], set_global=False)
    try:
        for scope in ("llm_telemetry.instrumentation.openai", "llm_telemetry.instrumentation.anthropic"):
            meter = providers.meter_provider.get_meter(scope)
            meter.create_histogram(a.METRIC_TOKEN_USAGE, unit="{token}",
                                   explicit_bucket_boundaries_advisory=list(a.TOKEN_BUCKETS)).record(3)
        bounds = {
            sm.scope.name: tuple(m.data.data_points[0].explicit_bounds)
            for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics
            if m.name == a.METRIC_TOKEN_USAGE
        }
    finally:
        providers.shutdown()
    assert set(bounds.values()) == {tuple(float(b) for b in a.TOKEN_BUCKETS)} and len(bounds) == 2
    assert "conflicting" not in caplog.text


def test_costs_print_rounded_in_the_console_exporter(fake_provider) -> None:
    import openai
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    from llm_telemetry.fake_provider import Behaviour
    from llm_telemetry.instrumentation.openai import OpenAIInstrumentor

    out = io.StringIO()
    providers = configure(span_exporters=[ConsoleSpanExporter(out=out)], metric_readers=[], batch_spans=False, set_global=False)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=providers.tracer_provider, meter_provider=providers.meter_provider)
    try:
        client = openai.OpenAI(api_key="k", base_url=fake_provider.openai_base_url, max_retries=0)
        fake_provider.enqueue(Behaviour(text="ok", input_tokens=12, output_tokens=8))  # 12 x 2.5e-6 = 2.9999999999999997e-05 unrounded
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    finally:
        instrumentor.uninstrument()
        providers.shutdown()
    exported = json.loads(out.getvalue())["attributes"]
    assert (exported[a.COST_INPUT_USD], exported[a.COST_OUTPUT_USD], exported[a.COST_TOTAL_USD]) == (3e-05, 8e-05, 0.00011)
    assert re.search(r"\d\.\d{12,}e-", out.getvalue()) is None, out.getvalue()  # no float noise anywhere printed
