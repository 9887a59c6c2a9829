"""``llm_telemetry.evaluate``: run any Python function over a golden dataset, score it, print it, trace it.

    report = llm_telemetry.evaluate(rag_answer, "golden.yaml", evaluators=[my_check], concurrency=4)

The target is called with each case's ``input`` (the prompt string, or the message list) — an object
with a ``run_case(case)`` method gets the whole `Case` instead (system, context, metadata) — and returns
the answer as a string, or a mapping with ``output`` (or ``answer``) and optionally ``context`` (the
documents it retrieved — faithfulness checks use them when the case has none) and ``response_id``.
An async target is run to completion on the worker thread. A target that raises fails its case (outcome
``error``); the run goes on.

Telemetry: one ``evaluate <dataset>`` span for the run and one ``evaluate_case <id>`` child per case,
inside which the target runs — so the LLM spans the target makes (instrumented SDKs) are children of
their case. Each check adds a semconv ``gen_ai.evaluation.result`` event (name, score value, pass/fail
label, explanation) to the case span, as the conventions ask: in the evaluated operation's trace, under
the operation. Metrics: ``llm_telemetry.eval.cases`` by dataset and outcome, and the last run's
``llm_telemetry.eval.pass_rate``. Explanations quote expected and actual outputs; they are exported
unless ``eval.export_explanations`` is off (golden datasets are test data, not user content).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.util.types import AttributeValue

from llm_telemetry import __version__
from llm_telemetry import attributes as a
from llm_telemetry.config import Settings, get_settings
from llm_telemetry.processors.quality.checks import Check, CheckResult, Sample, build_check
from llm_telemetry.processors.quality.datasets import Case, Dataset, as_dataset
from llm_telemetry.processors.quality.eval_report import CaseResult, EvalReport
from llm_telemetry.processors.quality.judge_faithfulness import FaithfulnessJudge
from llm_telemetry.progress import Progress

SCOPE = "llm_telemetry.quality.eval"
MAX_EXPLANATION_CHARS = 1000

Target = Callable[[Any], Any]


def evaluate(
    target: Target,
    dataset: Dataset | str | Any = None,
    evaluators: Sequence[Any] | None = None,
    *,
    data: Dataset | str | Iterable[Mapping[str, Any]] | None = None,
    name: str | None = None,
    concurrency: int = 1,
    progress: bool | None = None,
    quiet: bool = False,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    settings: Settings | None = None,
    judge_model: str | None = None,
    judge_base_url: str | None = None,
    target_name: str | None = None,
) -> EvalReport:
    """Run ``target`` on every case of ``dataset`` (a path, a `Dataset`, or a list of case mappings; ``data=``
    is the LangSmith-style alias), run each case's checks plus ``evaluators`` (check specs like
    ``"faithfulness"``, or functions ``fn(output, case)``), print the scored table unless ``quiet``, and
    return the `EvalReport`. ``concurrency`` cases run at once (threads). ``progress``: None = a progress
    bar on stderr when it is a terminal and the run is long; True/False force it.
    """
    source = data if dataset is None else dataset
    if source is None:
        raise TypeError("evaluate() needs a dataset (a path, a Dataset, or a list of cases)")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    ds = as_dataset(source, name)
    extra = tuple(build_check(spec, where=f"evaluate(evaluators[{i}])") for i, spec in enumerate(evaluators or ()))
    settings = settings or get_settings()
    runner = _Runner(ds, target, extra, settings, tracer_provider, meter_provider, judge_model, judge_base_url)
    report = runner.run(concurrency, Progress(len(ds), enabled=progress))
    report.target = target_name or getattr(target, "__qualname__", type(target).__name__)
    if not quiet:
        print(report.table(), flush=True)
    return report


class _Runner:
    def __init__(
        self, ds: Dataset, target: Target, extra: tuple[Check, ...], settings: Settings,
        tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None,
        judge_model: str | None, judge_base_url: str | None,
    ) -> None:
        self.ds = ds
        self.target = target
        self.extra = extra
        self.settings = settings
        self.explain = settings.eval.export_explanations
        self.tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(SCOPE, __version__)
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(SCOPE, __version__)
        self.case_counter = meter.create_counter(
            a.METRIC_EVAL_CASES, unit="{case}", description="Golden-dataset cases evaluated, by dataset and outcome (pass, fail, error).",
        )
        self.pass_rate = meter.create_gauge(
            a.METRIC_EVAL_PASS_RATE, unit="1", description="Share of cases that passed in the last evaluation run of the dataset.",
        )
        self.judge_overrides = (judge_model, judge_base_url)
        self._judges: dict[tuple[str | None, str | None], FaithfulnessJudge] = {}
        self._judge_lock = threading.Lock()

    def judge(self, model: str | None, base_url: str | None) -> FaithfulnessJudge:
        key = (model or self.judge_overrides[0], base_url if base_url is not None else self.judge_overrides[1])
        with self._judge_lock:
            judge = self._judges.get(key)
            if judge is None:
                judge = self._judges[key] = FaithfulnessJudge.from_settings(self.settings.eval, model=key[0], base_url=key[1])
            return judge

    def run(self, concurrency: int, progress: Progress) -> EvalReport:
        started = time.time()
        t0 = time.monotonic()
        base = otel_context.get_current()  # keeps the caller's baggage (attribution) for the target's calls
        with self.tracer.start_as_current_span(
            f"evaluate {self.ds.name}", context=base, kind=SpanKind.INTERNAL,
            attributes={a.EVAL_DATASET: self.ds.name, a.EVAL_CASES: len(self.ds)},
        ) as run_span:
            run_ctx = otel_context.get_current()

            def one(case: Case) -> CaseResult:
                result = self._case(case, run_ctx)
                progress.advance(result.passed)
                return result

            try:
                if concurrency == 1:
                    results = [one(case) for case in self.ds.cases]
                else:
                    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="llm-telemetry-eval") as pool:
                        results = list(pool.map(one, self.ds.cases))
            finally:
                progress.close()
            run = run_span.get_span_context()
            report = EvalReport(self.ds.name, results, started, time.monotonic() - t0, *_hex_ids(run))
            self._finish_run(run_span, report)
        return report

    def _case(self, case: Case, run_ctx: otel_context.Context) -> CaseResult:
        token = otel_context.attach(run_ctx)
        t0 = time.monotonic()
        try:
            with self.tracer.start_as_current_span(
                f"evaluate_case {case.id}", kind=SpanKind.INTERNAL, record_exception=False, set_status_on_exception=False,
                attributes={a.EVAL_DATASET: self.ds.name, a.EVAL_CASE_ID: case.id},
            ) as span:
                trace_id, span_id = _hex_ids(span.get_span_context())
                result = CaseResult(case.id, None, case.expected, trace_id=trace_id, span_id=span_id)
                try:
                    output, context, response_id = _normalise(_call(self.target, case))
                except Exception as exc:  # the target's failure is this case's result, not ours to raise
                    result.error = f"{type(exc).__name__}: {exc}"[:500]
                    span.set_status(Status(StatusCode.ERROR, type(exc).__qualname__))
                    span.set_attribute(a.ERROR_TYPE, type(exc).__qualname__)
                else:
                    result.output, result.response_id = output, response_id
                    sample = Sample(case, output, context if context is not None else case.context_text, self.judge)
                    result.checks = [r for check in (*case.checks, *self.extra) if (r := _run_check(check, sample)) is not None]
                result.duration_s = time.monotonic() - t0
                self._finish_case(span, result)
                return result
        finally:
            otel_context.detach(token)

    def _event(self, span: Span, check: CheckResult, response_id: str | None) -> None:
        attrs: dict[str, AttributeValue] = {
            a.EVALUATION_NAME: check.name, a.EVALUATION_SCORE_VALUE: float(check.score), a.EVALUATION_SCORE_LABEL: check.label,
        }
        if check.explanation and self.explain:
            attrs[a.EVALUATION_EXPLANATION] = check.explanation[:MAX_EXPLANATION_CHARS]
        if check.error:
            attrs[a.ERROR_TYPE] = check.error
        if response_id:
            attrs[a.RESPONSE_ID] = response_id
        span.add_event(a.EVENT_EVALUATION_RESULT, attrs)

    def _finish_case(self, span: Span, result: CaseResult) -> None:
        for check in result.checks:
            self._event(span, check, result.response_id)
        span.set_attributes({a.EVAL_CASE_PASSED: result.passed, a.EVAL_CASE_SCORE: result.score})
        if result.response_id:
            span.set_attribute(a.RESPONSE_ID, result.response_id)
        self.case_counter.add(1, {a.EVAL_DATASET: self.ds.name, a.EVAL_OUTCOME: result.outcome})

    def _finish_run(self, span: Span, report: EvalReport) -> None:
        span.set_attributes({
            a.EVAL_PASSED_CASES: report.passed, a.EVAL_FAILED_CASES: report.failed, a.EVAL_ERROR_CASES: report.errors,
            a.EVAL_PASS_RATE: report.pass_rate, a.EVAL_SCORE: report.score,
        })
        summary = CheckResult(
            self.ds.name, report.passed == report.total, report.pass_rate,
            f"{report.passed}/{report.total} cases passed, mean score {report.score:.3f}",
        )
        self._event(span, summary, None)
        self.pass_rate.set(report.pass_rate, {a.EVAL_DATASET: self.ds.name})


def _hex_ids(ctx: trace.SpanContext) -> tuple[str, str]:
    """(trace id, span id) in hex, or empty strings when tracing is off (no SDK installed)."""
    return (format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")) if ctx.is_valid else ("", "")


def _call(target: Target, case: Case) -> Any:
    run_case = getattr(target, "run_case", None)
    result = run_case(case) if callable(run_case) else target(case.input)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _normalise(value: Any) -> tuple[str, str | None, str | None]:
    """(output, context or None, response id or None) from what a target returned."""
    if isinstance(value, str):
        return value, None, None
    if isinstance(value, Mapping):
        output = next((value[k] for k in ("output", "answer", "text") if isinstance(value.get(k), str)), None)
        if output is None:
            raise TypeError(f"the target returned a mapping without a string `output` or `answer` (keys: {', '.join(map(str, value))})")
        raw_context = value.get("context", value.get("contexts"))
        context = "\n\n".join(raw_context) if isinstance(raw_context, list) else raw_context if isinstance(raw_context, str) else None
        response_id = value.get("response_id")
        return output, context, response_id if isinstance(response_id, str) else None
    raise TypeError(f"the target returned {type(value).__name__}; expected a string or a mapping with `output`")


def _run_check(check: Check, sample: Sample) -> CheckResult | None:
    try:
        return check.run(sample)
    except Exception as exc:  # a broken check fails visibly for this case; the others still run
        return CheckResult(getattr(check, "name", "check"), False, 0.0, f"the check raised {type(exc).__name__}: {exc}"[:300],
                           error=type(exc).__qualname__)
