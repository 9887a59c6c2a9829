"""Each detector's decision as one `Alert`: the same shape for the on-call engineer, whoever raised it.

Alert names (``llm_telemetry.alert.name``, the ``alert_name`` label of ``llm_telemetry.quality.alerts``):
``quality.validator_pass_rate``, ``quality.model_version_changed``, ``quality.output_stat``,
``quality.drift``. Keys say where (feature, model, validator or statistic); details carry the detector's
own attributes (before/after values, thresholds) under their full names.
"""

from __future__ import annotations

from llm_telemetry import attributes as a
from llm_telemetry.processors.quality.alerts import Alert, trace_hex
from llm_telemetry.processors.quality.drift_report import DriftAlert, DriftRecovery
from llm_telemetry.processors.quality.model_watch import ModelVersionChange
from llm_telemetry.processors.quality.output_stats import OutputStatChange
from llm_telemetry.processors.quality.pass_rate import PassRateAlert, PassRateRecovery

PASS_RATE = "quality.validator_pass_rate"
MODEL_VERSION = "quality.model_version_changed"
OUTPUT_STAT = "quality.output_stat"
DRIFT = "quality.drift"


def _key(**values: str | None) -> dict[str, str]:
    return {name: value for name, value in values.items() if value}


def pass_rate_alert(decision: PassRateAlert | PassRateRecovery, trace_id: int, span_id: int) -> Alert:
    key = _key(feature=decision.feature, validator=decision.validator)
    if isinstance(decision, PassRateAlert):
        return Alert(
            PASS_RATE, "firing", decision.message(), key, started_ns=decision.start_time_ns, at_ns=decision.alert_time_ns,
            details=decision.attributes(), examples=decision.example_trace_ids_after,
            baseline_examples=decision.example_trace_ids_before, trace_id=trace_id, span_id=span_id,
            event_name=a.EVENT_PASS_RATE_DROP,
        )
    return Alert(
        PASS_RATE, "resolved", decision.message(), key, started_ns=decision.start_time_ns, at_ns=decision.time_ns,
        details=decision.attributes(), trace_id=trace_id, span_id=span_id, event_name=a.EVENT_PASS_RATE_RECOVERED,
    )


def model_version_alert(change: ModelVersionChange) -> Alert:
    return Alert(
        MODEL_VERSION, "firing", change.message(),
        _key(provider=change.provider, model=change.request_model, dimension=change.dimension, value=change.new_value or "<absent>"),
        started_ns=change.first_seen_ns, at_ns=change.first_seen_ns, details=change.attributes(),
        examples=(trace_hex(change.trace_id),), trace_id=change.trace_id, span_id=change.span_id,
        event_name=a.EVENT_MODEL_VERSION_CHANGED, one_shot=True,
    )


def output_stat_alert(change: OutputStatChange) -> Alert:
    key = _key(feature=change.feature, model=change.request_model, statistic=change.statistic)
    firing = change.kind == "alert"
    return Alert(
        OUTPUT_STAT, "firing" if firing else "resolved", change.message(), key, started_ns=change.change_start_ns,
        at_ns=change.detected_ns, details=change.attributes(),
        examples=(trace_hex(change.change_trace_id), trace_hex(change.detected_trace_id)), trace_id=change.detected_trace_id,
        event_name=a.EVENT_OUTPUT_STAT_ALERT if firing else a.EVENT_OUTPUT_STAT_RECOVERED,
    )


def drift_alert(decision: DriftAlert | DriftRecovery) -> Alert:
    feature, model = decision.key
    key = _key(feature=feature, model=model)
    if isinstance(decision, DriftRecovery):
        return Alert(
            DRIFT, "resolved", f"embedding drift ended for feature {feature!r} model {model!r} ({decision.points} outputs back "
            "under the threshold)", key, at_ns=decision.recovered_time_ns, trace_id=decision.recovered_trace_id,
        )
    base, window = decision.baseline, decision.window
    summary = (
        f"embedding drift for feature {feature!r} model {model!r}: MMD² {decision.score:.4g} > threshold "
        f"{decision.threshold:.4g} (calibrated to one false alarm per {decision.ert:g} outputs"
        + (f", permutation p={decision.p_value:.3g}" if decision.p_value is not None else "")
        + f"); baseline {base.source} of {base.size} outputs ({base.embedder}), window of {window.size}"
    )
    details = {
        "score": decision.score, "threshold": decision.threshold, "ert": decision.ert,
        "baseline_source": base.source, "baseline_size": base.size, "window_size": window.size, "embedder": base.embedder,
    }
    if decision.p_value is not None:
        details["p_value"] = decision.p_value
    start = decision.estimated_start_time_ns if decision.estimated_start_time_ns else window.start_time_ns
    return Alert(
        DRIFT, "firing", summary, key, started_ns=start, at_ns=decision.detected_time_ns, details=details,
        examples=tuple(trace_hex(example.trace_id) for example in decision.nearest if example.trace_id),
        trace_id=decision.detected_trace_id,
    )
