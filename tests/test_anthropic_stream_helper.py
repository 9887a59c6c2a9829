"""Anthropic ``messages.stream(...)``: every way the helper consumes or releases its stream ends one span once."""

from __future__ import annotations

import gc

import anthropic
import httpx2
import pytest
from _anthropic_helpers import create_kwargs, only_span
from _records import records
from anthropic.lib.streaming import AsyncMessageStream, MessageStream
from opentelemetry import trace

from llm_telemetry import attributes as a
from llm_telemetry.fake_provider import Behaviour
from llm_telemetry.instrumentation import flush_abandoned

pytestmark = pytest.mark.usefixtures("anthropic_instrumented")

CHUNKS = ["Three ", "April ", "two ", "thousand ", "twenty-five"]
TEXT = "".join(CHUNKS)


def record_of(span):
    return records.take((span.context.trace_id, span.context.span_id))


def test_text_stream_times_the_request_from_enter(otel, anthropic_client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, first_token_delay_s=0.2, inter_token_delay_s=0.04, output_tokens=5))
    manager = anthropic_client.messages.stream(**create_kwargs())
    assert fake_provider.requests == []  # nothing is sent before the manager is entered
    with manager as stream:
        assert isinstance(stream, MessageStream)
        assert stream.response.status_code == 200
        assert stream.request_id == fake_provider.last_request.request_id
        text = "".join(stream.text_stream)
    assert text == TEXT
    span = only_span(otel)
    attrs = span.attributes
    assert attrs[a.REQUEST_STREAM] is True
    assert 0.2 <= attrs[a.RESPONSE_TIME_TO_FIRST_CHUNK] <= 0.4
    assert abs(attrs[a.STREAM_TBT_MEAN] - 0.04) <= 0.03
    assert attrs[a.STREAM_CHUNK_COUNT] == 5
    assert attrs[a.STREAM_END_REASON] == "completed"
    assert attrs[a.USAGE_OUTPUT_TOKENS] == 5
    assert record_of(span).output_text == TEXT


@pytest.mark.parametrize("consume", ["get_final_message", "get_final_text", "until_done", "iterate"])
def test_every_way_of_consuming_ends_the_span_once(otel, anthropic_client, fake_provider, consume):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, input_tokens=9, cache_read_tokens=20, output_tokens=5))
    with anthropic_client.messages.stream(**create_kwargs()) as stream:
        if consume == "iterate":
            kinds = [event.type for event in stream]
            assert kinds.count("text") == 5 and kinds[-1] == "message_stop"
        else:
            result = getattr(stream, consume)()
            if consume == "get_final_text":
                assert result == TEXT
        message = stream.get_final_message()  # idempotent once done, as without us
    assert message.content[0].text == TEXT
    span = only_span(otel)
    assert span.attributes[a.STREAM_END_REASON] == "completed"
    assert span.attributes[a.RESPONSE_ID] == message.id
    assert span.attributes[a.USAGE_INPUT_TOKENS] == 29
    assert span.attributes[a.USAGE_OUTPUT_TOKENS] == message.usage.output_tokens == 5


def test_closed_early_inside_with(otel, anthropic_client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, inter_token_delay_s=0.01))
    with anthropic_client.messages.stream(**create_kwargs()) as stream:
        for text in stream.text_stream:
            assert text == "Three "
            break
        stream.close()
    span = only_span(otel)
    assert span.attributes[a.STREAM_END_REASON] == "closed_early"
    assert span.attributes[a.STREAM_CHUNK_COUNT] == 1
    assert record_of(span).output_text == "Three "


def test_with_block_left_by_user_exception(otel, anthropic_client):
    with pytest.raises(ZeroDivisionError), anthropic_client.messages.stream(**create_kwargs()) as stream:
        for _ in stream.text_stream:
            _ = 1 / 0
    span = only_span(otel)
    assert span.attributes[a.STREAM_END_REASON] == "app_exception"
    assert span.status.status_code is trace.StatusCode.UNSET


def test_manager_never_entered_sends_nothing_and_traces_nothing(otel, anthropic_client, fake_provider):
    manager = anthropic_client.messages.stream(**create_kwargs())
    del manager
    gc.collect()
    flush_abandoned()  # the span of a collected stream is ended by a thread, not the finalizer
    assert fake_provider.requests == []
    assert otel.spans() == []


def test_message_stream_dropped_unclosed(otel, anthropic_client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS))
    stream = anthropic_client.messages.stream(**create_kwargs()).__enter__()
    next(iter(stream.text_stream))
    del stream
    gc.collect()  # a MessageStream holds its generators in a reference cycle: only the collector frees it
    flush_abandoned()  # the span of a collected stream is ended by a thread, not the finalizer
    span = only_span(otel)
    assert span.attributes[a.STREAM_END_REASON] == "abandoned"
    assert span.attributes[a.STREAM_CHUNK_COUNT] == 1


def test_cut_short_by_the_server(otel, anthropic_client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, cut_after_chunks=2))
    with pytest.raises(httpx2.RemoteProtocolError), anthropic_client.messages.stream(**create_kwargs()) as stream:
        stream.get_final_text()
    span = only_span(otel)
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes[a.ERROR_TYPE] == "httpx2.RemoteProtocolError"
    assert span.attributes[a.STREAM_CHUNK_COUNT] == 2


def test_http_error_raised_from_enter(otel, anthropic_client, fake_provider):
    fake_provider.enqueue(Behaviour(error_status=429))
    with pytest.raises(anthropic.RateLimitError), anthropic_client.messages.stream(**create_kwargs()):
        pass
    span = only_span(otel)
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes[a.ERROR_TYPE] == "anthropic.RateLimitError"


async def test_async_text_stream_and_final_message(otel, anthropic_aclient, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, first_token_delay_s=0.15, inter_token_delay_s=0.03))
    manager = anthropic_aclient.messages.stream(**create_kwargs())
    async with manager as stream:
        assert isinstance(stream, AsyncMessageStream)
        text = "".join([t async for t in stream.text_stream])
        message = await stream.get_final_message()
    assert text == TEXT == message.content[0].text
    fake_provider.enqueue(Behaviour(chunks=CHUNKS))
    async with anthropic_aclient.messages.stream(**create_kwargs()) as stream:
        assert await stream.get_final_text() == TEXT
    timed, plain = otel.spans()
    assert 0.15 <= timed.attributes[a.RESPONSE_TIME_TO_FIRST_CHUNK] <= 0.35
    assert abs(timed.attributes[a.STREAM_TBT_MEAN] - 0.03) <= 0.03
    assert timed.attributes[a.STREAM_END_REASON] == plain.attributes[a.STREAM_END_REASON] == "completed"
    assert record_of(timed).output_text == TEXT


async def test_async_until_done_close_and_errors(otel, anthropic_aclient, fake_provider):
    async with anthropic_aclient.messages.stream(**create_kwargs()) as stream:
        await stream.until_done()
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, inter_token_delay_s=0.01))
    async with anthropic_aclient.messages.stream(**create_kwargs()) as stream:
        async for event in stream:
            if event.type == "text":
                break
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, cut_after_chunks=1))
    with pytest.raises(httpx2.RemoteProtocolError):
        async with anthropic_aclient.messages.stream(**create_kwargs()) as stream:
            await stream.until_done()
    fake_provider.enqueue(Behaviour(error_status=500))
    with pytest.raises(anthropic.InternalServerError):
        async with anthropic_aclient.messages.stream(**create_kwargs()):
            pass
    done, left, cut, failed = otel.spans()
    assert done.attributes[a.STREAM_END_REASON] == "completed"
    assert left.attributes[a.STREAM_END_REASON] == "closed_early"
    assert cut.attributes[a.STREAM_END_REASON] == "error" and cut.status.status_code is trace.StatusCode.ERROR
    assert failed.attributes[a.ERROR_TYPE] == "anthropic.InternalServerError"
