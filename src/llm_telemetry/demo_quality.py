"""What ``llm-telemetry demo`` prints about the quality layer: the story's regression, found from telemetry.

The source story's team learned of the transposed dates from a compliance audit three months later. The
demo ends with what the on-call engineer would have had on the day: which validator and feature, when it
started (the first affected request), how many outputs were affected, and the model-version change,
each with trace ids to open — and that latency and cost stayed flat meanwhile.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import UTC, datetime

from opentelemetry.sdk.trace import ReadableSpan

from llm_telemetry import attributes as a
from llm_telemetry.processors.quality.alerts import Alert


def _at(ns: int | None) -> str:
    if not ns:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _failed(span: ReadableSpan) -> bool:
    return any(e.name == a.EVENT_EVALUATION_RESULT and (e.attributes or {}).get(a.EVALUATION_SCORE_LABEL) == "fail"
               for e in span.events)


def quality_summary(spans: Sequence[ReadableSpan], history: Sequence[Alert], feature: str) -> list[str]:
    """The lines the demo prints; pure, so a test can check them."""
    calls = sorted((s for s in spans if (s.attributes or {}).get(a.FEATURE) == feature), key=lambda s: s.end_time or 0)
    lines = [f"Quality — feature {feature!r}: {len(calls)} calls"]
    drops = [al for al in history if al.name == "quality.validator_pass_rate" and al.state == "firing"]
    for alert in drops:
        started = alert.started_ns or 0
        after = [s for s in calls if (s.end_time or 0) >= started]
        affected = [s for s in after if _failed(s)]
        detected_at = next((i for i, s in enumerate(calls) if (s.end_time or 0) >= (alert.at_ns or 0)), len(calls) - 1)
        before_alert = sum(1 for s in affected if (s.end_time or 0) <= (alert.at_ns or 0))
        details = alert.details
        lines += [
            f"  ALERT {alert.key.get('validator')} pass rate dropped on feature {alert.key.get('feature')!r}",
            f"    started   {_at(started)}  (first affected request, trace {details.get(a.VALIDATION_FIRST_TRACE_ID, '-')})",
            f"    detected  {_at(alert.at_ns)}  at call {detected_at + 1} of {len(calls)}, after {before_alert} affected outputs",
            f"    pass rate {details.get(a.VALIDATION_PASS_RATE_BEFORE, 0):.1%} before → "
            f"{details.get(a.VALIDATION_PASS_RATE_AFTER, 0):.1%} since the start",
            f"    affected  {len(affected)} of {len(after)} outputs since the start failed the validator",
            f"    examples  {', '.join(alert.examples[:3]) or '-'}",
        ]
    if not drops:
        lines.append("  no validator pass-rate alert")
    for change in (al for al in history if al.name == "quality.model_version_changed"):
        lines.append(
            f"  MODEL VERSION CHANGED {change.key.get('provider')} {change.key.get('model')!r}: "
            f"{change.key.get('dimension')} now {change.key.get('value')!r} "
            f"(before: {', '.join(str(v) for v in change.details.get(a.QUALITY_MODEL_VERSION_PREVIOUS, ())) or '-'}), "
            f"first seen {_at(change.started_ns)}, trace {change.examples[0] if change.examples else '-'}"
        )
    for other in (al for al in history if al.name not in ("quality.validator_pass_rate", "quality.model_version_changed")):
        lines.append(f"  {other.state.upper()} {other.name}: {other.summary}")
    first_change = min((al.started_ns or 0 for al in history if al.name == "quality.model_version_changed"), default=None)
    if first_change:
        before = [s for s in calls if (s.end_time or 0) < first_change]
        after = [s for s in calls if (s.end_time or 0) >= first_change]
        if before and after:
            lines.append(
                "  meanwhile latency and cost stayed flat: median "
                f"{_median_ms(before):.1f} ms → {_median_ms(after):.1f} ms per call, "
                f"${_mean_cost(before):.6f} → ${_mean_cost(after):.6f} per call — only content monitoring saw it"
            )
    return lines


def _median_ms(spans: Sequence[ReadableSpan]) -> float:
    return statistics.median(((s.end_time or 0) - (s.start_time or 0)) / 1e6 for s in spans)


def _mean_cost(spans: Sequence[ReadableSpan]) -> float:
    costs = [float(s.attributes.get(a.COST_TOTAL_USD, 0.0)) for s in spans if s.attributes]
    return statistics.fmean(costs) if costs else 0.0
