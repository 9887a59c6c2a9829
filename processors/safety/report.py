"""Safety counts: in-process totals, the metrics that export them, and the safety report built from them.

Why pre-aggregate (as the cost metrics do): a synchronous ``Counter.add`` in the OpenTelemetry SDK
costs several µs, too much for a screen that runs on every output. The enricher adds into
`SafetyStats` under a lock; observable counters report the totals when a reader collects. The report
(`safety_report`) reads the same totals, so every number in it is also computable from the metrics:

- total screened = sum of ``llm_telemetry.safety.checks``
- hard-blocked = ``llm_telemetry.safety.checks{llm_telemetry.safety.action="block"}``
- judge sampled / flagged = sums of ``llm_telemetry.safety.judge.verdicts`` (by ``.judge.flagged``)
- review queue size = the ``llm_telemetry.review.queue_size`` gauge
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a
from llm_telemetry.config import Settings, get_settings
from llm_telemetry.processors.safety.review_queue import ReviewQueue
from llm_telemetry.processors.safety.screen import CLEAN, ScreenResult

_CATEGORY = re.compile(r"[a-z0-9_]{1,40}")
OTHER_CATEGORY = "other"


def normalize_category(category: str | None) -> str | None:
    """A judge's free-text category as a bounded metric value: lower snake case, else ``other``."""
    if category is None or not category.strip():
        return None
    text = re.sub(r"[\s\-/]+", "_", category.strip().lower())
    return text if _CATEGORY.fullmatch(text) else OTHER_CATEGORY


class SafetyStats:
    """Cumulative safety counts since start-up, keyed by metric attribute sets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clean = 0
        """Outputs screened clean (the common case, counted apart to keep it cheap)."""
        self._checks: dict[tuple[str, str | None], int] = {}
        self._flags: dict[tuple[str, str], int] = {}
        self._verdicts: dict[tuple[bool | None, str | None, str | None], int] = {}
        self._attrs: dict[object, dict[str, AttributeValue]] = {}

    def record_screen(self, result: ScreenResult) -> None:
        """Count one screened output (and its prompt, if screened with it)."""
        if result is CLEAN:
            with self._lock:
                self._clean += 1
            return
        key = (result.action, result.error)
        with self._lock:
            self._checks[key] = self._checks.get(key, 0) + 1
            for flag in result.flags:
                self._flags[flag] = self._flags.get(flag, 0) + 1

    def record_flags(self, flags: Iterable[tuple[str, str]]) -> None:
        """Count (category, action) flags found after the output was counted (deferred screening)."""
        with self._lock:
            for flag in flags:
                self._flags[flag] = self._flags.get(flag, 0) + 1

    def record_screen_error(self, error: str) -> None:
        key = ("error", error)
        with self._lock:
            self._checks[key] = self._checks.get(key, 0) + 1

    def record_verdict(self, flagged: bool | None, category: str | None, error_type: str | None = None) -> None:
        """Count one judge outcome: a verdict (``flagged`` set) or a failure (``error_type`` set)."""
        key = (flagged, normalize_category(category) if flagged else None, error_type)
        with self._lock:
            self._verdicts[key] = self._verdicts.get(key, 0) + 1

    def totals(self) -> dict[str, int]:
        with self._lock:
            checks = self._all_checks()
            verdicts = dict(self._verdicts)
        return {
            "total": sum(checks.values()),
            "hard_blocked": sum(n for (action, _), n in checks.items() if action == "block"),
            "flagged": sum(n for (action, _), n in checks.items() if action == "flag"),
            "screen_errors": sum(n for (_, error), n in checks.items() if error is not None),
            "judge_sampled": sum(verdicts.values()),
            "judge_flagged": sum(n for (flagged, _, _), n in verdicts.items() if flagged),
            "judge_errors": sum(n for (_, _, error), n in verdicts.items() if error is not None),
        }

    def _all_checks(self) -> dict[tuple[str, str | None], int]:
        checks = dict(self._checks)
        if self._clean:
            checks[("none", None)] = checks.get(("none", None), 0) + self._clean
        return checks

    # --- metric callbacks ---------------------------------------------------------------------------

    def _attributes(self, key: object, build: dict[str, AttributeValue | None]) -> dict[str, AttributeValue]:
        attrs = self._attrs.get(key)
        if attrs is None:
            attrs = self._attrs[key] = {k: v for k, v in build.items() if v is not None}
        return attrs

    def observe_checks(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            return [
                Observation(n, self._attributes(("c", *key), {a.SAFETY_ACTION: key[0], a.SAFETY_ERROR: key[1]}))
                for key, n in self._all_checks().items()
            ]

    def observe_flags(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            return [
                Observation(n, self._attributes(("f", *key), {a.SAFETY_CATEGORY: key[0], a.SAFETY_ACTION: key[1]}))
                for key, n in self._flags.items()
            ]

    def observe_verdicts(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            return [
                Observation(n, self._attributes(
                    ("v", *key), {a.SAFETY_JUDGE_FLAGGED: key[0], a.SAFETY_JUDGE_CATEGORY: key[1], a.ERROR_TYPE: key[2]},
                ))
                for key, n in self._verdicts.items()
            ]


_current = SafetyStats()


def current_stats() -> SafetyStats:
    """The counts of the most recently built safety enricher (what `safety_report` reads by default)."""
    return _current


def new_current_stats() -> SafetyStats:
    """Fresh counts for a newly built enricher, made the ones `safety_report` reads.

    One process normally builds one pipeline; a rebuilt pipeline (tests, re-configuration) starts from
    zero, like the metrics its new meter exports.
    """
    global _current
    _current = SafetyStats()
    return _current


def register_metrics(meter: Meter, stats: SafetyStats, queue: ReviewQueue | None) -> None:
    """Create the safety instruments on ``meter``, reading ``stats`` (and ``queue``) when collected."""
    meter.create_observable_counter(
        a.METRIC_SAFETY_CHECKS, callbacks=[stats.observe_checks], unit="{output}",
        description="GenAI outputs screened for safety, by strongest action (none, flag, block) and screen error.",
    )
    meter.create_observable_counter(
        a.METRIC_SAFETY_FLAGS, callbacks=[stats.observe_flags], unit="{output}",
        description="Screened outputs that matched a safety pattern, by category and the pattern's action.",
    )
    meter.create_observable_counter(
        a.METRIC_JUDGE_VERDICTS, callbacks=[stats.observe_verdicts], unit="{verdict}",
        description="LLM safety judge outcomes, by flagged and category; failures by error.type.",
    )
    if queue is not None:

        def observe_queue(options: CallbackOptions) -> Iterable[Observation]:
            try:
                return [Observation(queue.count("open"))]
            except Exception:  # a locked or unreadable file must not break metric collection
                return []

        meter.create_observable_gauge(
            a.METRIC_REVIEW_QUEUE_SIZE, callbacks=[observe_queue], unit="{item}",
            description="Open items in the human safety review queue.",
        )


def safety_report(settings: Settings | None = None, stats: SafetyStats | None = None) -> dict[str, Any]:
    """The safety report: counts, rates, review queue size and alerts, since start-up.

    ``flagged`` counts outputs whose strongest action was *flag* (blocked ones are in ``hard_blocked``);
    ``judge_flag`` is a rate over the judged sample, i.e. an estimate of the share of all outputs the
    judge would flag. An alert is raised when the hard-block rate passes ``safety.block_rate_alert``.
    """
    settings = settings or get_settings()
    totals = (stats or _current).totals()
    total, judged = totals["total"], totals["judge_sampled"]
    rates = {
        "hard_block": totals["hard_blocked"] / total if total else 0.0,
        "flag": totals["flagged"] / total if total else 0.0,
        "judge_flag": totals["judge_flagged"] / judged if judged else 0.0,
    }
    queue = ReviewQueue(settings.review.db_path)
    try:
        queue_size: int | None = queue.count("open")
    except Exception:  # sqlite3.Error, OSError: report what is known
        queue_size = None
    finally:
        queue.close()
    alerts: list[str] = []
    threshold = settings.safety.block_rate_alert
    if total and rates["hard_block"] > threshold:
        alerts.append(f"hard-block rate {rates['hard_block']:.4%} is above safety.block_rate_alert {threshold:.4%}")
    if totals["screen_errors"]:
        alerts.append(f"{totals['screen_errors']} screen(s) hit an error (see llm_telemetry.safety.error)")
    if totals["judge_errors"]:
        alerts.append(f"{totals['judge_errors']} judge call(s) failed (see llm_telemetry.safety.judge.verdicts by error.type)")
    if queue_size is None:
        alerts.append(f"review queue {settings.review.db_path} could not be read")
    return {**totals, "rates": rates, "review_queue_size": queue_size, "alerts": alerts}
