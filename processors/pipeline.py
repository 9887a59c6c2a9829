"""The enriching span processor: one processor that runs the enricher chain over every GenAI span.

Why one processor in front of the exporting one: a span is immutable by the time ``on_end`` sees it, so
enrichment cannot be "added" to it; ``EnrichingSpanProcessor`` builds one enriched copy (cost, budget,
safety … attributes and events) and hands that to the next processor (typically
``BatchSpanProcessor(OTLPSpanExporter())``). Spans that are not GenAI spans are forwarded as the same
object, at the cost of four dict lookups.

It also enforces the content rule for *every* producer: with content capture off, content attributes
(``attributes.CONTENT_ATTRIBUTES``, indexed legacy forms included) are removed from GenAI spans and
their events before export — our instrumentation never sets them, but a foreign instrumentation may.

Records: for our own spans the full `GenAICall` (content included, never exported) comes from the side
channel; for anyone else's it is rebuilt from the span's attributes (legacy names accepted).

Use `build_pipeline` (what the configurator calls) or, from Python::

    EnrichingSpanProcessor(BatchSpanProcessor(exporter), enrichers=[CostEnricher(), MyEnricher()])
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics
from opentelemetry.metrics import Meter, MeterProvider
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import TracerProvider

from llm_telemetry import __version__
from llm_telemetry.config import ConfigError, Settings, env_var, get_settings
from llm_telemetry.processors._span_copy import EnrichedSpan, content_keys, strip_event_content, valid_value
from llm_telemetry.processors.base import BackgroundWorker, Enricher, EnricherContext, Enrichment, merge
from llm_telemetry.processors.metrics import (
    DROP_CONTENT_STRIPPED,
    DROP_ENRICHER_ERROR,
    DROP_PIPELINE_ERROR,
    DROP_SIDE_CHANNEL_OVERFLOW,
    DROP_WORKER_QUEUE_FULL,
    DROP_WORKER_TASK_FAILED,
    DropCounter,
    DropReporter,
)
from llm_telemetry.record import GenAICall, is_genai_span
from llm_telemetry.side_channel import SideChannel, side_channel

logger = logging.getLogger(__name__)

ENRICHER_GROUP = "llm_telemetry_enrichers"
METER_NAME = "llm_telemetry.processors"
_MAX_LOGGED_SCOPES = 100


class EnrichingSpanProcessor(SpanProcessor):
    """Runs ``enrichers`` in order over each GenAI span and passes the enriched copy to ``next_processor``.

    Every enricher is isolated: one that raises is logged (first time, with the traceback) and counted
    (``llm_telemetry.dropped{reason=enricher_error}``), and the others still run. An enricher may
    declare ``requires = ("cost",)`` — names that must come before it in the chain.
    """

    def __init__(
        self,
        next_processor: SpanProcessor,
        enrichers: Sequence[Enricher] = (),
        *,
        settings: Settings | None = None,
        worker: BackgroundWorker | None = None,
        meter: Meter | None = None,
        channel: SideChannel | None = None,
    ) -> None:
        settings = settings if settings is not None else get_settings()
        _check_order(enrichers)
        self._next = next_processor
        self._enrichers = tuple(enrichers)
        capture = settings.content.capture
        self._strip_span_content = not capture.on_span
        self._strip_event_content = not capture.on_event
        self.worker = worker if worker is not None else BackgroundWorker(settings.pipeline.worker_queue_size)
        self._shutdown_timeout_s = settings.export.shutdown_timeout_s
        self._channel = channel if channel is not None else side_channel
        self._lock = threading.Lock()
        self.enricher_errors: dict[str, int] = {}
        self._pipeline_errors = 0
        self._stripped = 0
        self._stripped_scopes: set[str] = set()
        self.spans_enriched = 0
        self.drops = DropCounter(meter if meter is not None else metrics.get_meter(METER_NAME, __version__))
        self.drops.add_source(self._own_drops)
        for enricher in self._enrichers:
            if isinstance(enricher, DropReporter):
                self.drops.add_source(enricher.dropped_counts)

    @property
    def enrichers(self) -> tuple[Enricher, ...]:
        return self._enrichers

    # --- SpanProcessor -------------------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        self._next.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Span) -> None:
        self._next._on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        attrs = _attributes_copy(span)
        if not attrs or not is_genai_span(attrs):
            self._next.on_end(span)
            return
        try:
            out: ReadableSpan | None = self._process(span, attrs)
        except Exception:
            out = self._after_pipeline_error(span)
        if out is not None:
            self._next.on_end(out)

    def shutdown(self) -> None:
        try:
            # Pending slow work (judge calls) gets the exit budget, not more: exit must stay bounded.
            self.worker.shutdown(self._shutdown_timeout_s)
        finally:
            self._next.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        # BackgroundWorker.flush queues a marker task, which a full queue would refuse: let it drain first.
        while len(self.worker) and time.monotonic() < deadline:
            time.sleep(0.001)
        worker_ok = self.worker.flush(max(0.0, deadline - time.monotonic()))
        remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
        return self._next.force_flush(remaining_ms) and worker_ok

    # --- enrichment ----------------------------------------------------------------------------------

    def _process(self, span: ReadableSpan, attrs: dict[str, Any]) -> ReadableSpan:
        """``attrs`` is this call's own copy of the span's attributes: it becomes the enriched span's."""
        call = None
        ctx = span.context
        if ctx is not None:
            call = self._channel.take((ctx.trace_id, ctx.span_id))
        if call is None and self._enrichers:
            call = GenAICall.from_attributes(attrs)
        enrichment = Enrichment()
        if call is not None:
            for enricher in self._enrichers:
                try:
                    merge(enrichment, enricher.enrich(call, span, enrichment))
                except Exception:
                    self._enricher_failed(enricher)

        changed = False
        if enrichment.attributes:
            changed = True
            for key, value in enrichment.attributes.items():
                checked = valid_value(value)
                if checked is None:
                    self._bad_value(key, value)
                else:
                    attrs[key] = checked
        if self._strip_span_content:
            keys = content_keys(attrs)  # after enrichment: an enricher's content is content too
            if keys:
                changed = True
                for key in keys:
                    del attrs[key]
                self._count_stripped(span, keys)

        events: tuple[Event, ...] | None = None
        if enrichment.events or self._strip_event_content:
            events = span.events
            if enrichment.events:
                end = span.end_time
                events += tuple(
                    Event(e.name, dict(e.attributes), end if e.timestamp is None else e.timestamp) for e in enrichment.events
                )
                changed = True
            if self._strip_event_content and events:
                stripped, removed = strip_event_content(events)
                if removed:
                    events = stripped
                    changed = True
                    self._count_stripped(span, ("event attributes",), removed)

        if not changed:
            return span
        self.spans_enriched += 1
        return EnrichedSpan(span, attrs, span.events if events is None else events)

    def _enricher_failed(self, enricher: Enricher) -> None:
        name = getattr(enricher, "name", type(enricher).__name__)
        with self._lock:
            count = self.enricher_errors.get(name, 0) + 1
            self.enricher_errors[name] = count
        if count == 1:
            logger.warning("llm-telemetry enricher %r failed; the span is exported without its enrichment "
                           "(further failures are counted in %s, logged at DEBUG)", name, "llm_telemetry.dropped", exc_info=True)
        else:
            logger.debug("llm-telemetry enricher %r failed (%d times)", name, count, exc_info=True)

    def _bad_value(self, key: str, value: object) -> None:
        with self._lock:
            self.enricher_errors["(invalid attribute)"] = self.enricher_errors.get("(invalid attribute)", 0) + 1
        logger.debug("llm-telemetry: enrichment attribute %r has a value OpenTelemetry cannot export: %r", key, value)

    def _count_stripped(self, span: ReadableSpan, keys: Sequence[str], count: int | None = None) -> None:
        with self._lock:
            self._stripped += len(keys) if count is None else count
        scope = span.instrumentation_scope.name if span.instrumentation_scope is not None else "(unknown scope)"
        if scope not in self._stripped_scopes and len(self._stripped_scopes) < _MAX_LOGGED_SCOPES:
            self._stripped_scopes.add(scope)
            logger.warning(
                "llm-telemetry: content capture is off (%s), so content attributes (%s) were removed from GenAI spans of "
                "instrumentation scope %r before export; logged once per scope, counted in llm_telemetry.dropped{reason=%s}",
                env_var("content", "capture"), ", ".join(sorted(keys)), scope, DROP_CONTENT_STRIPPED,
            )

    def _after_pipeline_error(self, span: ReadableSpan) -> ReadableSpan | None:
        """Our own bug: export the span unenriched — but never with content that must not leave."""
        with self._lock:
            self._pipeline_errors += 1
            first = self._pipeline_errors == 1
        logger.log(logging.WARNING if first else logging.DEBUG, "llm-telemetry pipeline failed on span %r", span.name, exc_info=True)
        try:
            attrs = _attributes_copy(span)
            keys = content_keys(attrs) if self._strip_span_content else []
            events, removed = strip_event_content(span.events) if self._strip_event_content else ((), 0)
            if not keys and not removed:
                return span
            for key in keys:
                del attrs[key]
            return EnrichedSpan(span, attrs, events if self._strip_event_content else span.events)
        except Exception:  # cannot make it safe: drop it (counted as a pipeline error)
            logger.debug("llm-telemetry could not strip content after a pipeline error; span %r dropped", span.name, exc_info=True)
            return None

    def _own_drops(self) -> dict[str, int]:
        return {
            DROP_WORKER_QUEUE_FULL: self.worker.dropped,
            DROP_WORKER_TASK_FAILED: self.worker.failed,
            DROP_SIDE_CHANNEL_OVERFLOW: self._channel.dropped,
            DROP_ENRICHER_ERROR: sum(self.enricher_errors.values()),
            DROP_PIPELINE_ERROR: self._pipeline_errors,
            DROP_CONTENT_STRIPPED: self._stripped,
        }

    def stats(self) -> dict[str, Any]:
        """Counters for tests and the CLI: spans enriched, drops by reason, failures by enricher."""
        return {"spans_enriched": self.spans_enriched, "dropped": self.drops.counts(), "enricher_errors": dict(self.enricher_errors)}


def _attributes_copy(span: ReadableSpan) -> dict[str, Any]:
    """A plain-dict copy of the span's attributes.

    The SDK backs them with ``BoundedAttributes``, whose Python-level ``__getitem__`` makes every
    lookup (and every miss, via ``KeyError``) cost ~0.5 µs; its ``copy()`` is one C-level dict copy,
    after which membership tests and ``from_attributes`` run at dict speed.
    """
    proxy = span.attributes
    try:
        return proxy.copy()  # type: ignore[union-attr]  # mappingproxy.copy() → the backing mapping's copy()
    except (AttributeError, TypeError):
        return dict(proxy or {})


def _check_order(enrichers: Sequence[Enricher]) -> None:
    seen: set[str] = set()
    for enricher in enrichers:
        for required in getattr(enricher, "requires", ()):
            if required not in seen:
                raise ConfigError(
                    f"enricher {enricher.name!r} needs {required!r} earlier in the chain "
                    f"({env_var('pipeline', 'enrichers')}, e.g. {required},{enricher.name})"
                )
        seen.add(enricher.name)


def build_enrichers(settings: Settings, context: EnricherContext) -> list[Enricher]:
    """Instantiate the enrichers named in ``settings.pipeline.enrichers`` from the entry-point group, in order."""
    variable = env_var("pipeline", "enrichers")
    available: dict[str, EntryPoint] = {ep.name: ep for ep in entry_points(group=ENRICHER_GROUP)}
    out: list[Enricher] = []
    seen: set[str] = set()
    for name in settings.pipeline.enrichers:
        if name in seen:
            raise ConfigError(f"pipeline.enrichers: {name!r} is listed twice ({variable})")
        seen.add(name)
        entry = available.get(name)
        if entry is None:
            raise ConfigError(
                f"pipeline.enrichers: unknown enricher {name!r} ({variable}); installed "
                f"({ENRICHER_GROUP} entry points): {', '.join(sorted(available)) or 'none'}"
            )
        try:
            factory = entry.load()
        except Exception as exc:
            raise ConfigError(f"pipeline.enrichers: enricher {name!r} ({entry.value}) cannot be imported: {exc!r}") from exc
        build = getattr(factory, "from_context", None)
        if build is None:
            raise ConfigError(f"pipeline.enrichers: {entry.value} (enricher {name!r}) has no from_context(context) factory")
        try:
            enricher = build(context)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"pipeline.enrichers: enricher {name!r} ({entry.value}) failed to start: {exc!r}") from exc
        if not isinstance(enricher, Enricher):
            raise ConfigError(f"pipeline.enrichers: {entry.value}.from_context returned {enricher!r}, which has no name/enrich")
        out.append(enricher)
    return out


def build_pipeline(
    next_processor: SpanProcessor,
    settings: Settings,
    meter_provider: MeterProvider | None = None,
    tracer_provider: TracerProvider | None = None,
) -> EnrichingSpanProcessor:
    """The processor the configurator installs: enrichers from settings, one worker, one meter."""
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    meter = provider.get_meter(METER_NAME, __version__)
    worker = BackgroundWorker(settings.pipeline.worker_queue_size)
    side_channel.resize(settings.pipeline.side_channel_capacity)
    enrichers = build_enrichers(settings, EnricherContext(settings, meter, worker, tracer_provider))
    return EnrichingSpanProcessor(next_processor, enrichers, settings=settings, worker=worker, meter=meter)
