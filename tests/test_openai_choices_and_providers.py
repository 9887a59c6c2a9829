"""OpenAI specifics: ``n > 1`` streams keep their choices apart; Azure clients name their provider; a failed
Responses call is an error whether streamed or not."""

from __future__ import annotations

import openai
import pytest
from _canned_provider import chat_chunk, chat_completion, json_reply, response_object, sse_reply
from _records import records
from opentelemetry import trace

from llm_telemetry import attributes as a

pytestmark = pytest.mark.usefixtures("instrumented")

MESSAGES = [{"role": "user", "content": "Two short sentences about pets."}]


def client_for(canned) -> openai.OpenAI:
    return openai.OpenAI(api_key="k", base_url=canned.url + "/v1", max_retries=0)


def only(otel):
    (span,) = otel.spans()
    return span, records.take((span.context.trace_id, span.context.span_id))


# --- 13: n > 1 ------------------------------------------------------------------------------------------


def interleaved_choices() -> list:
    return [
        chat_chunk(0, "The "), chat_chunk(1, "Our "), 0.5,
        chat_chunk(0, "cat "), chat_chunk(1, "dog "), 0.5,
        chat_chunk(0, "sat."), chat_chunk(1, "ran."),
        chat_chunk(1, finish="length"), chat_chunk(0, finish="stop"), "[DONE]",
    ]


def test_stream_choices_are_kept_apart(otel, canned):
    canned.enqueue(sse_reply(interleaved_choices()))
    for _ in client_for(canned).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, n=2, stream=True):
        pass
    span, record = only(otel)
    assert record.output_text == "The cat sat.\nOur dog ran."  # as a non-streamed n=2 answer is joined
    assert record.finish_reasons == ("stop", "length")  # in choice order
    # TTFT, TBT and the chunk count follow choice 0: its 2 gaps are the 0.5 s pauses (mean 0.5 s); across choices
    # there would be 5 gaps, 3 of them ~0 (mean ~0.2 s)
    assert span.attributes[a.STREAM_CHUNK_COUNT] == 3
    assert span.attributes[a.STREAM_TBT_MEAN] >= 0.3


def test_non_streamed_choices_match_the_streamed_form(otel, canned):
    canned.enqueue(json_reply(chat_completion(choices=["The cat sat.", "Our dog ran."])))
    client_for(canned).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, n=2)
    _, record = only(otel)
    assert record.output_text == "The cat sat.\nOur dog ran."


# --- 18b: Azure OpenAI ------------------------------------------------------------------------------------


def test_azure_clients_report_azure_as_provider(otel, canned):
    canned.enqueue(json_reply(chat_completion()))
    azure = openai.AzureOpenAI(api_key="k", azure_endpoint=canned.url, api_version="2024-10-21", max_retries=0)
    azure.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span, record = only(otel)
    assert span.attributes[a.PROVIDER_NAME] == "azure.ai.openai"
    assert record.provider == "azure.ai.openai"
    (duration,) = otel.metrics()[a.METRIC_OPERATION_DURATION]
    assert duration.attributes[a.PROVIDER_NAME] == "azure.ai.openai"


async def test_async_azure_client_too(otel, canned):
    canned.enqueue(json_reply(chat_completion()))
    azure = openai.AsyncAzureOpenAI(api_key="k", azure_endpoint=canned.url, api_version="2024-10-21", max_retries=0)
    await azure.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span, _ = only(otel)
    assert span.attributes[a.PROVIDER_NAME] == "azure.ai.openai"


def test_plain_openai_client_stays_openai(otel, canned):
    canned.enqueue(json_reply(chat_completion()))
    client_for(canned).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span, _ = only(otel)
    assert span.attributes[a.PROVIDER_NAME] == "openai"


# --- 18c: Responses response.failed ------------------------------------------------------------------------

FAILURE = {"code": "server_error", "message": "The model failed to generate a response."}


def test_failed_response_is_an_error(otel, canned):
    canned.enqueue(json_reply(response_object(status="failed", error=FAILURE)))
    response = client_for(canned).responses.create(model="gpt-4o-mini", input="hi")
    assert response.status == "failed"  # the app gets the response as without us
    span, record = only(otel)
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes[a.ERROR_TYPE] == "server_error"
    assert record.error_type == "server_error"
    (duration,) = otel.metrics()[a.METRIC_OPERATION_DURATION]
    assert duration.attributes[a.ERROR_TYPE] == "server_error"


def _failed_stream(error) -> list:
    created = response_object(status="in_progress")
    created["output"] = []
    return [
        ("response.created", {"type": "response.created", "sequence_number": 0, "response": created}),
        ("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_1",
                                        "output_index": 0, "content_index": 0, "delta": "Par", "logprobs": []}),
        ("response.failed", {"type": "response.failed", "sequence_number": 2, "response": response_object(status="failed", error=error)}),
    ]


def test_streamed_failed_response_is_an_error(otel, canned):
    canned.enqueue(sse_reply(_failed_stream(FAILURE)))
    events = list(client_for(canned).responses.create(model="gpt-4o-mini", input="hi", stream=True))
    assert events[-1].type == "response.failed"
    span, record = only(otel)
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes[a.ERROR_TYPE] == "server_error"
    assert span.attributes[a.STREAM_END_REASON] == "error"
    assert record.output_text == "Par"


def test_failed_response_without_an_error_code(otel, canned):
    canned.enqueue(sse_reply(_failed_stream(None)))
    for _ in client_for(canned).responses.create(model="gpt-4o-mini", input="hi", stream=True):
        pass
    span, _ = only(otel)
    assert span.attributes[a.ERROR_TYPE] == "response.failed"
