"""The span pipeline's metric instruments: drop accounting, and pre-aggregated cost and token counters.

Why pre-aggregate: a synchronous ``Counter.add`` in the OpenTelemetry Python SDK costs ~10-15 µs (it
hashes the attribute set and runs exemplar sampling on every call), and the cost enricher would need
three per span — more than the whole per-span budget of the pipeline. Instead each span adds into a
small in-process table (one dict lookup under a lock) and *observable* counters report the running
totals when a reader collects. The exported data is the same monotonic sum a ``Counter`` would give.

Cardinality: one series per distinct (request model, response model, provider, user, feature). The
OpenTelemetry SDK keeps at most 2,000 attribute sets per metric (its cardinality limit) and folds the
rest into one point with *no* attributes but ``otel.metric.overflow=true`` — which would lose
``gen_ai.token.type``, the model and the provider of every later user. So our own cap trips first:
``llm_telemetry.tokens`` has two points per series (input, output), hence at most ``max_series`` ≈ 1,000
series including the overflow ones. Past 90 % of the cap, a new combination is counted without its
user (model, provider, feature and token type kept, ``otel.metric.overflow=true``); when even those
run out, in one catch-all series that keeps only the token type. Totals stay exact, memory stays
bounded, and one warning says when the cap trips.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol, runtime_checkable

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a

# Values of the llm_telemetry.dropped.reason attribute.
DROP_WORKER_QUEUE_FULL = "worker_queue_full"
DROP_WORKER_TASK_FAILED = "worker_task_failed"
DROP_SIDE_CHANNEL_OVERFLOW = "side_channel_overflow"
DROP_ENRICHER_ERROR = "enricher_error"
DROP_PIPELINE_ERROR = "pipeline_error"
DROP_CONTENT_STRIPPED = "content_stripped"
"""Content attributes removed from a span because content capture is off (counted per attribute)."""
DROP_BUDGET_USER_EVICTED = "budget_user_evicted"

logger = logging.getLogger(__name__)

OVERFLOW_ATTRIBUTE = "otel.metric.overflow"
try:
    from opentelemetry.sdk.metrics._internal._view_instrument_match import _DEFAULT_CARDINALITY_LIMIT as SDK_CARDINALITY_LIMIT
except ImportError:  # moved in some SDK version: its documented default
    SDK_CARDINALITY_LIMIT = 2000
"""Attribute sets the OpenTelemetry SDK keeps per metric stream before it folds the rest into one point."""
POINTS_PER_SERIES = 2
"""``llm_telemetry.tokens`` reports an input and an output point per series."""
DEFAULT_MAX_SERIES = (SDK_CARDINALITY_LIMIT - 1) // POINTS_PER_SERIES - 1
"""999 with the SDK's default: every series (overflow ones included) fits under the SDK's limit (< 2,000 points)."""

Attributes = dict[str, AttributeValue]
UsageKey = tuple[str | None, str | None, str | None, str | None, str | None]
"""(request model, response model, provider, user id, feature)."""
_USAGE_NAMES = (a.REQUEST_MODEL, a.RESPONSE_MODEL, a.PROVIDER_NAME, a.USER_ID, a.FEATURE)
_OVERFLOW_KEY: UsageKey = ("\0overflow", None, None, None, None)
"""The catch-all series: only the token type survives."""
_OVERFLOW_USER = "\0overflow"
"""User slot of a series of users past the cap: model, provider and feature kept, user dropped."""


@runtime_checkable
class DropReporter(Protocol):
    """Anything (an enricher, an exporter) that counts what it dropped, by reason; read at collection time."""

    def dropped_counts(self) -> Mapping[str, int]: ...


class DropCounter:
    """One observable counter, ``llm_telemetry.dropped`` by ``llm_telemetry.dropped.reason``, over many sources.

    Sources are callables returning cumulative counts by reason; the same reason from several sources
    is summed. Reading counters that already exist (``BackgroundWorker.dropped``,
    ``SideChannel.dropped``) costs nothing on the hot path.
    """

    def __init__(self, meter: Meter | None = None) -> None:
        self._sources: list[Callable[[], Mapping[str, int]]] = []
        self._reason_attributes: dict[str, Attributes] = {}
        if meter is not None:
            meter.create_observable_counter(
                a.METRIC_DROPPED,
                callbacks=[self._observe],
                unit="{item}",
                description="Items llm-telemetry dropped (full queues, evictions, failures, stripped content), by reason.",
            )

    def add_source(self, source: Callable[[], Mapping[str, int]]) -> None:
        self._sources.append(source)

    def counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for source in self._sources:
            for reason, count in source().items():
                totals[reason] = totals.get(reason, 0) + count
        return totals

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        out = []
        for reason, count in self.counts().items():
            attrs = self._reason_attributes.get(reason)
            if attrs is None:
                attrs = self._reason_attributes[reason] = {a.DROPPED_REASON: reason}
            out.append(Observation(count, attrs))
        return out


class _Series:
    __slots__ = ("attributes", "cost", "input_attributes", "input_tokens", "output_attributes", "output_tokens")

    def __init__(self, attributes: Attributes) -> None:
        self.attributes = attributes
        self.input_attributes = {**attributes, a.TOKEN_TYPE: "input"}
        self.output_attributes = {**attributes, a.TOKEN_TYPE: "output"}
        self.cost: float | None = None  # None until a priced call: an unpriced model must not read as $0
        self.input_tokens = 0
        self.output_tokens = 0


class UsageMetrics:
    """Running cost (``llm_telemetry.cost``, USD) and token (``llm_telemetry.tokens``) totals by usage key."""

    def __init__(self, meter: Meter | None = None, max_series: int = DEFAULT_MAX_SERIES) -> None:
        self._series: dict[UsageKey, _Series] = {}
        self._unknown: dict[UsageKey, list[int | Attributes]] = {}
        self._max_series = max(3, max_series)
        # Series with all their dimensions; the rest of the cap is left for the per-model overflow series.
        self._max_primary = self._max_series - max(2, self._max_series // 10)
        self._primary = 0
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        if meter is not None:
            meter.create_observable_counter(
                a.METRIC_COST, callbacks=[self._observe_cost], unit="USD",
                description="Estimated spend on GenAI calls, from token usage and the pricing table.",
            )
            meter.create_observable_counter(
                a.METRIC_TOKENS, callbacks=[self._observe_tokens], unit="{token}",
                description="Tokens used by GenAI calls, by gen_ai.token.type (input includes cached input).",
            )
            meter.create_observable_counter(
                a.METRIC_UNKNOWN_MODEL, callbacks=[self._observe_unknown], unit="{call}",
                description="GenAI calls whose model is not in the pricing table (their cost is not estimated).",
            )

    def record(self, key: UsageKey, cost: float | None, input_tokens: int, output_tokens: int) -> None:
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._new_series(key)
            if cost is not None:
                series.cost = cost if series.cost is None else series.cost + cost
            series.input_tokens += input_tokens
            series.output_tokens += output_tokens

    def record_unknown_model(self, key: UsageKey) -> None:
        with self._lock:
            entry = self._unknown.get(key)
            if entry is None:
                if len(self._unknown) >= self._max_series:
                    key = _OVERFLOW_KEY
                    entry = self._unknown.get(key)
                if entry is None:
                    entry = self._unknown[key] = [0, _attributes(key)]
            entry[0] += 1  # type: ignore[operator]

    def _new_series(self, key: UsageKey) -> _Series:
        """Called with the lock held for a key not yet in the table."""
        if self._primary < self._max_primary:
            self._primary += 1
        else:
            key = (key[0], key[1], key[2], _OVERFLOW_USER, key[4])
            series = self._series.get(key)
            if series is not None:
                return series
            self._overflowing("user", f"calls of further users are counted without {a.USER_ID}")
            if len(self._series) >= self._max_series - 1:  # the last place is the catch-all's
                key = _OVERFLOW_KEY
                series = self._series.get(key)
                if series is not None:
                    return series
                self._overflowing("all", "calls of further model/provider/feature combinations are counted in one series")
        series = self._series[key] = _Series(_attributes(key))
        return series

    def _overflowing(self, kind: str, what: str) -> None:
        if kind in self._warned:
            return
        self._warned.add(kind)
        logger.warning(
            "llm-telemetry: %s and %s reached their cap of %d series (%d points each; the OpenTelemetry SDK keeps %d per "
            "metric and would drop every attribute past that); %s, marked %s=true. Totals stay exact. Fewer series: "
            "LLM_TELEMETRY_COST_USER_DIMENSION=false.",
            a.METRIC_COST, a.METRIC_TOKENS, self._max_series, POINTS_PER_SERIES, SDK_CARDINALITY_LIMIT, what, OVERFLOW_ATTRIBUTE,
        )

    def totals(self) -> dict[str, float]:
        """Process-lifetime totals (``cost_usd``, ``input_tokens``, ``output_tokens``, ``unknown_model_calls``)."""
        with self._lock:
            return {
                "cost_usd": sum(s.cost or 0.0 for s in self._series.values()),
                "input_tokens": sum(s.input_tokens for s in self._series.values()),
                "output_tokens": sum(s.output_tokens for s in self._series.values()),
                "unknown_model_calls": sum(int(entry[0]) for entry in self._unknown.values()),  # type: ignore[call-overload]
            }

    def _observe_cost(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            return [Observation(s.cost, s.attributes) for s in self._series.values() if s.cost is not None]

    def _observe_tokens(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            out = []
            for s in self._series.values():
                out.append(Observation(s.input_tokens, s.input_attributes))
                out.append(Observation(s.output_tokens, s.output_attributes))
            return out

    def _observe_unknown(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            return [Observation(entry[0], entry[1]) for entry in self._unknown.values()]  # type: ignore[arg-type]


def _attributes(key: UsageKey) -> Attributes:
    if key == _OVERFLOW_KEY:
        return {OVERFLOW_ATTRIBUTE: True}
    out: Attributes = {name: value for name, value in zip(_USAGE_NAMES, key, strict=True) if value is not None}
    if key[3] == _OVERFLOW_USER:
        del out[a.USER_ID]
        out[OVERFLOW_ATTRIBUTE] = True
    return out


class Tally:
    """Counts by a small attribute set, reported through one observable counter (same sums as a ``Counter``).

    For per-call counts off the hot path's budget: ``add`` is one dict update under a lock, where a
    synchronous ``Counter.add`` costs ~10 µs in the SDK. Beyond ``max_series`` distinct attribute sets new
    ones are counted in one overflow series (``otel.metric.overflow=true``).
    """

    def __init__(self, meter: Meter | None, name: str, unit: str, description: str, max_series: int = 1000) -> None:
        self._counts: dict[tuple[tuple[str, AttributeValue], ...], int] = {}
        self._lock = threading.Lock()
        self._max = max_series
        if meter is not None:
            meter.create_observable_counter(name, callbacks=[self._observe], unit=unit, description=description)

    def add(self, attributes: Mapping[str, AttributeValue], amount: int = 1) -> None:
        key = tuple(sorted(attributes.items()))
        with self._lock:
            if key not in self._counts and len(self._counts) >= self._max:
                key = ((OVERFLOW_ATTRIBUTE, True),)
            self._counts[key] = self._counts.get(key, 0) + amount

    def counts(self) -> dict[tuple[tuple[str, AttributeValue], ...], int]:
        with self._lock:
            return dict(self._counts)

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, dict(key)) for key, count in self.counts().items()]
