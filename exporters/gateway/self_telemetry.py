"""Exporters that put the gateway's own telemetry into its delivery queue.

Why not a second OTLP exporter to the upstream: the gateway's metrics (its counters, and the cost,
budget and safety metrics its enricher chain computes) must survive the same upstream outage as the
data they describe, and be counted the same way when they cannot be kept. Encoding them with the
OTLP exporters' own encoders and queueing the bytes gives them the queue's retries, spill and accounting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from llm_telemetry.exporters.gateway.otlp import Signal, count_items

Enqueue = Callable[[Signal, bytes, int], bool]


class QueueMetricExporter(MetricExporter):
    """Encodes each collection as an ``ExportMetricsServiceRequest`` and queues it (cumulative temporality)."""

    def __init__(self, enqueue: Enqueue) -> None:
        super().__init__()
        self._enqueue = enqueue

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object) -> MetricExportResult:
        request = encode_metrics(metrics_data)
        items = count_items("metrics", request)
        if not items:
            return MetricExportResult.SUCCESS
        ok = self._enqueue("metrics", request.SerializeToString(), items)
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        return None


class QueueSpanExporter(SpanExporter):
    """Queues the gateway's own spans (e.g. the safety judge's calls) as an ``ExportTraceServiceRequest``."""

    def __init__(self, enqueue: Enqueue) -> None:
        self._enqueue = enqueue

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        ok = self._enqueue("traces", encode_spans(spans).SerializeToString(), len(spans))
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        return None
