"""Streams that report no usage: input tokens are estimated from the request and flagged, never a silent 0.

OpenAI chat streams carry usage only when the request asks for it (``stream_options.include_usage``, off
in the SDK). Without it the call's input tokens are estimated (`_timing.estimate_input_tokens`), flagged
``llm_telemetry.usage.input_tokens_estimated`` and kept out of the semconv token histogram. The opt-in
setting ``LLM_TELEMETRY_OPENAI_STREAM_INCLUDE_USAGE`` asks for usage on the application's behalf instead.
"""

from __future__ import annotations

import pytest
from _openai_helpers import MESSAGES
from _records import records

from llm_telemetry import attributes as a
from llm_telemetry.config import ConfigError, load_settings
from llm_telemetry.fake_provider import Behaviour
from llm_telemetry.instrumentation._timing import estimate_input_tokens
from llm_telemetry.instrumentation.openai import OpenAIInstrumentor

pytestmark = pytest.mark.usefixtures("instrumented")

# "You extract dates." (18 chars) + "Invoice dated 03/04/2025" (24 chars): ceil(42 / 4) + 4 per message
EXPECTED_ESTIMATE = 11 + 2 * 4


def only(otel):
    (span,) = otel.spans()
    return span, records.take((span.context.trace_id, span.context.span_id))


def drain(stream) -> list:
    return list(stream)


def test_the_approximation():
    assert estimate_input_tokens("You extract dates.", [{"role": "user", "parts": [{"type": "text", "content": "x" * 400}]}]) == (
        (18 + 400 + 3) // 4 + 2 * 4
    )
    assert estimate_input_tokens(None, []) is None


def test_chat_stream_without_usage_gets_an_estimated_input(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=["It ", "is ", "April."]))
    drain(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    span, record = only(otel)
    assert span.attributes[a.USAGE_INPUT_TOKENS_ESTIMATE] == EXPECTED_ESTIMATE and a.USAGE_INPUT_TOKENS not in span.attributes
    assert span.attributes[a.USAGE_INPUT_TOKENS_ESTIMATED] is True
    assert record.input_tokens == EXPECTED_ESTIMATE and record.input_tokens_estimated
    assert record.output_tokens_estimated
    assert otel.metrics().get(a.METRIC_TOKEN_USAGE, []) == []  # estimates stay out of the semconv histogram


def test_a_long_prompt_is_not_priced_as_nothing(otel, client, fake_provider):
    prompt = "lorem ipsum " * 16_000  # 192 k characters, ~48 k tokens
    drain(client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True))
    _, record = only(otel)
    assert record.input_tokens == (len(prompt) + 3) // 4 + 4
    assert record.input_tokens_estimated


def test_reported_usage_is_never_replaced(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=["a", "b"], input_tokens=40))
    drain(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    span, record = only(otel)
    assert span.attributes[a.USAGE_INPUT_TOKENS] == 40
    assert a.USAGE_INPUT_TOKENS_ESTIMATED not in span.attributes and not record.input_tokens_estimated
    (input_point,) = [p for p in otel.metrics()[a.METRIC_TOKEN_USAGE] if p.attributes[a.TOKEN_TYPE] == "input"]
    assert input_point.sum == 40


def test_a_cut_stream_still_gets_its_input_estimated(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=["a", "b", "c"], cut_after_chunks=1))
    with pytest.raises(Exception):  # noqa: B017 - the SDK's connection error
        drain(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    span, record = only(otel)
    assert span.attributes[a.ERROR_TYPE]
    assert record.input_tokens == EXPECTED_ESTIMATE and record.input_tokens_estimated  # the prompt was sent and billed


def test_a_request_that_failed_before_streaming_is_not_estimated(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(error_status=429))
    with pytest.raises(Exception):  # noqa: B017
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    _, record = only(otel)
    assert record.input_tokens is None and not record.input_tokens_estimated


def test_responses_stream_without_usage(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=["a", "b"], include_usage=False))
    drain(client.responses.create(model="gpt-4o-mini", input="Invoice dated 03/04/2025", stream=True))
    _, record = only(otel)
    assert record.input_tokens == (24 + 3) // 4 + 4 and record.input_tokens_estimated


async def test_async_stream_without_usage(otel, aclient, fake_provider):
    stream = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    async for _ in stream:
        pass
    _, record = only(otel)
    assert record.input_tokens == EXPECTED_ESTIMATE and record.input_tokens_estimated


# --- the opt-in: ask the provider for usage on the application's behalf --------------------------------


@pytest.fixture
def include_usage(otel, settings_env):
    settings_env({"LLM_TELEMETRY_OPENAI_STREAM_INCLUDE_USAGE": "true"})
    OpenAIInstrumentor().uninstrument()
    OpenAIInstrumentor().instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)


@pytest.mark.usefixtures("include_usage")
def test_opt_in_asks_for_usage_when_the_app_did_not(otel, client, fake_provider):
    fake_provider.enqueue(Behaviour(chunks=["a", "b"], input_tokens=40))
    chunks = drain(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert fake_provider.last_request.json["stream_options"] == {"include_usage": True}
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 40  # the extra chunk the app now receives
    _, record = only(otel)
    assert record.input_tokens == 40 and not record.input_tokens_estimated


@pytest.mark.usefixtures("include_usage")
def test_opt_in_leaves_the_apps_own_stream_options_alone(otel, client, fake_provider):
    options = {"include_usage": False}
    drain(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options=options))
    assert fake_provider.last_request.json["stream_options"] == {"include_usage": False}
    assert options == {"include_usage": False}
    _, record = only(otel)
    assert record.input_tokens_estimated


@pytest.mark.usefixtures("include_usage")
def test_opt_in_covers_the_stream_helper_and_not_plain_calls(otel, client, fake_provider):
    with client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        stream.until_done()
    assert fake_provider.last_request.json["stream_options"] == {"include_usage": True}
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert "stream_options" not in fake_provider.last_request.json


def test_the_setting_is_off_by_default_and_validated():
    assert load_settings({}).openai.stream_include_usage is False
    with pytest.raises(ConfigError, match="LLM_TELEMETRY_OPENAI_STREAM_INCLUDE_USAGE"):
        load_settings({"LLM_TELEMETRY_OPENAI_STREAM_INCLUDE_USAGE": "maybe"})


def test_a_big_prompt_in_a_stream_without_usage_is_priced_on_its_estimate_and_flagged(otel, client, fake_provider):
    """Issue 8.3's repro: a 50 k-token prompt used to cost $0.0005 (output only) with no flag."""
    from llm_telemetry.processors.chain import EnricherChain
    from llm_telemetry.processors.cost import CostEnricher
    from llm_telemetry.side_channel import side_channel

    side_channel.connect(EnricherChain([CostEnricher()]))
    fake_provider.enqueue(Behaviour(chunks=["The ", "date ", "is ", "2025-04-03."], include_usage=False))
    prompt = "word " * 40_000  # 200 k characters: ~50 k tokens
    drain(client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True))
    span, _ = only(otel)
    attrs = span.attributes
    assert attrs[a.USAGE_INPUT_TOKENS_ESTIMATED] is True and attrs[a.COST_ESTIMATED] is True
    assert attrs[a.USAGE_INPUT_TOKENS_ESTIMATE] == 50_000 + 4 and a.USAGE_INPUT_TOKENS not in attrs
    assert attrs[a.COST_INPUT_USD] == pytest.approx(50_004 * 0.15e-6)
    assert attrs[a.COST_TOTAL_USD] > 0.0075
