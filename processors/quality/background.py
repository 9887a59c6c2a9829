"""The quality work that runs on background lanes: output statistics (lane ``quality``) and drift (``drift``).

Each runner owns its detector and touches it only from its lane's one thread (the detectors are not
thread-safe by design: no locks on their hot paths). A call is handed over by reference — the record is
immutable once published — and a full lane drops the work and counts it (``llm_telemetry.dropped``
reasons ``quality_queue_full`` / ``drift_queue_full``, from the lanes themselves). Alerts decided here
have no span to carry an event (the call's span has ended): they go out as log records in the call's
trace, metrics and a log line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a
from llm_telemetry.config import ConfigError, Settings, env_var
from llm_telemetry.processors.lanes import BackgroundWorker
from llm_telemetry.processors.quality import decisions
from llm_telemetry.processors.quality.alerts import AlertBook
from llm_telemetry.processors.quality.drift import DriftConfig, DriftMonitor
from llm_telemetry.processors.quality.drift_baseline import BaselineInfo
from llm_telemetry.processors.quality.embedders import embedder_from_spec
from llm_telemetry.processors.quality.output_stats import OutputStats
from llm_telemetry.record import GenAICall

logger = logging.getLogger(__name__)


class OutputStatsRunner:
    """Feeds `OutputStats` on its lane; alerts through the book; reports each statistic as a gauge."""

    def __init__(self, stats: OutputStats, lane: BackgroundWorker, alerts: AlertBook, meter: Meter | None = None) -> None:
        self.stats = stats
        self._lane = lane
        self._alerts = alerts
        if meter is not None:
            meter.create_observable_gauge(
                a.METRIC_OUTPUT_STAT_VALUE, callbacks=[self._observe], unit="1",
                description="Recent value of each output statistic (mean length, or a rate), per feature and model.",
            )

    @classmethod
    def from_settings(cls, settings: Settings, lane: BackgroundWorker, alerts: AlertBook, meter: Meter | None) -> OutputStatsRunner:
        return cls(OutputStats.from_settings(settings.quality), lane, alerts, meter)

    def submit(self, call: GenAICall) -> None:
        self._lane.submit(lambda: self._run(call))

    def _run(self, call: GenAICall) -> None:
        for change in self.stats.observe_call(call):
            self._alerts.emit(decisions.output_stat_alert(change))

    def dropped_counts(self) -> dict[str, int]:
        return {"quality_output_stats_key_cap": self.stats.dropped_calls}

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        out = []
        for value in self.stats.snapshot():
            attrs: dict[str, AttributeValue] = {a.QUALITY_OUTPUT_STAT_NAME: value.statistic}
            if value.feature:
                attrs[a.FEATURE] = value.feature
            if value.request_model:
                attrs[a.REQUEST_MODEL] = value.request_model
            out.append(Observation(value.recent, attrs))
        return out


class DriftRunner:
    """Feeds the `DriftMonitor` on its lane; alerts through the book; score and threshold as gauges."""

    def __init__(self, monitor: DriftMonitor, lane: BackgroundWorker, alerts: AlertBook, meter: Meter | None = None) -> None:
        self.monitor = monitor
        self._lane = lane
        self._alerts = alerts
        self._latest: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()
        if meter is not None:
            meter.create_observable_gauge(a.METRIC_DRIFT_SCORE, callbacks=[self._observe_score], unit="1",
                                          description="Online MMD² of the recent outputs against the reference, per feature and model.")
            meter.create_observable_gauge(a.METRIC_DRIFT_THRESHOLD, callbacks=[self._observe_threshold], unit="1",
                                          description="ERT-calibrated drift threshold (drift when the score is above it).")

    @classmethod
    def from_settings(cls, settings: Settings, lane: BackgroundWorker, alerts: AlertBook, meter: Meter | None) -> DriftRunner:
        drift = settings.drift
        client = None
        if drift.embedder.startswith("provider"):
            import openai  # the embeddings API through the (instrumented) SDK

            client = openai.OpenAI()
        try:
            embedder = embedder_from_spec(drift.embedder, client=client, origin=env_var("drift", "embedder"))
            config = DriftConfig(reference_size=drift.reference_size, window_size=drift.window_size, ert=drift.ert,
                                 max_keys=drift.max_keys, keep_texts=settings.content.capture.enabled)
        except ValueError as exc:
            raise ConfigError(f"drift: {exc}") from None
        return cls(DriftMonitor(embedder, config, baseline_dir=drift.baseline_dir), lane, alerts, meter)

    def submit(self, call: GenAICall) -> None:
        key = (call.feature or "", call.request_model or call.model or "")
        text, end_ns, trace_id = call.output_text, call.end_time_ns, call.trace_id
        self._lane.submit(lambda: self._handle(self.monitor.observe(key, text, end_ns, trace_id)))

    def flush(self) -> None:
        self._lane.submit(lambda: self._handle(self.monitor.flush()))

    def set_baseline(self, key: tuple[str, str], texts: Sequence[str]) -> Future[BaselineInfo]:
        """Install known-good outputs as ``key``'s reference, on the drift lane (the monitor's one thread).

        The future gives the installed baseline, or the error (too few texts); a full lane refuses at once.
        """
        result: Future[BaselineInfo] = Future()

        def install() -> None:
            try:
                result.set_result(self.monitor.set_baseline(key, list(texts)))
            except Exception as exc:
                result.set_exception(exc)

        if not self._lane.submit(install):
            result.set_exception(RuntimeError("the drift lane is full; try again"))
        return result

    def _handle(self, decided: list) -> None:  # list[DriftDecision]
        for decision in decided:
            if decision.score is not None and decision.threshold is not None:
                with self._lock:
                    self._latest[decision.key] = (decision.score, decision.threshold)
            for outcome in (decision.alert, decision.recovery):
                if outcome is not None:
                    self._alerts.emit(decisions.drift_alert(outcome))

    def dropped_counts(self) -> dict[str, int]:
        stats = self.monitor.stats
        return {"drift_key_evicted": stats.evicted_keys, "drift_embed_failed": stats.embed_failures}

    def _series(self, index: int) -> list[Observation]:
        with self._lock:
            latest = dict(self._latest)
        return [Observation(values[index], {a.FEATURE: feature, a.REQUEST_MODEL: model}) for (feature, model), values in latest.items()]

    def _observe_score(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._series(0)

    def _observe_threshold(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._series(1)
