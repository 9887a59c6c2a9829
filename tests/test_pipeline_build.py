"""build_pipeline / build_enrichers: entry points, config errors, and the metrics the configurator gets."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from _pipeline_helpers import settings_from
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_telemetry import attributes as a
from llm_telemetry.config import ConfigError
from llm_telemetry.processors.base import BackgroundWorker, EnricherContext
from llm_telemetry.processors.budget import BudgetEnricher
from llm_telemetry.processors.cost import CostEnricher
from llm_telemetry.processors.pipeline import METER_NAME, EnrichingSpanProcessor, build_enrichers, build_pipeline

COST_BUDGET = {"LLM_TELEMETRY_PIPELINE_ENRICHERS": "cost,budget"}


def context_for(settings) -> EnricherContext:
    return EnricherContext(settings, MeterProvider().get_meter("t"), BackgroundWorker(4))


def test_build_pipeline_wires_enrichers_metrics_and_export() -> None:
    settings = settings_from({**COST_BUDGET, "LLM_TELEMETRY_BUDGET_DAILY_USD": "100"})
    exporter = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    processor = build_pipeline(SimpleSpanProcessor(exporter), settings, meter_provider=meter_provider)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(processor)
    try:
        assert [e.name for e in processor.enrichers] == ["cost", "budget"]
        span = tracer_provider.get_tracer("t").start_span("chat", attributes={
            a.PROVIDER_NAME: "openai", a.REQUEST_MODEL: "gpt-4o-mini", a.USAGE_INPUT_TOKENS: 2000,
            a.USAGE_OUTPUT_TOKENS: 1000, a.USER_ID: "u-1", a.FEATURE: "summarise",
        })
        span.end()
        assert exporter.get_finished_spans()[0].attributes[a.COST_TOTAL_USD] == pytest.approx(2000 * 0.15e-6 + 1000 * 0.6e-6)

        scopes = {sm.scope.name: sm for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics}
        metrics = {m.name: m for m in scopes[METER_NAME].metrics}
        [cost_point] = metrics[a.METRIC_COST].data.data_points
        assert cost_point.value == pytest.approx(0.0009)
        assert dict(cost_point.attributes) == {
            a.REQUEST_MODEL: "gpt-4o-mini", a.PROVIDER_NAME: "openai", a.USER_ID: "u-1", a.FEATURE: "summarise",
        }
        assert metrics[a.METRIC_COST].unit == "USD"
        reasons = {p.attributes[a.DROPPED_REASON] for p in metrics[a.METRIC_DROPPED].data.data_points}
        assert {"worker_queue_full", "enricher_error", "budget_user_evicted"} <= reasons
        budget = processor.enrichers[1]
        assert isinstance(budget, BudgetEnricher) and budget.status()["daily"]["spent_usd"] == pytest.approx(0.0009)
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()


def test_unknown_enricher_name_is_a_config_error_naming_it_and_the_variable() -> None:
    settings = settings_from({"LLM_TELEMETRY_PIPELINE_ENRICHERS": "cost,costt"})
    with pytest.raises(ConfigError) as error:
        build_enrichers(settings, context_for(settings))
    message = str(error.value)
    assert "'costt'" in message and "LLM_TELEMETRY_PIPELINE_ENRICHERS" in message and "cost" in message


def test_a_name_listed_twice_is_a_config_error() -> None:
    settings = settings_from({"LLM_TELEMETRY_PIPELINE_ENRICHERS": "cost,cost"})
    with pytest.raises(ConfigError, match="'cost' is listed twice"):
        build_enrichers(settings, context_for(settings))


def test_budget_before_cost_is_a_config_error() -> None:
    settings = settings_from({"LLM_TELEMETRY_PIPELINE_ENRICHERS": "budget,cost"})
    with pytest.raises(ConfigError, match="'budget' needs 'cost' earlier"):
        build_pipeline(SimpleSpanProcessor(InMemorySpanExporter()), settings, meter_provider=MeterProvider())
    with pytest.raises(ConfigError, match="LLM_TELEMETRY_PIPELINE_ENRICHERS"):
        EnrichingSpanProcessor(SimpleSpanProcessor(InMemorySpanExporter()), [BudgetEnricher(), CostEnricher()], settings=settings)


def test_a_bad_pricing_file_fails_the_build_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "prices.toml"
    bad.write_text('[mine.models]\n"my-model" = { input = "cheap", output = 1 }\n')
    settings = settings_from({**COST_BUDGET, "LLM_TELEMETRY_COST_PRICING_FILE": str(bad)})
    with pytest.raises(ConfigError) as error:
        build_pipeline(SimpleSpanProcessor(InMemorySpanExporter()), settings, meter_provider=MeterProvider())
    assert str(bad) in str(error.value) and "'my-model'" in str(error.value) and "'input'" in str(error.value)


def test_a_user_enricher_from_an_entry_point_joins_the_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A third-party distribution registers an enricher the standard way (a dist-info entry point)."""
    (tmp_path / "team_enricher.py").write_text(textwrap.dedent('''
        from llm_telemetry.processors.base import Enrichment

        class TeamEnricher:
            name = "team"

            def __init__(self, settings):
                self.settings = settings

            @classmethod
            def from_context(cls, context):
                return cls(context.settings)

            def enrich(self, call, span, enrichments):
                return Enrichment({"team.cost_seen": enrichments.attributes.get("llm_telemetry.cost.total_usd", -1.0)})
    '''))
    dist = tmp_path / "team_enricher-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: team-enricher\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[llm_telemetry_enrichers]\nteam = team_enricher:TeamEnricher\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    settings = settings_from({"LLM_TELEMETRY_PIPELINE_ENRICHERS": "cost,team"})
    exporter = InMemorySpanExporter()
    processor = build_pipeline(SimpleSpanProcessor(exporter), settings, meter_provider=MeterProvider())
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(processor)
    tracer_provider.get_tracer("t").start_span("chat", attributes={
        a.PROVIDER_NAME: "openai", a.REQUEST_MODEL: "gpt-4o", a.USAGE_INPUT_TOKENS: 100, a.USAGE_OUTPUT_TOKENS: 0,
    }).end()
    tracer_provider.shutdown()
    assert exporter.get_finished_spans()[0].attributes["team.cost_seen"] == pytest.approx(100 * 2.5e-6)


def test_user_dimension_can_be_turned_off() -> None:
    settings = settings_from({**COST_BUDGET, "LLM_TELEMETRY_COST_USER_DIMENSION": "false"})
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    processor = build_pipeline(SimpleSpanProcessor(InMemorySpanExporter()), settings, meter_provider=meter_provider)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(processor)
    for user in ("u-1", "u-2", "u-3"):
        tracer_provider.get_tracer("t").start_span("chat", attributes={
            a.PROVIDER_NAME: "openai", a.REQUEST_MODEL: "gpt-4o", a.USAGE_INPUT_TOKENS: 10, a.USAGE_OUTPUT_TOKENS: 1,
            a.USER_ID: user,
        }).end()
    points = [p for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics
              for m in sm.metrics if m.name == a.METRIC_TOKENS for p in m.data.data_points]
    assert sorted((p.attributes[a.TOKEN_TYPE], p.value) for p in points) == [("input", 30), ("output", 3)]
    assert all(a.USER_ID not in p.attributes for p in points)
    tracer_provider.shutdown()
    meter_provider.shutdown()
