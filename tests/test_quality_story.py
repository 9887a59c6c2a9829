"""The source story end to end: the silent model update is caught from the telemetry alone.

Real OpenAI SDK → fake provider → our instrumentation → the default enricher chain (cost, budget,
safety, quality, openinference) → the real OTel SDK with in-memory span, metric and log exporters.
250 correct invoice-date extractions, then the provider's silent update (new fingerprint and model
version; ambiguous dates come back day/month transposed; latency and cost unchanged). Checked: the
model-version change is reported at the first updated call; the date-consistency pass-rate alert fires
within 50 affected outputs, names the feature and validator, estimates the start at the first affected
call, gives before/after pass rates and example traces, and reaches spans, metrics and log records.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import openai
import pytest
from _pipeline_helpers import metric_points, settings_from
from opentelemetry import _logs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_telemetry import attributes as a
from llm_telemetry.demo_story import FEATURE, run_story
from llm_telemetry.instrumentation.openai import OpenAIInstrumentor
from llm_telemetry.processors.chain import EnricherChain, build_chain
from llm_telemetry.processors.pipeline import build_pipeline
from llm_telemetry.processors.quality.enricher import QualityEnricher
from llm_telemetry.side_channel import side_channel


@dataclass
class StoryEnv:
    chain: EnricherChain
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    logs: InMemoryLogRecordExporter

    @property
    def quality(self) -> QualityEnricher:
        return next(e for e in self.chain.enrichers if isinstance(e, QualityEnricher))


@pytest.fixture
def story_env(tmp_path) -> Iterator[StoryEnv]:
    settings = settings_from({"LLM_TELEMETRY_REVIEW_DB_PATH": str(tmp_path / "review.db"),
                              "LLM_TELEMETRY_QUALITY_WATCH_BASELINE_CALLS": "50"})
    spans, reader, logs = InMemorySpanExporter(), InMemoryMetricReader(), InMemoryLogRecordExporter()
    tracer_provider, meter_provider, logger_provider = TracerProvider(), MeterProvider(metric_readers=[reader]), LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    previous = _logs._internal._LOGGER_PROVIDER  # the alert book logs through the global provider (None if unset)
    _logs._internal._LOGGER_PROVIDER = logger_provider
    chain = build_chain(settings, meter_provider, tracer_provider)
    tracer_provider.add_span_processor(build_pipeline(SimpleSpanProcessor(spans), settings, chain=chain))
    side_channel.connect(chain)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield StoryEnv(chain, spans, reader, logs)
    finally:
        instrumentor.uninstrument()
        side_channel.connect(None, auto=False)
        chain.shutdown(2)
        tracer_provider.shutdown()
        meter_provider.shutdown()
        logger_provider.shutdown()
        _logs._internal._LOGGER_PROVIDER = previous


def test_the_silent_update_is_caught_within_fifty_affected_outputs(story_env: StoryEnv, fake_provider) -> None:
    client = openai.OpenAI(api_key="sk-story", base_url=fake_provider.openai_base_url, max_retries=0)
    alert_at: list[int] = []

    def note(index: int) -> None:
        if not alert_at and any(al.name == "quality.validator_pass_rate" for al in story_env.quality.alerts.active()):
            alert_at.append(index)

    run = run_story(client, good=250, updated=150, after_each=note)
    assert story_env.chain.flush(10)
    spans = sorted(story_env.spans.get_finished_spans(), key=lambda s: s.start_time)
    assert len(spans) == 400

    # No alert of any kind while the provider behaved.
    history = story_env.quality.alerts.history()
    assert all(al.at_ns >= spans[run.first_update_call].start_time for al in history), [al.summary for al in history]

    # The model-version change: reported at the first updated call, as a timestamped fact.
    changes = [al for al in history if al.name == "quality.model_version_changed"]
    assert {al.key["dimension"] for al in changes} >= {"system_fingerprint", "response_model"}
    first_updated = spans[run.first_update_call]
    assert all(al.trace_id == first_updated.context.trace_id for al in changes)
    assert any(e.name == a.EVENT_MODEL_VERSION_CHANGED for e in first_updated.events)

    # The date regression: alerted within 50 affected outputs, with where, when, before/after and examples.
    assert alert_at, "no pass-rate alert"
    affected_before_alert = sum(1 for index in run.affected if index <= alert_at[0])
    assert 1 <= affected_before_alert <= 50
    (alert,) = [al for al in history if al.name == "quality.validator_pass_rate" and al.state == "firing"]
    assert alert.key == {"feature": FEATURE, "validator": "date_consistency"}
    first_affected = spans[run.affected[0]]
    assert abs(alert.started_ns - first_affected.end_time) <= (spans[run.affected[1]].end_time - first_affected.end_time)
    assert alert.details[a.VALIDATION_PASS_RATE_BEFORE] > 0.95 > 0.8 > alert.details[a.VALIDATION_PASS_RATE_AFTER]
    assert alert.examples and all(len(t) == 32 for t in alert.examples)
    affected_traces = {format(spans[i].context.trace_id, "032x") for i in run.affected}
    assert set(alert.examples) <= affected_traces

    # Every output carries its evaluation; the alert is a span event, a metric and a log record in the trace.
    results = [e for s in spans for e in s.events if e.name == a.EVENT_EVALUATION_RESULT]
    assert len(results) == 400
    assert {e.attributes[a.EVALUATION_SCORE_LABEL] for e in results} == {"pass", "fail"}
    assert any(e.name == a.EVENT_PASS_RATE_DROP for s in spans for e in s.events)
    checks = {(p[a.EVALUATION_SCORE_LABEL]): v for p, v in metric_points(story_env.reader, a.METRIC_VALIDATION_CHECKS)}
    assert checks["fail"] == len(run.affected) and checks["pass"] == 400 - len(run.affected)
    alerts_metric = {(p[a.ALERT_NAME], p[a.ALERT_STATE]): v for p, v in metric_points(story_env.reader, a.METRIC_QUALITY_ALERTS)}
    assert alerts_metric[("quality.validator_pass_rate", "firing")] == 1
    records = [r.log_record for r in story_env.logs.get_finished_logs() if r.log_record.event_name == a.EVENT_ALERT]
    drop = next(r for r in records if r.attributes[a.ALERT_NAME] == "quality.validator_pass_rate")
    assert drop.trace_id in {s.context.trace_id for s in spans[run.first_update_call:]}
    # Latency and cost stayed flat: the failure only content monitoring sees.
    costs = {s.attributes[a.COST_TOTAL_USD] for s in spans}
    assert len(costs) == 1


def test_a_behaving_provider_raises_no_quality_alert(story_env: StoryEnv, fake_provider) -> None:
    client = openai.OpenAI(api_key="sk-story", base_url=fake_provider.openai_base_url, max_retries=0)
    run_story(client, good=400, updated=0, seed=11)
    assert story_env.chain.flush(10)
    assert story_env.quality.alerts.history() == []
    assert all(e.attributes[a.EVALUATION_SCORE_LABEL] == "pass"
               for s in story_env.spans.get_finished_spans() for e in s.events if e.name == a.EVENT_EVALUATION_RESULT)
