"""The exporter wrappers: `ExportGuard` (circuit breaker, deadlines) plus a retry buffer, per signal.

`ResilientSpanExporter`, `ResilientMetricExporter` and `ResilientLogExporter` wrap any exporter the
configurator builds; what the guard decides (`llm_telemetry.exporters.resilient`) and what the buffer
keeps are counted in `DropCounts`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from llm_telemetry.exporters.resilient import ExportGuard, stop_otlp_retries

logger = logging.getLogger(__name__)


class RetryBuffer:
    """Span or log batches that were never delivered, re-sent in front of the next batch (bounded, counted).

    Why: one slow or failed export opens the circuit for ``export.retry_backoff_s``; without a buffer every
    batch in that window, and the failed one, would be lost although the backend is only briefly away.
    Only batches known not to have arrived are kept (failed, or skipped); one abandoned at the deadline
    may still arrive, so it is not re-sent (no duplicates); one the backend refused for good (an HTTP 4xx
    or gRPC status the OTLP specification calls permanent, e.g. 405 from a traces-only backend) is
    dropped, not kept: re-sent in front of every later batch it would get them refused too. Oldest items go first when the buffer is
    full; they are counted as dropped. Metrics need no buffer: with cumulative temporality (the
    default) the next export carries the totals.
    """

    def __init__(self, guard: ExportGuard, max_items: int) -> None:
        self._guard = guard
        self._max = max_items
        self._items: list[Any] = []
        self._lock = threading.Lock()

    def send(self, batch: Sequence[Any], deliver: Callable[[Sequence[Any]], bool]) -> bool:
        with self._lock:
            items, self._items = [*self._items, *batch], []
        outcome = self._guard.export_outcome(lambda: deliver(items), len(items))
        if outcome in ("failed", "skipped") and self._max > 0 and not (outcome == "failed" and self._guard.refused_for_good):
            keep = items[-self._max:]
            self._guard.retain(len(keep), outcome)
            with self._lock:
                self._items = keep + self._items
                overflow = len(self._items) - self._max
                if overflow > 0:
                    del self._items[:overflow]
                    self._guard.drop_retained(overflow)
        return outcome == "exported"

    def abandon(self) -> int:
        """At shutdown: what is still kept is dropped (and counted)."""
        with self._lock:
            count, self._items = len(self._items), []
        if count:
            self._guard.drop_retained(count)
        return count

    def __len__(self) -> int:
        return len(self._items)


class ResilientSpanExporter(SpanExporter):
    """A `SpanExporter` that bounds, circuit-breaks, buffers for retry and counts the exports of ``exporter``."""

    def __init__(
        self, exporter: SpanExporter, endpoint: str, timeout_s: float, retry_backoff_s: float, retry_buffer_items: int = 2048,
    ) -> None:
        self.exporter = exporter
        self.guard = ExportGuard("traces", endpoint, timeout_s, retry_backoff_s, lambda: stop_otlp_retries(exporter))
        self.retry_buffer = RetryBuffer(self.guard, retry_buffer_items)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = self.retry_buffer.send(spans, lambda batch: self.exporter.export(batch) is SpanExportResult.SUCCESS)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        if self.guard.closed:  # once: the stock exporter warns "already shutdown" on a second call
            return
        if len(self.retry_buffer):  # one last try within the shutdown deadline
            self.retry_buffer.send((), lambda batch: self.exporter.export(batch) is SpanExportResult.SUCCESS)
        self.retry_buffer.abandon()
        self.guard.close()
        _safely(self.exporter.shutdown)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(_safely(lambda: self.exporter.force_flush(timeout_millis)))


def count_points(metrics_data: MetricsData) -> int:
    return sum(
        len(metric.data.data_points)
        for resource_metrics in metrics_data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    )


class ResilientMetricExporter(MetricExporter):
    """A `MetricExporter` that bounds, circuit-breaks and counts the exports of ``exporter``.

    It forwards the wrapped exporter's preferred temporality and aggregation, so
    ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` keeps working through it.
    """

    def __init__(self, exporter: MetricExporter, endpoint: str, timeout_s: float, retry_backoff_s: float) -> None:
        super().__init__(
            preferred_temporality=getattr(exporter, "_preferred_temporality", None),
            preferred_aggregation=getattr(exporter, "_preferred_aggregation", None),
        )
        self.exporter = exporter
        self.guard = ExportGuard("metrics", endpoint, timeout_s, retry_backoff_s, lambda: stop_otlp_retries(exporter))

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        ok = self.guard.export(
            lambda: self.exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs) is MetricExportResult.SUCCESS,
            count_points(metrics_data),
            timeout_s=timeout_millis / 1000,
        )
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return bool(_safely(lambda: self.exporter.force_flush(timeout_millis=timeout_millis)))

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self.guard.closed:
            return
        self.guard.close()
        _safely(lambda: self.exporter.shutdown(timeout_millis=timeout_millis, **kwargs))


try:  # LogRecordExporter is the SDK >= 1.39 name; older SDKs call it LogExporter
    from opentelemetry.sdk._logs.export import LogRecordExporter as _LogExporterBase
except ImportError:  # pragma: no cover - depends on the installed SDK
    from opentelemetry.sdk._logs.export import LogExporter as _LogExporterBase  # type: ignore[no-redef]


class ResilientLogExporter(_LogExporterBase):  # type: ignore[misc,valid-type]
    """A log record exporter that bounds, circuit-breaks and counts the exports of ``exporter``."""

    def __init__(
        self, exporter: Any, endpoint: str, timeout_s: float, retry_backoff_s: float, retry_buffer_items: int = 2048,
    ) -> None:
        self.exporter = exporter
        self.guard = ExportGuard("logs", endpoint, timeout_s, retry_backoff_s, lambda: stop_otlp_retries(exporter))
        self.retry_buffer = RetryBuffer(self.guard, retry_buffer_items)
        self._results = _log_results()

    def _deliver(self, batch: Sequence[Any]) -> bool:
        return getattr(self.exporter.export(batch), "name", None) == "SUCCESS"

    def export(self, batch: Sequence[Any]) -> Any:
        success, failure = self._results
        return success if self.retry_buffer.send(batch, self._deliver) else failure

    def shutdown(self) -> None:
        if self.guard.closed:
            return
        if len(self.retry_buffer):
            self.retry_buffer.send((), self._deliver)
        self.retry_buffer.abandon()
        self.guard.close()
        _safely(self.exporter.shutdown)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(_safely(lambda: self.exporter.force_flush(timeout_millis)))


def _log_results() -> tuple[Any, Any]:
    try:
        from opentelemetry.sdk._logs.export import LogRecordExportResult as Result
    except ImportError:  # pragma: no cover - older SDK
        from opentelemetry.sdk._logs.export import LogExportResult as Result  # type: ignore[no-redef]
    return Result.SUCCESS, Result.FAILURE


def _safely(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception:
        logger.debug("llm-telemetry: exporter call failed", exc_info=True)
        return None
