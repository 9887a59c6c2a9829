"""Measurement sees every call, whatever the sampler kept (issue: enrichment used to ride on sampled spans only).

Under ``TraceIdRatioBased(0.1)`` about 20 of 200 calls are exported; cost, tokens, budgets and the safety
screen must still count all 200, because the instrumentation hands every call to the chain before its
(possibly non-recording) span ends. Real OpenAI SDK, fake provider, real OTel SDK.
"""

from __future__ import annotations

import openai
from _pipeline_helpers import metric_points, settings_from
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from llm_telemetry import attributes as a
from llm_telemetry.fake_provider import Behaviour
from llm_telemetry.instrumentation.openai import OpenAIInstrumentor
from llm_telemetry.processors.budget import BudgetEnricher
from llm_telemetry.processors.chain import build_chain
from llm_telemetry.processors.pipeline import build_pipeline
from llm_telemetry.side_channel import side_channel

CALLS = 200


def test_cost_budget_and_safety_count_every_call_under_a_ratio_sampler(fake_provider, tmp_path) -> None:
    settings = settings_from({"LLM_TELEMETRY_BUDGET_DAILY_USD": "1000", "LLM_TELEMETRY_REVIEW_DB_PATH": str(tmp_path / "r.db")})
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=TraceIdRatioBased(0.1))
    chain = build_chain(settings, meter_provider, tracer_provider)
    tracer_provider.add_span_processor(build_pipeline(SimpleSpanProcessor(exporter), settings, chain=chain))
    side_channel.connect(chain)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        client = openai.OpenAI(api_key="sk-test", base_url=fake_provider.openai_base_url, max_retries=0)
        header = Behaviour(text="Mail me at someone@example.com", input_tokens=12, output_tokens=3).header()
        for _ in range(CALLS):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                           extra_headers=header)
        exported = len(exporter.get_finished_spans())
        semconv_input = sum(p.sum for p in _histogram_points(reader, a.METRIC_TOKEN_USAGE) if p.attributes[a.TOKEN_TYPE] == "input")
        ours_input = sum(v for attrs, v in metric_points(reader, a.METRIC_TOKENS) if attrs[a.TOKEN_TYPE] == "input")
        checks = sum(v for _, v in metric_points(reader, a.METRIC_SAFETY_CHECKS))
        flags = sum(v for _, v in metric_points(reader, a.METRIC_SAFETY_FLAGS))
        budget = next(e for e in chain.enrichers if isinstance(e, BudgetEnricher))
    finally:
        instrumentor.uninstrument()
        side_channel.connect(None, auto=False)
        tracer_provider.shutdown()
        meter_provider.shutdown()

    assert 5 <= exported <= 45  # the sampler kept ~10 %
    assert semconv_input == ours_input == CALLS * 12
    assert checks == flags == CALLS
    assert budget.daily_report()["n_requests"] == CALLS


def _histogram_points(reader: InMemoryMetricReader, name: str) -> list:
    data = reader.get_metrics_data()
    return [p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics if m.name == name
            for p in m.data.data_points]
