"""Usage numbers are validated where they enter: a broken reply can flag its own span, never poison telemetry.

A negative, boolean, non-integral or absurd (> `MAX_TOKEN_COUNT`) token count is rejected: the field
stays unset, ``llm_telemetry.usage.invalid`` names it on the span, and `usage_rejections` counts it.
"""

from __future__ import annotations

import openai
import pytest
from _anthropic_helpers import API_KEY
from _canned_provider import anthropic_message, chat_chunk, chat_completion, json_reply, response_object, sse_reply
from _otlp_receiver import OtlpGrpcReceiver
from _records import records
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

from llm_telemetry import attributes as a
from llm_telemetry.instrumentation.openai import OpenAIInstrumentor
from llm_telemetry.record import MAX_TOKEN_COUNT, GenAICall, usage_rejections

MESSAGES = [{"role": "user", "content": "hi"}]


def openai_client(canned) -> openai.OpenAI:
    return openai.OpenAI(api_key="k", base_url=canned.url + "/v1", max_retries=0)


def only(otel):
    (span,) = otel.spans()
    return span, records.take((span.context.trace_id, span.context.span_id))


def token_points(otel) -> list:
    return otel.metrics().get(a.METRIC_TOKEN_USAGE, [])


@pytest.mark.usefixtures("instrumented")
def test_negative_usage_is_rejected_flagged_and_counted(otel, canned):
    before = usage_rejections.total
    canned.enqueue(json_reply(chat_completion(usage={"prompt_tokens": -50, "completion_tokens": -7, "total_tokens": -57})))
    openai_client(canned).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span, record = only(otel)
    assert a.USAGE_INPUT_TOKENS not in span.attributes and a.USAGE_OUTPUT_TOKENS not in span.attributes
    assert span.attributes[a.USAGE_INVALID] == (a.USAGE_INPUT_TOKENS, a.USAGE_OUTPUT_TOKENS)
    assert record.input_tokens is None and record.output_tokens is None
    assert record.usage_invalid == (a.USAGE_INPUT_TOKENS, a.USAGE_OUTPUT_TOKENS)
    assert token_points(otel) == []  # nothing negative reaches a histogram
    assert usage_rejections.total == before + 2
    assert usage_rejections.by_field()[a.USAGE_INPUT_TOKENS] >= 1


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize(
    ("value", "accepted"),
    [(12, 12), (12.0, 12), (0, 0), (MAX_TOKEN_COUNT, MAX_TOKEN_COUNT), (2.5, None), (-1, None),
     (MAX_TOKEN_COUNT + 1, None), (2**70, None), (1e300, None)],
)
def test_each_kind_of_value(otel, canned, value, accepted):
    """(The SDK itself turns ``true`` and ``"12"`` into ints before we see them; spans can carry them: see below.)"""
    canned.enqueue(json_reply(chat_completion(usage={"prompt_tokens": value, "completion_tokens": 3, "total_tokens": 0})))
    openai_client(canned).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span, record = only(otel)
    assert record.input_tokens == accepted
    assert record.output_tokens == 3
    if accepted is None:
        assert span.attributes[a.USAGE_INVALID] == (a.USAGE_INPUT_TOKENS,)
    else:
        assert span.attributes[a.USAGE_INPUT_TOKENS] == accepted and a.USAGE_INVALID not in span.attributes


@pytest.mark.usefixtures("instrumented")
def test_streamed_usage_and_details_are_checked(otel, canned):
    usage = {"prompt_tokens": 10, "completion_tokens": 2**70, "total_tokens": 0,
             "prompt_tokens_details": {"cached_tokens": -3}, "completion_tokens_details": {"reasoning_tokens": 1.5}}
    canned.enqueue(sse_reply([chat_chunk(content="Hi"), chat_chunk(finish="stop"), chat_chunk(usage=usage, choices=False), "[DONE]"]))
    for _ in openai_client(canned).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
        pass
    span, record = only(otel)
    assert record.input_tokens == 10
    assert record.output_tokens is not None and record.output_tokens_estimated  # the bad count is replaced by our estimate
    assert set(span.attributes[a.USAGE_INVALID]) == {
        a.USAGE_OUTPUT_TOKENS, a.USAGE_CACHE_READ_INPUT_TOKENS, a.USAGE_REASONING_OUTPUT_TOKENS}
    assert record.cache_read_tokens is None and "reasoning_tokens" not in record.extra


@pytest.mark.usefixtures("instrumented")
def test_responses_usage_is_checked(otel, canned):
    usage = {"input_tokens": -4, "output_tokens": 5, "total_tokens": 1,
             "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}
    canned.enqueue(json_reply(response_object(usage=usage)))
    openai_client(canned).responses.create(model="gpt-4o-mini", input="hi")
    span, record = only(otel)
    assert record.input_tokens is None and record.output_tokens == 5
    assert span.attributes[a.USAGE_INVALID] == (a.USAGE_INPUT_TOKENS,)


@pytest.mark.usefixtures("instrumented")
def test_embeddings_usage_is_checked(otel, canned):
    body = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
            "model": "text-embedding-3-small", "usage": {"prompt_tokens": -9, "total_tokens": -9}}
    canned.enqueue(json_reply(body))
    openai_client(canned).embeddings.create(model="text-embedding-3-small", input="hi")
    span, record = only(otel)
    assert record.input_tokens is None
    assert span.attributes[a.USAGE_INVALID] == (a.USAGE_INPUT_TOKENS,)


@pytest.mark.usefixtures("anthropic_instrumented")
def test_anthropic_usage_is_checked(otel, canned):
    import anthropic

    client = anthropic.Anthropic(api_key=API_KEY, base_url=canned.url, max_retries=0, open_telemetry=False)
    usage = {"input_tokens": 10, "output_tokens": -2, "cache_read_input_tokens": 2**70, "cache_creation_input_tokens": 4}
    canned.enqueue(json_reply(anthropic_message(usage=usage)))
    client.messages.create(model="claude-sonnet-4-6", max_tokens=16, messages=MESSAGES)
    span, record = only(otel)
    assert record.input_tokens == 14  # the valid parts only: 10 + 4 cache writes
    assert record.output_tokens is None and record.cache_read_tokens is None
    assert set(span.attributes[a.USAGE_INVALID]) == {a.USAGE_OUTPUT_TOKENS, a.USAGE_CACHE_READ_INPUT_TOKENS}


@pytest.mark.usefixtures("anthropic_instrumented")
def test_anthropic_streamed_usage_is_checked(otel, canned):
    import anthropic

    message = anthropic_message(usage={"input_tokens": -10, "output_tokens": 1})
    message["content"] = []
    events = [
        ("message_start", {"type": "message_start", "message": message}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 0.5}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    canned.enqueue(sse_reply(events))
    client = anthropic.Anthropic(api_key=API_KEY, base_url=canned.url, max_retries=0, open_telemetry=False)
    for _ in client.messages.create(model="claude-sonnet-4-6", max_tokens=16, messages=MESSAGES, stream=True):
        pass
    span, record = only(otel)
    assert set(span.attributes[a.USAGE_INVALID]) == {a.USAGE_INPUT_TOKENS, a.USAGE_OUTPUT_TOKENS}
    assert record.input_tokens_estimated and record.output_tokens_estimated


def test_one_absurd_reply_never_stops_later_metric_exports(canned):
    """2**70 tokens used to make every later OTLP metric export fail ("Value out of range")."""
    with OtlpGrpcReceiver() as rx:
        exporter = OTLPMetricExporter(endpoint=rx.endpoint, insecure=True)
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)
        meter_provider = MeterProvider(metric_readers=[reader])
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(meter_provider=meter_provider)
        try:
            client = openai_client(canned)
            canned.enqueue(json_reply(chat_completion(usage={"prompt_tokens": 2**70, "completion_tokens": 1, "total_tokens": 0})))
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            for _ in range(3):
                canned.enqueue(json_reply(chat_completion(usage={"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105})))
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert meter_provider.force_flush(timeout_millis=10_000)
            rx.wait_for_metrics({a.METRIC_TOKEN_USAGE, a.METRIC_OPERATION_DURATION}, timeout=10)
        finally:
            instrumentor.uninstrument()
            meter_provider.shutdown()
        token_metric = next(m.metric for m in rx.metrics() if m.name == a.METRIC_TOKEN_USAGE)
        sums = sorted(p.sum for p in token_metric.histogram.data_points)
        assert sums == [1 + 15, 300]  # output: 1 + 3x5, input: 3x100 (the absurd input count was rejected)


def test_from_attributes_rejects_the_same_values():
    before = usage_rejections.total
    record = GenAICall.from_attributes({
        a.OPERATION_NAME: "chat",
        a.USAGE_INPUT_TOKENS: -5,
        a.USAGE_OUTPUT_TOKENS: 1.5,
        a.USAGE_CACHE_READ_INPUT_TOKENS: float("inf"),
        a.USAGE_CACHE_CREATION_INPUT_TOKENS: True,
        a.SERVER_PORT: float("nan"),
    })
    assert record is not None
    assert record.input_tokens is None and record.output_tokens is None
    assert record.cache_read_tokens is None and record.cache_write_tokens is None
    assert set(record.usage_invalid) == {
        a.USAGE_INPUT_TOKENS, a.USAGE_OUTPUT_TOKENS, a.USAGE_CACHE_READ_INPUT_TOKENS, a.USAGE_CACHE_CREATION_INPUT_TOKENS}
    assert record.server_port is None
    assert usage_rejections.total == before + 4
    assert GenAICall.from_attributes({a.OPERATION_NAME: "chat", a.USAGE_OUTPUT_TOKENS: "12"}).output_tokens is None
    good = GenAICall.from_attributes({a.OPERATION_NAME: "chat", a.USAGE_INPUT_TOKENS: 7, a.USAGE_INPUT_TOKENS_ESTIMATED: True})
    assert good.input_tokens == 7 and good.input_tokens_estimated and good.usage_invalid == ()
