"""One way every quality signal raises and clears an alert: a log record, a metric, a span event, a log line.

Why one module: validators, the model-version watch, drift, output statistics and canaries all detect
"something changed" episodes. An on-call engineer needs the same shape from each — what fired, for
which feature/model, when it started (the first affected call, not when we noticed), what it was
before and after, and example trace ids to click — through every channel a backend shows:

- a log record (OTel logs API, ``event_name = llm_telemetry.alert``), in the trace of the call that
  fired it, so any OTLP backend (and the embedded store's report) lists it;
- ``llm_telemetry.quality.alerts`` (counter, by alert name and state) and
  ``llm_telemetry.quality.alerts.active`` (gauge), for Prometheus alert rules;
- a span event on the call that fired it (returned to the enricher as an `EnrichmentEvent`);
- one WARNING on the Python logger (the console of whoever runs the app).

`AlertBook` keeps the currently active alerts (one per name and key: once per episode) for the Python
API, the demo and the report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from opentelemetry import _logs as otel_logs
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context
from opentelemetry.util.types import AttributeValue

from llm_telemetry import __version__
from llm_telemetry import attributes as a
from llm_telemetry.processors.base import EnrichmentEvent

logger = logging.getLogger(__name__)

AlertState = Literal["firing", "resolved"]
LOGGER_NAME = "llm_telemetry.quality"
_MAX_ACTIVE = 1000


@dataclass(frozen=True)
class Alert:
    """One alert episode starting or ending.

    ``key`` names where (``feature``, ``model``, ``validator`` …); ``started_ns`` is the estimated start of
    the change (the first affected call's end time), ``at_ns`` when this decision was taken (the call's
    time); ``examples`` are trace ids (hex) of affected calls, ``baseline_examples`` of calls before it.
    ``details`` are the detector's own attributes (full names from `llm_telemetry.attributes`) and
    ``event_name`` its span-event name. A ``one_shot`` alert (a model version change: a fact, not a state)
    is reported but never held active.
    """

    name: str
    state: AlertState
    summary: str
    key: Mapping[str, str] = field(default_factory=dict)
    started_ns: int | None = None
    at_ns: int | None = None
    details: Mapping[str, AttributeValue] = field(default_factory=dict)
    examples: tuple[str, ...] = ()
    baseline_examples: tuple[str, ...] = ()
    trace_id: int = 0
    span_id: int = 0
    event_name: str = a.EVENT_ALERT
    one_shot: bool = False

    @property
    def identity(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return self.name, tuple(sorted(self.key.items()))

    def attributes(self) -> dict[str, AttributeValue]:
        """The alert as flat attributes (log record, span event)."""
        out: dict[str, AttributeValue] = {a.ALERT_NAME: self.name, a.ALERT_STATE: self.state, a.ALERT_SUMMARY: self.summary}
        for name, value in self.key.items():
            out[f"{a.ALERT_KEY_PREFIX}{name}"] = value
        if self.started_ns is not None:
            out[a.ALERT_STARTED_AT] = _iso(self.started_ns)
        if self.examples:
            out[a.ALERT_EXAMPLE_TRACE_IDS] = self.examples
        if self.baseline_examples:
            out[a.ALERT_BASELINE_TRACE_IDS] = self.baseline_examples
        for name, value in self.details.items():
            out[name if "." in name else f"{a.ALERT_DETAIL_PREFIX}{name}"] = value
        return out

    def event(self) -> EnrichmentEvent:
        return EnrichmentEvent(self.event_name, self.attributes(), self.at_ns)


class AlertBook:
    """Emits alerts through every channel and remembers which are active (once per episode)."""

    def __init__(self, meter: Meter | None = None) -> None:
        self._lock = threading.Lock()
        self._active: dict[tuple[str, tuple[tuple[str, str], ...]], Alert] = {}
        self._history: list[Alert] = []
        self._counts: dict[tuple[str, str], int] = {}
        self._otel_logger = otel_logs.get_logger(LOGGER_NAME, __version__)
        if meter is not None:
            meter.create_observable_counter(
                a.METRIC_QUALITY_ALERTS, callbacks=[self._observe_counts], unit="{alert}",
                description="Quality alert episodes started and resolved, by alert name and state.",
            )
            meter.create_observable_gauge(
                a.METRIC_QUALITY_ALERTS_ACTIVE, callbacks=[self._observe_active], unit="{alert}",
                description="Quality alerts currently firing, by alert name.",
            )

    def emit(self, alert: Alert) -> EnrichmentEvent | None:
        """Record ``alert``; returns its span event, or None if it repeats the current state (no new episode)."""
        with self._lock:
            current = self._active.get(alert.identity)
            if alert.one_shot:
                pass
            elif alert.state == "firing":
                if current is not None:
                    return None
                if len(self._active) >= _MAX_ACTIVE:
                    logger.debug("llm-telemetry: too many active alerts; %s not tracked", alert.name)
                    return None
                self._active[alert.identity] = alert
            else:
                if current is None:
                    return None
                del self._active[alert.identity]
            self._history.append(alert)
            del self._history[:-_MAX_ACTIVE]
            count_key = (alert.name, alert.state)
            self._counts[count_key] = self._counts.get(count_key, 0) + 1
        self._log(alert)
        return alert.event()

    def active(self) -> list[Alert]:
        with self._lock:
            return list(self._active.values())

    def history(self) -> list[Alert]:
        with self._lock:
            return list(self._history)

    def _log(self, alert: Alert) -> None:
        level = logging.WARNING if alert.state == "firing" else logging.INFO
        logger.log(level, "llm-telemetry %s: %s", "ALERT" if alert.state == "firing" else "resolved", alert.summary)
        try:
            context = None
            if alert.trace_id:
                span_context = SpanContext(alert.trace_id, alert.span_id or 1, is_remote=False,
                                           trace_flags=TraceFlags(TraceFlags.SAMPLED))
                context = set_span_in_context(NonRecordingSpan(span_context))
            self._otel_logger.emit(
                timestamp=alert.at_ns or time.time_ns(), context=context, event_name=a.EVENT_ALERT,
                severity_number=otel_logs.SeverityNumber.WARN if alert.state == "firing" else otel_logs.SeverityNumber.INFO,
                severity_text="WARN" if alert.state == "firing" else "INFO", body=alert.summary, attributes=alert.attributes(),
            )
        except Exception:
            logger.debug("llm-telemetry: could not emit an alert log record", exc_info=True)

    def _observe_counts(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            counts = dict(self._counts)
        return [Observation(n, {a.ALERT_NAME: name, a.ALERT_STATE: state}) for (name, state), n in counts.items()]

    def _observe_active(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            by_name: dict[str, int] = {}
            for alert in self._active.values():
                by_name[alert.name] = by_name.get(alert.name, 0) + 1
            seen = {name for name, _ in self._counts}
        return [Observation(by_name.get(name, 0), {a.ALERT_NAME: name}) for name in sorted(seen | set(by_name))]


def trace_hex(trace_id: int) -> str:
    return format(trace_id, "032x")


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns / 1e9)) + f".{(ns // 1_000_000) % 1000:03d}Z"
