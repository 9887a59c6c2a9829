"""``with_raw_response`` / ``with_streaming_response``: the span follows the HTTP body, not the headers.

These return the HTTP response before its body is read; the application then parses it, iterates its
lines or bytes, or closes it. The span ends when the body has been consumed or closed, with the chunks,
TTFT, usage and output read from the body itself — so cost and the safety screen see these calls too.
"""

from __future__ import annotations

import gc
import json

import pytest
from _anthropic_helpers import create_kwargs, make_client
from _openai_helpers import MESSAGES
from _records import records
from opentelemetry import trace

from llm_telemetry import attributes as a
from llm_telemetry.fake_provider import Behaviour
from llm_telemetry.instrumentation import flush_abandoned

pytestmark = pytest.mark.usefixtures("both_instrumented")

CHUNKS = ["It ", "is ", "3 ", "April."]
TEXT = "".join(CHUNKS)
DELAYED = Behaviour(chunks=CHUNKS, first_token_delay_s=0.2, inter_token_delay_s=0.02, input_tokens=40)


def only(otel):
    spans = otel.spans()
    assert len(spans) == 1, [s.name for s in spans]
    span = spans[0]
    return span, records.take((span.context.trace_id, span.context.span_id))


def assert_followed_stream(span, record, *, chunks: int = 4, text: str = TEXT, reason: str = "completed") -> None:
    assert span.attributes[a.STREAM_END_REASON] == reason
    assert span.attributes[a.STREAM_CHUNK_COUNT] == chunks
    assert span.attributes[a.RESPONSE_TIME_TO_FIRST_CHUNK] >= 0.2  # the injected first-token delay, not the headers
    assert record.output_text == text
    assert span.status.status_code is trace.StatusCode.UNSET


# --- OpenAI ---------------------------------------------------------------------------------------------


def test_streaming_response_lines_are_followed(otel, client, fake_provider):
    fake_provider.enqueue(DELAYED)
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as response:
        assert otel.spans() == []  # headers arrived, the body has not: the call is not over
        lines = [line for line in response.iter_lines() if line.startswith("data: {")]
    assert len(lines) == 7
    span, record = only(otel)
    assert_followed_stream(span, record)
    assert record.input_tokens == 40 and not record.input_tokens_estimated
    assert span.attributes[a.RESPONSE_FINISH_REASONS] == ("stop",)


def test_streaming_response_parsed_into_a_stream(otel, client, fake_provider):
    fake_provider.enqueue(DELAYED)
    with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as response:
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    assert text == TEXT
    span, record = only(otel)
    assert_followed_stream(span, record)
    assert record.input_tokens_estimated  # no include_usage: estimated, as for a plain stream


def test_raw_response_stream(otel, client, fake_provider):
    fake_provider.enqueue(DELAYED)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert otel.spans() == []
    for _ in raw.parse():
        pass
    span, record = only(otel)
    assert_followed_stream(span, record)


def test_raw_response_json_is_read_at_once(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(text="It is 3 April.", input_tokens=40, output_tokens=5))
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    completion = raw.parse()
    span, record = only(otel)
    assert span.attributes[a.RESPONSE_ID] == completion.id
    assert span.attributes[a.USAGE_INPUT_TOKENS] == 40 and span.attributes[a.USAGE_OUTPUT_TOKENS] == 5
    assert record.output_text == "It is 3 April."
    assert a.CALL_END_REASON not in span.attributes


def test_streaming_response_json_ends_when_read(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(text="It is 3 April.", input_tokens=40, output_tokens=5))
    with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MESSAGES) as response:
        assert otel.spans() == []
        body = json.loads(response.read())
    span, record = only(otel)
    assert span.attributes[a.RESPONSE_ID] == body["id"]
    assert span.attributes[a.USAGE_OUTPUT_TOKENS] == 5 and record.output_text == "It is 3 April."


def test_streaming_response_closed_early(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, inter_token_delay_s=0.05))
    with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as response:
        for line in response.iter_lines():
            if '"content":"It "' in line:
                break
    span, record = only(otel)
    assert span.attributes[a.STREAM_END_REASON] == "closed_early"
    assert span.attributes[a.STREAM_CHUNK_COUNT] == 1
    assert record.output_text == "It "


def test_streaming_response_closed_by_the_app_mid_iteration(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, inter_token_delay_s=0.05))
    response = client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    api_response = response.__enter__()
    lines = api_response.iter_lines()
    next(lines)
    api_response.close()  # the generator is still referenced: the close alone must end the span
    span, _ = only(otel)
    assert span.attributes[a.STREAM_END_REASON] == "closed_early"
    del lines


def test_raw_response_dropped_unread_is_abandoned(otel, client, fake_provider):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    del raw
    gc.collect()
    flush_abandoned()
    span, _ = only(otel)
    assert span.attributes[a.STREAM_END_REASON] == "abandoned"


def test_responses_streaming_response(otel, client, fake_provider):
    fake_provider.enqueue(DELAYED)
    with client.responses.with_streaming_response.create(model="gpt-4o-mini", input="hi", stream=True) as response:
        for _ in response.iter_bytes():
            pass
    span, record = only(otel)
    assert_followed_stream(span, record)
    assert record.input_tokens == 40


def test_responses_raw_json(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(text="It is 3 April.", input_tokens=40))
    client.responses.with_raw_response.create(model="gpt-4o-mini", input="hi").parse()
    _, record = only(otel)
    assert record.output_text == "It is 3 April." and record.input_tokens == 40


def test_a_cut_body_is_an_error(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, cut_after_chunks=2))
    with pytest.raises(Exception) as caught, client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as response:
        for _ in response.iter_lines():
            pass
    span, _ = only(otel)
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes[a.ERROR_TYPE].endswith(type(caught.value).__name__)
    assert span.attributes[a.STREAM_END_REASON] == "error"
    assert span.attributes[a.STREAM_CHUNK_COUNT] == 2


async def test_async_streaming_response_lines(otel, aclient, fake_provider):
    fake_provider.enqueue(DELAYED)
    async with aclient.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as response:
        assert otel.spans() == []
        async for _ in response.iter_lines():
            pass
    span, record = only(otel)
    assert_followed_stream(span, record)


async def test_async_raw_response_stream(otel, aclient, fake_provider):
    fake_provider.enqueue(DELAYED)
    raw = await aclient.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    async for _ in raw.parse():  # the legacy raw response parses synchronously
        pass
    span, record = only(otel)
    assert_followed_stream(span, record)


async def test_async_streaming_response_closed_early(otel, aclient, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=CHUNKS, inter_token_delay_s=0.05))
    async with aclient.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as response:
        async for line in response.iter_lines():
            if '"content":"It "' in line:
                break
    span, _ = only(otel)
    assert span.attributes[a.STREAM_END_REASON] == "closed_early"


# --- Anthropic ------------------------------------------------------------------------------------------


def test_anthropic_raw_response_stream(otel, fake_provider):
    client = make_client(fake_provider, otel)
    fake_provider.enqueue(DELAYED)
    raw = client.messages.with_raw_response.create(**create_kwargs(), stream=True)
    assert otel.spans() == []
    for _ in raw.parse():
        pass
    span, record = only(otel)
    assert_followed_stream(span, record)
    assert record.input_tokens == 40


def test_anthropic_streaming_response_lines(otel, fake_provider):
    client = make_client(fake_provider, otel)
    fake_provider.enqueue(DELAYED)
    with client.messages.with_streaming_response.create(**create_kwargs(), stream=True) as response:
        for _ in response.iter_lines():
            pass
    span, record = only(otel)
    assert_followed_stream(span, record)
    assert span.attributes[a.RESPONSE_FINISH_REASONS] == ("end_turn",)


def test_anthropic_raw_response_json(otel, fake_provider):
    client = make_client(fake_provider, otel)
    fake_provider.enqueue(Behaviour(text="It is 3 April.", input_tokens=40, output_tokens=5))
    message = client.messages.with_raw_response.create(**create_kwargs()).parse()
    span, record = only(otel)
    assert span.attributes[a.RESPONSE_ID] == message.id and span.attributes[a.USAGE_OUTPUT_TOKENS] == 5
    assert record.output_text == "It is 3 April."


async def test_anthropic_async_streaming_response(otel, fake_provider):
    client = make_client(fake_provider, otel, asynchronous=True)
    fake_provider.enqueue(DELAYED)
    async with client.messages.with_streaming_response.create(**create_kwargs(), stream=True) as response:
        async for _ in response.iter_bytes():
            pass
    span, record = only(otel)
    assert_followed_stream(span, record)
