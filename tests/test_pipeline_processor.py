"""EnrichingSpanProcessor over a real TracerProvider: record sources, copying, content rule, isolation, drops."""

from __future__ import annotations

import json
import logging
import threading
import weakref

import pytest
from _pipeline_helpers import PipelineEnv, make_env, settings_from
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from llm_telemetry import attributes as a
from llm_telemetry.processors._span_copy import EnrichedSpan
from llm_telemetry.processors.base import BackgroundWorker, Enrichment, EnrichmentEvent
from llm_telemetry.processors.budget import BudgetEnricher
from llm_telemetry.processors.cost import CostEnricher
from llm_telemetry.record import GenAICall
from llm_telemetry.side_channel import SideChannel, attach

CAPTURE_OFF = settings_from()
CAPTURE_SPAN = settings_from({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"})
CAPTURE_EVENT = settings_from({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "EVENT_ONLY"})


def cost_only(meter, worker):
    return [CostEnricher(meter=meter)]


@pytest.fixture
def env():
    e = make_env(cost_only, CAPTURE_OFF)
    yield e
    e.close()


def dropped(env: PipelineEnv) -> dict[str, float]:
    return {attrs[a.DROPPED_REASON]: value for attrs, value in env.points(a.METRIC_DROPPED)}


def test_a_call_measured_before_its_span_ended_is_not_measured_again_and_exports_no_content(env: PipelineEnv) -> None:
    record = GenAICall(
        operation="chat", provider="openai", request_model="gpt-4o", response_model="gpt-4o-2024-08-06",
        input_tokens=1000, output_tokens=200, input_messages=[{"role": "user", "parts": [{"type": "text", "content": "my SSN"}]}],
        output_text="secret answer", system_instructions="be terse",
    )
    channel = SideChannel()
    channel.connect(env.processor.chain)

    def publish(span) -> None:  # what our instrumentation does right before it ends the span
        attach(channel.publish(record, dict(span.attributes)), span, None)

    # The span itself carries no usage: a cost proves the record went through the chain.
    exported = env.emit("chat gpt-4o", {a.OPERATION_NAME: "chat", a.PROVIDER_NAME: "openai", a.REQUEST_MODEL: "gpt-4o"},
                        before_end=publish)

    assert exported.attributes[a.COST_TOTAL_USD] == pytest.approx(1000 * 2.5e-6 + 200 * 10e-6)
    assert exported.attributes[a.COST_PRICING_MODEL] == "gpt-4o"
    assert exported.attributes[a.ENRICHED] is True
    assert env.processor.chain.calls_measured == 1  # the processor saw the marker and did not measure again
    (tokens,) = [v for attrs, v in env.points(a.METRIC_TOKENS) if attrs[a.TOKEN_TYPE] == "input"]
    assert tokens == 1000
    dump = exported.to_json()
    for text in ("my SSN", "secret answer", "be terse"):
        assert text not in dump


def test_content_attributes_from_any_producer_are_stripped_when_capture_is_off(env: PipelineEnv, caplog) -> None:
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hello"}]}])
    attrs = {
        a.PROVIDER_NAME: "openai", a.REQUEST_MODEL: "gpt-4o-mini", a.USAGE_INPUT_TOKENS: 10, a.USAGE_OUTPUT_TOKENS: 5,
        a.INPUT_MESSAGES: messages, a.OUTPUT_MESSAGES: messages,
    }
    with caplog.at_level(logging.WARNING, logger="llm_telemetry.processors.pipeline"):
        first = env.emit("chat", attrs)
        second = env.emit("chat", attrs)

    for span in (first, second):
        assert a.INPUT_MESSAGES not in span.attributes and a.OUTPUT_MESSAGES not in span.attributes
        assert a.COST_TOTAL_USD in span.attributes
    assert dropped(env)["content_stripped"] == 4
    notes = [r for r in caplog.records if "content capture is off" in r.getMessage()]
    assert len(notes) == 1 and "tests.pipeline" in notes[0].getMessage()


def test_content_is_kept_when_capture_is_on_for_spans() -> None:
    env = make_env(cost_only, CAPTURE_SPAN)
    try:
        span = env.emit("chat", {a.PROVIDER_NAME: "openai", a.REQUEST_MODEL: "gpt-4o", a.INPUT_MESSAGES: "[]",
                                 a.USAGE_INPUT_TOKENS: 1, a.USAGE_OUTPUT_TOKENS: 1})
        assert span.attributes[a.INPUT_MESSAGES] == "[]"
        assert env.processor.stats()["dropped"]["content_stripped"] == 0
    finally:
        env.close()


def test_event_content_follows_the_event_setting() -> None:
    details = (a.EVENT_INFERENCE_DETAILS, {a.INPUT_MESSAGES: "[hi]", a.OPERATION_NAME: "chat"})
    attrs = {a.PROVIDER_NAME: "openai", a.REQUEST_MODEL: "gpt-4o", a.SYSTEM_INSTRUCTIONS: "sys"}
    span_only = make_env(cost_only, CAPTURE_SPAN)
    event_only = make_env(cost_only, CAPTURE_EVENT)
    try:
        s1 = span_only.emit("chat", attrs, events=[details])
        assert s1.attributes[a.SYSTEM_INSTRUCTIONS] == "sys"
        assert dict(s1.events[0].attributes) == {a.OPERATION_NAME: "chat"}
        s2 = event_only.emit("chat", attrs, events=[details])
        assert a.SYSTEM_INSTRUCTIONS not in s2.attributes
        assert s2.events[0].attributes[a.INPUT_MESSAGES] == "[hi]"
    finally:
        span_only.close()
        event_only.close()


def test_openllmetry_style_legacy_span_is_priced_and_its_indexed_content_stripped(env: PipelineEnv) -> None:
    span = env.emit("openai.chat", {
        a.LEGACY_PROVIDER: "openai",
        a.REQUEST_MODEL: "gpt-4o-mini-2024-07-18",
        a.LEGACY_PROMPT_TOKENS: 1000,
        a.LEGACY_COMPLETION_TOKENS: 500,
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "Invoice dated 03/04/2025",
        "gen_ai.prompt.1.content": "second prompt",
        "gen_ai.completion.0.content": "2025-04-03",
        "llm.request.type": "chat",
    })
    # gpt-4o-mini: 0.15 / 0.60 USD per 1M tokens
    assert span.attributes[a.COST_TOTAL_USD] == pytest.approx(1000 * 0.15e-6 + 500 * 0.60e-6)
    assert span.attributes[a.COST_PRICING_MODEL] == "gpt-4o-mini"
    assert not [k for k in span.attributes if k.startswith(("gen_ai.prompt.", "gen_ai.completion."))]
    assert span.attributes["llm.request.type"] == "chat"


def test_anthropic_native_style_span_prices_cache_parts(env: PipelineEnv) -> None:
    span = env.emit("messages claude", {
        a.PROVIDER_NAME: "anthropic",
        a.REQUEST_MODEL: "claude-sonnet-4-5-20250929",
        a.USAGE_INPUT_TOKENS: 10_000,  # includes the cached parts
        a.USAGE_CACHE_READ_INPUT_TOKENS: 6_000,
        a.ANTHROPIC_CACHE_WRITE_TOKENS: 2_000,
        a.USAGE_OUTPUT_TOKENS: 500,
    })
    # uncached 2000 x 3 + read 6000 x 0.30 + write 2000 x 3.75 + output 500 x 15, per 1M
    assert span.attributes[a.COST_INPUT_USD] == pytest.approx(0.006)
    assert span.attributes[a.COST_CACHE_READ_USD] == pytest.approx(0.0018)
    assert span.attributes[a.COST_CACHE_WRITE_USD] == pytest.approx(0.0075)
    assert span.attributes[a.COST_OUTPUT_USD] == pytest.approx(0.0075)
    assert span.attributes[a.COST_TOTAL_USD] == pytest.approx(0.0228)


def test_non_genai_spans_pass_as_the_same_object(env: PipelineEnv) -> None:
    span = env.tracer.start_span("GET /health", attributes={"http.request.method": "GET"})
    span.end()
    assert not isinstance(env.spans()[0], EnrichedSpan)
    assert dict(env.spans()[0].attributes) == {"http.request.method": "GET"}
    # The SDK hands on_end a snapshot; whatever object the processor gets is the one forwarded.
    snapshot = ReadableSpan("GET /ready", context=span.get_span_context(), attributes={"http.request.method": "GET"})
    env.processor.on_end(snapshot)
    assert env.recorder.ended[-1] is snapshot


def test_enriched_copy_keeps_every_other_field() -> None:
    env = make_env(cost_only, CAPTURE_OFF, span_limits=SpanLimits(max_links=1, max_events=1))
    try:
        parent = env.tracer.start_span("parent")
        links = [Link(parent.get_span_context(), {"n": 1}), Link(parent.get_span_context(), {"n": 2})]
        from opentelemetry import trace

        with trace.use_span(parent, end_on_exit=False):
            span = env.tracer.start_span("chat", kind=SpanKind.CLIENT, links=links,
                                         attributes={a.PROVIDER_NAME: "openai", a.REQUEST_MODEL: "gpt-4o",
                                                     a.USAGE_INPUT_TOKENS: 3, a.USAGE_OUTPUT_TOKENS: 4})
        span.add_event("first", {"k": 1})
        span.add_event("second", {"k": 2})
        span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end()
        parent.end()
        out = next(s for s in env.spans() if s.name == "chat")

        assert isinstance(out, EnrichedSpan) and out is not span
        assert out.context == span.context and out.parent == span.parent
        assert out.resource is span.resource and out.kind is SpanKind.CLIENT
        assert out.instrumentation_scope == span.instrumentation_scope
        assert (out.start_time, out.end_time) == (span.start_time, span.end_time)
        assert out.status.status_code is StatusCode.ERROR and out.status.description == "boom"
        assert [dict(link.attributes) for link in out.links] == [{"n": 2}]  # the SDK keeps the newest
        assert [e.name for e in out.events] == ["second"]
        assert (out.dropped_links, out.dropped_events) == (1, 1) == (span.dropped_links, span.dropped_events)
        assert a.COST_TOTAL_USD in out.attributes and a.COST_TOTAL_USD not in span.attributes  # original untouched
        assert json.loads(out.to_json())["context"]["span_id"] == json.loads(span.to_json())["context"]["span_id"]
    finally:
        env.close()


class Exploding:
    name = "exploding"

    def enrich(self, call, span, enrichments):
        raise RuntimeError("enricher bug")


class SeesEarlier:
    name = "sees_earlier"

    def __init__(self) -> None:
        self.seen: list[object] = []

    def enrich(self, call, span, enrichments):
        self.seen.append(enrichments.attributes.get(a.COST_TOTAL_USD))
        return Enrichment({"test.after": True}, [EnrichmentEvent("test.event", {"x": 1})])


def test_a_failing_enricher_is_logged_once_counted_and_the_chain_goes_on(caplog) -> None:
    after = SeesEarlier()
    env = make_env(lambda meter, worker: [CostEnricher(meter=meter), Exploding(), after], CAPTURE_OFF)
    try:
        attrs = {a.PROVIDER_NAME: "openai", a.REQUEST_MODEL: "gpt-4o", a.USAGE_INPUT_TOKENS: 10, a.USAGE_OUTPUT_TOKENS: 10}
        with caplog.at_level(logging.DEBUG, logger="llm_telemetry.processors.pipeline"):
            spans = [env.emit("chat", attrs) for _ in range(3)]
        for span in spans:
            assert span.attributes["test.after"] is True and a.COST_TOTAL_USD in span.attributes
            assert [e.name for e in span.events] == ["test.event"]
            assert span.events[0].timestamp == span.end_time
        assert after.seen == [pytest.approx(10 * 2.5e-6 + 10 * 10e-6)] * 3
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "'exploding' failed" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].exc_info is not None
        assert env.processor.stats()["enricher_errors"] == {"exploding": 3}
        assert dropped(env)["enricher_error"] == 3
    finally:
        env.close()


class BadValue:
    name = "bad_value"

    def enrich(self, call, span, enrichments):
        return Enrichment({"test.bad": {"nested": "dict"}, "test.list": [1, 2], "test.ok": "yes"})


def test_attribute_values_otel_cannot_export_are_dropped_and_counted() -> None:
    env2 = make_env(lambda meter, worker: [BadValue()], CAPTURE_OFF)
    try:
        span = env2.emit("chat", {a.PROVIDER_NAME: "openai"})
        assert "test.bad" not in span.attributes
        assert span.attributes["test.list"] == (1, 2) and span.attributes["test.ok"] == "yes"
        assert env2.processor.stats()["dropped"]["enrichment_invalid_attribute"] == 1
    finally:
        env2.close()


class SlowSubmitter:
    """Submits a task per span to the worker, the way a sampled LLM judge would."""

    name = "slow"

    def __init__(self, worker: BackgroundWorker) -> None:
        self.worker = worker
        self.release = threading.Event()
        self.ran = 0

    def enrich(self, call, span, enrichments):
        def task() -> None:
            self.release.wait(5)
            self.ran += 1

        self.worker.submit(task)
        return None


def test_worker_queue_overflow_is_counted_and_never_blocks() -> None:
    worker = BackgroundWorker(max_queue=2)
    slow = SlowSubmitter(worker)
    env = make_env(lambda meter, w: [slow], CAPTURE_OFF, worker=worker)
    try:
        for _ in range(10):
            env.emit("chat", {a.PROVIDER_NAME: "openai"})
        assert len(env.spans()) == 10  # exported while the worker is stuck
        drops = dropped(env)
        # one task running, two queued, the rest dropped (the running one may not have been picked up yet)
        assert drops["worker_queue_full"] in (7, 8)
        slow.release.set()
        assert env.processor.force_flush(5000)
        assert slow.ran == 10 - drops["worker_queue_full"]
        assert env.recorder.flushes, "force_flush is forwarded"
    finally:
        slow.release.set()
        env.close()


def test_the_side_channel_keeps_nothing_when_no_chain_reads_it() -> None:
    """48 kB prompts x 1,000 calls used to stay pinned in a store nobody drained; a hand-off keeps none."""
    channel = SideChannel()
    channel.connect(None, auto=False)
    refs = []
    for i in range(1000):
        record = GenAICall(operation="chat", provider="openai", input_messages=[{"role": "user", "parts": [
            {"type": "text", "content": "x" * 48_000}]}], trace_id=1, span_id=i + 1)
        assert channel.publish(record, {}) is None
        refs.append(weakref.ref(record))
        del record
    assert sum(ref() is not None for ref in refs) == 0


def test_start_end_flush_and_shutdown_are_forwarded() -> None:
    worker = BackgroundWorker(max_queue=4, name="test-forwarding-worker")
    env = make_env(cost_only, CAPTURE_OFF, worker=worker)
    span = env.tracer.start_span("GET /")
    assert env.recorder.started == [span]
    span.end()
    worker.submit(lambda: None)
    assert env.processor.force_flush(1000) and env.recorder.flushes
    env.close()
    assert env.recorder.shutdowns == 1
    assert "test-forwarding-worker" not in [t.name for t in threading.enumerate()]  # the worker was shut down


def test_a_span_with_no_record_and_no_genai_usage_passes_through_unchanged(env: PipelineEnv) -> None:
    snapshot = ReadableSpan("chat", attributes={a.OPERATION_NAME: "chat"})
    env.processor.on_end(snapshot)
    # GenAI span with nothing to price: only the marker that it was measured is added
    assert dict(env.recorder.ended[-1].attributes) == {a.OPERATION_NAME: "chat", a.ENRICHED: True}
    env.processor.on_end(env.recorder.ended[-1])
    assert env.processor.chain.calls_measured == 1


def test_budget_after_cost_in_the_pipeline_adds_a_crossing_event() -> None:
    settings = settings_from({"LLM_TELEMETRY_BUDGET_DAILY_USD": "0.01"})
    env = make_env(lambda meter, worker: [CostEnricher(meter=meter), BudgetEnricher(settings.budget, meter)], settings)
    try:
        attrs = {a.PROVIDER_NAME: "openai", a.REQUEST_MODEL: "gpt-4o", a.USAGE_INPUT_TOKENS: 1000, a.USAGE_OUTPUT_TOKENS: 500}
        spans = [env.emit("chat", attrs) for _ in range(3)]  # 0.0075 USD each
        assert [[e.attributes[a.BUDGET_LEVEL] for e in s.events] for s in spans] == [[], ["warning", "critical"], []]
        assert {(p[a.BUDGET_SCOPE], p[a.BUDGET_LEVEL]): v for p, v in env.points(a.METRIC_BUDGET_CROSSINGS)} == {
            ("daily", "warning"): 1, ("daily", "critical"): 1,
        }
    finally:
        env.close()


class MalformedEvents:
    """Returns an Enrichment whose events are not EnrichmentEvents: the pipeline's own code trips on it."""

    name = "malformed"

    def enrich(self, call, span, enrichments):
        return Enrichment({"test.x": 1}, ["not an event"])  # type: ignore[list-item]


def test_a_pipeline_failure_exports_the_span_unenriched_but_still_without_content(caplog) -> None:
    env = make_env(lambda meter, worker: [MalformedEvents()], CAPTURE_OFF)
    try:
        with caplog.at_level(logging.WARNING, logger="llm_telemetry.processors.pipeline"):
            span = env.emit("chat", {a.PROVIDER_NAME: "openai", a.OUTPUT_MESSAGES: "[secret]", "keep.me": 1},
                            events=[(a.EVENT_INFERENCE_DETAILS, {a.INPUT_MESSAGES: "[secret]"})])
        assert a.OUTPUT_MESSAGES not in span.attributes and span.attributes["keep.me"] == 1
        assert "test.x" not in span.attributes
        assert dict(span.events[0].attributes) == {}
        assert env.processor.stats()["dropped"]["pipeline_error"] == 1
        assert any("pipeline failed" in r.getMessage() for r in caplog.records)
    finally:
        env.close()
