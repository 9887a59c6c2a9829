"""Anthropic ``messages.create(stream=True)``: TTFT/TBT/stalls against injected delays, and every way a stream ends."""

from __future__ import annotations

import gc

import anthropic
import httpx2
import pytest
from _anthropic_helpers import create_kwargs, only_span
from _records import records
from opentelemetry import trace

from llm_telemetry import attributes as a
from llm_telemetry.fake_provider import Behaviour, anthropic_wire
from llm_telemetry.instrumentation import flush_abandoned

pytestmark = pytest.mark.usefixtures("anthropic_instrumented")

CHUNKS = ["It ", "is ", "3 ", "April ", "2025", "."]


def text_of(events: list[object]) -> str:
    return "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")


def test_ttft_and_tbt_match_the_injected_delays(otel, anthropic_client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, first_token_delay_s=0.3, inter_token_delay_s=0.05, output_tokens=6))
    stream = anthropic_client.messages.create(**create_kwargs(), stream=True)
    assert isinstance(stream, anthropic.Stream)
    assert stream.response.status_code == 200
    events = list(stream)
    assert text_of(events) == "It is 3 April 2025."
    span = only_span(otel)
    attrs = span.attributes
    assert attrs[a.REQUEST_STREAM] is True
    assert 0.3 <= attrs[a.RESPONSE_TIME_TO_FIRST_CHUNK] <= 0.5
    assert abs(attrs[a.STREAM_TBT_MEAN] - 0.05) <= 0.03
    assert attrs[a.STREAM_CHUNK_COUNT] == 6
    assert attrs[a.STREAM_STALL_COUNT] == 0
    assert attrs[a.STREAM_END_REASON] == "completed"
    assert attrs[a.RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert attrs[a.RESPONSE_ID] == events[0].message.id
    assert attrs[a.USAGE_OUTPUT_TOKENS] == 6 and a.USAGE_OUTPUT_TOKENS_ESTIMATED not in attrs
    assert span.status.status_code is trace.StatusCode.UNSET
    assert [e.name for e in span.events] == [a.EVENT_FIRST_TOKEN, a.EVENT_STREAM_END]
    assert span.events[0].attributes[a.RESPONSE_TIME_TO_FIRST_CHUNK] == attrs[a.RESPONSE_TIME_TO_FIRST_CHUNK]
    assert span.events[1].attributes == {a.STREAM_END_REASON: "completed", a.STREAM_CHUNK_COUNT: 6}
    points = otel.metrics()
    (ttft,) = points[a.METRIC_TIME_TO_FIRST_CHUNK]
    assert ttft.count == 1 and 0.3 <= ttft.sum <= 0.5
    (tbt,) = points[a.METRIC_TIME_PER_OUTPUT_CHUNK]
    assert tbt.count == 5 and abs(tbt.sum / 5 - 0.05) <= 0.03  # one point per gap between 6 chunks (semconv)
    record = records.take((span.context.trace_id, span.context.span_id))
    assert record.output_text == "It is 3 April 2025."
    assert record.timings is not None and record.timings.chunk_count == 6


def test_stall_is_an_event_at_its_chunk(otel, anthropic_client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, inter_token_delay_s=0.01, stalls={3: 0.7}))
    for _ in anthropic_client.messages.create(**create_kwargs(), stream=True):
        pass
    span = only_span(otel)
    stalls = [e for e in span.events if e.name == a.EVENT_STALL]
    assert len(stalls) == 1
    assert stalls[0].attributes[a.EVENT_STALL_CHUNK_INDEX] == 3
    assert 0.65 <= stalls[0].attributes[a.EVENT_STALL_SECONDS] < 0.9  # 0.71 injected; receipt jitter
    assert span.attributes[a.STREAM_STALL_COUNT] == 1
    (stall_points,) = otel.metrics()[a.METRIC_STREAM_STALLS]
    assert stall_points.value == 1


def test_streamed_usage_counts_cache_tokens_as_input(otel, anthropic_client, fake_provider):
    fake_provider.enqueue(Behaviour(input_tokens=10, cache_read_tokens=500, cache_write_tokens=40, output_tokens=3))
    for _ in anthropic_client.messages.create(**create_kwargs(), stream=True):
        pass
    attrs = only_span(otel).attributes
    assert attrs[a.USAGE_INPUT_TOKENS] == 550
    assert attrs[a.USAGE_CACHE_READ_INPUT_TOKENS] == 500
    assert attrs[a.USAGE_CACHE_CREATION_INPUT_TOKENS] == 40
    assert attrs[a.USAGE_OUTPUT_TOKENS] == 3


def test_broken_out_of_then_closed_ends_span_once(otel, anthropic_client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, inter_token_delay_s=0.01))
    stream = anthropic_client.messages.create(**create_kwargs(), stream=True)
    for event in stream:
        if event.type == "content_block_delta":
            break
    stream.close()
    stream.close()
    span = only_span(otel)
    assert span.attributes[a.STREAM_END_REASON] == "closed_early"
    assert span.attributes[a.STREAM_CHUNK_COUNT] == 1
    assert span.status.status_code is trace.StatusCode.UNSET
    assert records.take((span.context.trace_id, span.context.span_id)).output_text == "It "


def test_broken_out_of_and_dropped_ends_span_once(otel, anthropic_client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS))
    stream = anthropic_client.messages.create(**create_kwargs(), stream=True)
    for event in stream:
        if event.type == "content_block_delta":
            break
    del stream, event
    gc.collect()
    flush_abandoned()  # the span of a collected stream is ended by a thread, not the finalizer
    span = only_span(otel)
    assert span.attributes[a.STREAM_END_REASON] == "abandoned"
    assert span.attributes[a.STREAM_CHUNK_COUNT] == 1


def test_dropped_unread_still_ends_its_span(otel, anthropic_client):
    stream = anthropic_client.messages.create(**create_kwargs(), stream=True)
    del stream
    gc.collect()
    flush_abandoned()  # the span of a collected stream is ended by a thread, not the finalizer
    span = only_span(otel)
    assert span.attributes[a.STREAM_END_REASON] == "abandoned"
    assert span.attributes[a.STREAM_CHUNK_COUNT] == 0


def test_with_block_left_by_user_exception(otel, anthropic_client):
    with pytest.raises(KeyError), anthropic_client.messages.create(**create_kwargs(), stream=True) as stream:
        for _ in stream:
            raise KeyError("user bug")
    span = only_span(otel)
    assert span.attributes[a.STREAM_END_REASON] == "app_exception"
    assert span.status.status_code is trace.StatusCode.UNSET  # the application's bug is not an LLM failure


def test_cut_short_by_the_server_is_an_error(otel, anthropic_client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, cut_after_chunks=2))
    stream = anthropic_client.messages.create(**create_kwargs(), stream=True)
    seen = []
    with pytest.raises(httpx2.RemoteProtocolError):  # what the application sees without us too
        for event in stream:
            seen.append(event)
    assert text_of(seen) == "It is "
    span = only_span(otel)
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes[a.ERROR_TYPE] == "httpx2.RemoteProtocolError"
    assert span.attributes[a.STREAM_END_REASON] == "error"
    assert span.attributes[a.STREAM_CHUNK_COUNT] == 2
    assert a.RESPONSE_FINISH_REASONS not in span.attributes


def test_stream_ending_cleanly_without_message_stop_is_an_error(otel):
    # A server that closes the stream properly but before message_stop: the SDK raises nothing, the call still failed.
    reply = anthropic_wire.messages({"model": "m", "stream": True}, Behaviour(chunks=CHUNKS))
    body = b"".join(reply.head + reply.content)
    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body))
    client = anthropic.Anthropic(
        api_key="k", base_url="http://provider.test", max_retries=0, http_client=httpx2.Client(transport=transport)
    )
    events = list(client.messages.create(**create_kwargs(), stream=True))
    assert text_of(events) == "".join(CHUNKS)
    span = only_span(otel)
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes[a.ERROR_TYPE] == "llm_telemetry.IncompleteStreamError"
    assert span.attributes[a.STREAM_END_REASON] == "error"
    assert span.attributes[a.STREAM_CHUNK_COUNT] == 6


def test_http_error_before_the_stream(otel, anthropic_client, fake_provider):
    fake_provider.enqueue(Behaviour(error_status=429))
    with pytest.raises(anthropic.RateLimitError):
        anthropic_client.messages.create(**create_kwargs(), stream=True)
    span = only_span(otel)
    assert span.attributes[a.ERROR_TYPE] == "anthropic.RateLimitError"
    assert span.attributes[a.REQUEST_STREAM] is True


async def test_async_ttft_tbt_and_text(otel, anthropic_aclient, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, first_token_delay_s=0.2, inter_token_delay_s=0.04))
    stream = await anthropic_aclient.messages.create(**create_kwargs(), stream=True)
    assert isinstance(stream, anthropic.AsyncStream)
    async with stream:
        events = [event async for event in stream]
    assert text_of(events) == "It is 3 April 2025."
    span = only_span(otel)
    assert 0.2 <= span.attributes[a.RESPONSE_TIME_TO_FIRST_CHUNK] <= 0.4
    assert abs(span.attributes[a.STREAM_TBT_MEAN] - 0.04) <= 0.03
    assert span.attributes[a.STREAM_END_REASON] == "completed"
    assert records.take((span.context.trace_id, span.context.span_id)).output_text == "It is 3 April 2025."


async def test_async_left_early_and_closed(otel, anthropic_aclient, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, inter_token_delay_s=0.01))
    stream = await anthropic_aclient.messages.create(**create_kwargs(), stream=True)
    async for event in stream:
        if event.type == "content_block_delta":
            break
    await stream.close()
    span = only_span(otel)
    assert span.attributes[a.STREAM_END_REASON] == "closed_early"
    assert span.attributes[a.STREAM_CHUNK_COUNT] == 1


async def test_async_dropped_and_user_exception(otel, anthropic_aclient):
    stream = await anthropic_aclient.messages.create(**create_kwargs(), stream=True)
    del stream
    gc.collect()
    flush_abandoned()  # the span of a collected stream is ended by a thread, not the finalizer
    with pytest.raises(KeyError):
        async with await anthropic_aclient.messages.create(**create_kwargs(), stream=True) as stream:
            async for _ in stream:
                raise KeyError("user bug")
    dropped, left = otel.spans()
    assert dropped.attributes[a.STREAM_END_REASON] == "abandoned"
    assert left.attributes[a.STREAM_END_REASON] == "app_exception"
    assert left.status.status_code is trace.StatusCode.UNSET


async def test_async_cut_short(otel, anthropic_aclient, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, cut_after_chunks=3))
    stream = await anthropic_aclient.messages.create(**create_kwargs(), stream=True)
    with pytest.raises(httpx2.RemoteProtocolError):
        async for _ in stream:
            pass
    span = only_span(otel)
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes[a.STREAM_CHUNK_COUNT] == 3
    assert span.attributes[a.STREAM_END_REASON] == "error"
