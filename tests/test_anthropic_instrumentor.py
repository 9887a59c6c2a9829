"""The Anthropic instrumentor's life cycle, and the guarantee that our failures never reach the application."""

from __future__ import annotations

import importlib.metadata
import logging

import anthropic
import anthropic._base_client as base_client
import pytest
import wrapt
from _anthropic_helpers import create_kwargs, make_client
from anthropic.resources.beta.messages import AsyncMessages as AsyncBetaMessages
from anthropic.resources.beta.messages import Messages as BetaMessages
from anthropic.resources.messages import AsyncMessages, Messages
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from llm_telemetry.fake_provider import Behaviour
from llm_telemetry.instrumentation.anthropic import AnthropicInstrumentor

INSTRUMENTED = [
    (cls, method)
    for cls in (Messages, AsyncMessages, BetaMessages, AsyncBetaMessages)
    for method in ("create", "parse", "stream")
]


def test_entry_point_and_dependencies():
    (entry,) = [e for e in importlib.metadata.entry_points(group="opentelemetry_instrumentor") if e.name == "llm_telemetry_anthropic"]
    assert entry.load() is AnthropicInstrumentor
    assert AnthropicInstrumentor().instrumentation_dependencies() == ("anthropic >= 0.49",)


def test_instrument_and_uninstrument_wrap_and_restore(otel):
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    try:
        assert all(isinstance(vars(cls)[name], wrapt.FunctionWrapper) for cls, name in INSTRUMENTED)
        assert isinstance(base_client.start_api_call_span, wrapt.FunctionWrapper)
    finally:
        instrumentor.uninstrument()
    assert not any(isinstance(vars(cls)[name], wrapt.FunctionWrapper) for cls, name in INSTRUMENTED)
    assert not isinstance(base_client.start_api_call_span, wrapt.FunctionWrapper)


class ExplodingProcessor(SpanProcessor):
    """A third-party span processor with a bug: our span cannot even start."""

    def on_start(self, span, parent_context=None):
        raise RuntimeError("processor exploded")


@pytest.fixture
def broken_instrumentation(otel):
    provider = TracerProvider()
    provider.add_span_processor(ExplodingProcessor())
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=provider, meter_provider=otel.meter_provider)
    yield
    instrumentor.uninstrument()


@pytest.mark.usefixtures("broken_instrumentation")
def test_failure_inside_instrumentation_never_breaks_the_call(otel, fake_provider, caplog):
    client = make_client(fake_provider, otel, native=False)
    fake_provider.set_default(Behaviour(text="still answered"))
    with caplog.at_level(logging.WARNING):
        message = client.messages.create(**create_kwargs())
        events = list(client.messages.create(**create_kwargs(), stream=True))
        with client.messages.stream(**create_kwargs()) as stream:
            text = stream.get_final_text()
    assert message.content[0].text == text == "still answered"
    assert events[-1].type == "message_stop"
    assert caplog.text.count("could not start a GenAI span") == 3


@pytest.mark.usefixtures("broken_instrumentation")
async def test_failure_inside_instrumentation_never_breaks_async_calls(otel, fake_provider, caplog):
    client = make_client(fake_provider, otel, native=False, asynchronous=True)
    with caplog.at_level(logging.WARNING):
        message = await client.messages.create(**create_kwargs())
        async with client.messages.stream(**create_kwargs()) as stream:
            text = await stream.get_final_text()
    assert message.content[0].text == text
    assert caplog.text.count("could not start a GenAI span") == 2


@pytest.mark.usefixtures("anthropic_instrumented")
def test_suppressed_instrumentation_records_nothing(otel, fake_provider):
    client = make_client(fake_provider, otel, native=False)
    with suppress_instrumentation():
        client.messages.create(**create_kwargs())
        with client.messages.stream(**create_kwargs()) as stream:
            stream.until_done()
    assert otel.spans() == []
    assert isinstance(client.messages.create(**create_kwargs()), anthropic.types.Message)
    assert len(otel.spans()) == 1
