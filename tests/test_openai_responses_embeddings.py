"""OpenAI Responses API and embeddings."""

from __future__ import annotations

import pytest
from _records import records

from llm_telemetry import attributes as a
from llm_telemetry.fake_provider import Behaviour

pytestmark = pytest.mark.usefixtures("instrumented")


def test_responses_create(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(text="Bonjour", input_tokens=30, cache_read_tokens=10, output_tokens=2))
    response = client.responses.create(model="gpt-4o", input="Say hello in French", instructions="Be brief", max_output_tokens=20)
    assert response.output_text == "Bonjour"
    (span,) = otel.spans()
    attrs = span.attributes
    assert span.name == "chat gpt-4o"
    assert attrs[a.REQUEST_MAX_TOKENS] == 20
    assert attrs[a.RESPONSE_ID] == response.id
    assert attrs[a.USAGE_INPUT_TOKENS] == 30
    assert attrs[a.USAGE_CACHE_READ_INPUT_TOKENS] == 10
    assert attrs[a.USAGE_OUTPUT_TOKENS] == 2
    assert attrs[a.RESPONSE_FINISH_REASONS] == ("completed",)
    record = records.take((span.context.trace_id, span.context.span_id))
    assert record.output_text == "Bonjour"
    assert record.system_instructions == "Be brief"


def test_responses_stream(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=["Bon", "jour", "!"], first_token_delay_s=0.2, inter_token_delay_s=0.03))
    stream = client.responses.create(model="gpt-4o", input="hi", stream=True)
    events = [event.type for event in stream]
    assert "response.completed" in events
    (span,) = otel.spans()
    attrs = span.attributes
    assert attrs[a.STREAM_CHUNK_COUNT] == 3
    assert 0.2 <= attrs[a.RESPONSE_TIME_TO_FIRST_CHUNK] < 0.4
    assert attrs[a.USAGE_OUTPUT_TOKENS] == 3
    record = records.take((span.context.trace_id, span.context.span_id))
    assert record.output_text == "Bonjour!"


async def test_async_responses(otel, aclient):
    response = await aclient.responses.create(model="gpt-4o", input="hi")
    assert response.output_text
    (span,) = otel.spans()
    assert span.attributes[a.RESPONSE_ID] == response.id


def test_embeddings(otel, client):
    result = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"], dimensions=8)
    assert len(result.data) == 2
    (span,) = otel.spans()
    assert span.name == "embeddings text-embedding-3-small"
    assert span.attributes[a.OPERATION_NAME] == "embeddings"
    assert span.attributes[a.EMBEDDINGS_DIMENSION_COUNT] == 8
    assert span.attributes[a.USAGE_INPUT_TOKENS] > 0
    usage = otel.metrics()[a.METRIC_TOKEN_USAGE]
    assert [p.attributes[a.TOKEN_TYPE] for p in usage] == ["input"]


def test_parse_and_stream_helpers_are_traced_once(otel, client, fake_provider):
    from pydantic import BaseModel

    class Answer(BaseModel):
        date: str

    fake_provider.enqueue(Behaviour(text='{"date": "2025-04-03"}'))
    parsed = client.chat.completions.parse(model="gpt-4o-mini", messages=[{"role": "user", "content": "date?"}],
                                           response_format=Answer)
    assert parsed.choices[0].message.parsed == Answer(date="2025-04-03")
    fake_provider.enqueue(Behaviour(chunks=["a", "b"], first_token_delay_s=0.1))
    with client.chat.completions.stream(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "ab"
    fake_provider.enqueue(Behaviour(chunks=["x", "y"]))
    with client.responses.stream(model="gpt-4o", input="hi") as stream:
        assert stream.get_final_response().output_text == "xy"
    parse_span, stream_span, responses_span = otel.spans()
    assert parse_span.attributes[a.USAGE_OUTPUT_TOKENS] > 0
    assert stream_span.attributes[a.STREAM_CHUNK_COUNT] == 2
    assert 0.1 <= stream_span.attributes[a.RESPONSE_TIME_TO_FIRST_CHUNK] < 0.3
    assert responses_span.attributes[a.STREAM_END_REASON] == "completed"
