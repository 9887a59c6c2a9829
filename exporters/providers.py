"""Build the tracer, meter and logger providers llm-telemetry needs, from the ``OTEL_*`` variables or arguments.

`configure` is what the ``opentelemetry-instrument`` configurator runs, and the plain-Python way in for
apps that do not use the CLI. Spans go ``EnrichingSpanProcessor`` (cost, budget, safety) →
``BatchSpanProcessor`` → exporter; every exporter built from the environment is wrapped in the
`resilient` circuit breaker; metrics get the GenAI semantic-convention bucket boundaries (advised by
our instruments; Views fill in for instrumentations that advise none). `Providers.shutdown` flushes
everything within one deadline (``export.shutdown_timeout_s``) and says what a dead backend made us
drop: that log line is the one thing the user sees, since the
``llm_telemetry.dropped`` metric cannot reach a backend that is down.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from llm_telemetry import __version__
from llm_telemetry import attributes as a
from llm_telemetry.config import ConfigError, Settings, get_settings, load_settings_leniently, set_settings
from llm_telemetry.exporters.openinference import with_project_name
from llm_telemetry.exporters.resilient import REASON_FAILED, REASON_SKIPPED, DropCounts, ExportGuard, Signal
from llm_telemetry.exporters.resilient_exporters import ResilientLogExporter, ResilientMetricExporter, ResilientSpanExporter
from llm_telemetry.exporters.selection import ExporterChoice, choose_exporters

logger = logging.getLogger(__name__)

METER_NAME = "llm_telemetry.exporters"
DISTRO_NAME = "llm-telemetry"
GENAI_HISTOGRAM_BUCKETS: Mapping[str, Sequence[float]] = {
    a.METRIC_TOKEN_USAGE: a.TOKEN_BUCKETS,
    a.METRIC_OPERATION_DURATION: a.DURATION_BUCKETS,
    a.METRIC_TIME_TO_FIRST_CHUNK: a.TIME_TO_FIRST_CHUNK_BUCKETS,
    a.METRIC_TIME_PER_OUTPUT_CHUNK: a.TIME_PER_CHUNK_BUCKETS,
}
_LOGGING_HANDLER_ENV = "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED"
_MIN_METRICS_SHUTDOWN_S = 0.25


_active: Providers | None = None


def active_providers() -> Providers | None:
    """The providers `configure` installed process-wide, or None when llm-telemetry did not set up the SDK.

    None under ``opentelemetry-instrument`` means another distro's configurator ran instead of ours
    (several distros installed, none chosen with ``OTEL_PYTHON_DISTRO=llm_telemetry``).
    """
    return _active


class _UnadvisedHistogramView(View):
    """A View that leaves alone histograms whose instrumentation advised bucket boundaries.

    Why: the SDK checks every pair of View matches for "conflicting metrics identities" by name, unit and
    aggregation only — not by instrumentation scope, although the scope is part of a metric's identity.
    Our OpenAI and Anthropic instrumentations each record ``gen_ai.client.token.usage`` (and the other
    GenAI histograms) under their own scope, so a View matching both made the SDK warn on every run. Our
    instruments carry the semconv boundaries as ``explicit_bucket_boundaries_advisory`` (which the SDK's
    default aggregation honours), so they need no View; this one only fills in for an instrumentation
    that advises nothing. (Two such foreign scopes recording the same metric would still get the SDK's
    warning: that is the SDK's check, and their data is right either way.)
    """

    def _match(self, instrument: Any) -> bool:
        advisory = getattr(instrument, "_advisory", None)
        if getattr(advisory, "explicit_bucket_boundaries", None) is not None:
            return False
        return bool(super()._match(instrument))


def genai_views() -> list[View]:
    """Views giving the GenAI client histograms the semantic conventions' bucket boundaries.

    Only for instrumentations that advise no boundaries of their own: ours pass them as
    ``explicit_bucket_boundaries_advisory`` (see `_UnadvisedHistogramView` for why they must not match).
    """
    return [
        _UnadvisedHistogramView(
            instrument_type=Histogram, instrument_name=name, aggregation=ExplicitBucketHistogramAggregation(tuple(buckets)),
        )
        for name, buckets in GENAI_HISTOGRAM_BUCKETS.items()
    ]


@dataclass
class Providers:
    """What `configure` built. ``shutdown`` is idempotent and bounded; ``dropped`` sums the export drops."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: Any | None
    settings: Settings
    pipeline_installed: bool
    guards: list[ExportGuard] = field(default_factory=list)
    export_processors: list[SpanProcessor] = field(default_factory=list)
    _shutdown_done: bool = False
    _shutdown_lock: threading.Lock = field(default_factory=threading.Lock)

    def dropped(self) -> dict[Signal, DropCounts]:
        """Export outcome per signal (spans, metric data points, log records)."""
        out: dict[Signal, DropCounts] = {}
        for guard in self.guards:
            out[guard.signal] = out.get(guard.signal, DropCounts()) + guard.counts
        return out

    def dropped_counts(self) -> dict[str, int]:
        """Dropped items by ``llm_telemetry.dropped.reason`` (the `DropReporter` protocol of the pipeline)."""
        totals = sum(self.dropped().values(), DropCounts())
        return {REASON_FAILED: totals.failed_items, REASON_SKIPPED: totals.skipped_items}

    def force_flush(self, timeout_s: float | None = None) -> bool:
        timeout_ms = int(1000 * (self.settings.export.timeout_s if timeout_s is None else timeout_s))
        ok = _quietly(lambda: self.tracer_provider.force_flush(timeout_ms))
        ok = _quietly(lambda: self.meter_provider.force_flush(timeout_ms)) and ok
        if self.logger_provider is not None:
            ok = _quietly(lambda: self.logger_provider.force_flush(timeout_ms)) and ok
        return bool(ok)

    def shutdown(self, timeout_s: float | None = None) -> None:
        """Flush and stop everything within ``timeout_s`` (default ``export.shutdown_timeout_s``), then report drops.

        Exports still running at the deadline are abandoned and counted as dropped; a backend known to be
        down (failed within ``export.retry_backoff_s``) is not tried again.
        """
        with self._shutdown_lock:
            if self._shutdown_done:
                return
            self._shutdown_done = True
        budget = self.settings.export.shutdown_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + budget
        for guard in self.guards:
            guard.begin_shutdown(deadline)
        _quietly(self.tracer_provider.shutdown)
        for processor in self.export_processors:  # in case the pipeline did not pass shutdown on
            _quietly(processor.shutdown)
        # The reader's last collection runs on its own thread; past the deadline its export is skipped at once
        # (and counted), so a short floor lets it get that far instead of vanishing uncounted.
        metrics_wait_s = max(_MIN_METRICS_SHUTDOWN_S, deadline - time.monotonic())
        _quietly(lambda: self.meter_provider.shutdown(timeout_millis=metrics_wait_s * 1000))
        if self.logger_provider is not None:
            _quietly(self.logger_provider.shutdown)
        self.report_drops()

    def report_drops(self) -> None:
        """Log what export dropped, if anything: one WARNING per backend that rejected data, one for the rest.

        A backend that answered with a rejection (an HTTP 4xx/5xx, a gRPC status other than UNAVAILABLE)
        is up: its line names the answer and what to do (e.g. Phoenix takes traces only: turn metrics
        off). Backends that refused the connection or never answered share the "unreachable" line.
        """
        failing = [g for g in self.guards if g.counts.dropped_items or g.counts.dropped_batches]
        if not failing:
            return
        rejected = [g for g in failing if g.last_failure is not None and g.last_failure.kind == "rejected"]
        for guard in rejected:
            failure = guard.last_failure
            assert failure is not None
            logger.warning(
                "llm-telemetry: the OTLP backend at %s is reachable but rejected our %s (%s); dropped %s. %s",
                guard.endpoint, guard.signal, failure.detail, _dropped_parts([guard]), failure.advice(guard.signal),
            )
        unreachable = [g for g in failing if g not in rejected]
        if unreachable:
            endpoints = sorted({g.endpoint for g in unreachable})
            logger.warning(
                "llm-telemetry: OTLP backend unreachable at %s; dropped %s. Check OTEL_EXPORTER_OTLP_ENDPOINT and that the "
                "collector is running.", ", ".join(endpoints), _dropped_parts(unreachable),
            )


def _dropped_parts(guards: Sequence[ExportGuard]) -> str:
    """``5 spans, 1 metric batches (51 points)``: what ``guards`` dropped, by signal."""
    dropped: dict[Signal, DropCounts] = {}
    for guard in guards:
        dropped[guard.signal] = dropped.get(guard.signal, DropCounts()) + guard.counts
    parts = []
    if "traces" in dropped:
        parts.append(f"{dropped['traces'].dropped_items} spans")
    if "metrics" in dropped:
        parts.append(f"{dropped['metrics'].dropped_batches} metric batches ({dropped['metrics'].dropped_items} points)")
    if "logs" in dropped:
        parts.append(f"{dropped['logs'].dropped_items} log records")
    return ", ".join(parts)


def configure(
    service_name: str | None = None,
    endpoint: str | None = None,
    *,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    span_exporters: Sequence[SpanExporter] | None = None,
    metric_readers: Sequence[MetricReader] | None = None,
    batch_spans: bool = True,
    settings: Settings | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
    set_global: bool = True,
    strict: bool = True,
    auto_instrumentation_version: str | None = None,
) -> Providers:
    """Set up tracing, metrics (and logs if ``OTEL_LOGS_EXPORTER`` asks) the way ``opentelemetry-instrument`` would.

    - ``service_name``, ``endpoint`` (base URL, e.g. ``http://collector:4317``), ``protocol`` (``grpc`` or
      ``http/protobuf``) and ``headers`` override ``OTEL_SERVICE_NAME`` / ``OTEL_EXPORTER_OTLP_*``.
    - ``span_exporters`` / ``metric_readers``: use these instead of ``OTEL_TRACES_EXPORTER`` /
      ``OTEL_METRICS_EXPORTER`` (``[]`` means none). They are used as given (wrap a network exporter in
      `ResilientSpanExporter` yourself); ``batch_spans=False`` exports spans synchronously (tests, demos).
    - ``set_global``: install the providers process-wide and shut them down (bounded) at exit.
    - ``strict``: raise `ConfigError` on a bad setting or ``OTEL_*`` value; with ``strict=False`` (the
      CLI path) print it to stderr and carry on without the part that is broken — never break the app.
    """
    if settings is None:
        if strict:
            settings = get_settings()
        else:  # a bad value costs at most the part it belongs to: it falls back to its default, reported
            settings, problems = load_settings_leniently()
            for problem in problems:
                _report(problem)
            set_settings(settings)
    export = settings.export

    attrs: dict[str, Any] = {"telemetry.distro.name": DISTRO_NAME, "telemetry.distro.version": __version__}
    if auto_instrumentation_version:
        attrs["telemetry.auto.version"] = auto_instrumentation_version
    attrs.update(resource_attributes or {})
    if service_name:
        attrs["service.name"] = service_name
    # Phoenix files spans under openinference.project.name, not service.name: by default, the service's name.
    resource = with_project_name(Resource.create(attrs))

    def choose(signal: Signal) -> list[ExporterChoice]:
        try:
            return choose_exporters(signal, timeout_s=export.timeout_s, endpoint=endpoint, protocol=protocol, headers=headers)
        except ConfigError as exc:
            if strict:
                raise
            _report(f"{exc}. No {signal} are exported")
            return []

    guards: list[ExportGuard] = []

    # Metrics first: the pipeline needs the meter provider.
    readers: list[MetricReader] = list(metric_readers) if metric_readers is not None else []
    if metric_readers is None:
        for choice in choose("metrics"):
            built = _build(choice, strict)
            if built is None:
                continue
            if choice.is_reader:
                readers.append(built)
            else:
                wrapped = ResilientMetricExporter(built, choice.endpoint, export.timeout_s, export.retry_backoff_s)
                guards.append(wrapped.guard)
                readers.append(PeriodicExportingMetricReader(wrapped))
    meter_provider = MeterProvider(metric_readers=readers, resource=resource, views=genai_views(), shutdown_on_exit=False)

    # The sampler (OTEL_TRACES_SAMPLER) and span limits are read from the environment by the SDK itself.
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False, id_generator=_id_generator(strict))
    exporters: list[SpanExporter] = list(span_exporters) if span_exporters is not None else []
    if span_exporters is None:
        for choice in choose("traces"):
            built = _build(choice, strict)
            if built is not None:
                wrapped_span = ResilientSpanExporter(
                    built, choice.endpoint, export.timeout_s, export.retry_backoff_s, export.retry_buffer_items,
                )
                guards.append(wrapped_span.guard)
                exporters.append(wrapped_span)
    processor_type = BatchSpanProcessor if batch_spans else SimpleSpanProcessor
    export_processors: list[SpanProcessor] = [processor_type(exp) for exp in exporters]
    if len(export_processors) == 1:
        sink: SpanProcessor = export_processors[0]
    else:
        sink = SynchronousMultiSpanProcessor()
        for processor in export_processors:
            sink.add_span_processor(processor)
    pipeline = _pipeline(sink, settings, meter_provider, tracer_provider, strict, connect=set_global)
    tracer_provider.add_span_processor(pipeline if pipeline is not None else sink)

    logger_provider = _logger_provider(choose("logs") if os.environ.get("OTEL_LOGS_EXPORTER") else [], resource, settings,
                                       guards, strict)

    providers = Providers(tracer_provider, meter_provider, logger_provider, settings, pipeline is not None, guards, export_processors)
    _count_drops(providers, pipeline, meter_provider)
    if set_global:
        global _active
        _active = providers
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        if logger_provider is not None:
            from opentelemetry._logs import set_logger_provider

            set_logger_provider(logger_provider)
        atexit.register(providers.shutdown)
        _install_business_trackers(meter_provider, logger_provider, settings)
    return providers


def _install_business_trackers(meter_provider: MeterProvider, logger_provider: Any | None, settings: Settings) -> None:
    """Feedback and session metrics report to the providers just installed (they are process-wide trackers)."""
    try:
        from llm_telemetry.processors.quality.feedback import install_feedback
        from llm_telemetry.processors.quality.sessions import install_sessions

        install_feedback(meter_provider=meter_provider, logger_provider=logger_provider, settings=settings)
        install_sessions(meter_provider=meter_provider, settings=settings)
    except Exception:
        logger.warning("llm-telemetry: feedback and session metrics are unavailable", exc_info=True)


def _id_generator(strict: bool) -> Any | None:
    """The generator ``OTEL_PYTHON_ID_GENERATOR`` names (entry-point group ``opentelemetry_id_generator``), if any."""
    name = os.environ.get("OTEL_PYTHON_ID_GENERATOR", "").strip()
    if not name or name == "random":
        return None
    found = [ep for ep in entry_points(group="opentelemetry_id_generator") if ep.name == name]
    try:
        if not found:
            raise ConfigError(f"OTEL_PYTHON_ID_GENERATOR={name!r}: no ID generator of that name is installed")
        return found[0].load()()
    except Exception as exc:
        if strict:
            raise ConfigError(str(exc)) from exc
        _report(f"{exc}. Using random trace and span IDs")
        return None


def _build(choice: ExporterChoice, strict: bool) -> Any | None:
    try:
        return choice.build()
    except Exception as exc:
        message = f"cannot create the {choice.signal} exporter {choice.name!r}: {exc}"
        if strict:
            raise ConfigError(message) from exc
        _report(f"{message}. No {choice.signal} go to it")
        return None


def _pipeline(
    sink: SpanProcessor, settings: Settings, meter_provider: MeterProvider, tracer_provider: TracerProvider, strict: bool,
    *, connect: bool,
) -> SpanProcessor | None:
    """The enrichment pipeline in front of ``sink``, or None (reported) if it cannot be built: spans still flow.

    With ``connect``, its chain also becomes the process-wide one our instrumentation hands every call to.
    """
    try:
        from llm_telemetry.processors.chain import build_chain, count_process_wide_drops, set_default_chain
        from llm_telemetry.processors.pipeline import build_pipeline
        from llm_telemetry.side_channel import side_channel

        chain = build_chain(settings, meter_provider, tracer_provider, strict=strict)
        if connect:
            count_process_wide_drops(chain)
            set_default_chain(chain)
            side_channel.connect(chain)
        return build_pipeline(sink, settings, chain=chain)
    except ConfigError as exc:
        if strict:
            raise
        _report(f"{exc}. Spans are exported without llm-telemetry's processors until this is fixed")
        return None
    except Exception as exc:
        logger.error("llm-telemetry: enrichment pipeline unavailable (%s); spans are exported without cost/safety enrichment",
                     exc, exc_info=True)
        return None


def _logger_provider(
    choices: list[ExporterChoice], resource: Resource, settings: Settings, guards: list[ExportGuard], strict: bool
) -> Any | None:
    """A LoggerProvider when ``OTEL_LOGS_EXPORTER`` names exporters (GenAI content events go through logs)."""
    if not choices:
        return None
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    for choice in choices:
        built = _build(choice, strict)
        if built is None:
            continue
        wrapped = ResilientLogExporter(
            built, choice.endpoint, settings.export.timeout_s, settings.export.retry_backoff_s, settings.export.retry_buffer_items,
        )
        guards.append(wrapped.guard)
        provider.add_log_record_processor(BatchLogRecordProcessor(wrapped))
    if os.environ.get(_LOGGING_HANDLER_ENV, "").strip().lower() == "true":
        logging.getLogger().addHandler(LoggingHandler(level=logging.NOTSET, logger_provider=provider))
    return provider


def _count_drops(providers: Providers, pipeline: SpanProcessor | None, meter_provider: MeterProvider) -> None:
    """Report export drops as ``llm_telemetry.dropped``: on the pipeline's counter if there is one, else our own."""
    if not providers.guards:
        return
    drops = getattr(pipeline, "drops", None)
    if drops is None or not hasattr(drops, "add_source"):
        try:
            from llm_telemetry.processors.metrics import DropCounter

            drops = DropCounter(meter_provider.get_meter(METER_NAME, __version__))
        except Exception:
            logger.warning("llm-telemetry: the llm_telemetry.dropped metric is unavailable", exc_info=True)
            return
    drops.add_source(providers.dropped_counts)


def _report(message: str) -> None:
    """A start-up problem the user must see even with logging unconfigured: straight to stderr."""
    print(f"llm-telemetry: {message}.", file=sys.stderr, flush=True)


def _quietly(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception:
        logger.debug("llm-telemetry: shutdown step failed", exc_info=True)
        return False
