"""Business metrics from session events: task completion rate, abandonment rate, turns per session.

    llm_telemetry.session_event(session_id, "start", feature="support-chat")
    llm_telemetry.session_event(session_id, "follow_up")
    llm_telemetry.session_event(session_id, "task_complete")   # or "abandon"

A session's turns are its start plus its follow-ups. A session ends with ``task_complete`` (outcome
``completed``) or ``abandon`` (``abandoned``). Sessions that never end — the user closed the tab — are
the common case of abandonment, so a session with no event for ``feedback.session_idle_timeout_s``
(default 30 min) ends as ``abandoned`` with end reason ``idle_timeout``; when more than
``feedback.max_tracked_sessions`` are open, the longest-idle one ends the same way (reason
``evicted``). Expiry is checked on every event and whenever metrics are collected or the report is read.

An event for a session we do not know (no ``start`` seen: the process restarted, or it already ended)
starts it implicitly, counted in ``implicit_starts``; a second ``start`` of an open session is ignored.

Rates are over *ended* sessions (open ones are undecided): completion = completed / ended,
abandonment = abandoned / ended. Metrics: ``llm_telemetry.sessions`` (ended, by feature, outcome, end
reason), ``llm_telemetry.session.turns`` (histogram per ended session), the two rates and the open
``llm_telemetry.session.active`` as gauges, per feature. Sessions are counted where their events
arrive: route a session's events to one process (or sum the counters in Prometheus).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.util.types import AttributeValue

from llm_telemetry import __version__
from llm_telemetry import attributes as a
from llm_telemetry.attribution import current_attribution
from llm_telemetry.config import Settings, get_settings

logger = logging.getLogger(__name__)

SCOPE = "llm_telemetry.quality.sessions"
KINDS = ("start", "follow_up", "task_complete", "abandon")
COMPLETED, ABANDONED = "completed", "abandoned"
TURN_BUCKETS = (1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 50, 100)
MAX_FEATURES = 1000


@dataclass(slots=True)
class _Open:
    feature: str | None
    turns: int
    last_seen: float


class _Ended:
    __slots__ = ("by_outcome", "turns")

    def __init__(self) -> None:
        self.by_outcome: dict[tuple[str, str], int] = {}
        """(outcome, end reason) → sessions."""
        self.turns = 0


class SessionTracker:
    """Open sessions (LRU by last event) and ended-session counts per feature, with their metrics."""

    def __init__(
        self, *, meter_provider: Any | None = None, settings: Settings | None = None, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        settings = settings or get_settings()
        self._idle_s = settings.feedback.session_idle_timeout_s
        self._capacity = settings.feedback.max_tracked_sessions
        self._clock = clock
        self._lock = threading.Lock()
        self._open: OrderedDict[str, _Open] = OrderedDict()
        self._ended: dict[str | None, _Ended] = {}
        self._implicit = 0
        self._attrs: dict[object, dict[str, AttributeValue]] = {}
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(SCOPE, __version__)
        self._turns = meter.create_histogram(
            a.METRIC_SESSION_TURNS, unit="{turn}", description="Turns (start + follow-ups) of each ended session, by feature and outcome.",
            explicit_bucket_boundaries_advisory=list(TURN_BUCKETS),
        )
        meter.create_observable_counter(
            a.METRIC_SESSIONS, callbacks=[self._observe_sessions], unit="{session}",
            description="Ended sessions by feature, outcome (completed, abandoned) and end reason.",
        )
        meter.create_observable_gauge(
            a.METRIC_SESSION_COMPLETION_RATE, callbacks=[self._rate(COMPLETED)], unit="1",
            description="Ended sessions that completed their task, by feature, since start.",
        )
        meter.create_observable_gauge(
            a.METRIC_SESSION_ABANDONMENT_RATE, callbacks=[self._rate(ABANDONED)], unit="1",
            description="Ended sessions that were abandoned (explicitly or idle past the timeout), by feature, since start.",
        )
        meter.create_observable_gauge(
            a.METRIC_SESSION_ACTIVE, callbacks=[self._observe_active], unit="{session}", description="Open sessions, by feature.",
        )

    def event(self, session_id: str, kind: str, *, feature: str | None = None) -> None:
        """Record one session event (see the module doc). Raises only on an unknown ``kind``."""
        if kind not in KINDS:
            raise ValueError(f"llm_telemetry.session_event: unknown kind {kind!r} (known: {', '.join(KINDS)})")
        try:
            feature = feature or current_attribution().get(a.FEATURE)
            with self._lock:
                now = self._clock()
                self._expire(now)
                session = self._open.get(session_id)
                if session is None:
                    if kind != "start":
                        self._implicit += 1
                    session = self._open[session_id] = _Open(feature, 1, now)
                    self._evict_over_capacity()
                    if kind == "start":
                        return
                elif kind == "start":
                    session.last_seen = now
                    self._open.move_to_end(session_id)
                    return
                session.feature = session.feature or feature
                session.last_seen = now
                self._open.move_to_end(session_id)
                if kind == "follow_up":
                    session.turns += 1
                elif kind == "task_complete":
                    self._end(session_id, COMPLETED, "task_complete")
                else:
                    self._end(session_id, ABANDONED, "abandon")
        except Exception:  # our failure must not reach the app
            logger.warning("llm-telemetry: could not record a session event", exc_info=True)

    def sweep(self) -> int:
        """End idle sessions now; returns how many ended."""
        with self._lock:
            return self._expire(self._clock())

    def _expire(self, now: float) -> int:
        ended = 0
        while self._open:
            session_id, session = next(iter(self._open.items()))
            if now - session.last_seen < self._idle_s:
                break
            self._end(session_id, ABANDONED, "idle_timeout")
            ended += 1
        return ended

    def _evict_over_capacity(self) -> None:
        while len(self._open) > self._capacity:
            self._end(next(iter(self._open)), ABANDONED, "evicted")

    def _end(self, session_id: str, outcome: str, reason: str) -> None:
        session = self._open.pop(session_id)
        feature = session.feature
        stats = self._ended.get(feature)
        if stats is None:
            if len(self._ended) >= MAX_FEATURES:
                feature = "(overflow)"
                stats = self._ended.get(feature)
            if stats is None:
                stats = self._ended[feature] = _Ended()
        stats.by_outcome[(outcome, reason)] = stats.by_outcome.get((outcome, reason), 0) + 1
        stats.turns += session.turns
        self._turns.record(session.turns, self._feature_attrs(feature, **{a.SESSION_OUTCOME: outcome}))

    # --- report and metrics --------------------------------------------------------------------------

    def report(self, feature: str | None = None) -> dict[str, Any]:
        """Per feature (``"(none)"`` without one): open, ended, completed, abandoned (by reason), rates, mean turns."""
        with self._lock:
            self._expire(self._clock())
            open_by: dict[str | None, int] = {}
            for session in self._open.values():
                open_by[session.feature] = open_by.get(session.feature, 0) + 1
            names = set(self._ended) | set(open_by)
            out: dict[str, Any] = {}
            for name in names:
                if feature is not None and name != feature:
                    continue
                stats = self._ended.get(name) or _Ended()
                out[name or "(none)"] = _summary(open_by.get(name, 0), stats)
            implicit = self._implicit
        return {"features": out, "implicit_starts": implicit}

    def _feature_attrs(self, feature: str | None, **extra: str) -> dict[str, AttributeValue]:
        key = (feature, *sorted(extra.items()))
        attrs = self._attrs.get(key)
        if attrs is None:
            attrs = self._attrs[key] = ({a.FEATURE: feature} if feature else {}) | extra
        return attrs

    def _observe_sessions(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            self._expire(self._clock())
            return [
                Observation(n, self._feature_attrs(f, **{a.SESSION_OUTCOME: outcome, a.SESSION_END_REASON: reason}))
                for f, stats in self._ended.items() for (outcome, reason), n in stats.by_outcome.items()
            ]

    def _rate(self, outcome: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                self._expire(self._clock())
                out = []
                for f, stats in self._ended.items():
                    ended = sum(stats.by_outcome.values())
                    if ended:
                        n = sum(v for (o, _), v in stats.by_outcome.items() if o == outcome)
                        out.append(Observation(n / ended, self._feature_attrs(f)))
                return out

        return observe

    def _observe_active(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            self._expire(self._clock())
            counts: dict[str | None, int] = {}
            for session in self._open.values():
                counts[session.feature] = counts.get(session.feature, 0) + 1
            return [Observation(n, self._feature_attrs(f)) for f, n in counts.items()]


def _summary(open_sessions: int, stats: _Ended) -> dict[str, Any]:
    ended = sum(stats.by_outcome.values())
    completed = sum(n for (o, _), n in stats.by_outcome.items() if o == COMPLETED)
    abandoned_by: dict[str, int] = {}
    for (o, reason), n in stats.by_outcome.items():
        if o == ABANDONED:
            abandoned_by[reason] = abandoned_by.get(reason, 0) + n
    abandoned = sum(abandoned_by.values())
    return {
        "open": open_sessions, "ended": ended, "completed": completed, "abandoned": abandoned, "abandoned_by_reason": abandoned_by,
        "task_completion_rate": completed / ended if ended else None,
        "abandonment_rate": abandoned / ended if ended else None,
        "mean_turns": stats.turns / ended if ended else None,
    }


# --- the process-wide tracker and the public functions ----------------------------------------------

_tracker: SessionTracker | None = None
_tracker_lock = threading.Lock()


def install_sessions(*, meter_provider: Any | None = None, settings: Settings | None = None,
                     clock: Callable[[], float] = time.monotonic) -> SessionTracker:
    """Start a fresh tracker reporting to ``meter_provider`` (default: the global one) and make it current."""
    global _tracker
    tracker = SessionTracker(meter_provider=meter_provider, settings=settings, clock=clock)
    with _tracker_lock:
        _tracker = tracker
    return tracker


def current_session_tracker() -> SessionTracker:
    global _tracker
    with _tracker_lock:
        if _tracker is None:
            _tracker = SessionTracker()
        return _tracker


def session_event(session_id: str, kind: str, *, feature: str | None = None) -> None:
    """Record ``start`` / ``follow_up`` / ``task_complete`` / ``abandon`` for a session (see module doc).

    ``feature`` defaults to the current `llm_telemetry.attribute` feature. Raises `ValueError` only for
    an unknown ``kind``.
    """
    if kind not in KINDS:
        raise ValueError(f"llm_telemetry.session_event: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    current_session_tracker().event(session_id, kind, feature=feature)


def session_report(feature: str | None = None) -> dict[str, Any]:
    """Task completion rate, abandonment rate and mean turns per feature, over ended sessions."""
    return current_session_tracker().report(feature)
