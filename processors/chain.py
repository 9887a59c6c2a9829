"""The enricher chain: the one path every GenAI call takes through cost, budgets, safety and quality.

Why a chain on the *record* rather than a span processor: what measures calls must see every call,
whoever set up the SDK and whatever the sampler kept. Our instrumentation therefore hands each
finished call to the chain *before* it ends the span (`llm_telemetry.side_channel`): the measurements
(metrics, budgets, safety verdicts, quality statistics) are taken for sampled and unsampled calls
alike, and the attributes and events come back to be set on the still-open span — so they are
exported by whatever span processors and exporters the winning configurator installed. Sampling and
exporters then decide only what leaves the process.

The same chain serves spans we did not produce (rebuilt with `GenAICall.from_attributes`) in
`EnrichingSpanProcessor`, and spans decoded from OTLP in the gateway: one path, whatever produced the
span.

`default_chain` builds the process-wide chain from the settings on first use, leniently: a bad
setting or a broken pricing file costs only the enricher it belongs to (reported once on stderr,
naming the variable), never the spans or the other enrichers.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import Meter, MeterProvider
from opentelemetry.trace import TracerProvider
from opentelemetry.util.types import AttributeValue

from llm_telemetry import __version__
from llm_telemetry import attributes as a
from llm_telemetry.config import ConfigError, Settings, env_var, get_settings
from llm_telemetry.processors._span_copy import valid_value
from llm_telemetry.processors.base import Enricher, EnricherContext, Enrichment, merge
from llm_telemetry.processors.lanes import Lanes
from llm_telemetry.processors.metrics import DROP_ENRICHER_ERROR, DropCounter, DropReporter
from llm_telemetry.record import GenAICall

logger = logging.getLogger(__name__)

ENRICHER_GROUP = "llm_telemetry_enrichers"
METER_NAME = "llm_telemetry.processors"
DROP_INVALID_ATTRIBUTE = "enrichment_invalid_attribute"
DROP_INVALID_USAGE = "invalid_usage"
"""Token counts rejected at the boundary (negative, fractional, absurd): left unset, counted here."""


class EnricherChain:
    """Runs ``enrichers`` in order over one call; isolates and counts failures; owns the background lanes.

    An enricher may declare ``requires = ("cost",)`` — names that must come before it in the chain.
    """

    def __init__(
        self,
        enrichers: Sequence[Enricher] = (),
        *,
        lanes: Lanes | None = None,
        meter: Meter | None = None,
        settings: Settings | None = None,
    ) -> None:
        settings = settings if settings is not None else get_settings()
        check_order(enrichers)
        self.enrichers: tuple[Enricher, ...] = tuple(enrichers)
        self.settings = settings
        self.lanes = lanes if lanes is not None else Lanes(settings.pipeline.worker_queue_size)
        self.enricher_errors: dict[str, int] = {}
        self.invalid_attributes = 0
        self.calls_measured = 0
        self._lock = threading.Lock()
        self.drops = DropCounter(meter if meter is not None else metrics.get_meter(METER_NAME, __version__))
        self.drops.add_source(self._own_drops)
        self.drops.add_source(self.lanes.dropped_counts)
        for enricher in self.enrichers:
            if isinstance(enricher, DropReporter):
                self.drops.add_source(enricher.dropped_counts)

    def measure(self, call: GenAICall, attributes: Mapping[str, Any]) -> Enrichment:
        """Run every enricher over ``call``; never raises. The result's attributes are all exportable values."""
        enrichment = Enrichment()
        self.calls_measured += 1
        for enricher in self.enrichers:
            try:
                merge(enrichment, enricher.enrich(call, attributes, enrichment))
            except Exception:
                self._enricher_failed(enricher)
        if enrichment.attributes:
            checked: dict[str, AttributeValue] = {}
            for key, value in enrichment.attributes.items():
                valid = valid_value(value)
                if valid is None:
                    self._bad_value(key, value)
                else:
                    checked[key] = valid
            enrichment.attributes = checked
        enrichment.attributes[a.ENRICHED] = True
        return enrichment

    def flush(self, timeout_s: float) -> bool:
        """Hand enrichers' held work (e.g. drift's pending batch) to their lanes, then wait for the lanes."""
        for enricher in self.enrichers:
            flush_pending = getattr(enricher, "flush_pending", None)
            if flush_pending is not None:
                try:
                    flush_pending()
                except Exception:
                    logger.debug("llm-telemetry: enricher %r could not flush", enricher.name, exc_info=True)
        return self.lanes.flush(timeout_s)

    def shutdown(self, timeout_s: float) -> None:
        self.lanes.shutdown(timeout_s)

    def _enricher_failed(self, enricher: Enricher) -> None:
        name = getattr(enricher, "name", type(enricher).__name__)
        with self._lock:
            count = self.enricher_errors.get(name, 0) + 1
            self.enricher_errors[name] = count
        if count == 1:
            logger.warning("llm-telemetry enricher %r failed; the call is exported without its enrichment "
                           "(further failures are counted in %s, logged at DEBUG)", name, a.METRIC_DROPPED, exc_info=True)
        else:
            logger.debug("llm-telemetry enricher %r failed (%d times)", name, count, exc_info=True)

    def _bad_value(self, key: str, value: object) -> None:
        with self._lock:
            self.invalid_attributes += 1
        logger.debug("llm-telemetry: enrichment attribute %r has a value OpenTelemetry cannot export: %r", key, value)

    def _own_drops(self) -> dict[str, int]:
        return {DROP_ENRICHER_ERROR: sum(self.enricher_errors.values()), DROP_INVALID_ATTRIBUTE: self.invalid_attributes}


def check_order(enrichers: Sequence[Enricher]) -> None:
    seen: set[str] = set()
    for enricher in enrichers:
        for required in getattr(enricher, "requires", ()):
            if required not in seen:
                raise ConfigError(
                    f"enricher {enricher.name!r} needs {required!r} earlier in the chain "
                    f"({env_var('pipeline', 'enrichers')}, e.g. {required},{enricher.name})"
                )
        seen.add(enricher.name)


def build_enrichers(settings: Settings, context: EnricherContext, *, strict: bool = True) -> list[Enricher]:
    """Instantiate the enrichers named in ``settings.pipeline.enrichers`` from the entry-point group, in order.

    ``strict``: raise `ConfigError` on the first enricher that cannot be built. Otherwise report it (stderr,
    once) and go on without it: a broken pricing file costs the cost enricher, not the safety screen.
    """
    variable = env_var("pipeline", "enrichers")
    available: dict[str, EntryPoint] = {ep.name: ep for ep in entry_points(group=ENRICHER_GROUP)}
    out: list[Enricher] = []
    seen: set[str] = set()
    for name in settings.pipeline.enrichers:
        try:
            if name in seen:
                raise ConfigError(f"pipeline.enrichers: {name!r} is listed twice ({variable})")
            seen.add(name)
            out.append(_build_one(name, available, context))
        except ConfigError as exc:
            if strict:
                raise
            report(f"{exc}. The {name!r} enricher is off until this is fixed; everything else runs")
    if not strict:  # drop enrichers whose prerequisites failed to build, instead of refusing the whole chain
        built: set[str] = set()
        kept: list[Enricher] = []
        for enricher in out:
            missing = [r for r in getattr(enricher, "requires", ()) if r not in built]
            if missing:
                report(f"the {enricher.name!r} enricher needs {', '.join(missing)} earlier in {variable}; it is off")
                continue
            built.add(enricher.name)
            kept.append(enricher)
        out = kept
    return out


def _build_one(name: str, available: dict[str, EntryPoint], context: EnricherContext) -> Enricher:
    variable = env_var("pipeline", "enrichers")
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
    return enricher


def build_chain(
    settings: Settings,
    meter_provider: MeterProvider | None = None,
    tracer_provider: TracerProvider | None = None,
    *,
    strict: bool = True,
) -> EnricherChain:
    """The chain from settings: enrichers from the entry-point group, their lanes, one meter."""
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    meter = provider.get_meter(METER_NAME, __version__)
    lanes = Lanes(settings.pipeline.worker_queue_size)
    context = EnricherContext(settings, meter, lanes.default, tracer_provider, lanes)
    enrichers = build_enrichers(settings, context, strict=strict)
    return EnricherChain(enrichers, lanes=lanes, meter=meter, settings=settings)


def count_process_wide_drops(chain: EnricherChain) -> None:
    """For the app's own chain: what the boundary rejects before any enricher sees it is counted too (bad usage,
    untrusted baggage, feedback calls evicted). Process-wide counters, so only the process's chain reports them."""
    from llm_telemetry.attribution import baggage_rejections
    from llm_telemetry.processors.quality.feedback import current_feedback_tracker
    from llm_telemetry.record import usage_rejections

    chain.drops.add_source(lambda: {DROP_INVALID_USAGE: usage_rejections.total})
    chain.drops.add_source(baggage_rejections.dropped_counts)
    chain.drops.add_source(lambda: current_feedback_tracker().dropped_counts())


_default: EnricherChain | None = None
_default_lock = threading.Lock()
_default_failed = False


def default_chain() -> EnricherChain | None:
    """The process-wide chain, built on first use from the settings (leniently); None if it cannot be built.

    Built lazily, at the first finished call, so it uses whatever meter and tracer providers the winning
    configurator (ours, ``opentelemetry-distro``'s, the app's own code) installed by then.
    """
    global _default, _default_failed
    if _default is not None or _default_failed:
        return _default
    with _default_lock:
        if _default is None and not _default_failed:
            try:
                _default = build_chain(get_settings(lenient=True), strict=False)
                count_process_wide_drops(_default)
            except Exception:
                _default_failed = True
                logger.error("llm-telemetry: the enrichment chain could not start; calls are traced without cost, budget, "
                             "safety or quality", exc_info=True)
    return _default


def set_default_chain(chain: EnricherChain | None) -> None:
    """Install ``chain`` as the process-wide one (the configurator does this), or reset with ``None``."""
    global _default, _default_failed
    with _default_lock:
        _default = chain
        _default_failed = False


def report(message: str) -> None:
    """A start-up problem the user must see even with logging unconfigured: straight to stderr, once."""
    if message in _reported:
        return
    _reported.add(message)
    print(f"llm-telemetry: {message}.", file=sys.stderr, flush=True)


_reported: set[str] = set()
