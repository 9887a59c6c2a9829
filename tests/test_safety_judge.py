"""The sampled LLM judge: runs on the background worker, records a linked span in the original trace."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import _safety_helpers
import openai
import pytest
from _safety_helpers import BLOCKED_OUTPUT, CLEAN_OUTPUT, SafetyEnv, make_call, make_env, settings_for
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from llm_telemetry import attributes as a
from llm_telemetry.config import ConfigError, JudgeSettings
from llm_telemetry.fake_provider import Behaviour, FakeProvider
from llm_telemetry.instrumentation.openai import OpenAIInstrumentor
from llm_telemetry.processors.safety import JudgeVerdict, safety_report
from llm_telemetry.processors.safety.judge import SPAN_NAME, load_judge, sampled
from llm_telemetry.processors.safety.openai_judge import JudgeAnswerError, load_template, parse_verdict
from llm_telemetry.processors.safety.review_queue import ReviewQueue
from llm_telemetry.side_channel import side_channel

FIGHT = "They started a fight outside the bar and someone got hurt."


def judge_env(tmp_path: Path, judge: str, **env: str) -> SafetyEnv:
    return make_env(settings_for(tmp_path, {
        "LLM_TELEMETRY_JUDGE_CALLABLE": judge, "LLM_TELEMETRY_JUDGE_SAMPLE_RATE": "1", **env,
    }))


@pytest.fixture(autouse=True)
def _clear_judged() -> Iterator[None]:
    _safety_helpers.judged.clear()
    yield
    _safety_helpers.judged.clear()


def only(spans: list[ReadableSpan]) -> ReadableSpan:
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def test_custom_judge_runs_on_the_worker_and_records_a_linked_span(tmp_path: Path) -> None:
    env = judge_env(tmp_path, "_safety_helpers:violence_judge")
    try:
        original = env.run_call(make_call(FIGHT, prompt="What happened last night?"))
        assert original.attributes[a.SAFETY_JUDGE_SAMPLED] is True
        env.flush()
        assert _safety_helpers.judged == [("What happened last night?", FIGHT, "llm-telemetry-worker")]
        assert threading.current_thread().name != "llm-telemetry-worker"

        verdict = only(env.spans(SPAN_NAME))
        assert verdict.context.trace_id == original.context.trace_id
        assert verdict.parent is not None and verdict.parent.span_id == original.context.span_id
        assert [link.context.span_id for link in verdict.links] == [original.context.span_id]
        attrs = verdict.attributes
        assert attrs[a.EVALUATION_NAME] == "safety_judge"
        assert attrs[a.EVALUATION_SCORE_LABEL] == "unsafe"
        assert attrs[a.EVALUATION_SCORE_VALUE] == 0.9
        assert attrs[a.SAFETY_JUDGE_FLAGGED] is True
        assert attrs[a.SAFETY_JUDGE_CATEGORY] == "violence"  # normalised from "Violence"
        assert attrs[a.RESPONSE_ID] == "chatcmpl-1"
        assert a.EVALUATION_EXPLANATION not in attrs  # content capture is off
        (event,) = verdict.events
        assert event.name == a.EVENT_JUDGE_VERDICT and event.attributes[a.SAFETY_JUDGE_FLAGGED] is True

        queue = ReviewQueue(env.settings.review.db_path)
        (item,) = queue.list()
        queue.close()
        assert (item.source, item.action, item.categories, item.score) == ("judge", "flag", ("violence",), 0.9)
        assert item.span_id == format(original.context.span_id, "016x")
        assert item.output is None and item.explanation is None

        verdicts = env.points(a.METRIC_JUDGE_VERDICTS)
        assert verdicts == [({a.SAFETY_JUDGE_FLAGGED: True, a.SAFETY_JUDGE_CATEGORY: "violence"}, 1)]
        report = safety_report(env.settings)
        assert (report["judge_sampled"], report["judge_flagged"], report["rates"]["judge_flag"]) == (1, 1, 1.0)
    finally:
        env.close()


def test_explanation_is_recorded_only_with_content_capture(tmp_path: Path) -> None:
    env = judge_env(tmp_path, "_safety_helpers:violence_judge", OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true")
    try:
        env.run_call(make_call(FIGHT))
        env.flush()
        assert only(env.spans(SPAN_NAME)).attributes[a.EVALUATION_EXPLANATION] == "describes a fight"
        queue = ReviewQueue(env.settings.review.db_path)
        (item,) = queue.list()
        queue.close()
        assert item.output == FIGHT and item.explanation == "describes a fight"
    finally:
        env.close()


def test_safe_verdict_is_recorded_and_not_queued(tmp_path: Path) -> None:
    env = judge_env(tmp_path, "_safety_helpers:violence_judge")
    try:
        env.run_call(make_call(CLEAN_OUTPUT))
        env.flush()
        attrs = only(env.spans(SPAN_NAME)).attributes
        assert attrs[a.EVALUATION_SCORE_LABEL] == "safe" and attrs[a.SAFETY_JUDGE_FLAGGED] is False
        assert a.SAFETY_JUDGE_CATEGORY not in attrs
        assert not env.settings.review.db_path.exists()
        assert env.points(a.METRIC_JUDGE_VERDICTS) == [({a.SAFETY_JUDGE_FLAGGED: False}, 1)]
    finally:
        env.close()


def test_blocked_outputs_are_not_sent_to_the_judge(tmp_path: Path) -> None:
    env = judge_env(tmp_path, "_safety_helpers:violence_judge")
    try:
        span = env.run_call(make_call(BLOCKED_OUTPUT))
        env.flush()
        assert a.SAFETY_JUDGE_SAMPLED not in span.attributes
        assert _safety_helpers.judged == [] and env.spans(SPAN_NAME) == []
    finally:
        env.close()


@pytest.mark.parametrize(("judge", "error_type"), [("broken_judge", "RuntimeError"), ("wrong_type_judge", "TypeError")])
def test_judge_failures_are_logged_and_counted_never_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, judge: str, error_type: str,
) -> None:
    env = judge_env(tmp_path, f"_safety_helpers:{judge}")
    try:
        with caplog.at_level(logging.WARNING, logger="llm_telemetry.processors.safety.judge"):
            span = env.run_call(make_call(FIGHT))
            env.flush()
        assert span.attributes[a.SAFETY_JUDGE_SAMPLED] is True
        verdict = only(env.spans(SPAN_NAME))
        assert verdict.status.status_code is StatusCode.ERROR and verdict.attributes[a.ERROR_TYPE] == error_type
        assert a.SAFETY_JUDGE_FLAGGED not in verdict.attributes
        assert env.points(a.METRIC_JUDGE_VERDICTS) == [({a.ERROR_TYPE: error_type}, 1)]
        assert env.worker.failed == 0
        assert any(error_type in record.getMessage() for record in caplog.records)
        assert "judge backend unavailable" not in caplog.text  # only the type is logged
        report = safety_report(env.settings)
        assert report["judge_errors"] == 1 and any("judge call(s) failed" in alert for alert in report["alerts"])
    finally:
        env.close()


def test_sampling_is_deterministic_by_trace_id() -> None:
    low, high = 0x1234_0000_0000_0000_0000_0000_0000_0001, 0x1234_0000_0000_0000_F000_0000_0000_0000
    assert sampled(low, 0.5) and not sampled(high, 0.5)
    assert sampled(high, 1.0) and not sampled(low, 0.0)
    ids = range(0, 1 << 64, (1 << 64) // 1000)
    assert 180 <= sum(sampled(i, 0.2) for i in ids) <= 220
    assert [sampled(i, 0.2) for i in ids] == [sampled(i, 0.2) for i in ids]


def test_zero_sample_rate_judges_nothing(tmp_path: Path) -> None:
    env = make_env(settings_for(tmp_path, {"LLM_TELEMETRY_JUDGE_CALLABLE": "_safety_helpers:violence_judge"}))
    try:
        span = env.run_call(make_call(FIGHT))
        env.flush()
        assert a.SAFETY_JUDGE_SAMPLED not in span.attributes and _safety_helpers.judged == []
    finally:
        env.close()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("nonsense", "expected default, none or module:function"),
        ("no_such_module_xyz:judge", "cannot import module 'no_such_module_xyz'"),
        ("_safety_helpers:missing_judge", "has no attribute 'missing_judge'"),
        ("_safety_helpers:not_callable", "is a int, not a callable"),
    ],
)
def test_bad_judge_callable_is_a_config_error(spec: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_judge(JudgeSettings(callable=spec, sample_rate=0.1))
    assert expected in str(err.value) and "LLM_TELEMETRY_JUDGE_CALLABLE" in str(err.value)


def test_none_judge() -> None:
    assert load_judge(JudgeSettings(callable="none", sample_rate=1.0)) is None


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('{"flagged": true, "category": "violence", "score": 0.9, "explanation": "x"}', JudgeVerdict(True, "violence", 0.9, "x")),
        ('```json\n{"flagged": false, "category": null, "score": 0.1}\n```', JudgeVerdict(False, None, 0.1, None)),
        ('Verdict: {"flagged": "true", "category": "None", "score": "7"} hope this helps', JudgeVerdict(True, None, 1.0, None)),
        ('{"flagged": 0, "score": "n/a"}', JudgeVerdict(False, None, None, None)),
    ],
)
def test_parse_verdict_is_lenient_with_the_shape(answer: str, expected: JudgeVerdict) -> None:
    assert parse_verdict(answer) == expected


@pytest.mark.parametrize(
    "answer", ["", "I think it is fine.", '{"flagged": maybe}', '{"category": "x"}', '{"flagged": "perhaps"}', "[1, 2]"],
)
def test_parse_verdict_rejects_answers_without_a_verdict(answer: str) -> None:
    with pytest.raises(JudgeAnswerError):
        parse_verdict(answer)


def test_prompt_template_must_have_the_output_placeholder(tmp_path: Path) -> None:
    assert "$output" in load_template(None).template
    bad = tmp_path / "judge.txt"
    bad.write_text("Is this safe? Answer JSON.", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"LLM_TELEMETRY_JUDGE_PROMPT_FILE.*\$output"):
        load_template(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_template(tmp_path / "missing.txt")


def test_default_judge_asks_the_model_through_the_instrumented_sdk(
    tmp_path: Path, fake_provider: FakeProvider, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-judge-test-key")
    env = judge_env(tmp_path, "default", LLM_TELEMETRY_JUDGE_BASE_URL=fake_provider.openai_base_url,
                    LLM_TELEMETRY_JUDGE_MODEL="judge-model")
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=env.tracer_provider, meter_provider=env.meter_provider)
    side_channel.connect(env.processor.chain)  # our instrumentation hands every call (with its output) to the chain
    try:
        fake_provider.enqueue(
            Behaviour(text=FIGHT),
            Behaviour(text='Here you go: {"flagged": true, "category": "violence", "score": 0.9, "explanation": "a fight"}'),
        )
        client = openai.OpenAI(api_key="sk-app-key", base_url=fake_provider.openai_base_url, max_retries=0)
        client.chat.completions.create(model="app-model", messages=[{"role": "user", "content": "What happened?"}])
        env.flush()

        chats = sorted((s for s in env.spans() if s.attributes.get(a.OPERATION_NAME) == "chat"), key=lambda s: s.start_time)
        assert [s.attributes[a.REQUEST_MODEL] for s in chats] == ["app-model", "judge-model"]
        app_span, judge_call = chats
        verdict = only(env.spans(SPAN_NAME))
        assert verdict.parent.span_id == app_span.context.span_id
        assert verdict.attributes[a.SAFETY_JUDGE_CATEGORY] == "violence" and verdict.attributes[a.EVALUATION_SCORE_VALUE] == 0.9
        # The judge's own call: inside the verdict span, attributed to the judge, never screened or judged itself.
        assert judge_call.parent.span_id == verdict.context.span_id
        assert judge_call.context.trace_id == app_span.context.trace_id
        assert judge_call.attributes.get(a.FEATURE) == "safety_judge"
        assert not any(key.startswith("llm_telemetry.safety.") for key in judge_call.attributes)
        assert app_span.attributes[a.SAFETY_JUDGE_SAMPLED] is True

        request = fake_provider.last_request
        assert request.headers["authorization"] == "Bearer sk-judge-test-key"
        (message,) = request.json["messages"]
        assert FIGHT in message["content"] and "What happened?" in message["content"]
        assert "$output" not in message["content"]
        assert "sk-judge-test-key" not in json.dumps([dict(s.attributes) for s in env.spans()])
    finally:
        instrumentor.uninstrument()
        env.close()


def test_default_judge_without_api_key_is_a_counted_failure(
    tmp_path: Path, fake_provider: FakeProvider, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    env = judge_env(tmp_path, "default", LLM_TELEMETRY_JUDGE_BASE_URL=fake_provider.openai_base_url)
    try:
        env.run_call(make_call(FIGHT))
        env.flush()
        verdict = only(env.spans(SPAN_NAME))
        assert verdict.status.status_code is StatusCode.ERROR
        assert env.points(a.METRIC_JUDGE_VERDICTS) == [({a.ERROR_TYPE: "OpenAIError"}, 1)]
        assert fake_provider.requests == []
    finally:
        env.close()


def test_default_judge_unparseable_answer_is_a_counted_failure(
    tmp_path: Path, fake_provider: FakeProvider, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-judge-test-key")
    env = judge_env(tmp_path, "default", LLM_TELEMETRY_JUDGE_BASE_URL=fake_provider.openai_base_url)
    try:
        fake_provider.enqueue(Behaviour(text="I would rather not say."))
        env.run_call(make_call(FIGHT))
        env.flush()
        assert env.points(a.METRIC_JUDGE_VERDICTS) == [({a.ERROR_TYPE: "JudgeAnswerError"}, 1)]
    finally:
        env.close()
