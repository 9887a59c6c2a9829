"""Anthropic ``messages.create`` (not streamed): attributes, usage normalisation, metrics, content policy, errors."""

from __future__ import annotations

import json
import socket

import anthropic
import pytest
from _anthropic_helpers import API_KEY, MESSAGES, MODEL, SYSTEM, create_kwargs, make_client, only_span
from _records import records
from opentelemetry import trace

import llm_telemetry
from llm_telemetry import attributes as a
from llm_telemetry.fake_provider import Behaviour

pytestmark = pytest.mark.usefixtures("anthropic_instrumented")


@pytest.mark.parametrize("native", [True, False], ids=["native-on", "native-off"])
def test_create_becomes_one_client_span_with_semconv_attributes(otel, fake_provider, native):
    client = make_client(fake_provider, otel, native=native)
    fake_provider.enqueue(Behaviour(text="It is 3 April 2025.", input_tokens=40, output_tokens=6, finish_reason="end_turn"))
    message = client.messages.create(
        **create_kwargs(stop_sequences=["\n\n"]), extra_body={"temperature": 0.2, "top_p": 0.9, "top_k": 40}
    )
    assert isinstance(message, anthropic.types.Message)
    span = only_span(otel)
    assert span.name == f"chat {MODEL}"
    assert span.kind is trace.SpanKind.CLIENT
    attrs = span.attributes
    assert attrs[a.OPERATION_NAME] == "chat"
    assert attrs[a.PROVIDER_NAME] == "anthropic"
    assert attrs[a.REQUEST_MODEL] == MODEL
    assert attrs[a.REQUEST_MAX_TOKENS] == 64
    assert attrs[a.REQUEST_TEMPERATURE] == 0.2
    assert attrs[a.REQUEST_TOP_P] == 0.9
    assert attrs[a.REQUEST_TOP_K] == 40
    assert attrs[a.REQUEST_STOP_SEQUENCES] == ("\n\n",)
    assert attrs[a.REQUEST_STREAM] is False
    assert attrs[a.RESPONSE_ID] == message.id
    assert attrs[a.RESPONSE_MODEL] == message.model
    assert attrs[a.RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert attrs[a.USAGE_INPUT_TOKENS] == 40
    assert attrs[a.USAGE_OUTPUT_TOKENS] == 6
    assert attrs[a.SERVER_ADDRESS] == "127.0.0.1"
    assert attrs[a.SERVER_PORT] == fake_provider.port
    assert span.status.status_code is trace.StatusCode.UNSET
    # The request reached the provider exactly as the application wrote it.
    sent = fake_provider.last_request.json
    assert sent["temperature"] == 0.2 and sent["top_k"] == 40 and sent["messages"] == MESSAGES and sent["system"] == SYSTEM


def test_cache_tokens_are_added_to_input_tokens(otel, anthropic_client, fake_provider):
    # Anthropic reports input_tokens WITHOUT the cached parts; the conventions count every input token.
    fake_provider.enqueue(Behaviour(input_tokens=30, cache_read_tokens=1000, cache_write_tokens=200, output_tokens=5))
    message = anthropic_client.messages.create(**create_kwargs())
    assert message.usage.input_tokens == 30
    span = only_span(otel)
    assert span.attributes[a.USAGE_INPUT_TOKENS] == 1230
    assert span.attributes[a.USAGE_CACHE_READ_INPUT_TOKENS] == 1000
    assert span.attributes[a.USAGE_CACHE_CREATION_INPUT_TOKENS] == 200
    record = records.take((span.context.trace_id, span.context.span_id))
    assert (record.input_tokens, record.cache_read_tokens, record.cache_write_tokens) == (1230, 1000, 200)
    token_points = otel.metrics()[a.METRIC_TOKEN_USAGE]
    by_type = {p.attributes[a.TOKEN_TYPE]: p.sum for p in token_points}
    assert by_type == {"input": 1230, "output": 5}


def test_metrics_carry_the_call_dimensions(otel, anthropic_client, fake_provider):
    fake_provider.enqueue(Behaviour(model="claude-sonnet-4-6-20260101"))
    anthropic_client.messages.create(**create_kwargs())
    points = otel.metrics()
    (duration,) = points[a.METRIC_OPERATION_DURATION]
    assert duration.count == 1
    assert duration.attributes == {
        a.OPERATION_NAME: "chat",
        a.PROVIDER_NAME: "anthropic",
        a.REQUEST_MODEL: MODEL,
        a.RESPONSE_MODEL: "claude-sonnet-4-6-20260101",
        a.SERVER_ADDRESS: "127.0.0.1",
        a.SERVER_PORT: fake_provider.port,
    }
    assert {p.attributes[a.TOKEN_TYPE] for p in points[a.METRIC_TOKEN_USAGE]} == {"input", "output"}
    assert a.METRIC_TIME_TO_FIRST_CHUNK not in points  # not a stream


def test_content_is_not_exported_by_default_but_reaches_processors(otel, anthropic_client, fake_provider):
    fake_provider.enqueue(Behaviour(text="03/04/2025 is 3 April"))
    anthropic_client.messages.create(**create_kwargs())
    span = only_span(otel)
    assert not set(span.attributes) & a.CONTENT_ATTRIBUTES
    assert all("03/04/2025" not in str(value) for value in span.attributes.values())
    record = records.take((span.context.trace_id, span.context.span_id))
    assert record is not None
    assert record.output_text == "03/04/2025 is 3 April"
    assert record.system_instructions == SYSTEM
    assert record.input_messages == [{"role": "user", "parts": [{"type": "text", "content": "Invoice dated 03/04/2025"}]}]


def test_content_capture_opt_in_writes_semconv_json(otel, anthropic_client, fake_provider, anthropic_reinstrument):
    anthropic_reinstrument({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"})
    fake_provider.enqueue(Behaviour(text="The answer", finish_reason="max_tokens"))
    anthropic_client.messages.create(**create_kwargs())
    attrs = only_span(otel).attributes
    assert json.loads(attrs[a.INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Invoice dated 03/04/2025"}]}
    ]
    assert json.loads(attrs[a.SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": SYSTEM}]
    assert json.loads(attrs[a.OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "The answer"}], "finish_reason": "max_tokens"}
    ]


def test_system_as_text_blocks_and_block_content(otel, anthropic_client, fake_provider):
    anthropic_client.messages.create(
        model=MODEL,
        max_tokens=16,
        system=[{"type": "text", "text": "Rule one."}, {"type": "text", "text": "Rule two."}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "image", "source": {}}]}],
    )
    span = only_span(otel)
    record = records.take((span.context.trace_id, span.context.span_id))
    assert record.system_instructions == "Rule one.\nRule two."
    assert record.input_messages == [{"role": "user", "parts": [{"type": "text", "content": "Hello"}, {"type": "image"}]}]


def test_one_shot_message_iterable_reaches_the_sdk_and_the_record(otel, anthropic_client, fake_provider):
    # A generator can be read once: the wrapper turns it into one list that both we and the SDK read.
    anthropic_client.messages.create(model=MODEL, max_tokens=16, messages=(m for m in MESSAGES))
    assert fake_provider.last_request.json["messages"] == MESSAGES
    span = only_span(otel)
    record = records.take((span.context.trace_id, span.context.span_id))
    assert record.input_messages == [{"role": "user", "parts": [{"type": "text", "content": MESSAGES[0]["content"]}]}]


def test_attribution_from_baggage(otel, anthropic_client):
    with llm_telemetry.attribute(user_id="u-42", session_id="s-1", feature="invoice-dates"):
        anthropic_client.messages.create(**create_kwargs())
    anthropic_client.messages.create(**create_kwargs())
    first, second = otel.spans()
    assert first.attributes[a.USER_ID] == "u-42"
    assert first.attributes[a.SESSION_ID] == "s-1"
    assert first.attributes[a.FEATURE] == "invoice-dates"
    assert a.USER_ID not in second.attributes


def test_api_key_never_reaches_the_span(otel, anthropic_client, fake_provider):
    anthropic_client.messages.create(**create_kwargs())
    span = only_span(otel)
    assert API_KEY in fake_provider.last_request.headers["authorization"]  # this SDK version sends a bearer token
    assert all(API_KEY not in str(value) for value in span.attributes.values())
    assert all("api-key" not in key and "authorization" not in key for key in span.attributes)


def test_parse_and_raw_response_are_traced(otel, anthropic_client, fake_provider):
    parsed = anthropic_client.messages.parse(**create_kwargs())
    assert isinstance(parsed, anthropic.types.ParsedMessage)
    fake_provider.enqueue(Behaviour(input_tokens=7, cache_read_tokens=3, output_tokens=2))
    raw = anthropic_client.messages.with_raw_response.create(**create_kwargs())
    assert raw.parse().usage.output_tokens == 2
    parsed_span, raw_span = otel.spans()
    assert parsed_span.attributes[a.RESPONSE_ID] == parsed.id
    assert raw_span.attributes[a.USAGE_INPUT_TOKENS] == 10
    assert raw_span.attributes[a.USAGE_OUTPUT_TOKENS] == 2


def test_http_error_passes_through_unchanged(otel, anthropic_client, fake_provider):
    fake_provider.enqueue(Behaviour(error_status=429, error_message="slow down"))
    with pytest.raises(anthropic.RateLimitError) as caught:
        anthropic_client.messages.create(**create_kwargs())
    assert caught.value.status_code == 429
    span = only_span(otel)
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes[a.ERROR_TYPE] == "anthropic.RateLimitError"
    assert span.attributes["http.response.status_code"] == 429  # from the SDK's native tracing
    (duration,) = otel.metrics()[a.METRIC_OPERATION_DURATION]
    assert duration.attributes[a.ERROR_TYPE] == "anthropic.RateLimitError"


def test_timeout(otel, fake_provider):
    client = make_client(fake_provider, otel, timeout=0.15)
    fake_provider.enqueue(Behaviour(headers_delay_s=0.6))
    with pytest.raises(anthropic.APITimeoutError):
        client.messages.create(**create_kwargs())
    span = only_span(otel)
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes[a.ERROR_TYPE] == "anthropic.APITimeoutError"


def test_connection_refused(otel):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = anthropic.Anthropic(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}", max_retries=0)
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(**create_kwargs())
    span = only_span(otel)
    assert span.attributes[a.ERROR_TYPE] == "anthropic.APIConnectionError"
    assert span.attributes[a.SERVER_PORT] == port


async def test_async_create_and_error(otel, anthropic_aclient, fake_provider):
    fake_provider.enqueue(Behaviour(text="async answer", input_tokens=5, cache_write_tokens=10, output_tokens=2))
    message = await anthropic_aclient.messages.create(**create_kwargs())
    assert isinstance(message, anthropic.types.Message)
    fake_provider.enqueue(Behaviour(error_status=529))
    with pytest.raises(anthropic.APIStatusError) as caught:
        await anthropic_aclient.messages.create(**create_kwargs())
    assert caught.value.status_code == 529
    ok, failed = otel.spans()
    assert ok.attributes[a.USAGE_INPUT_TOKENS] == 15
    assert ok.attributes[a.RESPONSE_ID] == message.id
    record = records.take((ok.context.trace_id, ok.context.span_id))
    assert record.output_text == "async answer"
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert failed.attributes[a.ERROR_TYPE] == f"anthropic.{type(caught.value).__name__}"
