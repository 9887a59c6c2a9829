"""Fixtures for the Anthropic instrumentation tests: the real SDK, instrumented, against the fake provider.

By default the clients keep the SDK's native OpenTelemetry tracing ON and point it at the same tracer
provider as ours — the case where a duplicate span would appear — so every test also checks that each
call yields exactly one span. ``make_client(..., native=False)`` builds a client with native tracing off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

from llm_telemetry.config import load_settings, set_settings
from llm_telemetry.instrumentation.anthropic import AnthropicInstrumentor

MODEL = "claude-sonnet-4-6"
SYSTEM = "You extract dates."
MESSAGES = [{"role": "user", "content": "Invoice dated 03/04/2025"}]
API_KEY = "sk-ant-test-secret-key"
NATIVE_SCOPE = "com.anthropic.sdk.python"
SDK_TRACE_LOGGER = "opentelemetry.sdk.trace"


def make_client(fake_provider: Any, otel: Any, *, native: bool = True, asynchronous: bool = False, **options: Any) -> Any:
    """A real client against the fake provider; ``native``: the SDK's own tracing on, into ``otel``'s provider."""
    cls = anthropic.AsyncAnthropic if asynchronous else anthropic.Anthropic
    open_telemetry = {"tracer_provider": otel.tracer_provider} if native else False
    options.setdefault("max_retries", 0)
    return cls(api_key=API_KEY, base_url=fake_provider.anthropic_base_url, open_telemetry=open_telemetry, **options)


def only_span(otel: Any) -> ReadableSpan:
    """The one span every instrumented call must produce — counted across all scopes, native included."""
    spans = otel.spans()
    assert len(spans) == 1, [(s.name, s.instrumentation_scope.name) for s in spans]
    return spans[0]


def create_kwargs(**overrides: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 64, "system": SYSTEM, "messages": MESSAGES, **overrides}


@pytest.fixture
def anthropic_instrumented(otel: Any, caplog: pytest.LogCaptureFixture) -> Iterator[Any]:
    """Instrumented for one test; afterwards, no span may have been ended twice or written to once ended."""
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    with caplog.at_level(logging.WARNING, logger=SDK_TRACE_LOGGER):
        yield otel
    instrumentor.uninstrument()
    set_settings(None)
    misuse = [r.getMessage() for r in caplog.get_records("call") if r.name == SDK_TRACE_LOGGER and "ended span" in r.getMessage()]
    assert not misuse, misuse


@pytest.fixture
def anthropic_reinstrument(anthropic_instrumented: Any) -> Callable[[dict[str, str]], None]:
    """``anthropic_reinstrument({env})``: settings are read at instrument time, so apply them and instrument again."""

    def apply(env: dict[str, str]) -> None:
        otel = anthropic_instrumented
        AnthropicInstrumentor().uninstrument()
        set_settings(load_settings(env))
        AnthropicInstrumentor().instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)

    return apply


@pytest.fixture(scope="session")
def _anthropic_warm(_provider_server: Any) -> None:
    """One uninstrumented streamed call first: the SDK's one-off costs (lazy imports, propagator loading on the
    first native span) must not land inside the TTFT a timing test measures."""
    client = anthropic.Anthropic(
        api_key=API_KEY, base_url=_provider_server.anthropic_base_url, max_retries=0,
        open_telemetry={"tracer_provider": TracerProvider()},
    )
    with client.messages.stream(**create_kwargs()) as stream:
        stream.until_done()
    _provider_server.reset()


@pytest.fixture
def anthropic_client(_anthropic_warm: None, fake_provider: Any, otel: Any) -> anthropic.Anthropic:
    return make_client(fake_provider, otel)


@pytest.fixture
def anthropic_aclient(_anthropic_warm: None, fake_provider: Any, otel: Any) -> anthropic.AsyncAnthropic:
    return make_client(fake_provider, otel, asynchronous=True)
