"""The safety enricher: screens every GenAI output (and optionally prompt), samples outputs for the judge.

Inline (on the thread that finished the call) it only runs the compiled RE2 screen and counts; writing
to the review queue and calling the judge go to their own background lanes (``review``, ``judge``), so a
slow judge never delays review writes or quality work. The matched text
goes on the span (``llm_telemetry.safety.matches``) only when content capture is on; the span never
carries it otherwise, whatever matched. It never changes what the SDK returned: apps that want to
refuse an output call `llm_telemetry.guard` themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial

from opentelemetry import trace
from opentelemetry.trace import SpanContext, TraceFlags
from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a
from llm_telemetry.processors.base import BackgroundWorker, EnricherContext, Enrichment
from llm_telemetry.processors.safety.judge import JudgeRunner, in_judge, load_judge, sampled
from llm_telemetry.processors.safety.report import SafetyStats, new_current_stats, register_metrics
from llm_telemetry.processors.safety.review_queue import NewReviewItem, ReviewQueue, ReviewWriter
from llm_telemetry.processors.safety.screen import CLEAN, Screen, ScreenPlan, ScreenResult, plan_screen, screen_for
from llm_telemetry.record import GenAICall

logger = logging.getLogger(__name__)

DROP_REVIEW_ITEM = "safety_review_item"
"""``llm_telemetry.dropped.reason`` of review items lost to a full buffer, a full worker queue or a failed write."""
DROP_REVIEW_TEXT_REPLACED = "safety_review_text_replaced"
"""Review items stored with characters SQLite cannot hold (lone surrogates) replaced by U+FFFD."""


class SafetyEnricher:
    """Adds ``llm_telemetry.safety.*`` to GenAI spans; feeds the safety metrics, review queue and judge."""

    name = "safety"

    def __init__(
        self,
        screen: Screen | None,
        worker: BackgroundWorker,
        *,
        judge_worker: BackgroundWorker | None = None,
        stats: SafetyStats | None = None,
        queue: ReviewQueue | None = None,
        judge: JudgeRunner | None = None,
        judge_sample_rate: float = 0.0,
        screen_prompts: bool = False,
        capture_content: bool = False,
        inline_screen_chars: int = 65536,
    ) -> None:
        self._screen = screen
        self._worker = worker
        self._judge_lane = judge_worker if judge_worker is not None else worker
        self._stats = SafetyStats() if stats is None else stats
        self._review = ReviewWriter(queue, worker.submit) if queue is not None else None
        self._judge = judge if judge_sample_rate > 0 else None
        self._judge_rate = judge_sample_rate
        self._screen_prompts = screen_prompts
        self._capture = capture_content
        self._inline_chars = inline_screen_chars

    @classmethod
    def from_context(cls, context: EnricherContext) -> SafetyEnricher:
        """Build from settings; a bad pattern file or judge callable raises `ConfigError` at start-up."""
        settings = context.settings
        capture = settings.content.capture.enabled
        screen = screen_for(settings.safety) if settings.safety.enabled else None
        # Stored content gets the span's masking (secrets), applied on the worker where items are written.
        queue = ReviewQueue(settings.review.db_path, redact=screen_for(settings.safety).mask_secrets if capture else None)
        judge_fn = load_judge(settings.judge)
        stats = new_current_stats()
        runner = None
        if judge_fn is not None:
            provider = context.tracer_provider or trace.get_tracer_provider()
            tracer = provider.get_tracer("llm_telemetry.processors.safety")
            runner = JudgeRunner(judge_fn, tracer, stats, queue, capture_content=capture)
        register_metrics(context.meter, stats, queue)
        return cls(
            screen, context.lane("review"), judge_worker=context.lane("judge"), stats=stats, queue=queue, judge=runner,
            judge_sample_rate=settings.judge.sample_rate, screen_prompts=settings.safety.screen_prompts,
            capture_content=capture, inline_screen_chars=settings.safety.inline_screen_chars,
        )

    def enrich(self, call: GenAICall, attributes: Mapping[str, AttributeValue], enrichments: Enrichment) -> Enrichment | None:
        output = call.output_text
        if output is None or in_judge():  # nothing to screen (embeddings, errors), or the judge's own call
            return None
        attributes: dict[str, AttributeValue]
        result = CLEAN
        if self._screen is None:
            attributes = {}
        else:
            # Bounded inline screening (issue 8 #12): only `safety.inline_screen_chars` of each text are screened
            # here; the rest goes to the worker (`_screen_deferred`). Wiring to move onto the integrator's lanes.
            deferred: list[ScreenPlan] = []
            result = self._screen.scan(self._inline_part(output, deferred), with_matches=self._capture)
            if self._screen_prompts:
                prompt = call.prompt_text
                if prompt:
                    result = result.merge(self._screen.scan(self._inline_part(prompt, deferred), with_matches=self._capture))
            self._stats.record_screen(result)
            if result is CLEAN:
                attributes = {a.SAFETY_FLAGGED: False, a.SAFETY_ACTION: "none"}
            else:
                attributes = self._attributes(result)
                if result.flagged:
                    self._queue_for_review(call, result, output)
            if deferred:
                attributes[a.SAFETY_DEFERRED_CHARS] = sum(plan.deferred_chars for plan in deferred)
                self._worker.submit(partial(self._screen_deferred, tuple(deferred), result, call, output))
        if self._judge is not None and result.action != "block" and call.trace_id and sampled(call.trace_id, self._judge_rate):
            attributes[a.SAFETY_JUDGE_SAMPLED] = True
            context = SpanContext(call.trace_id, call.span_id, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
            self._judge_lane.submit(partial(self._judge.run, context, call.model, call.response_id, call.prompt_text, output))
        return Enrichment(attributes=attributes) if attributes else None

    def _attributes(self, result: ScreenResult) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {a.SAFETY_FLAGGED: result.flagged, a.SAFETY_ACTION: result.action}
        if result.flagged:
            attributes[a.SAFETY_CATEGORIES] = result.categories
            attributes[a.SAFETY_PATTERN_IDS] = result.pattern_ids
            if self._capture and result.matches:
                attributes[a.SAFETY_MATCHES] = result.matches
        if result.error is not None:
            attributes[a.SAFETY_ERROR] = result.error
        return attributes

    def _inline_part(self, text: str, deferred: list[ScreenPlan]) -> str:
        """What of ``text`` is screened inline; a plan for the rest is appended to ``deferred``."""
        if len(text) <= self._inline_chars:
            return text
        plan = plan_screen(text, self._inline_chars)
        deferred.append(plan)
        return plan.inline

    def _screen_deferred(
        self, plans: tuple[ScreenPlan, ...], inline: ScreenResult, call: GenAICall, output: str,
    ) -> None:
        """Screen what the inline cap left (on the worker); findings reach the flags metric and the review queue."""
        assert self._screen is not None
        late = CLEAN
        for plan in plans:
            late = late.merge(self._screen.scan_deferred(plan))  # matches: no span left to carry them
        if late.error is not None:
            self._stats.record_screen_error(late.error)
        new_flags = set(late.flags) - set(inline.flags)
        if not new_flags:
            return
        self._stats.record_flags(new_flags)
        if not inline.flagged:  # else the output is in the review queue already
            self._queue_for_review(call, late, output)

    def dropped_counts(self) -> dict[str, int]:
        """Review items that could not be queued or written (read by the pipeline's drop metric)."""
        if self._review is None:
            return {}
        counts = {DROP_REVIEW_ITEM: self._review.dropped, DROP_REVIEW_TEXT_REPLACED: self._review.queue.replaced}
        return {reason: count for reason, count in counts.items() if count}

    def _queue_for_review(self, call: GenAICall, result: ScreenResult, output: str) -> None:
        if self._review is None:
            return
        item = NewReviewItem(
            trace_id=format(call.trace_id, "032x") if call.trace_id else None,
            span_id=format(call.span_id, "016x") if call.span_id else None,
            model=call.model, source="screen", action=result.action, categories=result.categories,
            pattern_ids=result.pattern_ids,
            prompt=call.prompt_text if self._capture else None, output=output if self._capture else None,
        )
        self._review.add(item)
