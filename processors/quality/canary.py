"""Canaries: a golden dataset run on a schedule, compared with the last good run, alerting on a drop.

Each run is an ordinary evaluation (`evaluate`: spans, events, metrics). It is then compared case by
case with the *last good run* kept in a JSON state file: a case *changed* when it passed then and fails
now, or its score fell by more than ``tolerance``. No changed case → the run is good and becomes the
new last good run (the first run is the baseline). Changed cases → an alert naming each case, its
expected answer and what came back (and what the last good run said): a WARN log record in the run's
trace (event ``llm_telemetry.canary.regression``), ``llm_telemetry.canary.alerts`` +1,
``llm_telemetry.canary.regressed`` = 1, and the same text on the console. One alert per episode: the
next bad runs alert again only if the set of changed cases changes; the first good run after an alert
logs ``llm_telemetry.canary.recovered`` and sets the gauge back to 0.

The state lives where the canary runs (one process per dataset and model): the baseline is exact there,
and Prometheus can alert across canaries from the two metrics.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from opentelemetry import metrics, trace
from opentelemetry._logs import LogRecord, SeverityNumber, get_logger_provider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from llm_telemetry import __version__
from llm_telemetry import attributes as a
from llm_telemetry.config import Settings, get_settings
from llm_telemetry.processors.quality.checks import quote
from llm_telemetry.processors.quality.eval_report import EvalReport

logger = logging.getLogger(__name__)

SCOPE = "llm_telemetry.quality.canary"
STATE_VERSION = 1


class CanaryStateError(ValueError):
    """The state file cannot be used; the message names it."""


@dataclass(frozen=True)
class CaseChange:
    case_id: str
    expected: str | None
    got: str | None
    last_good_output: str | None
    score_before: float
    score_after: float
    failed_checks: tuple[str, ...]
    reason: str
    """The failing checks' explanations, or the target's error."""

    def describe(self, *, content: bool = True) -> str:
        text = f"{self.case_id}: score {self.score_before:.2f} -> {self.score_after:.2f}"
        if self.failed_checks:
            text += f", failed {', '.join(self.failed_checks)}"
        if content:
            text += f"; expected {quote(self.expected)}, got {quote(self.got)}"
            if self.last_good_output != self.got:
                text += f" (last good run: {quote(self.last_good_output)})"
        return text


@dataclass
class CanaryOutcome:
    report: EvalReport
    changes: list[CaseChange]
    baseline_time: str | None
    """When the last good run compared against ran (ISO 8601), None for the first run."""
    alerted: bool = False
    recovered: bool = False

    @property
    def regressed(self) -> bool:
        return bool(self.changes)


@dataclass
class CanaryState:
    dataset: str
    target: str
    last_good: dict[str, Any] | None = None
    last_run: dict[str, Any] | None = None
    alerting: bool = False
    alerted_cases: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path, dataset: str, target: str) -> CanaryState:
        if not path.exists():
            return cls(dataset, target)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CanaryStateError(f"canary state {path}: cannot read it ({exc}); delete it or pass another --state") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise CanaryStateError(
                f"canary state {path}: not a version-{STATE_VERSION} canary state file; delete it or pass another --state"
            )
        if data.get("dataset") != dataset:
            raise CanaryStateError(
                f"canary state {path} belongs to dataset {data.get('dataset')!r}, not {dataset!r}: pass another --state"
            )
        return cls(dataset, str(data.get("target", target)), data.get("last_good"), data.get("last_run"),
                   bool(data.get("alerting")), list(data.get("alerted_cases") or []))

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename): a crash mid-write must not lose the last good run."""
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "version": STATE_VERSION, "dataset": self.dataset, "target": self.target, "last_good": self.last_good,
            "last_run": self.last_run, "alerting": self.alerting, "alerted_cases": self.alerted_cases,
        }
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def snapshot(report: EvalReport) -> dict[str, Any]:
    """What the state file keeps of a run: per case pass/score/output, enough to name what changed."""
    return {
        "time": datetime.fromtimestamp(report.started_at, UTC).isoformat(timespec="seconds"),
        "trace_id": report.trace_id, "pass_rate": report.pass_rate, "score": report.score,
        "cases": {
            c.case_id: {"passed": c.passed, "score": c.score, "output": c.output, "expected": c.expected, "error": c.error}
            for c in report.cases
        },
    }


def compare(last_good: dict[str, Any], report: EvalReport, tolerance: float) -> list[CaseChange]:
    """Cases of ``report`` that passed in ``last_good`` and fail now, or lost more than ``tolerance`` of score."""
    before = last_good.get("cases") or {}
    changes = []
    for case in report.cases:
        old = before.get(case.case_id)
        if not isinstance(old, dict):
            continue  # a case added since the last good run has no baseline yet
        was_passed, was_score = bool(old.get("passed")), float(old.get("score", 0.0))
        if (was_passed and not case.passed) or case.score < was_score - tolerance:
            failed = tuple(c.name for c in case.checks if not c.passed)
            changes.append(CaseChange(
                case.case_id, case.expected, case.output if case.error is None else f"error: {case.error}", old.get("output"),
                was_score, case.score, failed, case.failure(),
            ))
    return changes


class Canary:
    """Runs ``run_eval() -> EvalReport`` and keeps the comparison state in ``state_path``."""

    def __init__(
        self, run_eval: Callable[[], EvalReport], dataset: str, target: str, state_path: Path, *, tolerance: float = 0.1,
        settings: Settings | None = None, meter_provider: Any | None = None, logger_provider: Any | None = None,
        out: IO[str] | None = None,
    ) -> None:
        self.run_eval = run_eval
        self.dataset = dataset
        self.target = target
        self.state_path = state_path
        self.tolerance = tolerance
        self.content = (settings or get_settings()).eval.export_explanations
        self.out = out if out is not None else sys.stdout
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(SCOPE, __version__)
        self._alerts = meter.create_counter(
            a.METRIC_CANARY_ALERTS, unit="{alert}", description="Canary alerts: a run that dropped versus the last good run.",
        )
        self._regressed = meter.create_gauge(
            a.METRIC_CANARY_REGRESSED, unit="1", description="1 while the canary's latest run is worse than its last good run, else 0.",
        )
        self._logger = (logger_provider or get_logger_provider()).get_logger(SCOPE, __version__)
        CanaryState.load(state_path, dataset, target)  # fail fast on a bad state file, before the first run

    def run_once(self) -> CanaryOutcome:
        state = CanaryState.load(self.state_path, self.dataset, self.target)
        report = self.run_eval()
        run = snapshot(report)
        state.last_run = run
        attrs = {a.EVAL_DATASET: self.dataset}
        if state.last_good is None:
            state.last_good = run
            outcome = CanaryOutcome(report, [], None)
            self._say(f"canary {self.dataset}: first run, baseline recorded (pass rate {report.pass_rate:.1%}) in {self.state_path}")
        else:
            changes = compare(state.last_good, report, self.tolerance)
            outcome = CanaryOutcome(report, changes, str(state.last_good.get("time")))
            if changes:
                ids = [c.case_id for c in changes]
                if not state.alerting or sorted(ids) != sorted(state.alerted_cases):
                    self._alert(outcome, state.last_good)
                    outcome.alerted = True
                else:
                    self._say(f"canary {self.dataset}: still {len(ids)} case(s) below the last good run (alert already raised)")
                state.alerting, state.alerted_cases = True, ids
            else:
                if state.alerting:
                    self._recovered(outcome)
                    outcome.recovered = True
                else:
                    self._say(f"canary {self.dataset}: ok, pass rate {report.pass_rate:.1%} (last good run {outcome.baseline_time})")
                state.last_good, state.alerting, state.alerted_cases = run, False, []
        self._regressed.set(1 if outcome.regressed else 0, attrs)
        state.save(self.state_path)
        return outcome

    def run_forever(self, every_s: float, stop: threading.Event, *, on_error: Callable[[Exception], None] | None = None) -> None:
        """``run_once`` every ``every_s`` (fixed rate; a run longer than the period delays the next) until ``stop``."""
        next_at = time.monotonic()
        while not stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # a broken run (state file unwritable, …) is reported; the schedule goes on
                logger.error("llm-telemetry canary %s: run failed: %s", self.dataset, exc, exc_info=True)
                if on_error is not None:
                    on_error(exc)
            next_at += every_s
            now = time.monotonic()
            if next_at < now:
                skipped = int((now - next_at) // every_s) + 1
                logger.warning("llm-telemetry canary %s: a run took longer than --every; skipping %d slot(s)", self.dataset, skipped)
                next_at += skipped * every_s
            stop.wait(next_at - now)

    # --- reporting ----------------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _alert(self, outcome: CanaryOutcome, last_good: dict[str, Any]) -> None:
        before, after = float(last_good.get("pass_rate", 0.0)), outcome.report.pass_rate
        lines = [
            f"llm-telemetry canary ALERT: {self.dataset} ({self.target}) dropped versus the last good run of "
            f"{outcome.baseline_time}: pass rate {before:.1%} -> {after:.1%}, {len(outcome.changes)} case(s) changed:"
        ]
        lines += [f"  - {c.describe(content=self.content)}" for c in outcome.changes]
        if outcome.report.trace_id:
            lines.append(f"  trace {outcome.report.trace_id}")
        message = "\n".join(lines)
        self._say(message)  # the console; the OTel log record below is what reaches a backend
        self._alerts.add(1, {a.EVAL_DATASET: self.dataset})
        self._emit(outcome.report, a.EVENT_CANARY_REGRESSION, SeverityNumber.WARN, message, {
            a.CANARY_CHANGED_CASES: [c.case_id for c in outcome.changes], a.CANARY_PASS_RATE_BEFORE: before,
            a.CANARY_PASS_RATE_AFTER: after, a.CANARY_LAST_GOOD_TIME: outcome.baseline_time or "",
        })

    def _recovered(self, outcome: CanaryOutcome) -> None:
        message = f"llm-telemetry canary recovered: {self.dataset} ({self.target}) is back to pass rate {outcome.report.pass_rate:.1%}"
        self._say(message)
        self._emit(outcome.report, a.EVENT_CANARY_RECOVERED, SeverityNumber.INFO, message,
                   {a.CANARY_PASS_RATE_AFTER: outcome.report.pass_rate})

    def _emit(self, report: EvalReport, event: str, severity: SeverityNumber, body: str, extra: dict[str, Any]) -> None:
        ctx = None
        if report.trace_id and report.span_id:
            span_context = SpanContext(int(report.trace_id, 16), int(report.span_id, 16), is_remote=False,
                                       trace_flags=TraceFlags(TraceFlags.SAMPLED))
            ctx = trace.set_span_in_context(NonRecordingSpan(span_context))
        try:
            self._logger.emit(LogRecord(
                timestamp=time.time_ns(), context=ctx, severity_number=severity, severity_text=severity.name, body=body,
                attributes={a.EVAL_DATASET: self.dataset, **extra}, event_name=event,
            ))
        except Exception:  # telemetry failure must not stop the canary; the console already has the alert
            logger.warning("llm-telemetry canary: could not emit the %s log record", event, exc_info=True)
