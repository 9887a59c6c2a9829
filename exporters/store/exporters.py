"""OpenTelemetry exporters that write into the embedded `TelemetryStore` (traces, metrics, logs).

Registered as ``llm_telemetry_store`` in the ``opentelemetry_{traces,metrics,logs}_exporter`` groups, so
``OTEL_TRACES_EXPORTER=llm_telemetry_store`` works under ``opentelemetry-instrument``; the demo and the
gateway use them when no OTLP endpoint is configured. The file is ``store.path``
(``LLM_TELEMETRY_STORE_PATH``). Writes are synchronous SQLite transactions on the export thread (the
batch processors' thread, never the app's); a failed write is logged and counted, never raised.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

from llm_telemetry import attributes as a
from llm_telemetry.config import get_settings
from llm_telemetry.exporters.store.db import SpanRecord, TelemetryStore

_stores: dict[str, TelemetryStore] = {}


def open_store(path: str | None = None) -> TelemetryStore:
    """The process's store for ``path`` (default: ``store.path`` from the settings); one connection per file."""
    settings = get_settings(lenient=True).store
    target = str(path if path is not None else settings.path)
    store = _stores.get(target)
    if store is None:
        store = _stores[target] = TelemetryStore(target, settings.retention_days)
    return store


def span_record(span: ReadableSpan) -> SpanRecord:
    ctx = span.context
    parent = span.parent
    service = span.resource.attributes.get("service.name") if span.resource is not None else None
    return SpanRecord(
        trace_id=ctx.trace_id if ctx else 0, span_id=ctx.span_id if ctx else 0,
        parent_span_id=parent.span_id if parent is not None else None, name=span.name,
        service=str(service) if service is not None else None,
        start_ns=span.start_time or 0, end_ns=span.end_time or 0, error=span.status.status_code is StatusCode.ERROR,
        attributes=dict(span.attributes or {}),
        events=[(e.name, e.timestamp, dict(e.attributes or {})) for e in span.events],
    )


class StoreSpanExporter(SpanExporter):
    """Writes GenAI spans (and their events) to the store; other spans are not kept."""

    def __init__(self, path: str | None = None) -> None:
        self.store = open_store(path)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        errors = self.store.write_errors
        self.store.add_spans(span_record(span) for span in spans)
        return SpanExportResult.SUCCESS if self.store.write_errors == errors else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class StoreMetricExporter(MetricExporter):
    """Writes each collection's points (sums, gauges; histograms as count and sum) to the store."""

    def __init__(self, path: str | None = None, **kwargs: Any) -> None:
        super().__init__(preferred_temporality={}, preferred_aggregation={})
        self.store = open_store(path)

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        now = time.time_ns()
        rows: list[tuple[int, str, Mapping[str, Any], float, int | None]] = []
        for rm in metrics_data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in getattr(metric.data, "data_points", ()):
                        attrs = dict(point.attributes or {})
                        if isinstance(point, NumberDataPoint):
                            rows.append((point.time_unix_nano or now, metric.name, attrs, float(point.value), None))
                        elif isinstance(point, HistogramDataPoint):
                            rows.append((point.time_unix_nano or now, metric.name, attrs, float(point.sum), int(point.count)))
        errors = self.store.write_errors
        self.store.add_metric_points(rows)
        return MetricExportResult.SUCCESS if self.store.write_errors == errors else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


try:  # LogRecordExporter is the SDK >= 1.39 name; older SDKs call it LogExporter
    from opentelemetry.sdk._logs.export import LogRecordExporter as _LogExporterBase
    from opentelemetry.sdk._logs.export import LogRecordExportResult as _LogResult
except ImportError:  # pragma: no cover - depends on the installed SDK
    from opentelemetry.sdk._logs.export import LogExporter as _LogExporterBase  # type: ignore[no-redef]
    from opentelemetry.sdk._logs.export import LogExportResult as _LogResult  # type: ignore[no-redef]


class StoreLogExporter(_LogExporterBase):  # type: ignore[misc,valid-type]
    """Keeps the alert log records (``event_name = llm_telemetry.alert``); other log records are not stored."""

    def __init__(self, path: str | None = None) -> None:
        self.store = open_store(path)

    def export(self, batch: Sequence[Any]) -> Any:
        for item in batch:
            record = getattr(item, "log_record", item)
            attrs = dict(getattr(record, "attributes", None) or {})
            if getattr(record, "event_name", None) == a.EVENT_ALERT or a.ALERT_NAME in attrs:
                self.store.add_alert(getattr(record, "timestamp", None) or time.time_ns(), attrs, getattr(record, "trace_id", 0) or 0)
        return _LogResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

