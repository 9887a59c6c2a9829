"""The fake provider speaks the real wire formats: the real `openai` and `anthropic` SDKs parse it.

No instrumentation here: these tests pin the wire shapes, usage semantics, errors and cuts that every
instrumentation test, the demo and the benchmarks rely on.
"""

from __future__ import annotations

import base64
import json
import struct

import anthropic
import httpx2
import openai
import pytest
from _fake_provider_helpers import MESSAGES, async_anthropic_client, async_openai_client

from llm_telemetry.fake_provider import Behaviour, FakeProvider, embedding_vector

CUT_ERRORS = (anthropic.APIConnectionError, httpx2.RemoteProtocolError, httpx2.ReadError)



# --- OpenAI Chat Completions ------------------------------------------------------------------------


def test_chat_json_usage_and_recorded_request(fp: FakeProvider, oai: openai.OpenAI) -> None:
    fp.enqueue(Behaviour(text="Cached answer", cache_read_tokens=5, input_tokens=20, dated_model=True))
    r = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0.2)
    assert r.choices[0].message.content == "Cached answer"
    assert r.choices[0].finish_reason == "stop"
    assert r.model == "gpt-4o-mini-2024-07-18"
    assert r.usage is not None and r.usage.prompt_tokens_details is not None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (20, 2, 22)
    assert r.usage.prompt_tokens_details.cached_tokens == 5  # OpenAI: part of prompt_tokens
    req = fp.last_request
    assert req.path == "/v1/chat/completions"
    assert req.json["temperature"] == 0.2 and req.json["messages"] == MESSAGES
    assert req.headers["authorization"] == "Bearer test-key"
    assert req.behaviour is not None and req.behaviour.text == "Cached answer"
    assert r._request_id == req.request_id  # x-request-id header reaches the SDK


async def test_chat_async_json_and_stream(fp: FakeProvider) -> None:
    async with async_openai_client(fp) as client:
        r = await client.chat.completions.create(model="m", messages=MESSAGES)
        assert r.choices[0].message.content == Behaviour().text
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        pieces = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == Behaviour().text


def test_chat_stream_with_usage(fp: FakeProvider, oai: openai.OpenAI) -> None:
    fp.set_default(Behaviour(chunks=["A", "B", "C"], cache_read_tokens=4, output_tokens=9, finish_reason="length"))
    stream = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.content for c in chunks[1:4]] == ["A", "B", "C"]
    assert chunks[4].choices[0].finish_reason == "length"
    assert all(c.usage is None for c in chunks[:5])
    last = chunks[5]
    assert last.choices == [] and last.usage is not None and last.usage.prompt_tokens_details is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (12, 9)
    assert last.usage.prompt_tokens_details.cached_tokens == 4
    assert len(chunks) == 6


def test_chat_stream_without_usage(fp: FakeProvider, oai: openai.OpenAI) -> None:
    not_asked = list(oai.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    fp.enqueue(Behaviour(include_usage=False))
    asked_but_off = list(oai.chat.completions.create(model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    for chunks in (not_asked, asked_but_off):
        assert all(c.usage is None and c.choices for c in chunks)
        assert chunks[-1].choices[0].finish_reason == "stop"


def test_chat_stream_helper_accumulates(oai: openai.OpenAI) -> None:
    with oai.chat.completions.stream(model="m", messages=MESSAGES, stream_options={"include_usage": True}) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == Behaviour().text
    assert final.usage is not None and final.usage.completion_tokens == len(Behaviour().content_chunks())


# --- OpenAI Responses and Embeddings ----------------------------------------------------------------


def test_responses_json(fp: FakeProvider, oai: openai.OpenAI) -> None:
    fp.enqueue(Behaviour(text="resp text", cache_read_tokens=3, reasoning_tokens=2))
    r = oai.responses.create(model="gpt-4.1", input="hi")
    assert r.output_text == "resp text" and r.status == "completed"
    assert r.usage is not None
    assert r.usage.input_tokens_details.cached_tokens == 3
    assert r.usage.output_tokens_details.reasoning_tokens == 2
    assert fp.last_request.path == "/v1/responses"


def test_responses_stream_event_sequence(fp: FakeProvider, oai: openai.OpenAI) -> None:
    fp.enqueue(Behaviour(chunks=["x", "y"], cache_read_tokens=1))
    events = list(oai.responses.create(model="gpt-4.1", input="hi", stream=True))
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    done = events[-1]
    assert done.type == "response.completed" and done.response.usage is not None
    assert done.response.output_text == "xy"
    assert done.response.usage.input_tokens_details.cached_tokens == 1


def test_responses_stream_helper_and_incomplete(fp: FakeProvider, oai: openai.OpenAI) -> None:
    with oai.responses.stream(model="gpt-4.1", input="hi") as stream:
        assert stream.get_final_response().output_text == Behaviour().text
    fp.enqueue(Behaviour(finish_reason="length"))
    events = list(oai.responses.create(model="gpt-4.1", input="hi", stream=True))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details is not None


def test_embeddings_base64_default_float_and_dimensions(fp: FakeProvider, oai: openai.OpenAI) -> None:
    e = oai.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    assert fp.last_request.json["encoding_format"] == "base64"  # what the SDK asks for by default
    assert len(e.data) == 2 and e.usage.prompt_tokens == 12
    assert e.data[0].embedding == pytest.approx(embedding_vector("alpha", 8), abs=1e-6)
    assert e.data[0].embedding != pytest.approx(e.data[1].embedding)
    f = oai.embeddings.create(model="m", input="alpha", encoding_format="float", dimensions=16)
    assert f.data[0].embedding == pytest.approx(embedding_vector("alpha", 16))
    assert sum(v * v for v in f.data[0].embedding) == pytest.approx(1.0)
    raw = oai.embeddings.with_raw_response.create(model="m", input="x", encoding_format="base64")
    packed = base64.b64decode(json.loads(raw.text)["data"][0]["embedding"])
    assert len(struct.unpack("<8f", packed)) == 8


# --- Anthropic Messages ---------------------------------------------------------------------------


def test_messages_json_cache_semantics(fp: FakeProvider, claude: anthropic.Anthropic) -> None:
    fp.enqueue(Behaviour(text="Bonjour", input_tokens=7, cache_read_tokens=100, cache_write_tokens=30, dated_model=True))
    m = claude.messages.create(model="claude-sonnet-4", max_tokens=50, messages=MESSAGES)
    assert m.content[0].type == "text" and m.content[0].text == "Bonjour"
    assert m.stop_reason == "end_turn" and m.model == "claude-sonnet-4-20250514"
    # Anthropic: input_tokens excludes cache reads and writes
    assert (m.usage.input_tokens, m.usage.cache_read_input_tokens, m.usage.cache_creation_input_tokens) == (7, 100, 30)
    assert fp.last_request.path == "/v1/messages" and "anthropic-version" in fp.last_request.headers
    assert m._request_id == fp.last_request.request_id  # request-id header reaches the SDK


def test_messages_raw_stream_events(fp: FakeProvider, claude: anthropic.Anthropic) -> None:
    fp.enqueue(Behaviour(chunks=["He", "llo"], cache_read_tokens=5, finish_reason="max_tokens"))
    events = list(claude.messages.create(model="c", max_tokens=5, messages=MESSAGES, stream=True))
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]  # ping is sent but the SDK skips it
    start, delta = events[0], events[5]
    assert start.type == "message_start" and start.message.usage.cache_read_input_tokens == 5
    assert delta.type == "message_delta" and delta.delta.stop_reason == "max_tokens" and delta.usage.output_tokens == 2


def test_messages_stream_helper_final_message(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model="c", max_tokens=50, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text == Behaviour().text  # type: ignore[union-attr]
    assert final.usage.output_tokens == len(Behaviour().content_chunks()) and final.usage.input_tokens == 12


async def test_messages_async_stream(fp: FakeProvider) -> None:
    async with async_anthropic_client(fp) as client, client.messages.stream(model="c", max_tokens=50, messages=MESSAGES) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text == Behaviour().text  # type: ignore[union-attr]


# --- errors and cuts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (404, openai.NotFoundError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_openai_errors_raise_sdk_exceptions(fp: FakeProvider, oai: openai.OpenAI, status: int, exc: type) -> None:
    fp.enqueue(Behaviour(error_status=status, error_message="boom"), Behaviour(error_status=status))
    with pytest.raises(exc) as info:
        oai.chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.status_code == status and info.value.body["message"] == "boom"
    assert info.value.request_id == fp.last_request.request_id
    with pytest.raises(exc):
        oai.chat.completions.create(model="m", messages=MESSAGES, stream=True)


@pytest.mark.parametrize(
    ("status", "exc", "err_type"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_anthropic_errors_raise_sdk_exceptions(
    fp: FakeProvider, claude: anthropic.Anthropic, status: int, exc: type, err_type: str
) -> None:
    fp.enqueue(Behaviour(error_status=status, error_message="boom"))
    with pytest.raises(exc) as info:
        claude.messages.create(model="c", max_tokens=5, messages=MESSAGES)
    assert info.value.status_code == status
    assert info.value.body == {"type": "error", "error": {"type": err_type, "message": "boom"}}


def test_openai_cut_stream_raises_mid_iteration(fp: FakeProvider, oai: openai.OpenAI) -> None:
    fp.enqueue(Behaviour(chunks=["a", "b", "c", "d"], cut_after_chunks=2))
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in oai.chat.completions.create(model="m", messages=MESSAGES, stream=True):
            received.extend(c.delta.content for c in chunk.choices if c.delta.content)
    assert received == ["a", "b"]
    fp.enqueue(Behaviour(cut_after_chunks=0))
    with pytest.raises(openai.APIConnectionError):  # non-stream: the connection drops before any answer
        oai.chat.completions.create(model="m", messages=MESSAGES)


def test_anthropic_cut_stream_raises_mid_iteration(fp: FakeProvider, claude: anthropic.Anthropic) -> None:
    fp.enqueue(Behaviour(chunks=["a", "b", "c"], cut_after_chunks=1))
    received: list[str] = []
    with pytest.raises(CUT_ERRORS), claude.messages.stream(model="c", max_tokens=5, messages=MESSAGES) as stream:
        for text in stream.text_stream:
            received.append(text)
    assert received == ["a"]


async def test_async_openai_cut_stream_raises(fp: FakeProvider) -> None:
    fp.enqueue(Behaviour(cut_after_chunks=1))
    async with async_openai_client(fp) as client:
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIConnectionError):
            async for _ in stream:
                pass
