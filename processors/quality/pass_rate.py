"""Pass-rate drop detector per (feature, validator): a calibrated Bernoulli CUSUM with change-point estimate.

Method (see `_cusum` for the references): each (feature, validator) key first watches
``baseline_checks`` results to estimate its normal failure rate p0 — conservatively, the one-sided 95 %
Wilson upper bound, rounded up to a grid so keys share chart designs (a key whose baseline is too
noisy must not alarm on its own noise); the estimate is refitted on more checks as they come
(`REFITS`). It then runs a Bernoulli CUSUM tuned to catch a drop of ``min_drop`` in pass rate (failure
rate p1 = p0 + min_drop) fastest, with its threshold set so that the expected number of checks between
false alarms (in-control average run length) is ``false_alarm_checks`` — exactly, for the
integer-valued chart that runs (Markov-chain ARL), not by rule of thumb.

- **Alert** when the statistic crosses the threshold: once per episode. The estimated start is the
  CUSUM's change-point estimate: the check that last took the statistic off zero (the maximum-
  likelihood change time for this shift; Basseville & Nikiforov, "Detection of Abrupt Changes", 1993,
  §2.2), with its time and trace id. Pass rates before
  (from the segment start to that point) and after (from it to the alert) and a few example trace ids
  from each side (passes just before, the first failures after) come with it.
- **Recovery** when the mirror-image CUSUM (evidence for p0 against p1) crosses the same threshold; the
  key then starts a new segment and can alert again.

Time is the call's end time (as passed in), never the time of processing: a gateway that sees spans
late or replayed reports the same start. Memory is bounded: a fixed-size state per key (a few example
ids), at most ``max_keys`` keys (least recently seen evicted, counted in `evicted`). The state lives in
this process: exact for one replica, or for one gateway per routing key.

Arming a key solves a few small linear systems (about 1-40 ms of CPU, once per distinct baseline
bucket; designs are cached process-wide); every other check costs about a microsecond.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime

from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a
from llm_telemetry.config import ValidatorsSettings
from llm_telemetry.processors.quality._cusum import ChartDesign, cached_design

logger = logging.getLogger(__name__)

PassRateKey = tuple[str | None, str]
"""``(feature, validator name)``; the feature is ``None`` for calls without one."""

EXAMPLES = 3
REFITS = 32
"""The design is refitted at 2x, 4x, ... 32x ``baseline_checks`` (when the statistic is at zero) on the
segment's checks so far: the Wilson bound tightens and the chart gets faster without more false alarms."""
_Z = 1.645  # one-sided 95 %
_GRID_STEP = 1.1
_P0_FLOOR = 0.001


def _trace_hex(trace_id: int | str | None) -> str:
    if isinstance(trace_id, int):
        return f"{trace_id:032x}" if trace_id else ""
    return trace_id or ""


def _iso(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / 1e9, tz=UTC).isoformat(timespec="milliseconds")


def _rate(passes: int, checks: int) -> float:
    return passes / checks if checks else math.nan


@dataclass(frozen=True, slots=True)
class PassRateAlert:
    """A validator's pass rate dropped for a feature: raised once per episode."""

    feature: str | None
    validator: str
    start_time_ns: int
    """End time of the first affected call (the change-point estimate)."""
    first_trace_id: str
    alert_time_ns: int
    pass_rate_before: float
    pass_rate_after: float
    checks_before: int
    checks_after: int
    failures_after: int
    baseline_pass_rate: float
    example_trace_ids_before: tuple[str, ...]
    example_trace_ids_after: tuple[str, ...]
    false_alarm_checks: float
    """Expected checks between false alarms of the chart that raised it."""

    def attributes(self) -> dict[str, AttributeValue]:
        """For the alert's span event / log record (names from `llm_telemetry.attributes`)."""
        attrs: dict[str, AttributeValue] = {
            a.EVALUATION_NAME: self.validator,
            a.VALIDATION_START_TIME: _iso(self.start_time_ns),
            a.VALIDATION_FIRST_TRACE_ID: self.first_trace_id,
            a.VALIDATION_ALERT_TIME: _iso(self.alert_time_ns),
            a.VALIDATION_PASS_RATE_BEFORE: self.pass_rate_before,
            a.VALIDATION_PASS_RATE_AFTER: self.pass_rate_after,
            a.VALIDATION_CHECKS_BEFORE: self.checks_before,
            a.VALIDATION_CHECKS_AFTER: self.checks_after,
            a.VALIDATION_FAILURES_AFTER: self.failures_after,
            a.VALIDATION_BASELINE_PASS_RATE: self.baseline_pass_rate,
            a.VALIDATION_EXAMPLE_TRACE_IDS_BEFORE: list(self.example_trace_ids_before),
            a.VALIDATION_EXAMPLE_TRACE_IDS_AFTER: list(self.example_trace_ids_after),
            a.VALIDATION_FALSE_ALARM_CHECKS: self.false_alarm_checks,
        }
        if self.feature is not None:
            attrs[a.FEATURE] = self.feature
        return attrs

    def message(self) -> str:
        """One line for the log record."""
        return (
            f"validator {self.validator!r} pass rate dropped for feature {self.feature or '(none)'!r}: "
            f"{self.pass_rate_before:.1%} over {self.checks_before} checks before, {self.pass_rate_after:.1%} over "
            f"{self.checks_after} checks since {_iso(self.start_time_ns)} (first affected trace {self.first_trace_id or '?'}; "
            f"failing examples {', '.join(self.example_trace_ids_after) or '-'}; passing before "
            f"{', '.join(self.example_trace_ids_before) or '-'})"
        )


@dataclass(frozen=True, slots=True)
class PassRateRecovery:
    """The pass rate of an alerted (feature, validator) is back to its baseline: the episode is over."""

    feature: str | None
    validator: str
    time_ns: int
    trace_id: str
    start_time_ns: int
    """The episode's estimated start (as in the alert)."""
    alert_time_ns: int
    pass_rate_during: float
    checks_during: int
    """Checks from the estimated start to the recovery."""

    def attributes(self) -> dict[str, AttributeValue]:
        attrs: dict[str, AttributeValue] = {
            a.EVALUATION_NAME: self.validator,
            a.VALIDATION_START_TIME: _iso(self.start_time_ns),
            a.VALIDATION_ALERT_TIME: _iso(self.alert_time_ns),
            a.VALIDATION_PASS_RATE_AFTER: self.pass_rate_during,
            a.VALIDATION_CHECKS_AFTER: self.checks_during,
        }
        if self.feature is not None:
            attrs[a.FEATURE] = self.feature
        return attrs

    def message(self) -> str:
        return (
            f"validator {self.validator!r} pass rate recovered for feature {self.feature or '(none)'!r} at {_iso(self.time_ns)}; "
            f"the episode since {_iso(self.start_time_ns)} had {self.checks_during} checks at {self.pass_rate_during:.1%}"
        )


class _State:
    __slots__ = (
        "after", "alert", "baseline", "before", "change_checks", "change_failures", "change_time", "change_trace", "checks", "design",
        "failures", "recovery", "refit_at", "statistic",
    )

    def __init__(self) -> None:
        self.checks = 0  # in the current segment (the baseline is the first segment's start)
        self.failures = 0
        self.design: ChartDesign | None = None
        self.baseline = math.nan  # observed pass rate of the checks the design was fitted on
        self.refit_at = 0
        self.statistic = 0
        self.recovery = 0
        self.change_checks = 0  # checks / failures of the segment before the current run-up
        self.change_failures = 0
        self.change_time = 0
        self.change_trace = ""
        self.before: deque[str] = deque(maxlen=EXAMPLES)
        self.after: list[str] = []
        self.alert: PassRateAlert | None = None


_DISARMED = ChartDesign(1.0, 1.0, 0, 0, 0, math.inf)
"""Marks a key whose baseline fails too often to leave room for a drop of ``min_drop``."""


class PassRateDetector:
    """Bounded, thread-safe per-(feature, validator) pass-rate drop detection. Never raises from `observe`."""

    def __init__(
        self, *, baseline_checks: int = 200, min_drop: float = 0.1, false_alarm_checks: float = 1_000_000, max_keys: int = 10_000,
    ) -> None:
        self.baseline_checks = baseline_checks
        self.min_drop = min_drop
        self.false_alarm_checks = false_alarm_checks
        self.max_keys = max_keys
        self.evicted = 0
        """Keys dropped to stay under ``max_keys`` (their statistics restart if they come back)."""
        self.disarmed = 0
        """Keys whose baseline pass rate is too low to detect a drop of ``min_drop``."""
        self._states: OrderedDict[Hashable, _State] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: ValidatorsSettings) -> PassRateDetector:
        return cls(
            baseline_checks=settings.baseline_checks, min_drop=settings.min_drop,
            false_alarm_checks=settings.false_alarm_checks, max_keys=settings.max_keys,
        )

    def observe(
        self, key: PassRateKey, passed: bool, end_time_ns: int, trace_id: int | str | None = None,
    ) -> PassRateAlert | PassRateRecovery | None:
        """Feed one validator result; returns the alert or recovery it caused, else ``None``."""
        try:
            with self._lock:
                state = self._states.get(key)
                if state is None:
                    state = self._new_state(key)
                else:
                    self._states.move_to_end(key)
                return self._step(key, state, not passed, int(end_time_ns or 0), trace_id)
        except Exception:  # never into the app
            logger.exception("pass-rate detector failed on one result")
            return None

    def _new_state(self, key: Hashable) -> _State:
        while len(self._states) >= self.max_keys:
            self._states.popitem(last=False)
            self.evicted += 1
        state = self._states[key] = _State()
        return state

    def _step(
        self, key: PassRateKey, state: _State, failed: bool, time_ns: int, trace_id: int | str | None,
    ) -> PassRateAlert | PassRateRecovery | None:
        state.checks += 1
        state.failures += failed
        design = state.design
        if design is None:  # still learning the baseline
            if not failed:
                state.before.append(_trace_hex(trace_id))
            if state.checks >= self.baseline_checks:
                state.design = self._arm(key, state)
            return None
        if design is _DISARMED:
            return None
        if state.alert is not None:
            return self._watch_recovery(key, state, design, failed, time_ns, trace_id)
        previous = state.statistic
        statistic = previous + design.up if failed else max(0, previous - design.down)
        state.statistic = statistic
        if previous == 0 and statistic > 0:  # a run-up starts: the change-point candidate
            state.change_checks = state.checks - 1
            state.change_failures = state.failures - 1
            state.change_time = time_ns
            state.change_trace = _trace_hex(trace_id)
            state.after = [state.change_trace]
        elif statistic > 0 and failed and len(state.after) < EXAMPLES:
            state.after.append(_trace_hex(trace_id))
        elif statistic == 0:
            if not failed:
                state.before.append(_trace_hex(trace_id))
            if state.checks >= state.refit_at:  # more in-control data: a tighter estimate of p0
                state.design = self._arm(key, state)
            return None
        if statistic < design.threshold:
            return None
        checks_after = state.checks - state.change_checks
        failures_after = state.failures - state.change_failures
        state.alert = PassRateAlert(
            feature=key[0], validator=key[1], start_time_ns=state.change_time, first_trace_id=state.change_trace,
            alert_time_ns=time_ns,
            pass_rate_before=_rate(state.change_checks - state.change_failures, state.change_checks),
            pass_rate_after=_rate(checks_after - failures_after, checks_after),
            checks_before=state.change_checks, checks_after=checks_after, failures_after=failures_after,
            baseline_pass_rate=state.baseline, example_trace_ids_before=tuple(state.before),
            example_trace_ids_after=tuple(state.after), false_alarm_checks=design.arl0,
        )
        state.recovery = 0
        return state.alert

    def _watch_recovery(
        self, key: PassRateKey, state: _State, design: ChartDesign, failed: bool, time_ns: int, trace_id: int | str | None,
    ) -> PassRateRecovery | None:
        state.recovery = max(0, state.recovery - design.up) if failed else state.recovery + design.down
        if state.recovery < design.threshold:
            return None
        alert = state.alert
        assert alert is not None
        during = state.checks - state.change_checks
        recovery = PassRateRecovery(
            feature=key[0], validator=key[1], time_ns=time_ns, trace_id=_trace_hex(trace_id),
            start_time_ns=alert.start_time_ns, alert_time_ns=alert.alert_time_ns,
            pass_rate_during=_rate(during - (state.failures - state.change_failures), during), checks_during=during,
        )
        state.alert = None
        state.statistic = state.recovery = 0
        state.checks = state.failures = 0  # a new segment starts
        state.after = []
        state.before.clear()
        return recovery

    def _arm(self, key: PassRateKey, state: _State) -> ChartDesign:
        """Design the chart from the baseline: p0 = Wilson upper bound of the failure rate, rounded up to the grid."""
        n, failures = state.checks, state.failures
        rate = failures / n
        state.baseline = 1.0 - rate
        state.refit_at = 2 * n if n < self.baseline_checks * REFITS else 1 << 62
        z2 = _Z * _Z
        upper = (rate + z2 / (2 * n) + _Z * math.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n))) / (1 + z2 / n)
        p0 = _P0_FLOOR * _GRID_STEP ** math.ceil(math.log(max(upper, _P0_FLOOR) / _P0_FLOOR) / math.log(_GRID_STEP) - 1e-9)
        p1 = p0 + self.min_drop
        if p1 >= 0.995:
            self.disarmed += 1
            logger.warning(
                "validator %r fails %.1f%% of %d baseline checks for feature %r: too often to detect a further drop of %g; not monitored",
                key[1], 100 * rate, n, key[0], self.min_drop,
            )
            return _DISARMED
        return cached_design(round(p0, 12), round(p1, 12), float(self.false_alarm_checks))

    # --- introspection ------------------------------------------------------------------------------

    def active_alerts(self) -> list[PassRateAlert]:
        """Open episodes (for a gauge, or a report)."""
        with self._lock:
            return [state.alert for state in self._states.values() if state.alert is not None]

    def status(self, key: PassRateKey) -> dict[str, object] | None:
        """Where a key stands: ``phase`` (baseline / monitoring / alerting / disarmed), checks, statistic."""
        with self._lock:
            state = self._states.get(key)
            if state is None:
                return None
            design = state.design
            phase = "baseline" if design is None else "disarmed" if design is _DISARMED else "alerting" if state.alert else "monitoring"
            return {
                "phase": phase, "checks": state.checks, "failures": state.failures, "statistic": state.statistic,
                "threshold": None if design is None else design.threshold, "design": design,
            }

    def reset(self, key: PassRateKey | None = None) -> None:
        """Forget one key (or all): its baseline is learned again, e.g. after an accepted behaviour change."""
        with self._lock:
            if key is None:
                self._states.clear()
            else:
                self._states.pop(key, None)

    def __len__(self) -> int:
        return len(self._states)
