"""BudgetEnricher: crossings once per window, window rolls in a time zone, the user cap, reports."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from _pipeline_helpers import ManualClock, settings_from
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan

from llm_telemetry import attributes as a
from llm_telemetry.processors.base import Enrichment
from llm_telemetry.processors.budget import BudgetEnricher
from llm_telemetry.record import GenAICall

SPAN = ReadableSpan("chat")


def budget_settings(**env: str):
    return settings_from({f"LLM_TELEMETRY_BUDGET_{k.upper()}": v for k, v in env.items()}).budget


def spend(enricher: BudgetEnricher, usd: float, user: str | None = None, feature: str | None = None,
          model: str = "gpt-4o") -> list[dict]:
    """One priced call through the enricher; returns the attributes of the events it added."""
    record = GenAICall(operation="chat", provider="openai", request_model=model, user_id=user, feature=feature)
    result = enricher.enrich(record, SPAN, Enrichment({a.COST_TOTAL_USD: usd}))
    return [] if result is None else [dict(e.attributes) for e in result.events]


def levels(events: list[dict]) -> list[tuple[str, str]]:
    return [(e[a.BUDGET_SCOPE], e[a.BUDGET_LEVEL]) for e in events]


@pytest.fixture
def reader():
    r = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[r])
    r.meter = provider.get_meter("t")
    yield r
    provider.shutdown()


def crossings(reader: InMemoryMetricReader) -> dict[tuple[str, str], int]:
    data = reader.get_metrics_data()
    if data is None:
        return {}
    return {
        (p.attributes[a.BUDGET_SCOPE], p.attributes[a.BUDGET_LEVEL]): p.value
        for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        if m.name == a.METRIC_BUDGET_CROSSINGS for p in m.data.data_points
    }


def test_daily_budget_crosses_warning_then_critical_once_each(reader, caplog) -> None:
    clock = ManualClock(datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    enricher = BudgetEnricher(budget_settings(daily_usd="1.0"), reader.meter, clock=clock)
    with caplog.at_level(logging.WARNING, logger="llm_telemetry.processors.budget"):
        per_span = [spend(enricher, 0.3) for _ in range(6)]
    assert [levels(events) for events in per_span] == [[], [], [("daily", "warning")], [("daily", "critical")], [], []]
    warning = per_span[2][0]
    assert warning[a.BUDGET_LIMIT_USD] == 1.0
    assert warning[a.BUDGET_SPENT_USD] == pytest.approx(0.9)
    assert warning[a.BUDGET_WINDOW_START] == "2026-11-25T00:00:00+00:00"
    assert [(r.levelname, "daily spend" in r.getMessage()) for r in caplog.records] == [("WARNING", True), ("ERROR", True)]
    assert "$1.2000" in caplog.records[1].getMessage() and "$1.00" in caplog.records[1].getMessage()
    assert crossings(reader) == {("daily", "warning"): 1, ("daily", "critical"): 1}


def test_a_single_call_over_the_whole_budget_reports_both_levels() -> None:
    enricher = BudgetEnricher(budget_settings(daily_usd="1.0"), clock=ManualClock(datetime(2026, 1, 1, tzinfo=UTC)))
    assert levels(spend(enricher, 5.0)) == [("daily", "warning"), ("daily", "critical")]


def test_the_day_rolls_at_midnight_and_alerts_again(reader) -> None:
    clock = ManualClock(datetime(2026, 11, 25, 23, 59, tzinfo=UTC))
    enricher = BudgetEnricher(budget_settings(daily_usd="1.0"), reader.meter, clock=clock)
    assert levels(spend(enricher, 0.85)) == [("daily", "warning")]
    clock.advance(minutes=2)  # 2026-11-26 00:01
    assert enricher.status()["daily"]["spent_usd"] == 0.0
    assert levels(spend(enricher, 0.5)) == []
    events = spend(enricher, 0.4)
    assert levels(events) == [("daily", "warning")]
    assert events[0][a.BUDGET_WINDOW_START] == "2026-11-26T00:00:00+00:00"
    assert crossings(reader) == {("daily", "warning"): 2}


def test_windows_roll_in_the_configured_time_zone() -> None:
    # Europe/Paris is UTC+1 in November: its day starts at 23:00 UTC.
    clock = ManualClock(datetime(2026, 11, 25, 22, 30, tzinfo=UTC))
    paris = BudgetEnricher(budget_settings(daily_usd="1.0", timezone="Europe/Paris"), clock=clock)
    utc = BudgetEnricher(budget_settings(daily_usd="1.0"), clock=clock)
    for enricher in (paris, utc):
        spend(enricher, 0.7)
    clock.advance(hours=1)  # 23:30 UTC = 00:30 Paris
    assert levels(spend(paris, 0.2)) == []  # new Paris day: 0.2 spent
    assert levels(spend(utc, 0.2)) == [("daily", "warning")]  # same UTC day: 0.9 spent
    assert paris.status()["daily"]["window_start"] == "2026-11-26T00:00:00+01:00"
    assert paris.daily_report()["date"] == "2026-11-26"


def test_a_dst_day_is_23_hours_long() -> None:
    new_york = ZoneInfo("America/New_York")
    clock = ManualClock(datetime(2026, 3, 8, 0, 30, tzinfo=new_york))  # spring forward at 02:00 local
    enricher = BudgetEnricher(budget_settings(daily_usd="10", timezone="America/New_York"), clock=clock)
    spend(enricher, 1.0)
    clock.advance(hours=22, minutes=59)  # 23:29 local (22 h 59 min of wall time later): still the same day
    assert enricher.status()["daily"]["spent_usd"] == 1.0
    clock.advance(minutes=31)  # 00:00 on the 9th
    assert enricher.status()["daily"]["spent_usd"] == 0.0
    assert enricher.status()["daily"]["window_start"] == "2026-03-09T00:00:00-04:00"


def test_per_user_hourly_limit_is_per_user_and_rolls_every_hour(reader, caplog) -> None:
    clock = ManualClock(datetime(2026, 11, 25, 10, 15, tzinfo=UTC))
    enricher = BudgetEnricher(budget_settings(user_hourly_usd="1.0"), reader.meter, clock=clock)
    with caplog.at_level(logging.WARNING, logger="llm_telemetry.processors.budget"):
        assert levels(spend(enricher, 0.9, user="alice")) == [("user_hourly", "warning")]
        assert levels(spend(enricher, 0.9, user="bob")) == [("user_hourly", "warning")]
        events = spend(enricher, 0.2, user="alice")
        assert levels(events) == [("user_hourly", "critical")]
        assert events[0][a.USER_ID] == "alice" and events[0][a.BUDGET_WINDOW_START] == "2026-11-25T10:00:00+00:00"
        assert spend(enricher, 5.0, user="alice") == []  # already critical this hour
        clock.advance(hours=1)
        assert levels(spend(enricher, 0.5, user="alice")) == []
        assert levels(spend(enricher, 0.5, user="alice")) == [("user_hourly", "warning"), ("user_hourly", "critical")]
    assert "hourly spend of user 'alice'" in caplog.records[-1].getMessage()
    assert crossings(reader) == {("user_hourly", "warning"): 3, ("user_hourly", "critical"): 2}


def test_feature_daily_budgets() -> None:
    enricher = BudgetEnricher(budget_settings(feature_daily_usd="search=1,chat=10"),
                              clock=ManualClock(datetime(2026, 11, 25, tzinfo=UTC)))
    assert spend(enricher, 0.9, feature="chat") == []
    events = spend(enricher, 0.9, feature="search")
    assert levels(events) == [("feature_daily", "warning")] and events[0][a.FEATURE] == "search"
    assert spend(enricher, 0.9, feature="untracked") == []
    status = enricher.status()["feature_daily"]
    assert status["search"]["level"] == "warning" and status["chat"]["level"] is None
    assert status["untracked"]["limit_usd"] is None


def test_calls_without_cost_change_nothing_but_unpriced_calls_are_reported() -> None:
    enricher = BudgetEnricher(budget_settings(daily_usd="1"), clock=ManualClock(datetime(2026, 11, 25, tzinfo=UTC)))
    record = GenAICall(operation="chat", provider="x", request_model="mystery")
    assert enricher.enrich(record, SPAN, Enrichment()) is None
    assert enricher.enrich(record, SPAN, Enrichment({a.COST_UNKNOWN_MODEL: True})) is None
    report = enricher.daily_report()
    assert (report["total_cost_usd"], report["n_requests"], report["n_unpriced"]) == (0, 0, 1)


def test_tracked_users_stay_at_the_cap_and_evictions_are_counted() -> None:
    clock = ManualClock(datetime(2026, 11, 25, 12, tzinfo=UTC))
    enricher = BudgetEnricher(budget_settings(user_hourly_usd="1", max_tracked_users="50000"), clock=clock)
    for i in range(100_000):
        spend(enricher, 0.001, user=f"user-{i}")
    assert enricher.tracked_users() == 50_000
    assert enricher.dropped_counts() == {"budget_user_evicted": 50_000}
    # the most recent users are the ones kept
    assert enricher.status()["user_hourly"]["users_tracked"] == 50_000
    spend(enricher, 0.9, user="user-99999")
    assert enricher.status()["user_hourly"]["top_users"][0] == ("user-99999", pytest.approx(0.901))


def test_default_cap_holds_for_a_hundred_thousand_and_one_users() -> None:
    enricher = BudgetEnricher(budget_settings(), clock=ManualClock(datetime(2026, 11, 25, 12, tzinfo=UTC)))
    assert enricher.settings.max_tracked_users == 100_000
    for i in range(100_001):
        spend(enricher, 0.0001, user=f"u{i}")
    assert enricher.tracked_users() == 100_000 and enricher.evicted_users == 1


def test_concurrent_spend_is_counted_exactly() -> None:
    enricher = BudgetEnricher(budget_settings(daily_usd="1000"), clock=ManualClock(datetime(2026, 11, 25, tzinfo=UTC)))

    def work(n: int) -> None:
        for _ in range(5_000):
            spend(enricher, 0.25, user=f"user-{n}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert enricher.status()["daily"]["spent_usd"] == 4 * 5_000 * 0.25


def test_daily_report_matches_the_seed_shape() -> None:
    enricher = BudgetEnricher(budget_settings(daily_usd="10"), clock=ManualClock(datetime(2026, 11, 25, 8, tzinfo=UTC)))
    spend(enricher, 3.0, user="alice", feature="chat", model="gpt-4o")
    spend(enricher, 5.0, user="bob", feature="search", model="claude-3-5-sonnet")
    spend(enricher, 0.5, user="alice", feature="chat", model="gpt-4o")
    report = enricher.daily_report()
    assert report["date"] == "2026-11-25"
    assert report["total_cost_usd"] == 8.5 and report["budget_used_pct"] == 85.0
    assert report["by_model"] == {"gpt-4o": 3.5, "claude-3-5-sonnet": 5.0}
    assert report["by_feature"] == {"chat": 3.5, "search": 5.0}
    assert report["top_users"] == [("bob", 5.0), ("alice", 3.5)]
    assert report["n_requests"] == 3
    assert len(report["alerts"]) == 1 and report["alerts"][0].startswith("WARNING: daily spend is $8.0000, 80% of the $10.00 budget")
