"""Smoke check of the instrumentors against older SDK majors (openai 1.x, anthropic 0.x without native tracing).

Not collected by pytest (the suite pins the current SDKs). Run it in a scratch venv:

    python3 -m venv /tmp/compat && /tmp/compat/bin/pip install -e . "openai<2" "anthropic<1"
    /tmp/compat/bin/python tests/compat/older_sdks_smoke.py

Checked on 2026-11-25 with openai 1.109.1 and anthropic 0.125.0: 7 spans, all as asserted.
"""

from __future__ import annotations

import gc

import anthropic
import openai
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_telemetry import attributes as a
from llm_telemetry.fake_provider import Behaviour, FakeProvider
from llm_telemetry.instrumentation import flush_abandoned
from llm_telemetry.instrumentation.anthropic import AnthropicInstrumentor
from llm_telemetry.instrumentation.openai import OpenAIInstrumentor


def main() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    AnthropicInstrumentor().instrument(tracer_provider=provider)
    messages = [{"role": "user", "content": "hi"}]
    with FakeProvider() as fp:
        oai = openai.OpenAI(api_key="k", base_url=fp.openai_base_url, max_retries=0)
        oai.chat.completions.create(model="gpt-4o-mini", messages=messages)
        fp.enqueue(Behaviour(first_token_delay_s=0.1))
        for _ in oai.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True):
            pass
        oai.responses.create(model="gpt-4o", input="hi")
        oai.embeddings.create(model="text-embedding-3-small", input="x")
        claude = anthropic.Anthropic(api_key="k", base_url=fp.anthropic_base_url, max_retries=0)
        claude.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=messages)
        with claude.messages.stream(model="claude-haiku-4-5", max_tokens=10, messages=messages) as stream:
            stream.get_final_text()
        dropped = claude.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=messages, stream=True)
        del dropped
        gc.collect()
        flush_abandoned()  # the span of a collected stream is ended by a thread, not the finalizer
    spans = exporter.get_finished_spans()
    assert len(spans) == 7, [s.name for s in spans]
    assert spans[1].attributes[a.RESPONSE_TIME_TO_FIRST_CHUNK] >= 0.1
    assert spans[1].attributes[a.USAGE_OUTPUT_TOKENS_ESTIMATED] is True
    assert spans[5].attributes[a.STREAM_END_REASON] == "completed"
    assert spans[6].attributes[a.STREAM_END_REASON] == "abandoned"
    print(f"ok: openai {openai.__version__}, anthropic {anthropic.__version__}, {len(spans)} spans")


if __name__ == "__main__":
    main()
