"""Fixtures for the OpenAI instrumentation tests: an instrumented SDK against the fake provider."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from llm_telemetry.instrumentation.openai import OpenAIInstrumentor

MESSAGES = [{"role": "system", "content": "You extract dates."}, {"role": "user", "content": "Invoice dated 03/04/2025"}]


@pytest.fixture
def instrumented(otel) -> Iterator[object]:
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    yield otel
    instrumentor.uninstrument()


@pytest.fixture
def client(fake_provider) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test-secret-key", base_url=fake_provider.openai_base_url, max_retries=0)


@pytest.fixture
def aclient(fake_provider) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="sk-test-secret-key", base_url=fake_provider.openai_base_url, max_retries=0)
