"""User feedback tied to the call it is about: a log record in that call's trace, counters, and rates.

    llm_telemetry.feedback("thumbs_down", response_id=resp.id, category="wrong_date")

How feedback finds its call: by ``span_context`` (the call's span, or its `SpanContext`), or by
``response_id`` through a bounded map response id → (trace id, span id, feature, model) that
`remember_call` fills for every finished call (the pipeline calls it; LRU, ``feedback.max_tracked_calls``,
evictions counted as ``feedback_call_evicted`` drops). With neither, the current span (e.g. the web
request handling the feedback) is used. Feedback that reaches no known call is still counted, with
``llm_telemetry.feedback.matched=false``, so nothing disappears.

Each feedback emits one OTel log record (event ``llm_telemetry.feedback``) carrying the original
call's trace and span ids — backends show it inside that trace — with kind, category, feature,
model, response id and user id as attributes. The free text (a correction, a report) is the record's
body only when content capture is on.

Rates (per feature): *satisfaction* = thumbs_up / (thumbs_up + thumbs_down + correction + report) — a
correction says the answer was wrong, so it counts as negative; *feedback rate* = feedback / calls,
where calls are counted by `remember_call` itself (the same per-call hook, no second callback).
Both are observable gauges; the underlying counters (``llm_telemetry.feedback``,
``llm_telemetry.feedback.calls``) are exported too, so Prometheus can compute the rates across replicas.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry._logs import LogRecord, SeverityNumber, get_logger_provider
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.util.types import AttributeValue

from llm_telemetry import __version__
from llm_telemetry import attributes as a
from llm_telemetry.attribution import current_attribution
from llm_telemetry.config import Settings, get_settings
from llm_telemetry.record import GenAICall

logger = logging.getLogger(__name__)

SCOPE = "llm_telemetry.quality.feedback"
KINDS = ("thumbs_up", "thumbs_down", "correction", "report")
NEGATIVE_KINDS = frozenset({"thumbs_down", "correction", "report"})
OTHER_CATEGORY = "other"
MAX_FEATURES = 1000
"""Distinct features tracked; past it, new ones share one ``otel.metric.overflow`` series."""
DROP_CALL_EVICTED = "feedback_call_evicted"
_OVERFLOW = "\0overflow"
_CATEGORY = re.compile(r"[a-z0-9_]{1,40}")


@dataclass(frozen=True, slots=True)
class CallRef:
    """Where a call's telemetry is: its span identity, plus what feedback metrics group by."""

    trace_id: int
    span_id: int
    trace_flags: int
    feature: str | None
    model: str | None
    response_id: str | None = None


class _FeatureStats:
    __slots__ = ("by_kind", "calls")

    def __init__(self) -> None:
        self.calls = 0
        self.by_kind: dict[tuple[str, str | None, bool], int] = {}


class FeedbackTracker:
    """The in-process feedback state: the call map, counts per feature, and the metrics reading them."""

    def __init__(self, *, meter_provider: Any | None = None, logger_provider: Any | None = None, settings: Settings | None = None) -> None:
        settings = settings or get_settings()
        self._capacity = settings.feedback.max_tracked_calls
        self._max_categories = settings.feedback.max_categories
        self._capture = settings.content.capture.enabled
        self._lock = threading.Lock()
        self._by_response: OrderedDict[str, CallRef] = OrderedDict()
        self._by_span: OrderedDict[tuple[int, int], CallRef] = OrderedDict()
        self._features: dict[str | None, _FeatureStats] = {}
        self._categories: set[str] = set()
        self._evicted = 0
        self._attrs: dict[object, dict[str, AttributeValue]] = {}
        self._logger = (logger_provider or get_logger_provider()).get_logger(SCOPE, __version__)
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(SCOPE, __version__)
        meter.create_observable_counter(
            a.METRIC_FEEDBACK, callbacks=[self._observe_feedback], unit="{feedback}",
            description="User feedback by kind, feature, category and whether it was tied to a call.",
        )
        meter.create_observable_counter(
            a.METRIC_FEEDBACK_CALLS, callbacks=[self._observe_calls], unit="{call}",
            description="GenAI calls seen by the feedback tracker, by feature (the feedback-rate denominator).",
        )
        meter.create_observable_gauge(
            a.METRIC_FEEDBACK_SATISFACTION, callbacks=[self._observe_satisfaction], unit="1",
            description="thumbs_up / all rated feedback (thumbs_down, correction and report are negative), by feature, since start.",
        )
        meter.create_observable_gauge(
            a.METRIC_FEEDBACK_RATE, callbacks=[self._observe_rate], unit="1",
            description="Feedback per GenAI call, by feature, since start.",
        )

    # --- the per-call hook --------------------------------------------------------------------------

    def remember_call(self, call: GenAICall) -> None:
        """Count the call for its feature and remember where its span is, by response id and span id."""
        if call.operation == "embeddings":
            return  # nobody rates an embedding
        ref = CallRef(call.trace_id, call.span_id, int(TraceFlags.SAMPLED), call.feature, call.model, call.response_id)
        with self._lock:
            self._stats(call.feature).calls += 1
            if call.trace_id and call.span_id:
                self._put(self._by_span, (call.trace_id, call.span_id), ref)
            if call.response_id:
                self._put(self._by_response, call.response_id, ref)

    def _put(self, table: OrderedDict[Any, CallRef], key: Any, ref: CallRef) -> None:
        table[key] = ref
        table.move_to_end(key)
        while len(table) > self._capacity:
            table.popitem(last=False)
            if table is self._by_response:
                self._evicted += 1

    def dropped_counts(self) -> Mapping[str, int]:
        """The `DropReporter` protocol: response ids evicted before any feedback came for them."""
        with self._lock:
            return {DROP_CALL_EVICTED: self._evicted} if self._evicted else {}

    # --- feedback ----------------------------------------------------------------------------------

    def feedback(
        self, kind: str, *, response_id: str | None = None, span_context: Any = None, category: str | None = None,
        text: str | None = None, user_id: str | None = None, feature: str | None = None,
    ) -> bool:
        """Record one feedback; True when it was tied to a known call. Raises only on an unknown ``kind``."""
        if kind not in KINDS:
            raise ValueError(f"llm_telemetry.feedback: unknown kind {kind!r} (known: {', '.join(KINDS)})")
        try:
            return self._record(kind, response_id, span_context, category, text, user_id, feature)
        except Exception:  # our failure must not reach the app's feedback endpoint
            logger.warning("llm-telemetry: could not record feedback", exc_info=True)
            return False

    def _record(
        self, kind: str, response_id: str | None, span_context: Any, category: str | None, text: str | None,
        user_id: str | None, feature: str | None,
    ) -> bool:
        ref, matched = self._resolve(response_id, span_context)
        feature = feature or (ref.feature if ref else None) or current_attribution().get(a.FEATURE)
        with self._lock:
            category = self._category(category)
            stats = self._stats(feature)
            key = (kind, category, matched)
            stats.by_kind[key] = stats.by_kind.get(key, 0) + 1
        attrs: dict[str, AttributeValue] = {a.FEEDBACK_KIND: kind, a.FEEDBACK_MATCHED: matched}
        optional = {
            a.FEEDBACK_CATEGORY: category, a.FEATURE: feature, a.RESPONSE_ID: response_id or (ref.response_id if ref else None),
            a.RESPONSE_MODEL: ref.model if ref else None, a.USER_ID: user_id,
        }
        attrs.update({k: v for k, v in optional.items() if v is not None})
        ctx = None
        if ref is not None and ref.trace_id and ref.span_id:
            original = SpanContext(ref.trace_id, ref.span_id, is_remote=True, trace_flags=TraceFlags(ref.trace_flags))
            ctx = trace.set_span_in_context(NonRecordingSpan(original))
        self._logger.emit(LogRecord(
            timestamp=time.time_ns(), context=ctx, severity_number=SeverityNumber.INFO, severity_text="INFO",
            body=text if (text and self._capture) else None, attributes=attrs, event_name=a.EVENT_FEEDBACK,
        ))
        return matched

    def _resolve(self, response_id: str | None, span_context: Any) -> tuple[CallRef | None, bool]:
        if span_context is not None:
            sc = span_context.get_span_context() if hasattr(span_context, "get_span_context") else span_context
            if isinstance(sc, SpanContext) and sc.is_valid:
                with self._lock:
                    known = self._by_span.get((sc.trace_id, sc.span_id))
                return known or CallRef(sc.trace_id, sc.span_id, int(sc.trace_flags), None, None), True
        if response_id is not None:
            with self._lock:
                known = self._by_response.get(response_id)
            if known is not None:
                return known, True
        current = trace.get_current_span().get_span_context()
        if current.is_valid:  # the request handling the feedback: at least its own trace
            return CallRef(current.trace_id, current.span_id, int(current.trace_flags), None, None), False
        return None, False

    def _category(self, category: str | None) -> str | None:
        if category is None or not category.strip():
            return None
        text = re.sub(r"[\s\-/]+", "_", category.strip().lower())
        if not _CATEGORY.fullmatch(text):
            return OTHER_CATEGORY
        if text not in self._categories:
            if len(self._categories) >= self._max_categories:
                return OTHER_CATEGORY
            self._categories.add(text)
        return text

    def _stats(self, feature: str | None) -> _FeatureStats:
        stats = self._features.get(feature)
        if stats is None:
            if len(self._features) >= MAX_FEATURES:
                feature = _OVERFLOW
                stats = self._features.get(feature)
            if stats is None:
                stats = self._features[feature] = _FeatureStats()
        return stats

    # --- report and metrics --------------------------------------------------------------------------

    def report(self, feature: str | None = None) -> dict[str, Any]:
        """Counts and rates per feature (``"(none)"`` for calls without one), plus totals; ``feature`` narrows it."""
        with self._lock:
            items = [(f, s.calls, dict(s.by_kind)) for f, s in self._features.items() if feature is None or f == feature]
            evicted = self._evicted
        features = {_label(f): _summary(calls, by_kind) for f, calls, by_kind in items}
        total_kind: dict[tuple[str, str | None, bool], int] = {}
        for _, _, by_kind in items:
            for key, n in by_kind.items():
                total_kind[key] = total_kind.get(key, 0) + n
        return {"features": features, "total": _summary(sum(c for _, c, _ in items), total_kind), "evicted_calls": evicted}

    def _feature_attrs(self, feature: str | None, **extra: AttributeValue | None) -> dict[str, AttributeValue]:
        key = (feature, *sorted(extra.items()))
        attrs = self._attrs.get(key)
        if attrs is None:
            base: dict[str, AttributeValue] = {"otel.metric.overflow": True} if feature == _OVERFLOW else (
                {a.FEATURE: feature} if feature else {}
            )
            attrs = self._attrs[key] = {**base, **{k: v for k, v in extra.items() if v is not None}}
        return attrs

    def _observe_feedback(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            return [
                Observation(n, self._feature_attrs(f, **{a.FEEDBACK_KIND: kind, a.FEEDBACK_CATEGORY: cat, a.FEEDBACK_MATCHED: matched}))
                for f, s in self._features.items() for (kind, cat, matched), n in s.by_kind.items()
            ]

    def _observe_calls(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            return [Observation(s.calls, self._feature_attrs(f)) for f, s in self._features.items() if s.calls]

    def _observe_satisfaction(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            out = []
            for f, s in self._features.items():
                rate = _summary(s.calls, s.by_kind)["satisfaction_rate"]
                if rate is not None:
                    out.append(Observation(rate, self._feature_attrs(f)))
            return out

    def _observe_rate(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            out = []
            for f, s in self._features.items():
                rate = _summary(s.calls, s.by_kind)["feedback_rate"]
                if rate is not None:
                    out.append(Observation(rate, self._feature_attrs(f)))
            return out


def _label(feature: str | None) -> str:
    return "(overflow)" if feature == _OVERFLOW else (feature or "(none)")


def _summary(calls: int, by_kind: Mapping[tuple[str, str | None, bool], int]) -> dict[str, Any]:
    counts = {kind: 0 for kind in KINDS}
    categories: dict[str, int] = {}
    unmatched = 0
    for (kind, category, matched), n in by_kind.items():
        counts[kind] += n
        unmatched += 0 if matched else n
        if kind in NEGATIVE_KINDS and category:
            categories[category] = categories.get(category, 0) + n
    negative = sum(counts[k] for k in NEGATIVE_KINDS)
    rated = counts["thumbs_up"] + negative
    total = sum(counts.values())
    return {
        "calls": calls, "feedback": total, **counts, "unmatched": unmatched,
        "satisfaction_rate": counts["thumbs_up"] / rated if rated else None,
        "feedback_rate": total / calls if calls else None,
        "negative_categories": dict(sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


# --- the process-wide tracker and the public functions ----------------------------------------------

_tracker: FeedbackTracker | None = None
_tracker_lock = threading.Lock()


def install_feedback(*, meter_provider: Any | None = None, logger_provider: Any | None = None,
                     settings: Settings | None = None) -> FeedbackTracker:
    """Start a fresh tracker reporting to these providers (default: the global ones) and make it current."""
    global _tracker
    tracker = FeedbackTracker(meter_provider=meter_provider, logger_provider=logger_provider, settings=settings)
    with _tracker_lock:
        _tracker = tracker
    return tracker


def current_feedback_tracker() -> FeedbackTracker:
    """The current tracker; built on first use from the global providers (which may be set later)."""
    global _tracker
    with _tracker_lock:
        if _tracker is None:
            _tracker = FeedbackTracker()
        return _tracker


def remember_call(call: GenAICall) -> None:
    """The per-call hook: count the call and remember its span for feedback by response id. Never raises."""
    try:
        current_feedback_tracker().remember_call(call)
    except Exception:
        logger.debug("llm-telemetry: remember_call failed", exc_info=True)


def feedback(
    kind: str, *, response_id: str | None = None, span_context: Any = None, category: str | None = None,
    text: str | None = None, user_id: str | None = None, feature: str | None = None,
) -> bool:
    """Record ``thumbs_up`` / ``thumbs_down`` / ``correction`` / ``report`` feedback about a call (see module doc).

    Returns True when the feedback was tied to a known call. ``text`` (a correction, a report) is exported
    only with content capture on. Raises `ValueError` only for an unknown ``kind``.
    """
    if kind not in KINDS:  # before building any state: a typo in the app fails fast and leaves nothing behind
        raise ValueError(f"llm_telemetry.feedback: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    return current_feedback_tracker().feedback(
        kind, response_id=response_id, span_context=span_context, category=category, text=text, user_id=user_id, feature=feature,
    )


def feedback_report(feature: str | None = None) -> dict[str, Any]:
    """Per feature: calls, feedback counts by kind, satisfaction rate, feedback rate, negative categories."""
    return current_feedback_tracker().report(feature)
