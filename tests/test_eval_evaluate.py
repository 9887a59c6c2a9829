"""``llm_telemetry.evaluate``: any Python target over a dataset — report, table, progress, spans, events, metrics."""

from __future__ import annotations

import asyncio
import io
import threading
from typing import Any

import openai
import pytest
from _eval_helpers import DATES_YAML, children_of, eval_events
from opentelemetry.trace import StatusCode

import llm_telemetry
from llm_telemetry import attributes as a
from llm_telemetry.config import load_settings
from llm_telemetry.fake_provider import Behaviour
from llm_telemetry.processors.quality.datasets import Case
from llm_telemetry.processors.quality.llm_target import LLMTarget
from llm_telemetry.progress import Progress

DOCS = {
    "When was INV-2291 issued?": "Invoice INV-2291 was issued on 03/04/2025 by Acme Ltd.",
    "What is the total of INV-2291?": "The total of invoice INV-2291 is $1,200.50.",
}
DATA = [
    {"id": "issued", "input": "When was INV-2291 issued?", "expected": "2025-04-03",
     "checks": [{"contains": ["2025-04-03"]}, "faithfulness"]},
    {"id": "total", "input": "What is the total of INV-2291?", "expected": "$1,200.50",
     "checks": [{"contains": ["1,200.50"]}, "faithfulness"]},
]


def rag_answer(question: str) -> dict[str, Any]:
    """A RAG-style target returning its answer and the documents it retrieved."""
    answers = {
        "When was INV-2291 issued?": "INV-2291 was issued on 2025-03-04.",
        "What is the total of INV-2291?": "The total is $1,200.50.",
    }
    return {"answer": answers[question], "context": [DOCS[question]]}


def test_evaluate_a_rag_function_langsmith_style(eval_telemetry: Any, capsys: pytest.CaptureFixture[str]) -> None:
    def short_answer(output: str, case: Case) -> bool:
        return len(output) < 40

    report = llm_telemetry.evaluate(
        rag_answer, data=DATA, evaluators=[short_answer], name="rag-golden",
        tracer_provider=eval_telemetry.tracer_provider, meter_provider=eval_telemetry.meter_provider,
    )
    issued, total = report.cases
    assert (report.total, report.passed, report.failed, report.errors) == (2, 1, 1, 0)
    assert total.passed and [c.name for c in total.checks] == ["contains", "faithfulness", "short_answer"]
    assert not issued.passed
    assert [c.passed for c in issued.checks] == [False, False, True]
    assert "date 2025-03-04 not in the context" in issued.checks[1].explanation  # the context came from the target
    assert report.score == pytest.approx((1 / 3 + 1) / 2)

    table = capsys.readouterr().out
    assert table.startswith("evaluate rag-golden (rag_answer): 2 cases")
    lines = table.splitlines()
    assert any(line.startswith("issued") and "FAIL" in line and "contains:FAIL faithfulness:FAIL short_answer:ok" in line for line in lines)
    assert any("└ contains: missing 1/1 key facts: '2025-04-03'" in line for line in lines)
    assert "passed 1/2 (50.0%), failed 1, errors 0, mean score 0.667" in table

    spans = eval_telemetry.spans()
    (run_span,) = eval_telemetry.spans("evaluate rag-golden")
    case_spans = children_of(spans, run_span)
    assert sorted(s.name for s in case_spans) == ["evaluate_case issued", "evaluate_case total"]
    assert run_span.attributes[a.EVAL_PASS_RATE] == 0.5 and run_span.attributes[a.EVAL_FAILED_CASES] == 1
    assert report.trace_id == format(run_span.context.trace_id, "032x")
    issued_span = next(s for s in case_spans if s.name == "evaluate_case issued")
    assert issued_span.attributes[a.EVAL_CASE_PASSED] is False and issued_span.attributes[a.EVAL_CASE_ID] == "issued"
    events = eval_events(issued_span)
    assert set(events) == {"contains", "faithfulness", "short_answer"}
    assert events["faithfulness"][a.EVALUATION_SCORE_LABEL] == "fail"
    assert events["faithfulness"][a.EVALUATION_SCORE_VALUE] == 0.0
    assert "2025-03-04" in events["faithfulness"][a.EVALUATION_EXPLANATION]
    assert events["short_answer"][a.EVALUATION_SCORE_LABEL] == "pass"
    assert eval_events(run_span)["rag-golden"][a.EVALUATION_SCORE_VALUE] == 0.5

    outcomes = {p[0][a.EVAL_OUTCOME]: p[1] for p in eval_telemetry.points(a.METRIC_EVAL_CASES)}
    assert outcomes == {"pass": 1, "fail": 1}
    assert eval_telemetry.points(a.METRIC_EVAL_PASS_RATE) == [({a.EVAL_DATASET: "rag-golden"}, 0.5)]


def test_a_target_that_raises_fails_its_case_and_the_run_goes_on(eval_telemetry: Any) -> None:
    def flaky(question: str) -> str:
        if "total" in question:
            raise RuntimeError("retriever timed out")
        return "INV-2291 was issued on 2025-04-03."

    with_context = [{**case, "context": DOCS[case["input"]]} for case in DATA]  # the target returns no documents
    report = llm_telemetry.evaluate(flaky, with_context, quiet=True, tracer_provider=eval_telemetry.tracer_provider,
                                    meter_provider=eval_telemetry.meter_provider)
    issued, total = report.cases
    assert issued.passed
    assert total.outcome == "error" and total.error == "RuntimeError: retriever timed out" and total.score == 0.0
    assert "target raised RuntimeError" in report.table()
    (span,) = eval_telemetry.spans("evaluate_case total")
    assert span.status.status_code is StatusCode.ERROR and span.attributes[a.ERROR_TYPE] == "RuntimeError"
    assert not [e for e in span.events if e.name == a.EVENT_EVALUATION_RESULT]


def test_concurrency_keeps_case_order_and_parents(eval_telemetry: Any, write_dataset: Any) -> None:
    threads: set[str] = set()
    barrier = threading.Barrier(3, timeout=30)

    def slow_echo(prompt: str) -> str:
        threads.add(threading.current_thread().name)
        barrier.wait()  # all three run at once, or this times out
        return {"Invoice INV-2291, issued 03/04/2025, due in 30 days.": "2025-04-03"}.get(prompt, "?")

    report = llm_telemetry.evaluate(slow_echo, write_dataset(DATES_YAML), concurrency=3, quiet=True,
                                    tracer_provider=eval_telemetry.tracer_provider, meter_provider=eval_telemetry.meter_provider)
    assert [c.case_id for c in report.cases] == ["inv-0304", "inv-2503", "inv-0711"]
    assert [c.passed for c in report.cases] == [True, False, False]
    assert len(threads) == 3
    (run_span,) = eval_telemetry.spans("evaluate invoice-dates")
    assert len(children_of(eval_telemetry.spans(), run_span)) == 3


def test_async_target_and_attribution_of_the_caller(eval_telemetry: Any) -> None:
    seen: list[dict[str, str]] = []

    async def answer(question: str) -> str:
        await asyncio.sleep(0)
        seen.append(llm_telemetry.current_attribution())
        return "The total is $1,200.50." if "total" in question else "Issued 2025-04-03."

    with llm_telemetry.attribute(feature="nightly-eval"):
        report = llm_telemetry.evaluate(answer, data=[{**DATA[1], "checks": [{"contains": ["1,200.50"]}]}], quiet=True,
                                        tracer_provider=eval_telemetry.tracer_provider, meter_provider=eval_telemetry.meter_provider)
    assert report.passed == 1
    assert seen == [{a.FEATURE: "nightly-eval"}]


def test_explanations_stay_off_the_spans_when_disabled(eval_telemetry: Any) -> None:
    settings = load_settings({"LLM_TELEMETRY_EVAL_EXPORT_EXPLANATIONS": "false"})
    report = llm_telemetry.evaluate(rag_answer, data=DATA, quiet=True, settings=settings,
                                    tracer_provider=eval_telemetry.tracer_provider, meter_provider=eval_telemetry.meter_provider)
    assert report.cases[0].checks[1].explanation  # still in the local report
    (span,) = eval_telemetry.spans("evaluate_case issued")
    assert all(a.EVALUATION_EXPLANATION not in e for e in eval_events(span).values())


def test_progress_bar_only_when_forced_or_on_a_terminal_for_long_runs() -> None:
    forced = io.StringIO()
    progress = Progress(2, enabled=True, stream=forced)
    progress.advance(True)
    progress.advance(False)
    progress.close()
    assert "2/2 cases, 1 failing" in forced.getvalue() and forced.getvalue().endswith("\n")

    quiet = io.StringIO()  # not a terminal: auto mode draws nothing
    auto = Progress(2, stream=quiet)
    auto.advance(True)
    auto.close()
    assert quiet.getvalue() == ""


def test_evaluate_prints_a_progress_bar_when_asked(eval_telemetry: Any, capsys: pytest.CaptureFixture[str]) -> None:
    llm_telemetry.evaluate(rag_answer, data=DATA, progress=True, quiet=True, tracer_provider=eval_telemetry.tracer_provider,
                           meter_provider=eval_telemetry.meter_provider)
    err = capsys.readouterr().err
    assert "\r[" in err and "2/2 cases, 1 failing" in err


def test_llm_target_calls_are_children_of_their_case(fake_provider: Any, instrumented_sdks: Any, write_dataset: Any) -> None:
    fake_provider.set_default(Behaviour(responder="iso_dates"))
    target = LLMTarget("gpt-4o-mini", base_url=fake_provider.openai_base_url)
    report = llm_telemetry.evaluate(target, write_dataset(DATES_YAML), quiet=True, target_name=target.description,
                                    tracer_provider=instrumented_sdks.tracer_provider, meter_provider=instrumented_sdks.meter_provider)
    assert report.passed == 3 and report.target.startswith("openai gpt-4o-mini at http://127.0.0.1")
    first = fake_provider.requests[0].json["messages"]
    assert first[0] == {"role": "system", "content": "Extract the invoice date as ISO 8601. Input dates are DD/MM/YYYY."}
    assert first[1]["content"] == "Invoice INV-2291, issued 03/04/2025, due in 30 days."
    spans = instrumented_sdks.spans()
    for case in report.cases:
        (case_span,) = [s for s in spans if s.name == f"evaluate_case {case.case_id}"]
        (llm_span,) = children_of(spans, case_span)
        assert llm_span.attributes[a.RESPONSE_ID] == case.response_id == case_span.attributes[a.RESPONSE_ID]
        assert eval_events(case_span)["exact"][a.RESPONSE_ID] == case.response_id


def test_llm_target_sends_context_and_messages(fake_provider: Any, instrumented_sdks: Any) -> None:
    fake_provider.set_default(Behaviour(text="ok"))
    target = LLMTarget("claude-test-model", base_url=fake_provider.anthropic_base_url)
    assert target.provider == "anthropic"
    data = [{"id": "m", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Total?"}],
             "context": "Total: 5 EUR", "checks": [{"regex": "ok"}]}]
    report = llm_telemetry.evaluate(target, data=data, quiet=True, tracer_provider=instrumented_sdks.tracer_provider,
                                    meter_provider=instrumented_sdks.meter_provider)
    assert report.passed == 1
    sent = fake_provider.last_request.json
    assert sent["system"] == "Be brief.\n\nContext:\nTotal: 5 EUR"
    assert sent["messages"] == [{"role": "user", "content": "Total?"}]


def test_llm_target_errors_are_case_errors(fake_provider: Any, instrumented_sdks: Any) -> None:
    fake_provider.set_default(Behaviour(error_status=429, error_message="slow down"))
    target = LLMTarget("gpt-4o-mini", base_url=fake_provider.openai_base_url)
    target._get_client().max_retries = 0
    report = llm_telemetry.evaluate(target, data=DATA[:1], quiet=True, tracer_provider=instrumented_sdks.tracer_provider,
                                    meter_provider=instrumented_sdks.meter_provider)
    assert report.cases[0].outcome == "error" and report.cases[0].error.startswith("RateLimitError")
    assert isinstance(target._get_client(), openai.OpenAI)
