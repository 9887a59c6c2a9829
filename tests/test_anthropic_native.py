"""The Anthropic SDK's native OpenTelemetry tracing folded into our span: one span per call, the union of both."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from concurrent.futures import ThreadPoolExecutor

import anthropic
import pytest
from _anthropic_helpers import NATIVE_SCOPE, create_kwargs, make_client, only_span
from opentelemetry import trace

import llm_telemetry
from llm_telemetry import attributes as a
from llm_telemetry.fake_provider import Behaviour
from llm_telemetry.instrumentation import flush_abandoned
from llm_telemetry.instrumentation.anthropic import SCOPE, AnthropicInstrumentor

pytestmark = pytest.mark.usefixtures("anthropic_instrumented")

CHUNKS = ["a", "b", "c", "d"]
NATIVE_ONLY = ("anthropic.request.id", "url.full", "http.response.status_code", "http.route", "http.request.method")


def assert_union(span, fake_provider):
    """Our span, with what only the native tracing records on it too."""
    attrs = span.attributes
    assert span.instrumentation_scope.name == SCOPE
    assert span.name.startswith("chat ")
    assert all(name in attrs for name in NATIVE_ONLY), sorted(attrs)
    request = fake_provider.last_request
    assert attrs["anthropic.request.id"] == request.request_id
    assert attrs["url.full"] == f"{fake_provider.base_url}/v1/messages"
    assert attrs["http.response.status_code"] == 200
    # The trace context the SDK propagated is our span's.
    context = span.get_span_context()
    _, trace_id, parent_id, _ = request.headers["traceparent"].split("-")
    assert (trace_id, parent_id) == (f"{context.trace_id:032x}", f"{context.span_id:016x}")
    assert span.status.status_code is trace.StatusCode.UNSET  # native's OK is not kept


def test_non_streamed_call_has_one_span_with_both(otel, anthropic_client, fake_provider):
    with llm_telemetry.attribute(user_id="u-1"):
        anthropic_client.messages.create(**create_kwargs())
    span = only_span(otel)
    assert_union(span, fake_provider)
    assert span.attributes[a.USER_ID] == "u-1"
    assert span.attributes[a.USAGE_INPUT_TOKENS] == 12


def test_streamed_call_has_one_span_with_both_and_our_ttft_wins(otel, anthropic_client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, first_token_delay_s=0.1, inter_token_delay_s=0.02))
    with llm_telemetry.attribute(user_id="u-2"):
        stream = anthropic_client.messages.create(**create_kwargs(), stream=True)
    for _ in stream:
        pass
    span = only_span(otel)
    assert_union(span, fake_provider)
    attrs = span.attributes
    assert attrs[a.USER_ID] == "u-2"
    assert a.STREAM_TBT_MEAN in attrs
    # The SDK sets gen_ai.response.time_to_first_chunk from the wall clock; ours (monotonic, measured where the
    # application receives the chunk) is the one left on the span: the same value as our first_token event.
    (first_token,) = [e for e in span.events if e.name == a.EVENT_FIRST_TOKEN]
    assert attrs[a.RESPONSE_TIME_TO_FIRST_CHUNK] == first_token.attributes[a.RESPONSE_TIME_TO_FIRST_CHUNK]
    # Structural bounds, no timing margin to tune for a busy machine: at least the injected first-token delay
    # (the clock starts before the request), at most the call's own duration.
    assert 0.1 <= attrs[a.RESPONSE_TIME_TO_FIRST_CHUNK] <= (span.end_time - span.start_time) / 1e9


def test_stream_helper_has_one_span_with_both(otel, anthropic_client, fake_provider):
    with anthropic_client.messages.stream(**create_kwargs()) as stream:
        stream.get_final_text()
    assert_union(only_span(otel), fake_provider)


async def test_async_calls_have_one_span_each(otel, anthropic_aclient, fake_provider):
    await anthropic_aclient.messages.create(**create_kwargs())
    assert_union(only_span(otel), fake_provider)
    otel.exporter.clear()
    stream = await anthropic_aclient.messages.create(**create_kwargs(), stream=True)
    async for _ in stream:
        pass
    assert_union(only_span(otel), fake_provider)
    otel.exporter.clear()
    async with anthropic_aclient.messages.stream(**create_kwargs()) as helper:
        await helper.get_final_message()
    assert_union(only_span(otel), fake_provider)


def test_native_failure_attributes_join_ours(otel, anthropic_client, fake_provider):
    fake_provider.enqueue(Behaviour(error_status=429))
    with pytest.raises(anthropic.RateLimitError):
        anthropic_client.messages.create(**create_kwargs())
    span = only_span(otel)
    assert span.attributes["http.response.status_code"] == 429
    assert span.attributes["anthropic.request.id"] == fake_provider.last_request.request_id
    assert span.attributes[a.ERROR_TYPE] == "anthropic.RateLimitError"  # ours, the same for every SDK we trace
    assert span.status.status_code is trace.StatusCode.ERROR


@pytest.mark.parametrize("capture", ["false", "true"])
def test_native_content_follows_our_capture_setting(otel, fake_provider, anthropic_reinstrument, capture):
    anthropic_reinstrument({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": capture})
    client = anthropic.Anthropic(
        api_key="k",
        base_url=fake_provider.anthropic_base_url,
        max_retries=0,
        open_telemetry={"tracer_provider": otel.tracer_provider, "traces": {"content_mode": "content"}},
    )
    fake_provider.enqueue(Behaviour(text="secret answer"))
    client.messages.create(**create_kwargs(stop_sequences=["END"]))
    attrs = only_span(otel).attributes
    if capture == "false":
        assert not set(attrs) & a.CONTENT_ATTRIBUTES
        assert all("secret answer" not in str(v) and "03/04/2025" not in str(v) for v in attrs.values())
    else:
        output = json.loads(attrs[a.OUTPUT_MESSAGES])
        assert output[0]["parts"][0]["content"] == "secret answer"


def test_stream_dropped_before_the_sdk_notices_logs_no_warning(otel, anthropic_client, fake_provider, caplog):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS))
    with caplog.at_level(logging.WARNING, logger="opentelemetry"):
        stream = anthropic_client.messages.create(**create_kwargs(), stream=True)
        next(iter(stream))
        del stream
        gc.collect()
        flush_abandoned()  # the span of a collected stream is ended by a thread, not the finalizer
    span = only_span(otel)
    assert span.attributes[a.STREAM_END_REASON] == "abandoned"
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry")], caplog.text


def test_native_off_leaves_our_span_complete(otel, fake_provider, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY", "false")
    client = anthropic.Anthropic(api_key="k", base_url=fake_provider.anthropic_base_url, max_retries=0)
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, first_token_delay_s=0.05))
    for _ in client.messages.create(**create_kwargs(), stream=True):
        pass
    span = only_span(otel)
    attrs = span.attributes
    assert "url.full" not in attrs and "anthropic.request.id" not in attrs
    assert attrs[a.RESPONSE_TIME_TO_FIRST_CHUNK] >= 0.05
    assert attrs[a.USAGE_INPUT_TOKENS] == 12 and attrs[a.RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert "traceparent" not in fake_provider.last_request.headers


def test_uninstrumented_native_spans_come_back(otel, fake_provider):
    client = make_client(fake_provider, otel)
    AnthropicInstrumentor().uninstrument()
    client.messages.create(**create_kwargs())
    (native,) = otel.spans()
    assert native.instrumentation_scope.name == NATIVE_SCOPE
    assert native.name == "anthropic.messages.create"
    otel.exporter.clear()
    AnthropicInstrumentor().instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    client.messages.create(**create_kwargs())
    assert only_span(otel).instrumentation_scope.name == SCOPE



def test_beta_messages_have_one_span_each(otel, anthropic_client, fake_provider):
    fake_provider.set_default(Behaviour(chunks=CHUNKS, input_tokens=4, cache_read_tokens=6))
    message = anthropic_client.beta.messages.create(**create_kwargs())
    span = only_span(otel)
    assert_union(span, fake_provider)
    assert span.attributes[a.RESPONSE_ID] == message.id
    assert span.attributes[a.USAGE_INPUT_TOKENS] == 10
    otel.exporter.clear()
    with anthropic_client.beta.messages.stream(**create_kwargs()) as stream:
        assert stream.get_final_text() == "abcd"
    span = only_span(otel)
    assert_union(span, fake_provider)
    assert span.attributes[a.STREAM_CHUNK_COUNT] == 4
    assert span.attributes[a.USAGE_INPUT_TOKENS] == 10


def test_concurrent_calls_each_fold_their_own_native_span(otel, anthropic_client, fake_provider):
    fake_provider.set_default(Behaviour(chunks=CHUNKS, inter_token_delay_s=0.005))

    def call(i: int) -> None:
        if i % 2:
            anthropic_client.messages.create(**create_kwargs())
        else:
            with anthropic_client.messages.stream(**create_kwargs()) as stream:
                stream.until_done()

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(call, range(18)))
    spans = otel.spans()
    assert len(spans) == 18
    assert {s.instrumentation_scope.name for s in spans} == {SCOPE}
    # Each span carries the request id of its own request: no native recording crossed over.
    assert sorted(s.attributes["anthropic.request.id"] for s in spans) == sorted(r.request_id for r in fake_provider.requests)
    for span in spans:
        request = next(r for r in fake_provider.requests if r.request_id == span.attributes["anthropic.request.id"])
        assert request.headers["traceparent"].split("-")[2] == f"{span.context.span_id:016x}"


async def test_concurrent_async_streams_each_fold_their_own_native_span(otel, anthropic_aclient, fake_provider):
    fake_provider.set_default(Behaviour(chunks=CHUNKS, inter_token_delay_s=0.005))

    async def call() -> str:
        async with anthropic_aclient.messages.stream(**create_kwargs()) as stream:
            return await stream.get_final_text()

    assert await asyncio.gather(*(call() for _ in range(8))) == ["abcd"] * 8
    spans = otel.spans()
    assert len(spans) == 8 and {s.instrumentation_scope.name for s in spans} == {SCOPE}
    assert sorted(s.attributes["anthropic.request.id"] for s in spans) == sorted(r.request_id for r in fake_provider.requests)
