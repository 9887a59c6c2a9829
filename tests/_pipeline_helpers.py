"""Shared pieces for the pipeline / cost / budget tests: a real OTel SDK with the enriching processor in front.

``PipelineEnv`` wires ``TracerProvider → EnrichingSpanProcessor → SimpleSpanProcessor → InMemorySpanExporter``
and a ``MeterProvider`` with an ``InMemoryMetricReader``; nothing of ours is replaced.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Tracer

from llm_telemetry.config import Settings, load_settings
from llm_telemetry.processors.base import BackgroundWorker, Enricher
from llm_telemetry.processors.pipeline import EnrichingSpanProcessor


def metric_points(reader: InMemoryMetricReader, metric: str) -> list[tuple[dict[str, Any], float]]:
    """(attributes, value) of every data point of ``metric`` in one collection of ``reader``."""
    out: list[tuple[dict[str, Any], float]] = []
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == metric:
                    out.extend((dict(p.attributes), p.value) for p in m.data.data_points)
    return out


def settings_from(env: Mapping[str, str] | None = None) -> Settings:
    """Settings loaded the real way, from a dict standing in for the environment."""
    return load_settings(dict(env or {}))


class RecordingProcessor(SpanProcessor):
    """An OTel ``SpanProcessor`` that notes which calls it got and forwards to a real one."""

    def __init__(self, inner: SpanProcessor) -> None:
        self.inner = inner
        self.started: list[Span] = []
        self.ended: list[ReadableSpan] = []
        self.shutdowns = 0
        self.flushes: list[int] = []

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        self.started.append(span)
        self.inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)
        self.inner.on_end(span)

    def shutdown(self) -> None:
        self.shutdowns += 1
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.flushes.append(timeout_millis)
        return self.inner.force_flush(timeout_millis)


@dataclass
class PipelineEnv:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    reader: InMemoryMetricReader
    exporter: InMemorySpanExporter
    recorder: RecordingProcessor
    processor: EnrichingSpanProcessor

    @property
    def tracer(self) -> Tracer:
        return self.tracer_provider.get_tracer("tests.pipeline", "1.0")

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def emit(
        self, name: str, attributes: Mapping[str, Any], *, kind: SpanKind = SpanKind.CLIENT,
        events: Sequence[tuple[str, Mapping[str, Any]]] = (), before_end: Callable[[Span], None] | None = None,
    ) -> ReadableSpan:
        """End one span with ``attributes`` and return what was exported for it."""
        span = self.tracer.start_span(name, kind=kind, attributes=dict(attributes))
        for event_name, event_attrs in events:
            span.add_event(event_name, dict(event_attrs))
        if before_end is not None:
            before_end(span)
        span.end()
        ctx = span.get_span_context()
        matches = [s for s in self.spans() if s.context.span_id == ctx.span_id]
        assert len(matches) == 1, f"span {name!r} exported {len(matches)} times"
        return matches[0]

    def points(self, metric: str) -> list[tuple[dict[str, Any], float]]:
        """(attributes, value) of every data point of ``metric`` in one collection."""
        return metric_points(self.reader, metric)

    def close(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def make_env(
    enrichers: Callable[[Meter, BackgroundWorker], list[Enricher]] | None = None,
    settings: Settings | None = None,
    *,
    worker: BackgroundWorker | None = None,
    span_limits: SpanLimits | None = None,
) -> PipelineEnv:
    """A pipeline whose enrichers are built by ``enrichers(meter, worker)`` with the env's own meter."""
    settings = settings if settings is not None else settings_from()
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    meter = meter_provider.get_meter("llm_telemetry.processors")
    worker = worker if worker is not None else BackgroundWorker(settings.pipeline.worker_queue_size)
    exporter = InMemorySpanExporter()
    recorder = RecordingProcessor(SimpleSpanProcessor(exporter))
    processor = EnrichingSpanProcessor(
        recorder, enrichers(meter, worker) if enrichers else [], settings=settings, worker=worker, meter=meter,
    )
    tracer_provider = TracerProvider(span_limits=span_limits)
    tracer_provider.add_span_processor(processor)
    return PipelineEnv(tracer_provider, meter_provider, reader, exporter, recorder, processor)


@dataclass
class ManualClock:
    """A wall clock the test moves by hand (aware datetimes), for budget windows."""

    now: datetime
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, **delta: float) -> None:
        with self._lock:
            self.now = self.now + timedelta(**delta)
