"""Fixtures for the evaluation, canary, feedback and session tests: the real OTel SDK in memory (spans,
metrics, logs), the real SDKs instrumented against the bundled fake provider, dataset files."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _pipeline_helpers import metric_points
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_telemetry.instrumentation.anthropic import AnthropicInstrumentor
from llm_telemetry.instrumentation.openai import OpenAIInstrumentor

try:
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as _InMemoryLogs
except ImportError:  # opentelemetry-sdk < 1.39
    from opentelemetry.sdk._logs.export import InMemoryLogExporter as _InMemoryLogs  # type: ignore[no-redef,attr-defined]

DATES_YAML = """\
name: invoice-dates
system: "Extract the invoice date as ISO 8601. Input dates are DD/MM/YYYY."
cases:
  - id: inv-0304
    input: "Invoice INV-2291, issued 03/04/2025, due in 30 days."
    expected: "2025-04-03"
  - id: inv-2503
    input: "Invoice INV-2292, issued 25/03/2025."
    expected: "2025-03-25"
  - id: inv-0711
    input: "Invoice INV-2293, issued 07/11/2024."
    expected: "2024-11-07"
    checks: [exact, {regex: "^\\\\d{4}-\\\\d{2}-\\\\d{2}$"}]
"""


@dataclass
class EvalTelemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider
    spans_exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    logs_exporter: Any

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        spans = list(self.spans_exporter.get_finished_spans())
        return [s for s in spans if name is None or s.name == name or s.name.startswith(name + " ")]

    def logs(self, event_name: str | None = None) -> list[Any]:
        records = [r.log_record for r in self.logs_exporter.get_finished_logs()]
        return [r for r in records if event_name is None or r.event_name == event_name]

    def points(self, metric: str) -> list[tuple[dict[str, Any], Any]]:
        return metric_points(self.reader, metric)

    def histogram(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        return [
            p for rm in (data.resource_metrics if data else ()) for sm in rm.scope_metrics for m in sm.metrics
            if m.name == metric for p in m.data.data_points
        ]


@pytest.fixture
def eval_telemetry() -> Iterator[EvalTelemetry]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    logs = _InMemoryLogs()
    lp = LoggerProvider()
    lp.add_log_record_processor(SimpleLogRecordProcessor(logs))
    yield EvalTelemetry(tp, mp, lp, exporter, reader, logs)
    tp.shutdown()
    mp.shutdown()
    lp.shutdown()


@pytest.fixture
def instrumented_sdks(eval_telemetry: EvalTelemetry) -> Iterator[EvalTelemetry]:
    """The OpenAI and Anthropic SDKs instrumented with the test's providers."""
    instrumentors = [OpenAIInstrumentor(), AnthropicInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=eval_telemetry.tracer_provider, meter_provider=eval_telemetry.meter_provider)
    yield eval_telemetry
    for instrumentor in instrumentors:
        instrumentor.uninstrument()


@pytest.fixture
def write_dataset(tmp_path: Path) -> Callable[..., Path]:
    """``write_dataset(text_or_records, name="ds.yaml")``: a dataset file in the test's temp dir."""

    def write(content: str | list[dict[str, Any]], name: str = "ds.yaml") -> Path:
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(textwrap.dedent(content), encoding="utf-8")
        else:
            path.write_text("\n".join(json.dumps(r) for r in content) + "\n", encoding="utf-8")
        return path

    return write


def children_of(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def eval_events(span: ReadableSpan) -> dict[str, dict[str, Any]]:
    """The span's ``gen_ai.evaluation.result`` events by evaluation name."""
    return {e.attributes["gen_ai.evaluation.name"]: dict(e.attributes) for e in span.events if e.name == "gen_ai.evaluation.result"}
