"""The enriching span processor: the enricher chain for GenAI spans that our instrumentation did not measure.

Our own calls are measured before their span ends (`llm_telemetry.processors.chain`) and arrive here
already enriched (``llm_telemetry.enriched``); they pass through untouched. Spans of other
instrumentations (official GenAI instrumentations, OpenLLMetry, a foreign SDK's native tracing) are
immutable by the time ``on_end`` sees them, so ``EnrichingSpanProcessor`` rebuilds their record from the
attributes, runs the same chain, and hands one enriched copy to the next processor (typically
``BatchSpanProcessor(OTLPSpanExporter())``). Spans that are not GenAI spans are forwarded as the same
object, at the cost of four dict lookups.

It also enforces the content rule for *every* producer: with content capture off, content attributes
(``attributes.CONTENT_ATTRIBUTES``, indexed legacy forms included) are removed from GenAI spans and
their events before export — our instrumentation never sets them, but a foreign instrumentation may.

Use `build_pipeline` (what the configurator calls) or, from Python::

    EnrichingSpanProcessor(BatchSpanProcessor(exporter), enrichers=[CostEnricher(), MyEnricher()])
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.metrics import Meter, MeterProvider
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import TracerProvider

from llm_telemetry import attributes as a
from llm_telemetry.config import Settings, env_var, get_settings
from llm_telemetry.processors._span_copy import EnrichedSpan, content_keys, strip_event_content
from llm_telemetry.processors.base import Enricher
from llm_telemetry.processors.chain import ENRICHER_GROUP, METER_NAME, EnricherChain, build_chain, build_enrichers
from llm_telemetry.processors.lanes import BackgroundWorker, Lanes
from llm_telemetry.processors.metrics import DROP_CONTENT_STRIPPED, DROP_PIPELINE_ERROR
from llm_telemetry.record import GenAICall, is_genai_span

__all__ = ["ENRICHER_GROUP", "METER_NAME", "EnrichingSpanProcessor", "build_enrichers", "build_pipeline"]

logger = logging.getLogger(__name__)

_MAX_LOGGED_SCOPES = 100


class EnrichingSpanProcessor(SpanProcessor):
    """Runs the enricher chain over each GenAI span not yet enriched and passes the copy to ``next_processor``.

    ``enrichers`` builds a chain of its own; ``chain`` shares one (the configurator shares the chain our
    instrumentation publishes to, so both paths count into the same budgets and metrics).
    """

    def __init__(
        self,
        next_processor: SpanProcessor,
        enrichers: Sequence[Enricher] = (),
        *,
        settings: Settings | None = None,
        worker: BackgroundWorker | None = None,
        meter: Meter | None = None,
        chain: EnricherChain | None = None,
    ) -> None:
        settings = settings if settings is not None else (chain.settings if chain is not None else get_settings())
        if chain is None:
            lanes = Lanes(settings.pipeline.worker_queue_size, default=worker)
            chain = EnricherChain(enrichers, lanes=lanes, meter=meter, settings=settings)
        self.chain = chain
        self._next = next_processor
        capture = settings.content.capture
        self._strip_span_content = not capture.on_span
        self._strip_event_content = not capture.on_event
        self._shutdown_timeout_s = settings.export.shutdown_timeout_s
        self._lock = threading.Lock()
        self._pipeline_errors = 0
        self._stripped = 0
        self._stripped_scopes: set[str] = set()
        self.spans_enriched = 0
        self.drops = chain.drops
        self.drops.add_source(self._own_drops)

    @property
    def enrichers(self) -> tuple[Enricher, ...]:
        return self.chain.enrichers

    @property
    def worker(self) -> BackgroundWorker:
        """The chain's default background lane."""
        return self.chain.lanes.default

    @property
    def enricher_errors(self) -> dict[str, int]:
        return self.chain.enricher_errors

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
            self.chain.shutdown(self._shutdown_timeout_s)
        finally:
            self._next.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        lanes_ok = self.chain.flush(max(0.0, deadline - time.monotonic()))
        remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
        return self._next.force_flush(remaining_ms) and lanes_ok

    # --- enrichment ----------------------------------------------------------------------------------

    def _process(self, span: ReadableSpan, attrs: dict[str, Any]) -> ReadableSpan:
        """``attrs`` is this call's own copy of the span's attributes: it becomes the enriched span's."""
        enrichment = None
        if not attrs.get(a.ENRICHED):
            call = GenAICall.from_attributes(attrs)
            if call is not None:
                ctx = span.context
                if ctx is not None:
                    call.trace_id, call.span_id = ctx.trace_id, ctx.span_id
                call.start_time_ns, call.end_time_ns = span.start_time, span.end_time
                enrichment = self.chain.measure(call, attrs)

        changed = False
        if enrichment is not None and enrichment.attributes:
            changed = True
            attrs.update(enrichment.attributes)
        if self._strip_span_content:
            keys = content_keys(attrs)  # after enrichment: an enricher's content is content too
            if keys:
                changed = True
                for key in keys:
                    del attrs[key]
                self._count_stripped(span, keys)

        events: tuple[Event, ...] | None = None
        new_events = enrichment.events if enrichment is not None else ()
        if new_events or self._strip_event_content:
            events = span.events
            if new_events:
                end = span.end_time
                events += tuple(
                    Event(e.name, dict(e.attributes), end if e.timestamp is None else e.timestamp) for e in new_events
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
        return {DROP_PIPELINE_ERROR: self._pipeline_errors, DROP_CONTENT_STRIPPED: self._stripped}

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


def build_pipeline(
    next_processor: SpanProcessor,
    settings: Settings,
    meter_provider: MeterProvider | None = None,
    tracer_provider: TracerProvider | None = None,
    *,
    chain: EnricherChain | None = None,
    strict: bool = True,
) -> EnrichingSpanProcessor:
    """The processor the configurator installs, sharing ``chain`` (or a new one built from ``settings``)."""
    if chain is None:
        chain = build_chain(settings, meter_provider, tracer_provider, strict=strict)
    return EnrichingSpanProcessor(next_processor, settings=settings, chain=chain)
