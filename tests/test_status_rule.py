"""The one status rule (`llm_telemetry.instrumentation._call.STATUS_RULE`), for both SDKs, sync and async.

ERROR with ``error.type`` when the provider or the connection failed the call; UNSET otherwise, with an
end reason saying what the application did: ``closed_early``, ``app_exception``, ``cancelled``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from _both_sdks import SDK_IDS, SDKS, Sdk
from opentelemetry import trace

from llm_telemetry import attributes as a
from llm_telemetry.fake_provider import Behaviour

pytestmark = pytest.mark.usefixtures("both_instrumented")

CHUNKS = ["It ", "is ", "3 ", "April."]


def only_span(otel):
    spans = otel.spans()
    assert len(spans) == 1, [(s.name, s.attributes.get(a.STREAM_END_REASON)) for s in spans]
    return spans[0]


def assert_unset(span, reason: str, *, stream: bool = True) -> None:
    assert span.status.status_code is trace.StatusCode.UNSET
    assert a.ERROR_TYPE not in span.attributes
    assert span.attributes[a.STREAM_END_REASON if stream else a.CALL_END_REASON] == reason


def assert_error(span, error_type: str) -> None:
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes[a.ERROR_TYPE] == error_type


@contextmanager
def interrupt_after(seconds: float) -> Iterator[None]:
    """A KeyboardInterrupt in the main thread after ``seconds`` (Ctrl-C while the SDK blocks on the socket)."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGUSR1, handler)
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGUSR1))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)


# --- provider failures: ERROR -----------------------------------------------------------------------


@pytest.mark.parametrize("sdk", SDKS, ids=SDK_IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
def test_provider_error_is_error_sync(otel, fake_provider, sdk: Sdk, stream: bool):
    client = sdk.client(fake_provider, otel)
    with pytest.raises(Exception) as caught:
        sdk.create(client, Behaviour(error_status=429), stream=stream)
    assert_error(only_span(otel), f"{sdk.name}.{type(caught.value).__name__}")


@pytest.mark.parametrize("sdk", SDKS, ids=SDK_IDS)
async def test_provider_error_is_error_async(otel, fake_provider, sdk: Sdk):
    client = sdk.client(fake_provider, otel, asynchronous=True)
    with pytest.raises(Exception) as caught:
        await sdk.create(client, Behaviour(error_status=500), stream=True)
    assert_error(only_span(otel), f"{sdk.name}.{type(caught.value).__name__}")


@pytest.mark.parametrize("sdk", SDKS, ids=SDK_IDS)
def test_cut_stream_is_error_sync(otel, fake_provider, sdk: Sdk):
    client = sdk.client(fake_provider, otel)
    stream = sdk.create(client, Behaviour(chunks=CHUNKS, cut_after_chunks=2), stream=True)
    with pytest.raises(Exception) as caught:
        for _ in stream:
            pass
    span = only_span(otel)
    assert_error(span, f"{type(caught.value).__module__.split('.')[0]}.{type(caught.value).__name__}")
    assert span.attributes[a.STREAM_END_REASON] == "error"


@pytest.mark.parametrize("sdk", SDKS, ids=SDK_IDS)
async def test_cut_stream_is_error_async(otel, fake_provider, sdk: Sdk):
    client = sdk.client(fake_provider, otel, asynchronous=True)
    stream = await sdk.create(client, Behaviour(chunks=CHUNKS, cut_after_chunks=2), stream=True)
    with pytest.raises(Exception) as caught:
        async for _ in stream:
            pass
    span = only_span(otel)
    assert_error(span, f"{type(caught.value).__module__.split('.')[0]}.{type(caught.value).__name__}")
    assert span.attributes[a.STREAM_END_REASON] == "error"


# --- the application's decisions: UNSET with an end reason ------------------------------------------


@pytest.mark.parametrize("sdk", SDKS, ids=SDK_IDS)
def test_app_exception_in_with_block_is_unset_sync(otel, fake_provider, sdk: Sdk):
    client = sdk.client(fake_provider, otel)
    with pytest.raises(KeyError), sdk.create(client, Behaviour(chunks=CHUNKS), stream=True) as stream:
        for _ in stream:
            raise KeyError("the app's own bug")
    assert_unset(only_span(otel), "app_exception")


@pytest.mark.parametrize("sdk", SDKS, ids=SDK_IDS)
async def test_app_exception_in_with_block_is_unset_async(otel, fake_provider, sdk: Sdk):
    client = sdk.client(fake_provider, otel, asynchronous=True)
    with pytest.raises(KeyError):
        async with await sdk.create(client, Behaviour(chunks=CHUNKS), stream=True) as stream:
            async for _ in stream:
                raise KeyError("the app's own bug")
    assert_unset(only_span(otel), "app_exception")


@pytest.mark.parametrize("sdk", SDKS, ids=SDK_IDS)
def test_early_close_is_unset_sync(otel, fake_provider, sdk: Sdk):
    client = sdk.client(fake_provider, otel)
    with sdk.create(client, Behaviour(chunks=CHUNKS), stream=True) as stream:
        for item in stream:
            if sdk.text_of(item):
                break
    assert_unset(only_span(otel), "closed_early")


@pytest.mark.parametrize("sdk", SDKS, ids=SDK_IDS)
async def test_early_close_is_unset_async(otel, fake_provider, sdk: Sdk):
    client = sdk.client(fake_provider, otel, asynchronous=True)
    stream = await sdk.create(client, Behaviour(chunks=CHUNKS), stream=True)
    async for item in stream:
        if sdk.text_of(item):
            break
    await stream.close()
    assert_unset(only_span(otel), "closed_early")


# --- cancellation: the app's decision, UNSET "cancelled", the same sync and async -------------------


@pytest.mark.parametrize("sdk", SDKS, ids=SDK_IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
async def test_task_cancelled_during_the_request_is_unset(otel, fake_provider, sdk: Sdk, stream: bool):
    client = sdk.client(fake_provider, otel, asynchronous=True)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sdk.create(client, Behaviour(headers_delay_s=3.0), stream=stream), 0.3)
    assert_unset(only_span(otel), "cancelled", stream=stream)


@pytest.mark.parametrize("sdk", SDKS, ids=SDK_IDS)
async def test_task_cancelled_while_reading_the_stream_is_unset(otel, fake_provider, sdk: Sdk):
    client = sdk.client(fake_provider, otel, asynchronous=True)
    stream = await sdk.create(client, Behaviour(chunks=CHUNKS, inter_token_delay_s=3.0), stream=True)

    async def read() -> None:
        async for _ in stream:
            pass

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(read(), 0.3)
    assert_unset(only_span(otel), "cancelled")


@pytest.mark.parametrize("sdk", SDKS, ids=SDK_IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
def test_keyboard_interrupt_during_the_request_is_unset(otel, fake_provider, sdk: Sdk, stream: bool):
    client = sdk.client(fake_provider, otel)
    with pytest.raises(KeyboardInterrupt), interrupt_after(0.3):
        sdk.create(client, Behaviour(headers_delay_s=3.0), stream=stream)
    assert_unset(only_span(otel), "cancelled", stream=stream)


@pytest.mark.parametrize("sdk", SDKS, ids=SDK_IDS)
def test_keyboard_interrupt_while_reading_the_stream_is_unset(otel, fake_provider, sdk: Sdk):
    client = sdk.client(fake_provider, otel)
    stream = sdk.create(client, Behaviour(chunks=CHUNKS, inter_token_delay_s=3.0), stream=True)
    iterator = iter(stream)
    while not sdk.text_of(next(iterator)):
        pass
    with pytest.raises(KeyboardInterrupt), interrupt_after(0.3):
        for _ in iterator:
            pass
    assert_unset(only_span(otel), "cancelled")


@pytest.mark.parametrize("sdk", SDKS, ids=SDK_IDS)
def test_keyboard_interrupt_from_the_app_in_a_with_block_is_cancelled(otel, fake_provider, sdk: Sdk):
    client = sdk.client(fake_provider, otel)
    with pytest.raises(KeyboardInterrupt), sdk.create(client, Behaviour(chunks=CHUNKS), stream=True) as stream:
        for _ in stream:
            raise KeyboardInterrupt
    assert_unset(only_span(otel), "cancelled")


def test_the_rule_is_written_next_to_the_code():
    from llm_telemetry.instrumentation import _call

    rule = _call.STATUS_RULE
    for word in ("ERROR", "UNSET", "error.type", "closed_early", "app_exception", "cancelled", "abandoned", "process_exit"):
        assert word in rule
