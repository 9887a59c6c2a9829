"""Shared pieces for the fake provider tests: real SDK clients pointed at a running FakeProvider."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from llm_telemetry.fake_provider import FakeProvider

MESSAGES = [{"role": "user", "content": "hi"}]


def openai_client(provider: FakeProvider) -> openai.OpenAI:
    return openai.OpenAI(api_key="test-key", base_url=provider.openai_base_url, max_retries=0)


def async_openai_client(provider: FakeProvider) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="test-key", base_url=provider.openai_base_url, max_retries=0)


def anthropic_client(provider: FakeProvider) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="test-key", base_url=provider.anthropic_base_url, max_retries=0)


def async_anthropic_client(provider: FakeProvider) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="test-key", base_url=provider.anthropic_base_url, max_retries=0)


@pytest.fixture
def fp() -> Iterator[FakeProvider]:
    """A fake provider of the test's own (these tests check the provider itself, so no sharing)."""
    with FakeProvider() as provider:
        yield provider


@pytest.fixture
def oai(fp: FakeProvider) -> Iterator[openai.OpenAI]:
    with openai_client(fp) as client:
        yield client


@pytest.fixture
def claude(fp: FakeProvider) -> Iterator[anthropic.Anthropic]:
    with anthropic_client(fp) as client:
        yield client
