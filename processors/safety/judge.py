"""The sampled LLM safety judge: a pluggable callable run on the background worker, never the app thread.

A judge is any ``(prompt: str | None, output: str) -> JudgeVerdict``. ``judge.callable`` picks it:
``default`` (an OpenAI-compatible model, see `openai_judge`), ``none``, or ``module:function``.

Its verdict is recorded against the original span, which has already ended and cannot change: the
runner emits a span ``evaluate safety_judge`` whose parent *and* link are the original span (same
trace, so trace views show the verdict under the call), with the semconv ``gen_ai.evaluation.*``
attributes and a ``llm_telemetry.safety.judge_verdict`` event. The judge's own LLM call is
instrumented too (its cost is real and attributed to feature ``safety_judge``); an OpenTelemetry
context flag set around it tells the safety enricher not to screen or judge the judge.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry import context, trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a
from llm_telemetry.attribution import attribute
from llm_telemetry.config import ConfigError, JudgeSettings, env_var
from llm_telemetry.processors.safety.report import SafetyStats, normalize_category
from llm_telemetry.processors.safety.review_queue import NewReviewItem, ReviewQueue

logger = logging.getLogger(__name__)

JUDGE_NAME = "safety_judge"
SPAN_NAME = f"evaluate {JUDGE_NAME}"
LABEL_UNSAFE = "unsafe"
LABEL_SAFE = "safe"
_MASK_64 = (1 << 64) - 1
_JUDGING = context.create_key("llm_telemetry.safety.judging")


@dataclass(frozen=True, slots=True)
class JudgeVerdict:
    """A judge's answer. ``score`` is the judge's confidence that the output is unsafe, 0..1."""

    flagged: bool
    category: str | None = None
    score: float | None = None
    explanation: str | None = None


JudgeFn = Callable[[str | None, str], JudgeVerdict]


def in_judge() -> bool:
    """True inside a judge call: spans ending here are the judge's own and are not screened or judged."""
    return bool(context.get_value(_JUDGING))


def sampled(trace_id: int, rate: float) -> bool:
    """Deterministic by trace id (its low 64 bits, like the SDK's ratio sampler): a trace is judged whole or not."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return (trace_id & _MASK_64) < int(rate * (1 << 64))


def load_judge(settings: JudgeSettings) -> JudgeFn | None:
    """The judge ``judge.callable`` names (validated even when unused); ``None`` if ``none`` or ``sample_rate`` is 0."""
    spec = settings.callable.strip()
    origin = f"judge.callable = {spec!r} ({env_var('judge', 'callable')})"
    if spec == "none":
        return None
    if spec == "default":
        from llm_telemetry.processors.safety.openai_judge import OpenAIJudge

        judge = OpenAIJudge.from_settings(settings)  # validates the prompt file; the client is made on first use
        return judge if settings.sample_rate > 0 else None
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise ConfigError(f"{origin}: expected default, none or module:function")
    try:
        target: object = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"{origin}: cannot import module {module_name!r}: {exc}") from None
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(f"{origin}: module {module_name!r} has no attribute {attr_path!r}") from None
    if not callable(target):
        raise ConfigError(f"{origin}: {attr_path!r} is a {type(target).__name__}, not a callable")
    return None if settings.sample_rate <= 0 else target  # type: ignore[return-value]


class JudgeRunner:
    """Runs a judge for one output and records the verdict (span, event, metric, review queue)."""

    def __init__(
        self, judge: JudgeFn, tracer: Tracer, stats: SafetyStats, queue: ReviewQueue | None, *, capture_content: bool,
    ) -> None:
        self._judge = judge
        self._tracer = tracer
        self._stats = stats
        self._queue = queue
        self._capture = capture_content

    def run(self, original: SpanContext, model: str | None, response_id: str | None, prompt: str | None, output: str) -> None:
        """Judge ``output``; runs on the background worker. Failures are logged and counted, never raised."""
        parent = trace.set_span_in_context(NonRecordingSpan(original))
        token = context.attach(context.set_value(_JUDGING, True, parent))
        try:
            start: dict[str, AttributeValue] = {a.EVALUATION_NAME: JUDGE_NAME}
            if response_id:
                start[a.RESPONSE_ID] = response_id
            with self._tracer.start_as_current_span(
                SPAN_NAME, kind=SpanKind.INTERNAL, links=[Link(original)], attributes=start,
                record_exception=False, set_status_on_exception=False,
            ) as span:
                verdict = self._call(span, prompt, output)
                if verdict is not None:
                    self._record(span, verdict, original, model, prompt, output)
        finally:
            context.detach(token)

    def _call(self, span: trace.Span, prompt: str | None, output: str) -> JudgeVerdict | None:
        try:
            with attribute(feature=JUDGE_NAME):
                verdict = self._judge(prompt, output)
            if not isinstance(verdict, JudgeVerdict):
                raise TypeError(f"the safety judge returned {type(verdict).__name__}, expected JudgeVerdict")
            return verdict
        except Exception as exc:
            # Only the type: messages of SDK errors may quote request details or a masked key.
            error_type = type(exc).__qualname__
            logger.warning("llm-telemetry safety judge failed (%s); the output stays unjudged", error_type)
            span.set_status(Status(StatusCode.ERROR, error_type))
            span.set_attribute(a.ERROR_TYPE, error_type)
            self._stats.record_verdict(None, None, error_type)
            return None

    def _record(
        self, span: trace.Span, verdict: JudgeVerdict, original: SpanContext, model: str | None, prompt: str | None, output: str,
    ) -> None:
        category = normalize_category(verdict.category) if verdict.flagged else None
        attrs: dict[str, AttributeValue] = {
            a.EVALUATION_SCORE_LABEL: LABEL_UNSAFE if verdict.flagged else LABEL_SAFE,
            a.SAFETY_JUDGE_FLAGGED: verdict.flagged,
        }
        if verdict.score is not None:
            attrs[a.EVALUATION_SCORE_VALUE] = verdict.score
        if category is not None:
            attrs[a.SAFETY_JUDGE_CATEGORY] = category
        span.add_event(a.EVENT_JUDGE_VERDICT, attrs)
        if verdict.explanation and self._capture:  # it may quote the output
            attrs[a.EVALUATION_EXPLANATION] = verdict.explanation
        span.set_attributes(attrs)
        self._stats.record_verdict(verdict.flagged, verdict.category)
        if verdict.flagged and self._queue is not None:
            self._queue.add(NewReviewItem(
                trace_id=format(original.trace_id, "032x"), span_id=format(original.span_id, "016x"), model=model,
                source="judge", action="flag", categories=(category or "unspecified",), score=verdict.score,
                explanation=verdict.explanation if self._capture else None,
                prompt=prompt if self._capture else None, output=output if self._capture else None,
            ))
