"""Feedback lands in the trace of the call it is about; satisfaction, feedback rate, categories; session metrics."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

import llm_telemetry
from llm_telemetry import attributes as a
from llm_telemetry.config import load_settings
from llm_telemetry.fake_provider import Behaviour
from llm_telemetry.processors.quality import feedback as feedback_module
from llm_telemetry.processors.quality import sessions as sessions_module
from llm_telemetry.processors.quality.feedback import DROP_CALL_EVICTED, install_feedback
from llm_telemetry.processors.quality.sessions import install_sessions
from llm_telemetry.record import GenAICall


class RememberCalls(SpanProcessor):
    """What the pipeline does per finished call: hand the record (with its span identity) to `remember_call`."""

    def on_end(self, span: ReadableSpan) -> None:
        call = GenAICall.from_attributes(span.attributes or {})
        if call is not None:
            call.trace_id, call.span_id = span.context.trace_id, span.context.span_id
            llm_telemetry.remember_call(call)


@pytest.fixture
def tracked(instrumented_sdks: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(feedback_module, "_tracker", None)  # restored after the test
    install_feedback(meter_provider=instrumented_sdks.meter_provider, logger_provider=instrumented_sdks.logger_provider,
                     settings=load_settings({}))
    instrumented_sdks.tracer_provider.add_span_processor(RememberCalls())
    return instrumented_sdks


def chat(fake_provider: Any, text: str = "2025-04-03") -> Any:
    fake_provider.enqueue(Behaviour(text=text))
    client = openai.OpenAI(api_key="k", base_url=fake_provider.openai_base_url, max_retries=0)
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Date of 03/04/2025?"}])


def test_feedback_by_response_id_lands_in_the_calls_trace(fake_provider: Any, tracked: Any) -> None:
    with llm_telemetry.attribute(feature="invoice-dates"):
        response = chat(fake_provider)
    (span,) = tracked.spans("chat")
    matched = llm_telemetry.feedback("thumbs_down", response_id=response.id, category="Wrong date", text="It is 3 April",
                                     user_id="user-17")
    assert matched is True
    (record,) = tracked.logs(a.EVENT_FEEDBACK)
    assert record.trace_id == span.context.trace_id and record.span_id == span.context.span_id
    assert dict(record.attributes) == {
        a.FEEDBACK_KIND: "thumbs_down", a.FEEDBACK_MATCHED: True, a.FEEDBACK_CATEGORY: "wrong_date", a.FEATURE: "invoice-dates",
        a.RESPONSE_ID: response.id, a.RESPONSE_MODEL: "gpt-4o-mini", a.USER_ID: "user-17",
    }
    assert record.body is None  # content capture is off: the user's text stays in-process


def test_feedback_text_is_exported_only_with_content_capture(fake_provider: Any, tracked: Any) -> None:
    install_feedback(meter_provider=tracked.meter_provider, logger_provider=tracked.logger_provider,
                     settings=load_settings({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}))
    response = chat(fake_provider)
    llm_telemetry.feedback("correction", response_id=response.id, text="The date is 2025-04-03")
    (record,) = tracked.logs(a.EVENT_FEEDBACK)
    assert record.body == "The date is 2025-04-03"


def test_feedback_by_span_context_and_from_the_current_span(fake_provider: Any, tracked: Any) -> None:
    tracer = tracked.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle request") as request_span:
        chat(fake_provider)
    call_span = next(s for s in tracked.spans() if s.name.startswith("chat"))
    assert llm_telemetry.feedback("thumbs_up", span_context=call_span.context) is True
    assert llm_telemetry.feedback("report", span_context=request_span) is True  # a Span works as well as its context
    with tracer.start_as_current_span("feedback endpoint") as endpoint:
        assert llm_telemetry.feedback("thumbs_down", response_id="chatcmpl-unknown") is False
    up, report, unknown = tracked.logs(a.EVENT_FEEDBACK)
    assert (up.trace_id, up.span_id) == (call_span.context.trace_id, call_span.context.span_id)
    assert report.span_id == request_span.get_span_context().span_id
    assert unknown.span_id == endpoint.get_span_context().span_id and unknown.attributes[a.FEEDBACK_MATCHED] is False


def test_rates_and_negative_categories_as_metrics_and_report(fake_provider: Any, tracked: Any) -> None:
    with llm_telemetry.attribute(feature="invoice-dates"):
        ids = [chat(fake_provider).id for _ in range(4)]
    with llm_telemetry.attribute(feature="support-chat"):
        chat(fake_provider, "Hello")
    llm_telemetry.feedback("thumbs_up", response_id=ids[0])
    llm_telemetry.feedback("thumbs_down", response_id=ids[1], category="wrong date")
    llm_telemetry.feedback("correction", response_id=ids[2], category="wrong-date")
    llm_telemetry.feedback("thumbs_down", response_id="chatcmpl-gone", feature="invoice-dates", category="slow")

    report = llm_telemetry.feedback_report("invoice-dates")["features"]["invoice-dates"]
    assert (report["calls"], report["feedback"], report["unmatched"]) == (4, 4, 1)
    assert report["satisfaction_rate"] == 0.25 and report["feedback_rate"] == 1.0
    assert report["negative_categories"] == {"wrong_date": 2, "slow": 1}
    support = llm_telemetry.feedback_report()["features"]["support-chat"]
    assert (support["calls"], support["feedback"], support["satisfaction_rate"], support["feedback_rate"]) == (1, 0, None, 0.0)

    satisfaction = dict((p[0].get(a.FEATURE), p[1]) for p in tracked.points(a.METRIC_FEEDBACK_SATISFACTION))
    rate = dict((p[0].get(a.FEATURE), p[1]) for p in tracked.points(a.METRIC_FEEDBACK_RATE))
    calls = dict((p[0].get(a.FEATURE), p[1]) for p in tracked.points(a.METRIC_FEEDBACK_CALLS))
    assert satisfaction == {"invoice-dates": 0.25} and rate == {"invoice-dates": 1.0, "support-chat": 0.0}
    assert calls == {"invoice-dates": 4, "support-chat": 1}
    negative = {(p[0][a.FEEDBACK_KIND], p[0].get(a.FEEDBACK_CATEGORY), p[0][a.FEEDBACK_MATCHED]): p[1]
                for p in tracked.points(a.METRIC_FEEDBACK)}
    assert negative == {("thumbs_up", None, True): 1, ("thumbs_down", "wrong_date", True): 1,
                        ("correction", "wrong_date", True): 1, ("thumbs_down", "slow", False): 1}


def test_call_map_is_bounded_and_evictions_are_counted(fake_provider: Any, tracked: Any) -> None:
    tracker = install_feedback(meter_provider=tracked.meter_provider, logger_provider=tracked.logger_provider,
                               settings=load_settings({"LLM_TELEMETRY_FEEDBACK_MAX_TRACKED_CALLS": "2"}))
    first, *_ = [chat(fake_provider).id for _ in range(3)]
    assert tracker.dropped_counts() == {DROP_CALL_EVICTED: 1}
    assert llm_telemetry.feedback("thumbs_up", response_id=first) is False


def test_unknown_kind_is_the_apps_error() -> None:
    with pytest.raises(ValueError, match="unknown kind 'love'"):
        llm_telemetry.feedback("love")
    with pytest.raises(ValueError, match="unknown kind 'finish'"):
        llm_telemetry.session_event("s", "finish")


# --- sessions ------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_completion_abandonment_turns_and_idle_expiry(eval_telemetry: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions_module, "_tracker", None)
    clock = Clock()
    install_sessions(meter_provider=eval_telemetry.meter_provider, clock=clock,
                     settings=load_settings({"LLM_TELEMETRY_FEEDBACK_SESSION_IDLE_TIMEOUT_S": "600"}))
    event = llm_telemetry.session_event
    event("s1", "start", feature="support-chat")
    event("s1", "follow_up")
    event("s1", "follow_up")
    event("s1", "task_complete")                         # completed in 3 turns
    with llm_telemetry.attribute(feature="support-chat"):
        event("s2", "start")                             # feature from the attribution
    event("s2", "abandon")                               # abandoned in 1 turn
    event("s3", "start", feature="support-chat")
    event("s3", "follow_up")                             # then the user closes the tab
    event("s4", "follow_up", feature="support-chat")     # start never seen: implicit
    clock.now += 300
    event("s4", "task_complete")
    clock.now += 400                                     # s3 idle 700 s > 600 s

    report = llm_telemetry.session_report()
    chat = report["features"]["support-chat"]
    assert report["implicit_starts"] == 1
    assert (chat["open"], chat["ended"], chat["completed"], chat["abandoned"]) == (0, 4, 2, 2)
    assert chat["abandoned_by_reason"] == {"abandon": 1, "idle_timeout": 1}
    assert (chat["task_completion_rate"], chat["abandonment_rate"], chat["mean_turns"]) == (0.5, 0.5, (3 + 1 + 2 + 2) / 4)

    sessions = {(p[0][a.SESSION_OUTCOME], p[0][a.SESSION_END_REASON]): p[1] for p in eval_telemetry.points(a.METRIC_SESSIONS)}
    assert sessions == {("completed", "task_complete"): 2, ("abandoned", "abandon"): 1, ("abandoned", "idle_timeout"): 1}
    assert eval_telemetry.points(a.METRIC_SESSION_COMPLETION_RATE) == [({a.FEATURE: "support-chat"}, 0.5)]
    assert eval_telemetry.points(a.METRIC_SESSION_ABANDONMENT_RATE) == [({a.FEATURE: "support-chat"}, 0.5)]
    turns = {p.attributes[a.SESSION_OUTCOME]: (p.count, p.sum) for p in eval_telemetry.histogram(a.METRIC_SESSION_TURNS)}
    assert turns == {"completed": (2, 5), "abandoned": (2, 3)}


def test_open_sessions_are_bounded_and_a_second_start_is_ignored(eval_telemetry: Any) -> None:
    tracker = install_sessions(meter_provider=eval_telemetry.meter_provider, clock=Clock(),
                               settings=load_settings({"LLM_TELEMETRY_FEEDBACK_MAX_TRACKED_SESSIONS": "2"}))
    tracker.event("a", "start")
    tracker.event("a", "start")
    tracker.event("b", "start")
    tracker.event("c", "start")                          # evicts "a", the longest idle
    report = tracker.report()["features"]["(none)"]
    assert (report["open"], report["abandoned_by_reason"]) == (2, {"evicted": 1})
    assert eval_telemetry.points(a.METRIC_SESSION_ACTIVE) == [({}, 2)]
