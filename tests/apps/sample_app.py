"""A short app that emits a few spans and metric points through the OpenTelemetry API only.

It knows nothing about llm-telemetry or the SDK: run it under ``opentelemetry-instrument`` and whatever
distro/configurator is installed decides where the telemetry goes. Tests use it to check the export
path end to end and to time a run against a backend that is up, down or hung. One span is shaped like
a GenAI client span (the attributes an instrumentation would set) so the enrichment pipeline has
something to enrich; its histograms pass no bucket advice, so the buckets that arrive are the Views'.
"""

from __future__ import annotations

import sys
import time

from opentelemetry import metrics, trace

STEPS = 3
WORK_S = 0.02
MODEL = "gpt-4o-mini"
INPUT_TOKENS = 1000
OUTPUT_TOKENS = 200


def main() -> int:
    tracer = trace.get_tracer("sample_app", "1.0")
    meter = metrics.get_meter("sample_app", "1.0")
    requests = meter.create_counter("sample_app.requests", unit="{request}", description="Requests handled.")
    duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s", description="GenAI operation duration.")
    tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}", description="Tokens per GenAI call.")

    with tracer.start_as_current_span("sample_app.main") as root:
        root.set_attribute("sample_app.steps", STEPS)
        for index in range(STEPS):
            with tracer.start_as_current_span("sample_app.step") as step:
                step.set_attribute("sample_app.step.index", index)
                time.sleep(WORK_S)
                requests.add(1, {"sample_app.step.index": index})
        started = time.perf_counter()
        with tracer.start_as_current_span(f"chat {MODEL}", kind=trace.SpanKind.CLIENT) as call:
            call.set_attributes({
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": MODEL,
                "gen_ai.response.model": MODEL,
                "gen_ai.usage.input_tokens": INPUT_TOKENS,
                "gen_ai.usage.output_tokens": OUTPUT_TOKENS,
            })
            time.sleep(WORK_S)
        common = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": MODEL}
        duration.record(time.perf_counter() - started, common)
        tokens.record(INPUT_TOKENS, {**common, "gen_ai.token.type": "input"})
        tokens.record(OUTPUT_TOKENS, {**common, "gen_ai.token.type": "output"})
    print("sample_app: done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
