"""The budget enricher: in-process spend per day, per feature per day and per user per hour, with alerts.

It reads the cost the cost enricher put in the chain (``enrichments.attributes[llm_telemetry.cost.total_usd]``),
so it must come after ``cost`` in ``pipeline.enrichers``. When spend in a window first reaches
``warning_ratio`` of a budget, and again when it reaches 100 %, the span whose cost crossed the line
gets an ``llm_telemetry.budget.crossed`` event, a log record is written (WARNING / ERROR) and
``llm_telemetry.budget.crossings`` is counted — once per crossing per window, however many spans
follow. Windows roll at local midnight / the top of the hour in ``budget.timezone``.

State is per process (each worker process has its own budget); a backend summing the
``llm_telemetry.cost`` metric is the fleet-wide view. Per-user state is an LRU capped at
``budget.max_tracked_users``; an evicted user starts the hour again from zero (counted as dropped,
reason ``budget_user_evicted``), which can only delay that user's alert, never invent one.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from opentelemetry.metrics import Meter
from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a
from llm_telemetry.config import BudgetSettings
from llm_telemetry.processors._budget_windows import WindowClock
from llm_telemetry.processors.base import EnricherContext, Enrichment, EnrichmentEvent
from llm_telemetry.processors.metrics import DROP_BUDGET_USER_EVICTED
from llm_telemetry.processors.pricing import round_usd
from llm_telemetry.record import GenAICall

logger = logging.getLogger(__name__)

SCOPE_DAILY = "daily"
SCOPE_FEATURE_DAILY = "feature_daily"
SCOPE_USER_HOURLY = "user_hourly"
LEVEL_WARNING = "warning"
LEVEL_CRITICAL = "critical"
_LEVEL_NAMES = (None, LEVEL_WARNING, LEVEL_CRITICAL)
_MAX_REPORT_KEYS = 1000
_OTHER = "(other)"
_MAX_ALERTS = 100


@dataclass(slots=True)
class _Spend:
    spent: float = 0.0
    level: int = 0  # 0 below warning, 1 warning reached, 2 critical reached


@dataclass(slots=True)
class _UserSpend:
    hour_start_ts: float
    day_start_ts: float
    hour: _Spend
    day_spent: float = 0.0


@dataclass(frozen=True, slots=True)
class Crossing:
    """One budget line crossed: what the event, the log record and the metric report."""

    scope: str
    level: str
    limit_usd: float
    spent_usd: float
    window_start: datetime
    subject: str | None = None
    """The user id (``user_hourly``) or feature (``feature_daily``)."""


def _level(spent: float, limit: float, warning_ratio: float) -> int:
    if spent <= 0.0:
        return 0  # nothing spent crosses nothing, even a zero budget
    if spent >= limit:
        return 2
    return 1 if spent >= limit * warning_ratio else 0


class BudgetEnricher:
    """Tracks spend against the configured budgets and reports each crossing once per window."""

    name = "budget"
    requires = ("cost",)

    def __init__(
        self,
        settings: BudgetSettings | None = None,
        meter: Meter | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings or BudgetSettings()
        self._tz = ZoneInfo(self.settings.timezone)
        self._windows = WindowClock(self._tz, clock)
        self._lock = threading.Lock()
        self._daily = _Spend()
        self._features: dict[str, _Spend] = {}
        self._models: dict[str, float] = {}
        self._users: OrderedDict[str, _UserSpend] = OrderedDict()
        self._day_start_ts = self._windows.day.start_ts
        self._requests = 0
        self._unpriced = 0
        self._alerts: list[Crossing] = []
        self.evicted_users = 0
        self._crossings_counter = (
            meter.create_counter(
                a.METRIC_BUDGET_CROSSINGS, unit="{crossing}",
                description="Budget lines crossed (once per budget, level and window), by scope and level.",
            )
            if meter is not None else None
        )
        self._crossing_attributes: dict[tuple[str, str], dict[str, AttributeValue]] = {}

    @classmethod
    def from_context(cls, context: EnricherContext) -> BudgetEnricher:
        return cls(context.settings.budget, context.meter)

    def dropped_counts(self) -> Mapping[str, int]:
        return {DROP_BUDGET_USER_EVICTED: self.evicted_users}

    # --- the hot path ---------------------------------------------------------------------------------

    def enrich(self, call: GenAICall, attributes: Mapping[str, AttributeValue], enrichments: Enrichment) -> Enrichment | None:
        cost = enrichments.attributes.get(a.COST_TOTAL_USD)
        if not isinstance(cost, (int, float)):
            if enrichments.attributes.get(a.COST_UNKNOWN_MODEL):
                with self._lock:
                    self._roll(call.end_time_ns)
                    self._unpriced += 1
            return None
        with self._lock:
            crossings = self._add(call, float(cost))
        if not crossings:
            return None
        return Enrichment(events=[self._report(crossing) for crossing in crossings])

    def _roll(self, end_time_ns: int | None = None) -> float:
        ts = self._windows.tick(None if end_time_ns is None else end_time_ns / 1e9)
        day = self._windows.day
        if day.start_ts != self._day_start_ts:
            self._day_start_ts = day.start_ts
            self._daily = _Spend()
            self._features.clear()
            self._models.clear()
            self._requests = 0
            self._unpriced = 0
            self._alerts.clear()
        return ts

    def _add(self, call: GenAICall, cost: float) -> list[Crossing] | None:
        self._roll(call.end_time_ns)
        s = self.settings
        crossings: list[Crossing] | None = None
        self._requests += 1
        _bump(self._models, call.model or "(unknown)", cost)

        daily = self._daily
        daily.spent += cost
        if s.daily_usd is not None:
            crossings = self._check(daily, s.daily_usd, SCOPE_DAILY, self._windows.day.start, None, crossings)

        feature = call.feature
        if feature is not None:
            spend = self._features.get(feature)
            if spend is None:
                if len(self._features) >= _MAX_REPORT_KEYS and feature not in s.feature_daily_usd:
                    feature = _OTHER
                spend = self._features.setdefault(feature, _Spend())
            spend.spent += cost
            limit = s.feature_daily_usd.get(feature)
            if limit is not None:
                crossings = self._check(spend, limit, SCOPE_FEATURE_DAILY, self._windows.day.start, feature, crossings)

        user = call.user_id
        if user is not None:
            hour = self._windows.hour
            state = self._users.get(user)
            if state is None:
                state = self._users[user] = _UserSpend(hour.start_ts, self._day_start_ts, _Spend())
                if len(self._users) > s.max_tracked_users:
                    self._users.popitem(last=False)
                    self.evicted_users += 1
            else:
                self._users.move_to_end(user)
                if state.hour_start_ts != hour.start_ts:
                    state.hour_start_ts = hour.start_ts
                    state.hour = _Spend()
                if state.day_start_ts != self._day_start_ts:
                    state.day_start_ts = self._day_start_ts
                    state.day_spent = 0.0
            state.hour.spent += cost
            state.day_spent += cost
            if s.user_hourly_usd is not None:
                crossings = self._check(state.hour, s.user_hourly_usd, SCOPE_USER_HOURLY, hour.start, user, crossings)
        return crossings

    def _check(
        self, spend: _Spend, limit: float, scope: str, window_start: datetime, subject: str | None,
        crossings: list[Crossing] | None,
    ) -> list[Crossing] | None:
        level = _level(spend.spent, limit, self.settings.warning_ratio)
        if level <= spend.level:
            return crossings
        if crossings is None:
            crossings = []
        for crossed in range(spend.level + 1, level + 1):  # 0 → 2 in one call reports the warning too
            crossing = Crossing(scope, _LEVEL_NAMES[crossed], limit, spend.spent, window_start, subject)  # type: ignore[arg-type]
            crossings.append(crossing)
            if len(self._alerts) < _MAX_ALERTS:
                self._alerts.append(crossing)
        spend.level = level
        return crossings

    def _report(self, crossing: Crossing) -> EnrichmentEvent:
        """Log and count one crossing; return its span event. Runs outside the lock (crossings are rare)."""
        log_level = logging.ERROR if crossing.level == LEVEL_CRITICAL else logging.WARNING
        logger.log(log_level, "llm-telemetry budget %s", _describe(crossing))
        if self._crossings_counter is not None:
            key = (crossing.scope, crossing.level)
            attrs = self._crossing_attributes.get(key)
            if attrs is None:
                attrs = self._crossing_attributes[key] = {a.BUDGET_SCOPE: crossing.scope, a.BUDGET_LEVEL: crossing.level}
            self._crossings_counter.add(1, attrs)
        event_attrs: dict[str, AttributeValue] = {
            a.BUDGET_SCOPE: crossing.scope,
            a.BUDGET_LEVEL: crossing.level,
            a.BUDGET_LIMIT_USD: crossing.limit_usd,
            a.BUDGET_SPENT_USD: round_usd(crossing.spent_usd),
            a.BUDGET_WINDOW_START: crossing.window_start.isoformat(),
        }
        if crossing.scope == SCOPE_USER_HOURLY and crossing.subject is not None:
            event_attrs[a.USER_ID] = crossing.subject
        elif crossing.scope == SCOPE_FEATURE_DAILY and crossing.subject is not None:
            event_attrs[a.FEATURE] = crossing.subject
        return EnrichmentEvent(a.EVENT_BUDGET_CROSSED, event_attrs)

    # --- reports --------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Current spend per scope in the current windows (rolled to now), with limits and levels reached."""
        s = self.settings
        with self._lock:
            self._roll()
            hour = self._windows.hour
            day_start = self._windows.day.start.isoformat()
            users_this_hour = [(u, st.hour.spent) for u, st in self._users.items() if st.hour_start_ts == hour.start_ts]
            return {
                "timezone": s.timezone,
                SCOPE_DAILY: _scope_status(self._daily, s.daily_usd, day_start),
                SCOPE_FEATURE_DAILY: {
                    feature: _scope_status(spend, s.feature_daily_usd.get(feature), day_start)
                    for feature, spend in self._features.items()
                },
                SCOPE_USER_HOURLY: {
                    "window_start": hour.start.isoformat(),
                    "limit_usd": s.user_hourly_usd,
                    "users_tracked": len(self._users),
                    "users_at_warning": sum(1 for st in self._users.values() if st.hour_start_ts == hour.start_ts and st.hour.level),
                    "top_users": [(u, spent) for u, spent in heapq.nlargest(10, users_this_hour, key=lambda item: item[1])],
                },
            }

    def daily_report(self) -> dict[str, Any]:
        """Today's spend: total, by model, by feature, top-10 users, budget % used, requests, alerts.

        From this process's in-memory state: top users cover the users still tracked (see
        ``max_tracked_users``); ``n_unpriced`` counts calls whose model has no price (not in the total).
        """
        s = self.settings
        with self._lock:
            self._roll()
            day = self._windows.day
            total = self._daily.spent
            today = [(u, st.day_spent) for u, st in self._users.items() if st.day_start_ts == self._day_start_ts]
            return {
                "date": day.start.date().isoformat(),
                "timezone": s.timezone,
                "total_cost_usd": round(total, 6),
                "budget_usd": s.daily_usd,
                "budget_used_pct": round(total / s.daily_usd * 100, 1) if s.daily_usd else None,
                "by_model": {model: round(usd, 6) for model, usd in self._models.items()},
                "by_feature": {feature: round(spend.spent, 6) for feature, spend in self._features.items()},
                "top_users": [(u, round(usd, 6)) for u, usd in heapq.nlargest(10, today, key=lambda item: item[1])],
                "n_requests": self._requests,
                "n_unpriced": self._unpriced,
                "alerts": [_describe(crossing) for crossing in self._alerts],
            }

    def tracked_users(self) -> int:
        with self._lock:
            return len(self._users)


def _bump(table: dict[str, float], key: str, amount: float) -> None:
    if key not in table and len(table) >= _MAX_REPORT_KEYS:
        key = _OTHER
    table[key] = table.get(key, 0.0) + amount


def _scope_status(spend: _Spend, limit: float | None, window_start: str) -> dict[str, Any]:
    return {
        "window_start": window_start,
        "spent_usd": round_usd(spend.spent),
        "limit_usd": limit,
        "used_ratio": (spend.spent / limit if limit else None),
        "level": _LEVEL_NAMES[spend.level],
    }


def _describe(crossing: Crossing) -> str:
    what = {
        SCOPE_DAILY: "daily spend",
        SCOPE_FEATURE_DAILY: f"daily spend of feature {crossing.subject!r}",
        SCOPE_USER_HOURLY: f"hourly spend of user {crossing.subject!r}",
    }.get(crossing.scope, crossing.scope)
    ratio = crossing.spent_usd / crossing.limit_usd if crossing.limit_usd else float("inf")
    return (
        f"{crossing.level.upper()}: {what} is ${crossing.spent_usd:.4f}, {ratio:.0%} of the ${crossing.limit_usd:.2f} budget "
        f"(window from {crossing.window_start.isoformat()})"
    )
