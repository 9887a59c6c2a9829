"""The ``openinference`` enricher and the Phoenix project name: what Arize Phoenix reads, from real calls.

Real OpenAI / Anthropic SDKs against the fake provider, our instrumentation, the real enricher chain
(``cost`` + ``openinference``, built from settings as users get it) and in-memory spans. The end-to-end
check against a real Phoenix server is tests/test_phoenix_e2e.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import anthropic
import openai
import pytest
from _pipeline_helpers import settings_from
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_telemetry import attribute
from llm_telemetry import attributes as a
from llm_telemetry.exporters import configure
from llm_telemetry.exporters.openinference import MAX_EMBEDDING_TEXTS, with_project_name
from llm_telemetry.fake_provider import Behaviour
from llm_telemetry.instrumentation.anthropic import AnthropicInstrumentor
from llm_telemetry.instrumentation.openai import OpenAIInstrumentor
from llm_telemetry.processors.chain import build_chain
from llm_telemetry.record import GenAICall
from llm_telemetry.side_channel import side_channel

MESSAGES = [{"role": "system", "content": "Extract the invoice date."}, {"role": "user", "content": "Invoice of 03/04/2025"}]


@dataclass
class Env:
    oai: openai.OpenAI
    claude: anthropic.Anthropic
    exporter: InMemorySpanExporter

    def span(self) -> dict:
        (span,) = self.exporter.get_finished_spans()
        self.exporter.clear()
        return dict(span.attributes or {})


def _env(fake_provider, capture: str) -> Iterator[Env]:
    settings = settings_from({"LLM_TELEMETRY_PIPELINE_ENRICHERS": "cost,openinference",
                              "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": capture})
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider()
    side_channel.connect(build_chain(settings, meter_provider, tracer_provider))
    instrumentors = [OpenAIInstrumentor(), AnthropicInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield Env(openai.OpenAI(api_key="sk-test", base_url=fake_provider.openai_base_url, max_retries=0),
                  anthropic.Anthropic(api_key="sk-test", base_url=fake_provider.anthropic_base_url, max_retries=0), exporter)
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
        side_channel.connect(None, auto=False)
        tracer_provider.shutdown()
        meter_provider.shutdown()


@pytest.fixture
def env(fake_provider, request) -> Iterator[Env]:
    yield from _env(fake_provider, getattr(request, "param", "false"))


def test_chat_span_has_kind_model_reported_tokens_and_filterable_attribution(env: Env) -> None:
    with attribute(user_id="user-17", session_id="sess-1", feature="invoice-dates"):
        env.oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                        extra_headers=Behaviour(text="2025-04-03", input_tokens=58, output_tokens=6).header())
    attrs = env.span()
    assert attrs[a.OI_SPAN_KIND] == "LLM" and attrs[a.OI_PROVIDER] == "openai" and attrs[a.OI_MODEL_NAME] == "gpt-4o-mini"
    assert (attrs[a.OI_TOKEN_COUNT_PROMPT], attrs[a.OI_TOKEN_COUNT_COMPLETION], attrs[a.OI_TOKEN_COUNT_TOTAL]) == (58, 6, 64)
    assert json.loads(attrs[a.OI_METADATA]) == {"feature": "invoice-dates", "user_id": "user-17", "session_id": "sess-1"}
    assert attrs[a.OI_TAGS] == ("invoice-dates",)
    # Content stays out without the opt-in: Phoenix's Input/Output get nothing from us.
    assert not {a.OI_INPUT_VALUE, a.OI_OUTPUT_VALUE} & set(attrs)


@pytest.mark.parametrize("env", ["true"], indirect=True)
def test_with_capture_on_prompt_and_answer_are_input_and_output_values(env: Env) -> None:
    env.claude.messages.create(model="claude-haiku-4-5", max_tokens=50, system="Be brief.",
                               messages=[{"role": "user", "content": "Who handles billing?"}],
                               extra_headers=Behaviour(text="The billing team.").header())
    attrs = env.span()
    assert attrs[a.OI_OUTPUT_VALUE] == "The billing team." and attrs[a.OI_OUTPUT_MIME_TYPE] == "text/plain"
    assert attrs[a.OI_INPUT_MIME_TYPE] == "application/json"
    assert json.loads(attrs[a.OI_INPUT_VALUE]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Who handles billing?"}]},
    ]


def test_stream_without_usage_shows_no_token_count_anywhere_phoenix_reads(env: Env) -> None:
    """Phoenix fills ``llm.token_count.completion`` from ``gen_ai.usage.output_tokens`` when the span has none:
    our estimate must be in neither, only in our own attribute (and in the cost, which is ours)."""
    stream = env.oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                             extra_headers=Behaviour(chunks=["It ", "was ", "April."]).header())
    for _ in stream:
        pass
    attrs = env.span()
    assert attrs[a.USAGE_OUTPUT_TOKENS_ESTIMATE] == 4 and attrs[a.USAGE_OUTPUT_TOKENS_ESTIMATED] is True  # ceil(14 chars / 4)
    assert a.OI_TOKEN_COUNT_COMPLETION not in attrs and a.OI_TOKEN_COUNT_TOTAL not in attrs
    assert a.USAGE_OUTPUT_TOKENS not in attrs
    assert attrs[a.COST_OUTPUT_USD] > 0  # our cost still prices the estimate


@pytest.mark.parametrize("env", ["true"], indirect=True)
def test_embeddings_are_embedding_spans_with_their_texts(env: Env) -> None:
    inputs = [f"invoice {n}" for n in range(MAX_EMBEDDING_TEXTS + 4)]
    env.oai.embeddings.create(model="text-embedding-3-small", input=inputs)
    attrs = env.span()
    assert attrs[a.OI_SPAN_KIND] == "EMBEDDING"
    assert attrs[a.OI_EMBEDDING_MODEL_NAME] == attrs[a.OI_MODEL_NAME] == "text-embedding-3-small"
    assert attrs[a.OI_TOKEN_COUNT_TOTAL] == attrs[a.OI_TOKEN_COUNT_PROMPT] > 0 and a.OI_TOKEN_COUNT_COMPLETION not in attrs
    texts = [attrs[a.OI_EMBEDDING_TEXT.format(index=i)] for i in range(MAX_EMBEDDING_TEXTS)]
    assert texts == inputs[:MAX_EMBEDDING_TEXTS]
    assert a.OI_EMBEDDING_TEXT.format(index=MAX_EMBEDDING_TEXTS) not in attrs  # bounded: the SDK keeps 128 attributes


def test_embedding_texts_are_content_too(env: Env) -> None:
    env.oai.embeddings.create(model="text-embedding-3-small", input=["secret invoice"])
    attrs = env.span()
    assert attrs[a.OI_SPAN_KIND] == "EMBEDDING"
    assert not [k for k in attrs if k.startswith("embedding.embeddings.")]


def test_an_estimate_survives_the_trip_through_span_attributes() -> None:
    """A gateway rebuilds the record from the span: the estimate is still known as one."""
    call = GenAICall.from_attributes({a.OPERATION_NAME: "chat", a.PROVIDER_NAME: "openai", a.REQUEST_MODEL: "gpt-4o",
                                      a.USAGE_OUTPUT_TOKENS_ESTIMATE: 7})
    assert call.output_tokens == 7 and call.output_tokens_estimated
    reported = GenAICall.from_attributes({a.OPERATION_NAME: "chat", a.PROVIDER_NAME: "openai", a.USAGE_OUTPUT_TOKENS: 9})
    assert reported.output_tokens == 9 and not reported.output_tokens_estimated


def test_project_name_is_the_service_name_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert with_project_name(Resource({"service.name": "invoice-api"})).attributes[a.OI_PROJECT_NAME] == "invoice-api"
    named = Resource({"service.name": "invoice-api", a.OI_PROJECT_NAME: "billing"})
    assert with_project_name(named).attributes[a.OI_PROJECT_NAME] == "billing"
    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "invoice-api")
    providers = configure(set_global=False, span_exporters=[], metric_readers=[], settings=settings_from({}))
    try:
        assert providers.tracer_provider.resource.attributes[a.OI_PROJECT_NAME] == "invoice-api"
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"{a.OI_PROJECT_NAME}=billing")
        other = configure(set_global=False, span_exporters=[], metric_readers=[], settings=settings_from({}))
        assert other.tracer_provider.resource.attributes[a.OI_PROJECT_NAME] == "billing"
        other.shutdown(timeout_s=0.2)
    finally:
        providers.shutdown(timeout_s=0.2)
