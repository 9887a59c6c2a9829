"""Faithfulness: the offline claim check beats the source's word overlap; the LLM judge through the real SDK."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _eval_helpers import children_of, eval_events

from llm_telemetry import attributes as a
from llm_telemetry.fake_provider import Behaviour
from llm_telemetry.processors.quality.evaluate import evaluate
from llm_telemetry.processors.quality.faithfulness import check_faithfulness, date_order, facts
from llm_telemetry.processors.quality.judge_faithfulness import FaithfulnessJudge, JudgeAnswerError, parse_score

CONTEXT = (
    "Invoice INV-2291 was issued by Acme Ltd on 03/04/2025. The total amount is $1,200.50, payable within 30 days. "
    "Dates in this document are DD/MM/YYYY."
)


def word_overlap(answer: str, context: str) -> float:
    """The source's heuristic: share of answer words found anywhere in the context."""
    context_words = set(context.lower().split())
    answer_words = answer.lower().split()
    return sum(1 for w in answer_words if w in context_words) / max(len(answer_words), 1)


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        ("Invoice INV-2291 was issued by Acme Ltd on 03/04/2025 with a due date 30 days later.", "control"),
        ("Invoice INV-2291 was issued by Acme Ltd on 04/03/2025. The total amount is $1,200.50.", "date transposed"),
        ("Invoice INV-2291 was issued by Acme Ltd on 03/04/2025. The total amount is $1,500.50.", "amount changed"),
        ("Invoice INV-2291 was issued by Acme Ltd on 03/04/2025, payable within 60 days.", "term changed"),
    ],
)
def test_word_overlap_calls_it_faithful_where_claims_are_contradicted(answer: str, what: str) -> None:
    overlap = word_overlap(answer, CONTEXT)
    verdict = check_faithfulness(answer, CONTEXT)
    if what == "control":
        assert verdict.passed(0.75), verdict.explanation
        return
    assert overlap >= 0.7, f"the source's heuristic scores {what!r} as faithful: {overlap:.2f}"
    assert not verdict.passed(0.75), verdict.explanation
    assert verdict.contradicted, verdict.claims


def test_transposed_iso_date_is_contradicted_and_named() -> None:
    verdict = check_faithfulness("The invoice was issued on 2025-03-04.", CONTEXT)
    assert verdict.score == 0.0
    assert "contradicted: 'The invoice was issued on 2025-03-04.' (date 2025-03-04 not in the context)" in verdict.explanation
    assert check_faithfulness("The invoice was issued on 2025-04-03.", CONTEXT).passed(1.0)


def test_dates_in_any_format_are_the_same_date_and_numbers_normalise() -> None:
    for answer in ("Acme issued it on 3 April 2025.", "Acme issued it on April 3rd, 2025.", "Acme issued it on 3rd of April 2025.",
                   "Acme issued it on 2025-04-03.", "The amount is 1200.50 dollars.", "It is payable within thirty days."):
        verdict = check_faithfulness(answer, CONTEXT)
        assert verdict.passed(1.0), (answer, verdict.explanation)


def test_date_order_is_declared_inferred_or_default() -> None:
    assert date_order("dates are MM/DD/YYYY: 03/04/2025") == "MDY"
    assert date_order("issued 25/03/2025, shipped 03/04/2025") == "DMY"
    assert date_order("issued 03/25/2025") == "MDY"
    assert date_order("issued 03/04/2025", default="MDY") == "MDY"
    us = "The order shipped on 03/25/2025 and arrived on 04/02/2025."
    assert check_faithfulness("It arrived on 2025-04-02.", us).passed(1.0)
    assert not check_faithfulness("It arrived on 2025-02-04.", us).passed(0.5)
    assert facts("paid on 3 April 2025 and 5 May 2025", "DMY").dates == {(2025, 4, 3), (2025, 5, 5)}


def test_unsupported_claims_lower_the_score_and_chatter_is_not_a_claim() -> None:
    answer = "Sure! Invoice INV-2291 was issued by Acme Ltd. It was paid by Globex in cash."
    verdict = check_faithfulness(answer, CONTEXT)
    assert [c.supported for c in verdict.claims] == [True, False]  # "Sure!" is skipped
    assert verdict.score == 0.5 and not verdict.contradicted
    assert "unsupported: 'It was paid by Globex in cash.'" in verdict.explanation
    assert check_faithfulness("OK.", CONTEXT).score == 1.0


# --- the LLM judge ------------------------------------------------------------------------------------


def test_parse_score_is_lenient_but_never_guesses() -> None:
    answer = 'Here you go:\n```json\n{"score": "0.5", "unsupported_claims": ["paid by Globex"], "explanation": ""}\n```'
    parsed = parse_score(answer)
    assert (parsed.score, parsed.unsupported, parsed.explanation) == (0.5, ("paid by Globex",), "unsupported: paid by Globex")
    assert parse_score('{"score": 7}').score == 1.0
    for bad in ("", "no json here", '{"verdict": "faithful"}', '{"score": "high"}', '{"score": NaN}'):
        with pytest.raises(JudgeAnswerError):
            parse_score(bad)


def test_judge_asks_through_the_instrumented_sdk(fake_provider: Any, instrumented_sdks: Any) -> None:
    fake_provider.enqueue(Behaviour(text='{"score": 0.25, "unsupported_claims": ["issued on 2025-03-04"], "explanation": "wrong date"}'))
    judge = FaithfulnessJudge("judge-model", base_url=fake_provider.openai_base_url)
    score = judge(CONTEXT, "When was it issued?", "It was issued on 2025-03-04.")
    assert (score.score, score.explanation, score.unsupported) == (0.25, "wrong date", ("issued on 2025-03-04",))
    sent = fake_provider.last_request.json
    assert sent["model"] == "judge-model" and sent["temperature"] == 0
    prompt = sent["messages"][0]["content"]
    assert CONTEXT in prompt and "It was issued on 2025-03-04." in prompt and "When was it issued?" in prompt
    (span,) = instrumented_sdks.spans("chat")
    assert span.attributes[a.REQUEST_MODEL] == "judge-model"


def test_judge_check_in_evaluate_runs_inside_the_case_span(fake_provider: Any, instrumented_sdks: Any) -> None:
    fake_provider.enqueue(
        Behaviour(text='{"score": 0.9, "explanation": "supported"}'),
        Behaviour(text="I think the score is high"),  # unusable: the check fails with the error, the run goes on
    )
    data = [
        {"id": "ok", "input": "When?", "context": CONTEXT, "checks": [{"faithfulness": "judge"}]},
        {"id": "garbled", "input": "When?", "context": CONTEXT, "checks": [{"faithfulness": {"method": "judge", "name": "judge"}}]},
    ]
    report = evaluate(lambda q: "Issued on 3 April 2025.", data=data, name="rag", quiet=True,
                      tracer_provider=instrumented_sdks.tracer_provider, meter_provider=instrumented_sdks.meter_provider,
                      judge_model="judge-model", judge_base_url=fake_provider.openai_base_url)
    ok, garbled = report.cases
    assert ok.passed and ok.checks[0].score == 0.9
    assert not garbled.passed and garbled.checks[0].error == "JudgeAnswerError"
    assert "no JSON object" in garbled.checks[0].explanation
    spans = instrumented_sdks.spans()
    (case_span,) = [s for s in spans if s.name == "evaluate_case ok"]
    (judge_call,) = children_of(spans, case_span)
    assert judge_call.attributes[a.REQUEST_MODEL] == "judge-model"
    assert judge_call.attributes[a.FEATURE] == "eval_judge"
    assert eval_events(case_span)["faithfulness"][a.EVALUATION_SCORE_VALUE] == 0.9
    assert json.loads(json.dumps(report.to_dict()))["cases"][1]["checks"][0]["error"] == "JudgeAnswerError"
