"""Added CPU per call and per streamed chunk: instrumented vs uninstrumented SDK calls.

The fake provider runs in its own process, so only the client's CPU is measured (``process_time``
covers every thread of this process, the span processor's export thread included). Modes are
interleaved round by round and the median of the rounds is reported, in µs and as a ratio.

    python benchmarks/bench_instrumentation.py [--rounds 7] [--calls 300] [--chunks 400]

Per-chunk cost is the slope between a short and a long stream, so it excludes the per-call part.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import openai
from _common import NullSpanExporter, cpu_seconds, load_average, median, provider_process, reference_us, row, summary_line
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from llm_telemetry.instrumentation.openai import OpenAIInstrumentor

MESSAGES = [{"role": "user", "content": "Extract the invoice date from: issued 03/04/2025."}]


def _behaviour_header(chunks: int) -> dict[str, str]:
    import json

    return {"x-fake-behaviour": json.dumps({"chunks": ["tok "] * chunks, "include_usage": True})}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--chunks", type=int, default=400)
    args = parser.parse_args()
    load_before, reference = load_average(), reference_us()

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(NullSpanExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    instrumentor = OpenAIInstrumentor()

    with provider_process() as base_url:
        client = openai.OpenAI(api_key="bench", base_url=base_url + "/v1", max_retries=0)
        short_h, long_h = _behaviour_header(10), _behaviour_header(10 + args.chunks)

        def calls() -> None:
            for _ in range(args.calls):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

        def streams(headers: dict[str, str]) -> None:
            for _ in range(max(args.calls // 10, 10)):
                for _chunk in client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True},
                    extra_headers=headers,
                ):
                    pass

        n_streams = max(args.calls // 10, 10)
        results: dict[str, list[float]] = {k: [] for k in ("call_bare", "call_ours", "chunk_bare", "chunk_ours")}
        calls()  # warm up connections and imports
        for _ in range(args.rounds):
            for mode in ("bare", "ours"):
                if mode == "ours":
                    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
                per_call = cpu_seconds(calls) / args.calls
                short = cpu_seconds(lambda: streams(short_h)) / n_streams
                long = cpu_seconds(lambda: streams(long_h)) / n_streams
                if mode == "ours":
                    instrumentor.uninstrument()
                results[f"call_{mode}"].append(per_call * 1e6)
                results[f"chunk_{mode}"].append((long - short) / args.chunks * 1e6)
        tracer_provider.shutdown()

    load_after = load_average()
    call_bare, call_ours = median(results["call_bare"]), median(results["call_ours"])
    chunk_bare, chunk_ours = median(results["chunk_bare"]), median(results["chunk_ours"])
    print(f"OpenAI SDK against the fake provider in its own process; median of {args.rounds} interleaved rounds")
    print("per non-streaming call (CPU):")
    print(row("uninstrumented SDK call", call_bare))
    print(row("instrumented (llm-telemetry + OTel SDK, batch → null exporter)", call_ours, call_bare))
    print(row("added per call", call_ours - call_bare))
    print("per streamed chunk (CPU, slope between 10 and 10+N chunks):")
    print(row("uninstrumented SDK chunk", chunk_bare))
    print(row("instrumented", chunk_ours, chunk_bare))
    print(row("added per chunk", chunk_ours - chunk_bare))
    print(f"load average before: {load_before}, after: {load_after}; reference sum(range(1000)) = {reference:.1f} µs CPU")
    print(summary_line("instrumentation", {
        "rounds": args.rounds, "call_bare_us": round(call_bare, 2), "call_ours_us": round(call_ours, 2),
        "call_ratio": round(call_ours / call_bare, 3), "chunk_bare_us": round(chunk_bare, 2), "chunk_ours_us": round(chunk_ours, 2),
        "chunk_ratio": round(chunk_ours / chunk_bare, 3), "load_average_after": load_after, "reference_us": round(reference, 2),
    }))


if __name__ == "__main__":
    main()
