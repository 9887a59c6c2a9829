"""Shared pieces for the safety tests: settings from an env dict, pattern files, real spans, test judges.

`SafetyEnv` is a real OTel SDK (``TracerProvider → EnrichingSpanProcessor → SimpleSpanProcessor →
InMemorySpanExporter``, ``MeterProvider`` + ``InMemoryMetricReader``) whose only enricher is the
`SafetyEnricher` built by its own ``from_context``, on a real `BackgroundWorker`, and its own
fresh `SafetyStats` (the ones `safety_report` reads), so tests do not see each other's counts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _pipeline_helpers import metric_points
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from llm_telemetry import attributes as a
from llm_telemetry.config import Settings, load_settings
from llm_telemetry.processors.base import BackgroundWorker, EnricherContext
from llm_telemetry.processors.pipeline import EnrichingSpanProcessor
from llm_telemetry.processors.safety import JudgeVerdict, SafetyEnricher
from llm_telemetry.processors.safety.report import SafetyStats, current_stats
from llm_telemetry.record import GenAICall
from llm_telemetry.side_channel import attach

CLEAN_OUTPUT = "The invoice is dated 3 April 2025 and the total is 120 euros, payable within thirty days."
BLOCKED_OUTPUT = "Sure. Here are instructions for making a pipe bomb from household items."
PII_OUTPUT = "You can reach Jane at jane.doe@example.com or by card 4111 1111 1111 1111."


def settings_for(tmp_path: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Settings loaded the real way; the review queue lives under ``tmp_path`` unless ``env`` says otherwise."""
    values = {"LLM_TELEMETRY_REVIEW_DB_PATH": str(tmp_path / "state" / "review.db"), **(env or {})}
    return load_settings(values)


def write_pack(path: Path, patterns: Sequence[Mapping[str, Any]], disable: Sequence[str] = ()) -> Path:
    """Write a TOML pattern file (regexes as TOML literal strings, so no escaping)."""
    lines = []
    if disable:
        lines.append("disable = [" + ", ".join(f'"{name}"' for name in disable) + "]")
    for pattern in patterns:
        lines.append("[[patterns]]")
        for key, value in pattern.items():
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif key == "regex":
                lines.append(f"{key} = '''{value}'''")
            else:
                lines.append(f'{key} = "{value}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_call(output: str | None, prompt: str | None = None, model: str = "gpt-4o-mini") -> GenAICall:
    messages = [{"role": "user", "parts": [{"type": "text", "content": prompt}]}] if prompt is not None else None
    return GenAICall(
        operation="chat", provider="openai", request_model=model, response_model=model, response_id="chatcmpl-1",
        input_messages=messages, output_text=output,
    )


@dataclass
class SafetyEnv:
    settings: Settings
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    reader: InMemoryMetricReader
    exporter: InMemorySpanExporter
    worker: BackgroundWorker
    processor: EnrichingSpanProcessor
    enricher: SafetyEnricher
    stats: SafetyStats

    def run_call(self, call: GenAICall, name: str = "chat gpt-4o-mini") -> ReadableSpan:
        """End a GenAI CLIENT span whose record is ``call`` (handed over by the side channel) and return its export."""
        tracer = self.tracer_provider.get_tracer("tests.safety")
        span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes={
            a.OPERATION_NAME: call.operation, a.PROVIDER_NAME: call.provider, a.REQUEST_MODEL: call.request_model or "m",
        })
        ctx = span.get_span_context()
        # What our instrumentation does at the end of a call: measure the record, attach, end.
        call.trace_id, call.span_id, call.end_time_ns = ctx.trace_id, ctx.span_id, time.time_ns()
        attach(self.processor.chain.measure(call, dict(span.attributes or {})), span, call.end_time_ns)
        span.end(end_time=call.end_time_ns)
        return self.exported(ctx.span_id)

    def exported(self, span_id: int) -> ReadableSpan:
        matches = [s for s in self.exporter.get_finished_spans() if s.context.span_id == span_id]
        assert len(matches) == 1, f"span {span_id:x} exported {len(matches)} times"
        return matches[0]

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if name is None or s.name == name]

    def points(self, metric: str) -> list[tuple[dict[str, Any], float]]:
        """(attributes, value) of every data point of ``metric`` in one collection."""
        return metric_points(self.reader, metric)

    def flush(self) -> None:
        assert self.processor.chain.flush(10.0), "background lanes did not drain"

    def close(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def make_env(settings: Settings) -> SafetyEnv:
    """Build the env; the enricher's ``from_context`` makes fresh counts, which `safety_report` then reads."""
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    meter = meter_provider.get_meter("llm_telemetry.processors")
    worker = BackgroundWorker(100)
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    enricher = SafetyEnricher.from_context(EnricherContext(settings, meter, worker, tracer_provider))
    processor = EnrichingSpanProcessor(
        SimpleSpanProcessor(exporter), [enricher], settings=settings, worker=worker, meter=meter,
    )
    tracer_provider.add_span_processor(processor)
    return SafetyEnv(settings, tracer_provider, meter_provider, reader, exporter, worker, processor, enricher, current_stats())


# --- judges for `judge.callable = "_safety_helpers:<name>"` -------------------------------------------

judged: list[tuple[str | None, str, str]] = []
"""(prompt, output, thread name) of every call to the test judges."""
_judged_lock = threading.Lock()


def _note(prompt: str | None, output: str) -> None:
    with _judged_lock:
        judged.append((prompt, output, threading.current_thread().name))


def violence_judge(prompt: str | None, output: str) -> JudgeVerdict:
    """Flags any output containing 'fight'."""
    _note(prompt, output)
    if "fight" in output:
        return JudgeVerdict(flagged=True, category="Violence", score=0.9, explanation="describes a fight")
    return JudgeVerdict(flagged=False, score=0.05, explanation="harmless")


def broken_judge(prompt: str | None, output: str) -> JudgeVerdict:
    _note(prompt, output)
    raise RuntimeError("judge backend unavailable")


def wrong_type_judge(prompt: str | None, output: str) -> dict[str, Any]:
    _note(prompt, output)
    return {"is_harmful": True}


not_callable = 42
