"""The application's arguments reach the provider exactly as without us: never consumed, never mutated.

The SDKs type ``messages`` / ``input`` / ``system`` as ``Iterable``: an application may pass a generator,
which can be read once. We read it for the span's content and the input-token estimate, so the wrapper
materialises it into a list once and passes that same list on to the SDK.
"""

from __future__ import annotations

import copy

import pytest
from _anthropic_helpers import MODEL
from _both_sdks import SDK_IDS, SDKS, Sdk
from _records import records

from llm_telemetry.fake_provider import Behaviour

pytestmark = pytest.mark.usefixtures("both_instrumented")

USER_TEXT = "Invoice dated 03/04/2025"


def record_of(otel):
    (span,) = otel.spans()
    return records.take((span.context.trace_id, span.context.span_id))


def messages_gen():
    yield {"role": "user", "content": USER_TEXT}


def sent(fake_provider, key: str):
    return fake_provider.last_request.json[key]


@pytest.mark.parametrize("sdk", SDKS, ids=SDK_IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
def test_a_generator_of_messages_reaches_the_provider(otel, fake_provider, sdk: Sdk, stream: bool):
    client = sdk.client(fake_provider, otel)
    result = sdk.create(client, stream=stream, messages=messages_gen())
    if stream:
        for _ in result:
            pass
    assert sent(fake_provider, "messages") == [{"role": "user", "content": USER_TEXT}]
    assert record_of(otel).input_messages == [{"role": "user", "parts": [{"type": "text", "content": USER_TEXT}]}]


@pytest.mark.parametrize("sdk", SDKS, ids=SDK_IDS)
async def test_a_generator_of_messages_reaches_the_provider_async(otel, fake_provider, sdk: Sdk):
    client = sdk.client(fake_provider, otel, asynchronous=True)
    await sdk.create(client, messages=messages_gen())
    assert sent(fake_provider, "messages") == [{"role": "user", "content": USER_TEXT}]
    assert record_of(otel).input_messages[0]["parts"][0]["content"] == USER_TEXT


def test_responses_input_generator_reaches_the_provider(otel, client, fake_provider):
    client.responses.create(model="gpt-4o-mini", input=messages_gen(), instructions="Be brief.")
    assert sent(fake_provider, "input") == [{"role": "user", "content": USER_TEXT}]
    record = record_of(otel)
    assert record.input_messages[0]["parts"][0]["content"] == USER_TEXT
    assert record.system_instructions == "Be brief."


async def test_async_responses_input_generator_reaches_the_provider(otel, aclient, fake_provider):
    await aclient.responses.create(model="gpt-4o-mini", input=messages_gen())
    assert sent(fake_provider, "input") == [{"role": "user", "content": USER_TEXT}]


def test_chat_stream_helper_with_a_generator(otel, client, fake_provider):
    with client.chat.completions.stream(model="gpt-4o-mini", messages=messages_gen()) as stream:
        stream.until_done()
    assert sent(fake_provider, "messages") == [{"role": "user", "content": USER_TEXT}]


def test_anthropic_system_blocks_generator_and_stream_helper(otel, fake_provider):
    client = SDKS[1].client(fake_provider, otel)

    def system():
        yield {"type": "text", "text": "You extract dates."}

    with client.messages.stream(model=MODEL, max_tokens=32, messages=messages_gen(), system=system()) as stream:
        stream.until_done()
    assert sent(fake_provider, "messages") == [{"role": "user", "content": USER_TEXT}]
    assert sent(fake_provider, "system") == [{"type": "text", "text": "You extract dates."}]
    record = record_of(otel)
    assert record.system_instructions == "You extract dates."
    assert record.input_messages[0]["parts"][0]["content"] == USER_TEXT


def test_embeddings_input_generator_of_token_ids_reaches_the_provider(otel, client, fake_provider):
    client.embeddings.create(model="text-embedding-3-small", input=(t for t in [1, 2, 3]))
    assert sent(fake_provider, "input") == [1, 2, 3]


@pytest.mark.parametrize("sdk", SDKS, ids=SDK_IDS)
def test_arguments_are_not_mutated(otel, fake_provider, sdk: Sdk):
    client = sdk.client(fake_provider, otel)
    messages = [{"role": "user", "content": [{"type": "text", "text": USER_TEXT}]}]
    extra_body = {"metadata": {"user_id": "u-1"}} if sdk.name == "anthropic" else {"user": "u-1"}
    before = copy.deepcopy((messages, extra_body))
    for _ in sdk.create(client, Behaviour(), stream=True, messages=messages, extra_body=extra_body):
        pass
    assert (messages, extra_body) == before
    assert sent(fake_provider, "messages") == messages


@pytest.mark.parametrize("sdk", SDKS, ids=SDK_IDS)
def test_an_exception_from_the_apps_generator_passes_through_and_nothing_is_sent(otel, fake_provider, sdk: Sdk):
    client = sdk.client(fake_provider, otel)

    def broken():
        yield {"role": "user", "content": USER_TEXT}
        raise LookupError("the app's generator failed")

    with pytest.raises(LookupError, match="the app's generator failed"):
        sdk.create(client, messages=broken())
    assert fake_provider.requests == []

