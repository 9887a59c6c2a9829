"""Output statistics per (feature, requested model), each watched by a calibrated change detector.

Statistics (names as reported):

=================  =================================================  =========================
``output_chars``   output length in characters (log scale)            `MeanMonitor`, two-sided
``output_tokens``  output tokens (provider count, not our estimate)    `MeanMonitor`, two-sided
``refusal``        share of refusals (phrase pack, or a content       `RateMonitor`, rise
                   filter / refusal finish reason)
``finish_length``  share of outputs cut at the token limit            `RateMonitor`, rise
``json_invalid``   share of outputs that are not valid JSON, for      `RateMonitor`, rise
                   features that expect JSON (setting, or >= 90 % of
                   warm-up outputs looked like JSON); elsewhere the
                   share of JSON-looking outputs that do not parse
``language_other`` share of outputs not in the warm-up's dominant     `RateMonitor`, rise
                   language (undetermined outputs not counted)
=================  =================================================  =========================

The key is the *requested* model, not the returned one: a silent version change must show as a change
of these statistics, not as a new key starting a fresh warm-up. Each detector's threshold is set from
``ert_calls`` (expected calls between false alarms, per statistic and key); it alerts once per episode
with the estimated change point (end time and trace id of the first affected call), the value before
(warm-up baseline) and after, and reports a recovery when the statistic is back.

State is per process (or per gateway routing key); memory is bounded by ``max_keys`` keys of a few
hundred bytes each, calls for further keys are counted in ``dropped_calls``.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a
from llm_telemetry.config import QualitySettings
from llm_telemetry.processors.quality.change_detectors import DetectorEvent, MeanMonitor, RateMonitor
from llm_telemetry.processors.quality.output_measure import CallStats, OutputMeasurer
from llm_telemetry.record import GenAICall

Statistic = Literal["output_chars", "output_tokens", "refusal", "finish_length", "json_invalid", "language_other"]
STATISTICS: tuple[Statistic, ...] = ("output_chars", "output_tokens", "refusal", "finish_length", "json_invalid", "language_other")
StatsKey = tuple[str | None, str | None]
"""(feature, requested model)."""

JSON_EXPECTED_SHARE = 0.9
_RECENT_WEIGHT = 0.02  # EWMA weight of the recent value reported by `snapshot` (~50 calls)


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class OutputStatChange:
    """An alert (the statistic changed) or a recovery (it is back to its baseline)."""

    feature: str | None
    request_model: str | None
    statistic: Statistic
    kind: Literal["alert", "recovered"]
    direction: Literal["up", "down"]
    before: float
    """Baseline: mean chars/tokens, or a rate in [0, 1], from the warm-up."""
    after: float
    """Same unit, over the calls since the estimated change point (recovery: since the estimated return)."""
    change_start_ns: int
    """End time of the first call after the estimated change point (recovery: of the first recovered call)."""
    change_trace_id: int
    calls_since_change: int
    """Calls from the estimated change point to this decision (the detection delay in calls)."""
    detected_ns: int
    detected_trace_id: int
    threshold: float
    ert_calls: float
    baseline_language: str | None = None
    """For ``language_other``: the language the outputs used to be in."""

    def attributes(self) -> dict[str, AttributeValue]:
        """Attributes for the span event / log record (names from `llm_telemetry.attributes`)."""
        attrs: dict[str, AttributeValue] = {
            a.QUALITY_OUTPUT_STAT_NAME: self.statistic,
            a.QUALITY_OUTPUT_STAT_STATE: self.kind,
            a.QUALITY_OUTPUT_STAT_DIRECTION: self.direction,
            a.QUALITY_OUTPUT_STAT_BEFORE: self.before,
            a.QUALITY_OUTPUT_STAT_AFTER: self.after,
            a.QUALITY_OUTPUT_STAT_CHANGE_START: _iso(self.change_start_ns),
            a.QUALITY_OUTPUT_STAT_CHANGE_TRACE_ID: f"{self.change_trace_id:032x}",
            a.QUALITY_OUTPUT_STAT_CALLS_SINCE_CHANGE: self.calls_since_change,
            a.QUALITY_OUTPUT_STAT_DETECTED_AT: _iso(self.detected_ns),
            a.QUALITY_OUTPUT_STAT_DETECTED_TRACE_ID: f"{self.detected_trace_id:032x}",
            a.QUALITY_OUTPUT_STAT_THRESHOLD: self.threshold,
            a.QUALITY_OUTPUT_STAT_ERT_CALLS: self.ert_calls,
        }
        attrs.update(self.metric_attributes())
        return attrs

    def metric_attributes(self) -> dict[str, AttributeValue]:
        """Attributes for the ``llm_telemetry.quality.output_stat.alerts`` counter."""
        attrs: dict[str, AttributeValue] = {
            a.QUALITY_OUTPUT_STAT_NAME: self.statistic,
            a.QUALITY_OUTPUT_STAT_DIRECTION: self.direction,
            a.QUALITY_OUTPUT_STAT_STATE: self.kind,
        }
        if self.feature is not None:
            attrs[a.FEATURE] = self.feature
        if self.request_model is not None:
            attrs[a.REQUEST_MODEL] = self.request_model
        return attrs

    def message(self) -> str:
        """One line for the log record."""
        where = f"feature {self.feature!r} model {self.request_model!r}"
        rate = self.statistic not in ("output_chars", "output_tokens")
        fmt = (lambda v: f"{v:.1%}") if rate else (lambda v: f"{v:.0f}")
        lang = f" (baseline language {self.baseline_language})" if self.baseline_language else ""
        if self.kind == "alert":
            return (
                f"output statistic {self.statistic}{lang} went {self.direction} for {where}: {fmt(self.before)} -> "
                f"{fmt(self.after)} since {_iso(self.change_start_ns)} (trace {self.change_trace_id:032x}), "
                f"detected after {self.calls_since_change} calls"
            )
        return (
            f"output statistic {self.statistic}{lang} recovered for {where}: {fmt(self.after)} since "
            f"{_iso(self.change_start_ns)} (baseline {fmt(self.before)})"
        )


@dataclass(frozen=True, slots=True)
class StatValue:
    """A statistic's state for a gauge: baseline, recent value (EWMA over ~50 calls), alerting or not."""

    feature: str | None
    request_model: str | None
    statistic: Statistic
    baseline: float | None
    recent: float
    alerting: bool


class _KeyStats:
    __slots__ = ("json_expected", "json_like", "json_seen", "languages", "monitors", "recent")

    def __init__(self, owner: OutputStats, json_expected: bool) -> None:
        mean = dict(warmup=owner.warmup_calls, ert=owner.ert_calls, k=owner.length_shift_sd / 2.0)
        rate = dict(warmup=owner.warmup_calls, ert=owner.ert_calls, odds_ratio=owner.rate_odds_ratio)
        self.monitors: dict[Statistic, MeanMonitor | RateMonitor] = {
            "output_chars": MeanMonitor(**mean),  # type: ignore[arg-type]
            "output_tokens": MeanMonitor(**mean),  # type: ignore[arg-type]
            "refusal": RateMonitor(**rate),  # type: ignore[arg-type]
            "finish_length": RateMonitor(**rate),  # type: ignore[arg-type]
            "json_invalid": RateMonitor(**rate),  # type: ignore[arg-type]
            "language_other": RateMonitor(**rate),  # type: ignore[arg-type]
        }
        self.json_expected: bool | None = True if json_expected else None  # None: still deciding
        self.json_seen = self.json_like = 0
        self.languages: Counter[str] | None = Counter()
        self.recent: dict[Statistic, float] = {}


class OutputStats:
    """The output-statistics engine: `observe` per call, decisions out. Thread-safe; never raises on good input."""

    def __init__(
        self,
        *,
        warmup_calls: int = 500,
        ert_calls: float = 10_000.0,
        length_shift_sd: float = 1.0,
        rate_odds_ratio: float = 3.0,
        json_features: tuple[str, ...] = (),
        max_keys: int = 1000,
        measurer: OutputMeasurer | None = None,
    ) -> None:
        self.warmup_calls, self.ert_calls = warmup_calls, ert_calls
        self.length_shift_sd, self.rate_odds_ratio = length_shift_sd, rate_odds_ratio
        self.json_features = frozenset(json_features)
        self.max_keys = max_keys
        self.measurer = measurer if measurer is not None else OutputMeasurer.create()
        self._keys: dict[StatsKey, _KeyStats] = {}
        self._lock = threading.Lock()
        self.dropped_calls = 0
        """Calls not counted because ``max_keys`` keys were already tracked."""

    @classmethod
    def from_settings(cls, settings: QualitySettings) -> OutputStats:
        return cls(
            warmup_calls=settings.stats_warmup_calls,
            ert_calls=settings.stats_ert_calls,
            length_shift_sd=settings.stats_length_shift_sd,
            rate_odds_ratio=settings.stats_rate_odds_ratio,
            json_features=settings.stats_json_features,
            max_keys=settings.stats_max_keys,
            measurer=OutputMeasurer.from_settings(settings),
        )

    def measure(self, call: GenAICall) -> CallStats | None:
        """Read the call's output once (see `OutputMeasurer.measure`)."""
        return self.measurer.measure(call)

    def observe_call(self, call: GenAICall) -> list[OutputStatChange]:
        """`measure` + `observe` under the key (feature, requested model), at the call's own time."""
        stats = self.measure(call)
        if stats is None:
            return []
        return self.observe((call.feature, call.request_model), stats, call.end_time_ns or 0, call.trace_id)

    def observe(self, key: StatsKey, stats: CallStats, end_time_ns: int, trace_id: int) -> list[OutputStatChange]:
        """Feed one call's statistics to the key's detectors; alerts and recoveries it triggers."""
        with self._lock:
            state = self._keys.get(key)
            if state is None:
                if len(self._keys) >= self.max_keys:
                    self.dropped_calls += 1
                    return []
                state = self._keys[key] = _KeyStats(self, key[0] in self.json_features)
            out: list[OutputStatChange] = []
            for statistic, value in self._values(state, stats):
                monitor = state.monitors[statistic]
                previous = state.recent.get(statistic)
                state.recent[statistic] = value if previous is None else previous + _RECENT_WEIGHT * (value - previous)
                event = monitor.update(value, end_time_ns, trace_id)  # type: ignore[arg-type]
                if event is not None:
                    out.append(self._decision(key, statistic, event, end_time_ns, trace_id, state))
            return out

    def _values(self, state: _KeyStats, stats: CallStats) -> list[tuple[Statistic, float]]:
        values: list[tuple[Statistic, float]] = []
        if stats.output_chars is not None:
            values.append(("output_chars", float(stats.output_chars)))
        if stats.output_tokens is not None:
            values.append(("output_tokens", float(stats.output_tokens)))
        if stats.refusal is not None:
            values.append(("refusal", float(stats.refusal)))
        if stats.finish_length is not None:
            values.append(("finish_length", float(stats.finish_length)))
        if stats.json_like is not None:
            json_value = self._json_value(state, stats)
            if json_value is not None:
                values.append(("json_invalid", json_value))
        if stats.language is not None and state.monitors["language_other"].warming_up:
            self._learn_language(state, stats.language)
        elif stats.language is not None:
            values.append(("language_other", float(stats.language != state.monitors["language_other"].label)))  # type: ignore[union-attr]
        return values

    def _json_value(self, state: _KeyStats, stats: CallStats) -> float | None:
        """Invalid-JSON flag for this call, or None when this key does not count it."""
        if state.json_expected is None:
            state.json_seen += 1
            state.json_like += bool(stats.json_like)
            if state.json_seen >= self.warmup_calls:
                if state.json_like >= JSON_EXPECTED_SHARE * state.json_seen:
                    state.json_expected = True
                    state.monitors["json_invalid"] = RateMonitor(
                        warmup=self.warmup_calls, ert=self.ert_calls, odds_ratio=self.rate_odds_ratio
                    )
                else:
                    state.json_expected = False
        if state.json_expected:
            return float(not (stats.json_like and stats.json_valid))
        return float(not stats.json_valid) if stats.json_like else None

    def _learn_language(self, state: _KeyStats, language: str) -> None:
        """Warm-up of ``language_other``: the dominant language is only known at its end."""
        counts = state.languages
        assert counts is not None
        counts[language] += 1
        total = sum(counts.values())
        if total >= self.warmup_calls:
            dominant, n = counts.most_common(1)[0]
            monitor = state.monitors["language_other"]
            assert isinstance(monitor, RateMonitor)
            monitor.start_from(total - n, total, label=dominant)
            state.languages = None

    def _decision(
        self, key: StatsKey, statistic: Statistic, event: DetectorEvent, now: int, trace_id: int, state: _KeyStats
    ) -> OutputStatChange:
        monitor = state.monitors[statistic]
        return OutputStatChange(
            key[0], key[1], statistic, event.kind, event.direction, event.before, event.after,
            event.change_time_ns, event.change_trace_id, event.calls_since_change, now, trace_id,
            event.threshold, self.ert_calls,
            getattr(monitor, "label", None) if statistic == "language_other" else None,
        )

    def snapshot(self) -> list[StatValue]:
        """Every tracked statistic's baseline and recent value (for an observable gauge)."""
        with self._lock:
            return [
                StatValue(key[0], key[1], statistic, state.monitors[statistic].baseline, recent,
                          state.monitors[statistic].alerting is not None)
                for key, state in self._keys.items()
                for statistic, recent in state.recent.items()
                if not math.isnan(recent)
            ]
