"""The quality enricher: every quality signal taken from one call record, inline or on its own lane.

Inline, on the thread that finished the call (~15 µs with the default date validator):
- the prompt fingerprint (loop detection) and the feedback tracker's note of the call (ties later
  feedback to it by response id);
- the model-version watch (a new response model, ``system_fingerprint`` or id shape after the baseline);
- the validators: one ``gen_ai.evaluation.result`` event per result, ``llm_telemetry.validation.checks``
  by feature, validator and label, and the calibrated pass-rate drop detector.
On background lanes (design note: a slow consumer must not starve another):
- ``quality``: output statistics with their change detectors (~17 µs a call, plus a one-off calibration
  per key that can take tens of milliseconds);
- ``drift``: embeddings and the ERT-calibrated online MMD (batched).
Alerts from all of them go through one `AlertBook`: a log record in the deciding call's trace, the
``llm_telemetry.quality.alerts`` metrics, a span event when decided inline, and a log line.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence

from opentelemetry.metrics import Observation
from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a
from llm_telemetry.processors.base import EnricherContext, Enrichment, EnrichmentEvent
from llm_telemetry.processors.metrics import Tally
from llm_telemetry.processors.quality import decisions
from llm_telemetry.processors.quality.alerts import Alert, AlertBook
from llm_telemetry.processors.quality.background import DriftRunner, OutputStatsRunner
from llm_telemetry.processors.quality.drift_baseline import BaselineInfo
from llm_telemetry.processors.quality.feedback import current_feedback_tracker
from llm_telemetry.processors.quality.model_watch import ModelWatch
from llm_telemetry.processors.quality.pass_rate import PassRateDetector
from llm_telemetry.processors.quality.validator_set import ValidatorSet
from llm_telemetry.record import GenAICall

logger = logging.getLogger(__name__)

_FINGERPRINT_PERSON = b"llm-telemetry"


def quality_alerts() -> list[Alert]:
    """The quality alerts firing now in this process (the default chain's alert book); [] without one."""
    from llm_telemetry.processors.chain import default_chain

    chain = default_chain()
    quality = next((e for e in chain.enrichers if isinstance(e, QualityEnricher)), None) if chain is not None else None
    return quality.alerts.active() if quality is not None else []


def set_drift_baseline(feature: str, model: str, texts: Sequence[str], *, timeout_s: float = 60.0) -> BaselineInfo:
    """Make ``texts`` (known-good outputs) the drift reference of ``feature`` on (requested) ``model`` now.

    The other ways to a reference: the first ``drift.reference_size`` outputs after start, or a file in
    ``LLM_TELEMETRY_DRIFT_BASELINE_DIR``. Runs on the drift lane; waits up to ``timeout_s`` for the
    embedding and the calibration. Raises `ValueError` for too few texts, `RuntimeError` without drift.
    """
    from llm_telemetry.processors.chain import default_chain

    chain = default_chain()
    quality = next((e for e in chain.enrichers if isinstance(e, QualityEnricher)), None) if chain is not None else None
    if quality is None or quality.drift is None:
        raise RuntimeError("drift is not running (LLM_TELEMETRY_DRIFT_ENABLED, or the quality enricher is off)")
    return quality.drift.set_baseline((feature, model), texts).result(timeout_s)


def prompt_fingerprint(text: str | None) -> str | None:
    """A 64-bit hash of the prompt text (system + messages), or None without one.

    Not a secret-keeping device: equal prompts give equal fingerprints (that is the point: loop detection),
    so a guessed short prompt can be confirmed. It never carries the prompt itself.
    """
    if not text:
        return None
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8, person=_FINGERPRINT_PERSON).hexdigest()


class QualityEnricher:
    """Adds quality attributes and events to each GenAI call and feeds the quality metrics and alerts."""

    name = "quality"

    def __init__(
        self,
        alerts: AlertBook | None = None,
        *,
        validators: ValidatorSet | None = None,
        pass_rate: PassRateDetector | None = None,
        watch: ModelWatch | None = None,
        stats: OutputStatsRunner | None = None,
        drift: DriftRunner | None = None,
        checks: Tally | None = None,
        remember_calls: bool = True,
    ) -> None:
        self.alerts = alerts if alerts is not None else AlertBook()
        self.validators = validators
        self.pass_rate = pass_rate
        self.watch = watch
        self.stats = stats
        self.drift = drift
        self._checks = checks if checks is not None else Tally(None, a.METRIC_VALIDATION_CHECKS, "{check}", "")
        self._remember = remember_calls

    @classmethod
    def from_context(cls, context: EnricherContext) -> QualityEnricher:
        """Build from settings; a bad validators file raises `ConfigError` (it costs only this enricher)."""
        settings, meter = context.settings, context.meter
        book = AlertBook(meter)
        validators = ValidatorSet.from_settings(settings)
        checks = Tally(meter, a.METRIC_VALIDATION_CHECKS, "{check}",
                       "Validator results on GenAI outputs, by feature, validator and label (pass/fail): the pass rate.")
        errors = validators
        meter.create_observable_counter(
            a.METRIC_VALIDATION_ERRORS, unit="{error}", description="Validator calls that raised, by validator.",
            callbacks=[lambda options: [Observation(n, {a.EVALUATION_NAME: name}) for name, n in errors.errors.items()]],
        )
        quality = settings.quality
        stats = OutputStatsRunner.from_settings(settings, context.lane("quality"), book, meter) if quality.stats_enabled else None
        drift = DriftRunner.from_settings(settings, context.lane("drift"), book, meter) if settings.drift.enabled else None
        return cls(
            book, validators=validators if len(validators) else None,
            pass_rate=PassRateDetector.from_settings(settings.validators),
            watch=ModelWatch.from_settings(quality) if quality.watch_enabled else None,
            stats=stats, drift=drift, checks=checks,
        )

    def enrich(self, call: GenAICall, attributes: Mapping[str, AttributeValue], enrichments: Enrichment) -> Enrichment | None:
        out: dict[str, AttributeValue] = {}
        events: list[EnrichmentEvent] = []
        prompt = call.prompt_text  # joined once: the fingerprint and the validators both read it
        fingerprint = prompt_fingerprint(prompt)
        if fingerprint is not None:
            out[a.PROMPT_FINGERPRINT] = fingerprint
        if self._remember and call.source == "llm_telemetry":
            current_feedback_tracker().remember_call(call)
        if call.error_type is None:
            if self.watch is not None:
                for change in self.watch.observe(call):
                    self._emit(events, decisions.model_version_alert(change))
            output = call.output_text
            if output is not None:
                if self.validators is not None:
                    self._validate(call, prompt, output, events)
                if self.stats is not None:
                    self.stats.submit(call)
                if self.drift is not None:
                    self.drift.submit(call)
        if not out and not events:
            return None
        return Enrichment(out, events)

    def _validate(self, call: GenAICall, prompt: str | None, output: str, events: list[EnrichmentEvent]) -> None:
        assert self.validators is not None
        end_ns = call.end_time_ns
        for result in self.validators.run(call.feature, call.model, prompt, output):
            events.append(EnrichmentEvent(a.EVENT_EVALUATION_RESULT, result.event_attributes(), end_ns))
            tally: dict[str, AttributeValue] = {a.EVALUATION_NAME: result.validator, a.EVALUATION_SCORE_LABEL: result.label}
            if call.feature:
                tally[a.FEATURE] = call.feature
            self._checks.add(tally)
            if self.pass_rate is not None and end_ns is not None:
                decision = self.pass_rate.observe((call.feature, result.validator), result.passed, end_ns, call.trace_id)
                if decision is not None:
                    self._emit(events, decisions.pass_rate_alert(decision, call.trace_id, call.span_id))

    def _emit(self, events: list[EnrichmentEvent], alert: decisions.Alert) -> None:
        event = self.alerts.emit(alert)
        if event is not None:
            events.append(event)

    def flush_pending(self) -> None:
        """Embed what the drift monitor still holds (end of a run, shutdown): queued on its lane."""
        if self.drift is not None:
            self.drift.flush()

    def dropped_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for runner in (self.stats, self.drift):
            if runner is not None:
                for reason, count in runner.dropped_counts().items():
                    counts[reason] = counts.get(reason, 0) + count
        return counts

