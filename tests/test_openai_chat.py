"""OpenAI chat completions: attributes, streaming latency, content policy, attribution, errors."""

from __future__ import annotations

import gc
import json
import logging

import httpx2
import openai
import pytest
from _openai_helpers import MESSAGES
from _records import records
from opentelemetry import trace

import llm_telemetry
from llm_telemetry import attributes as a
from llm_telemetry.fake_provider import Behaviour
from llm_telemetry.instrumentation import flush_abandoned

pytestmark = pytest.mark.usefixtures("instrumented")


def only_span(otel):
    spans = otel.spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def test_non_streaming_call_becomes_one_client_span(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(text="It is 3 April 2025.", input_tokens=40, output_tokens=6, cache_read_tokens=16))
    result = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, temperature=0.1, top_p=0.9, max_tokens=50, stop=["\n"], seed=7
    )
    assert isinstance(result, openai.types.chat.ChatCompletion)
    span = only_span(otel)
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is trace.SpanKind.CLIENT
    attrs = span.attributes
    assert attrs[a.OPERATION_NAME] == "chat"
    assert attrs[a.PROVIDER_NAME] == "openai"
    assert attrs[a.REQUEST_MODEL] == "gpt-4o-mini"
    assert attrs[a.REQUEST_TEMPERATURE] == 0.1
    assert attrs[a.REQUEST_TOP_P] == 0.9
    assert attrs[a.REQUEST_MAX_TOKENS] == 50
    assert attrs[a.REQUEST_STOP_SEQUENCES] == ("\n",)
    assert attrs[a.REQUEST_SEED] == 7
    assert attrs[a.REQUEST_STREAM] is False
    assert attrs[a.RESPONSE_ID] == result.id
    assert attrs[a.RESPONSE_MODEL] == result.model
    assert attrs[a.RESPONSE_FINISH_REASONS] == ("stop",)
    # OpenAI's prompt_tokens already include cached tokens: no double counting (Langfuse #5568).
    assert attrs[a.USAGE_INPUT_TOKENS] == 40
    assert attrs[a.USAGE_CACHE_READ_INPUT_TOKENS] == 16
    assert attrs[a.USAGE_OUTPUT_TOKENS] == 6
    assert attrs[a.SERVER_ADDRESS] == "127.0.0.1"
    assert attrs[a.SERVER_PORT] == int(fake_provider.base_url.rsplit(":", 1)[1])
    assert span.status.status_code is trace.StatusCode.UNSET


def test_content_is_not_exported_by_default_but_reaches_processors(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(text="03/04/2025 means 3 April"))
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = only_span(otel)
    assert not set(span.attributes) & a.CONTENT_ATTRIBUTES
    assert all("03/04/2025" not in str(v) for v in span.attributes.values())
    record = records.take((span.context.trace_id, span.context.span_id))
    assert record is not None
    assert record.output_text == "03/04/2025 means 3 April"
    assert record.system_instructions == "You extract dates."
    assert record.input_messages == [{"role": "user", "parts": [{"type": "text", "content": "Invoice dated 03/04/2025"}]}]


@pytest.mark.parametrize("value", ["true", "SPAN_ONLY", "SPAN_AND_EVENT", "EVENT_ONLY"])
def test_content_capture_opt_in(otel, client, fake_provider, settings_env, value):
    settings_env({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": value})
    # settings are read when instrumenting: re-instrument under the new settings
    from llm_telemetry.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().uninstrument()
    OpenAIInstrumentor().instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    fake_provider.enqueue(Behaviour(text="The answer"))
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = only_span(otel)
    on_span = value in ("true", "SPAN_ONLY", "SPAN_AND_EVENT")
    on_event = value in ("SPAN_AND_EVENT", "EVENT_ONLY")
    if on_span:
        assert json.loads(span.attributes[a.INPUT_MESSAGES]) == [
            {"role": "user", "parts": [{"type": "text", "content": "Invoice dated 03/04/2025"}]}
        ]
        assert json.loads(span.attributes[a.SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "You extract dates."}]
        output = json.loads(span.attributes[a.OUTPUT_MESSAGES])
        assert output[0]["parts"][0]["content"] == "The answer"
        assert output[0]["finish_reason"] == "stop"
    else:
        assert a.OUTPUT_MESSAGES not in span.attributes
    events = [e for e in span.events if e.name == a.EVENT_INFERENCE_DETAILS]
    assert bool(events) is on_event


def test_content_truncated_at_configured_size(otel, client, fake_provider, settings_env):
    settings_env({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true", "LLM_TELEMETRY_CONTENT_MAX_CHARS": "100"})
    from llm_telemetry.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().uninstrument()
    OpenAIInstrumentor().instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    fake_provider.enqueue(Behaviour(text="x" * 1000))
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = only_span(otel)
    assert len(span.attributes[a.OUTPUT_MESSAGES]) == 100
    assert span.attributes[a.CONTENT_TRUNCATED] is True


def test_api_key_never_reaches_the_span(otel, client, fake_provider):
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = only_span(otel)
    assert all("sk-test-secret-key" not in str(v) for v in span.attributes.values())
    assert fake_provider.requests[-1].headers["authorization"] == "Bearer sk-test-secret-key"


def test_attribution_context_manager_decorator_and_baggage(otel, client):
    with llm_telemetry.attribute(user_id="u-42", session_id="s-1", conversation_id="c-9", feature="invoice-dates"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    @llm_telemetry.attribute(feature="summarise", user_id="u-7")
    def summarise() -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    summarise()
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    first, second, third = otel.spans()
    assert first.attributes[a.USER_ID] == "u-42"
    assert first.attributes[a.SESSION_ID] == "s-1"
    assert first.attributes[a.CONVERSATION_ID] == "c-9"
    assert first.attributes[a.FEATURE] == "invoice-dates"
    assert second.attributes[a.FEATURE] == "summarise"
    assert second.attributes[a.USER_ID] == "u-7"
    assert a.USER_ID not in third.attributes


def test_span_is_current_during_the_http_request(otel, fake_provider):
    seen: list[trace.Span] = []
    http_client = httpx2.Client(event_hooks={"request": [lambda request: seen.append(trace.get_current_span())]})
    c = openai.OpenAI(api_key="k", base_url=fake_provider.openai_base_url, max_retries=0, http_client=http_client)
    c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = only_span(otel)
    assert seen and seen[0].get_span_context().span_id == span.context.span_id


def test_streaming_ttft_tbt_and_stall_match_the_injected_delays(otel, client, fake_provider):
    fake_provider.enqueue(
        Behaviour(chunks=["a", "b", "c", "d", "e", "f"], first_token_delay_s=0.25, inter_token_delay_s=0.04, stalls={3: 0.6})
    )
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert isinstance(stream, openai.Stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "abcdef"
    span = only_span(otel)
    attrs = span.attributes
    assert 0.25 <= attrs[a.RESPONSE_TIME_TO_FIRST_CHUNK] < 0.45
    assert attrs[a.STREAM_CHUNK_COUNT] == 6
    assert 0.03 <= attrs[a.STREAM_TBT_P50] < 0.08  # 0.04 injected; receipt jitter either way
    assert 0.6 <= attrs[a.STREAM_TBT_MAX] < 0.8
    assert attrs[a.STREAM_STALL_COUNT] == 1
    assert attrs[a.STREAM_END_REASON] == "completed"
    assert attrs[a.USAGE_OUTPUT_TOKENS] == 6 and a.USAGE_OUTPUT_TOKENS_ESTIMATED not in attrs
    names = [e.name for e in span.events]
    assert names == [a.EVENT_FIRST_TOKEN, a.EVENT_STALL, a.EVENT_STREAM_END]
    stall = span.events[1].attributes
    assert stall[a.EVENT_STALL_CHUNK_INDEX] == 3
    assert 0.6 <= stall[a.EVENT_STALL_SECONDS] < 0.8
    points = otel.metrics()
    ttft = points[a.METRIC_TIME_TO_FIRST_CHUNK][0]
    assert ttft.count == 1 and 0.25 <= ttft.sum < 0.45
    assert points[a.METRIC_TIME_PER_OUTPUT_CHUNK][0].count == 5  # one point per gap between 6 chunks (semconv)


def test_stream_without_usage_estimates_output_tokens(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=["one ", "two ", "three"]))
    for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
        pass
    attrs = only_span(otel).attributes
    assert attrs[a.USAGE_OUTPUT_TOKENS_ESTIMATE] == 4  # max(3 chunks, ceil(13 chars / 4))
    assert attrs[a.USAGE_OUTPUT_TOKENS_ESTIMATED] is True
    assert a.USAGE_OUTPUT_TOKENS not in attrs  # an estimate is never passed off as the provider's count


def test_stream_broken_out_of_then_closed_ends_span_once(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=["a", "b", "c", "d"], inter_token_delay_s=0.01))
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    stream.close()
    span = only_span(otel)
    assert span.attributes[a.STREAM_END_REASON] == "closed_early"
    assert span.attributes[a.STREAM_CHUNK_COUNT] == 1


def test_stream_dropped_unread_still_ends_its_span(otel, client):
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    del stream
    gc.collect()
    flush_abandoned()  # the span of a collected stream is ended by a thread, not the finalizer
    span = only_span(otel)
    assert span.attributes[a.STREAM_END_REASON] == "abandoned"


def test_stream_with_block_and_user_exception(otel, client):
    with pytest.raises(KeyError), client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as stream:
        for _ in stream:
            raise KeyError("user bug")
    span = only_span(otel)
    assert span.attributes[a.STREAM_END_REASON] == "app_exception"
    assert span.status.status_code is trace.StatusCode.UNSET  # the user's bug is not an LLM failure


def test_stream_cut_short_by_the_server_is_an_error(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=["a", "b", "c", "d", "e"], cut_after_chunks=2))
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    with pytest.raises(Exception) as caught:
        for _ in stream:
            pass
    span = only_span(otel)
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes[a.ERROR_TYPE].endswith(type(caught.value).__name__)
    assert span.attributes[a.STREAM_END_REASON] == "error"
    assert span.attributes[a.STREAM_CHUNK_COUNT] == 2


def test_http_error_passes_through_unchanged(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(error_status=429, error_message="slow down"))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert caught.value.status_code == 429
    span = only_span(otel)
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes[a.ERROR_TYPE] == "openai.RateLimitError"
    durations = otel.metrics()[a.METRIC_OPERATION_DURATION]
    assert durations[0].attributes[a.ERROR_TYPE] == "openai.RateLimitError"


def test_timeout_and_connection_error(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(headers_delay_s=1.0))
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.2).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    refused = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1", max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        refused.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    timeout_span, refused_span = otel.spans()
    assert timeout_span.attributes[a.ERROR_TYPE] == "openai.APITimeoutError"
    assert refused_span.attributes[a.ERROR_TYPE] == "openai.APIConnectionError"
    assert refused_span.attributes[a.SERVER_PORT] == 9


def test_failure_inside_instrumentation_never_breaks_the_call(fake_provider, caplog):
    from opentelemetry.sdk.trace import TracerProvider

    from llm_telemetry.instrumentation.openai import OpenAIInstrumentor

    class BrokenTracerProvider(TracerProvider):
        def get_tracer(self, *args, **kwargs):
            tracer = super().get_tracer(*args, **kwargs)

            def start_span(*_a, **_k):
                raise RuntimeError("tracer exploded")

            tracer.start_span = start_span
            return tracer

    OpenAIInstrumentor().uninstrument()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=BrokenTracerProvider())
    try:
        c = openai.OpenAI(api_key="k", base_url=fake_provider.openai_base_url, max_retries=0)
        with caplog.at_level(logging.WARNING):
            result = c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert result.choices[0].message.content
        assert "could not start a GenAI span" in caplog.text
    finally:
        instrumentor.uninstrument()


def test_uninstrument_restores_the_sdk(otel, client):
    from llm_telemetry.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().uninstrument()
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert otel.spans() == []
    OpenAIInstrumentor().instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(otel.spans()) == 1


async def test_async_chat_and_stream(otel, aclient, fake_provider):
    result = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert isinstance(result, openai.types.chat.ChatCompletion)
    fake_provider.enqueue(Behaviour(chunks=["x", "y", "z"], first_token_delay_s=0.15, inter_token_delay_s=0.03))
    stream = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.AsyncStream)
    async with stream:
        chunks = [c async for c in stream]
    assert chunks
    plain, streamed = otel.spans()
    assert plain.attributes[a.REQUEST_STREAM] is False
    assert 0.15 <= streamed.attributes[a.RESPONSE_TIME_TO_FIRST_CHUNK] < 0.35
    assert streamed.attributes[a.STREAM_END_REASON] == "completed"


async def test_async_stream_left_early_and_closed(otel, aclient, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=["x", "y", "z"], inter_token_delay_s=0.01))
    stream = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    await stream.close()
    span = only_span(otel)
    assert span.attributes[a.STREAM_END_REASON] == "closed_early"


async def test_async_error(otel, aclient, fake_provider):
    fake_provider.enqueue(Behaviour(error_status=500))
    with pytest.raises(openai.InternalServerError):
        await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert only_span(otel).attributes[a.ERROR_TYPE] == "openai.InternalServerError"


def test_stream_ending_cleanly_before_its_finish_reason_is_an_error(otel):
    # The server closes the stream properly but early: the SDK raises nothing, the call still failed.
    from llm_telemetry.fake_provider import openai_wire

    reply = openai_wire.chat_completions({"model": "gpt-4o-mini", "stream": True}, Behaviour(chunks=["a", "b", "c"]))
    body = b"".join(reply.head + reply.content)  # no finish chunk, no [DONE]
    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body))
    c = openai.OpenAI(api_key="k", base_url="http://provider.test/v1", max_retries=0, http_client=httpx2.Client(transport=transport))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in c.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert text == "abc"
    span = only_span(otel)
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes[a.ERROR_TYPE] == "llm_telemetry.IncompleteStreamError"
    assert span.attributes[a.STREAM_END_REASON] == "error"


def test_stall_threshold_and_per_chunk_events_are_configurable(otel, client, fake_provider, settings_env):
    settings_env({"LLM_TELEMETRY_STREAM_STALL_THRESHOLD_S": "0.1", "LLM_TELEMETRY_STREAM_CHUNK_EVENTS": "true",
                  "LLM_TELEMETRY_STREAM_PER_CHUNK_METRIC": "true"})
    from llm_telemetry.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().uninstrument()
    OpenAIInstrumentor().instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    fake_provider.enqueue(Behaviour(chunks=["a", "b", "c", "d"], inter_token_delay_s=0.01, stalls={2: 0.2}))
    for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
        pass
    span = only_span(otel)
    chunk_events = [e for e in span.events if e.name == a.EVENT_CHUNK]
    assert [e.attributes[a.EVENT_CHUNK_INDEX] for e in chunk_events] == [0, 1, 2, 3]
    stalls = [e for e in span.events if e.name == a.EVENT_STALL]
    assert len(stalls) == 1 and stalls[0].attributes[a.EVENT_STALL_CHUNK_INDEX] == 2
    per_chunk = otel.metrics()[a.METRIC_TIME_PER_OUTPUT_CHUNK]
    assert sum(p.count for p in per_chunk) == 3  # one point per gap between 4 chunks


def test_per_stream_mean_is_the_documented_opt_out(otel, client, fake_provider, settings_env):
    settings_env({"LLM_TELEMETRY_STREAM_PER_CHUNK_METRIC": "false"})
    from llm_telemetry.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().uninstrument()
    OpenAIInstrumentor().instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    fake_provider.enqueue(Behaviour(chunks=["a", "b", "c", "d"]))
    for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
        pass
    (point,) = otel.metrics()[a.METRIC_TIME_PER_OUTPUT_CHUNK]
    assert point.count == 1
    assert point.sum == pytest.approx(only_span(otel).attributes[a.STREAM_TBT_MEAN])


def test_attribution_set_upstream_as_baggage_is_honoured_when_trusted(otel, client, settings_env):
    from opentelemetry import baggage, context

    settings_env({"LLM_TELEMETRY_ATTRIBUTION_TRUST_BAGGAGE": "true"})  # opt-in: inbound baggage is untrusted by default
    ctx = baggage.set_baggage("user.id", "u-upstream", context=baggage.set_baggage("llm_telemetry.feature", "search"))
    token = context.attach(ctx)
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        context.detach(token)
    attrs = only_span(otel).attributes
    assert attrs[a.USER_ID] == "u-upstream"
    assert attrs[a.FEATURE] == "search"
