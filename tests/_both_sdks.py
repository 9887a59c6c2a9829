"""One call shape for both SDKs, so a rule that must hold for OpenAI and Anthropic, sync and async, is one test.

``SDKS`` parametrises a test over both; `Sdk` makes the client and issues a chat call (streamed or not)
with a fake-provider `Behaviour` sent per request in its header, and ``text_of(item)`` reads the text of
one streamed item whatever the SDK.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
from _anthropic_helpers import create_kwargs, make_client
from _openai_helpers import MESSAGES

from llm_telemetry.config import set_settings
from llm_telemetry.fake_provider import Behaviour
from llm_telemetry.instrumentation.anthropic import AnthropicInstrumentor
from llm_telemetry.instrumentation.openai import OpenAIInstrumentor


@dataclass(frozen=True)
class Sdk:
    name: str

    def client(self, fake_provider: Any, otel: Any, *, asynchronous: bool = False) -> Any:
        if self.name == "openai":
            cls = openai.AsyncOpenAI if asynchronous else openai.OpenAI
            return cls(api_key="sk-test", base_url=fake_provider.openai_base_url, max_retries=0)
        return make_client(fake_provider, otel, asynchronous=asynchronous)

    def kwargs(self, behaviour: Behaviour | None = None, *, stream: bool = False, **extra: Any) -> dict[str, Any]:
        headers = behaviour.header() if behaviour is not None else {}
        if self.name == "openai":
            base: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MESSAGES}
        else:
            base = create_kwargs()
        if stream:
            base["stream"] = True
        return {**base, "extra_headers": headers, **extra}

    def create(self, client: Any, behaviour: Behaviour | None = None, *, stream: bool = False, **extra: Any) -> Any:
        """``chat.completions.create`` / ``messages.create`` (a coroutine for an async client)."""
        method = client.chat.completions.create if self.name == "openai" else client.messages.create
        return method(**self.kwargs(behaviour, stream=stream, **extra))

    @staticmethod
    def text_of(item: Any) -> str:
        """Text carried by one streamed item (an OpenAI chunk or an Anthropic event); '' if none."""
        choices = getattr(item, "choices", None)
        if choices is not None:
            return "".join(c.delta.content or "" for c in choices)
        if getattr(item, "type", None) == "content_block_delta" and item.delta.type == "text_delta":
            return item.delta.text
        return ""


SDKS = [Sdk("openai"), Sdk("anthropic")]
SDK_IDS = ["openai", "anthropic"]


@pytest.fixture
def both_instrumented(otel: Any) -> Iterator[Any]:
    """Both instrumentors on ``otel``'s providers for one test."""
    oai, claude = OpenAIInstrumentor(), AnthropicInstrumentor()
    oai.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    claude.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    yield otel
    oai.uninstrument()
    claude.uninstrument()
    set_settings(None)


def reinstrument_both(otel: Any) -> None:
    """Settings are read at instrument time: after ``settings_env(...)``, instrument again under them."""
    for instrumentor in (OpenAIInstrumentor(), AnthropicInstrumentor()):
        instrumentor.uninstrument()
        instrumentor.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)


__all__ = ["SDKS", "SDK_IDS", "Sdk", "anthropic", "both_instrumented", "reinstrument_both"]
