"""Inline enrichment cost per span and spans/s through the enriching pipeline, on one thread.

Target (from the issue): ≤ 15 µs per span inline for cost + safety on a 2 kB output, ≥ 60,000 spans/s.

Two measures, each interleaved round by round (median of the rounds):

1. **Replay** — the cleanest measure of ``on_end``: ReadableSpans are made once through a real
   ``TracerProvider`` (the attributes are those our OpenAI instrumentation really sets, captured from
   one call to the in-process fake provider; the output is 2 kB of text). Each sample publishes one
   `GenAICall` record per span to the side channel (untimed, as the instrumentation does before ending
   the span) and then times ``on_end`` of every span on this thread's CPU clock. Chains: no enrichers
   (the baseline: same enriching processor, same no-op next processor), [cost], [safety], [cost, safety],
   [cost, budget, safety]. Inputs: our span with a clean 2 kB output; the same with a flagged output
   (an e-mail address: a review-queue item goes to the background worker, whose CPU is not inline);
   a foreign span (OpenLLMetry-style legacy attribute names, content in attributes, no record: it is
   rebuilt from the attributes and the content attributes are stripped).
2. **End to end** — spans started and ended through a real ``TracerProvider`` whose processor is the
   pipeline in front of ``BatchSpanProcessor`` → null exporter: spans per CPU-second of the whole
   process (export thread included) and per wall-clock second.

    python benchmarks/bench_pipeline.py [--rounds 15] [--spans 2000]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from _common import NullSpanExporter, interleaved, load_average, median, paired, reference_us, summary_line
from opentelemetry import context as otel_context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from llm_telemetry import attributes as a
from llm_telemetry.config import Settings, load_settings
from llm_telemetry.processors.pipeline import EnrichingSpanProcessor, build_pipeline
from llm_telemetry.record import GenAICall
from llm_telemetry.side_channel import attach, side_channel

CHAINS: dict[str, tuple[str, ...]] = {
    "baseline": (),
    "cost": ("cost",),
    "safety": ("safety",),
    "cost_safety": ("cost", "safety"),
    "cost_budget_safety": ("cost", "budget", "safety"),
    "default": ("cost", "budget", "safety", "quality", "openinference"),
}
INPUTS = ("ours_clean", "ours_flagged", "foreign")
INPUT_LABELS = {
    "ours_clean": "our span, clean 2 kB output (record measured before the span ends)",
    "ours_flagged": "our span, 2 kB output with an e-mail (flagged)",
    "foreign": "foreign span, legacy attributes, 2 kB content stripped",
}
USERS = 16
_DB_NUMBERS = itertools.count()

_SENTENCE = ("The invoice was issued on 3 April 2025 and is payable within thirty days of receipt; the supplier "
             "confirmed the amounts, the tax rate and the delivery address in the attached summary. ")
OUTPUT_CLEAN = (_SENTENCE * (2048 // len(_SENTENCE) + 1))[:2048]
OUTPUT_FLAGGED = OUTPUT_CLEAN[:1000] + " Contact billing.team@example.com for questions. " + OUTPUT_CLEAN[1000:1999]


class NoopProcessor(SpanProcessor):
    """The next processor of every chain: receives the (enriched) span and does nothing."""

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        return None


class Collector(SpanProcessor):
    """Keeps the spans it is given (to build the replay pool and to check what the pipeline adds)."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


# --- inputs ------------------------------------------------------------------------------------------------


def captured_call() -> tuple[str, dict[str, Any], GenAICall]:
    """Name, attributes and record of one real OpenAI chat call through our instrumentation (2 kB output)."""
    import openai

    from llm_telemetry.fake_provider import Behaviour, FakeProvider
    from llm_telemetry.instrumentation.openai import OpenAIInstrumentor

    collector = Collector()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(collector)
    instrumentor = OpenAIInstrumentor()
    published: list[GenAICall] = []
    side_channel.connect(None, auto=False)
    side_channel.add_observer(published.append)
    with FakeProvider(default=Behaviour(text=OUTPUT_CLEAN, input_tokens=420)) as provider:
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=MeterProvider())
        try:
            client = openai.OpenAI(api_key="bench", base_url=provider.openai_base_url, max_retries=0)
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Summarise the invoice."}])
        finally:
            instrumentor.uninstrument()
    side_channel.remove_observer(published.append)
    (span,) = collector.spans
    record = published[0] if published else None
    if record is None or record.output_text != OUTPUT_CLEAN:
        raise RuntimeError("our instrumentation did not publish the call's record with its 2 kB output")
    return span.name, dict(span.attributes or {}), record


def foreign_attributes(model: str) -> dict[str, Any]:
    """What an OpenLLMetry-style (legacy) chat span carries, content included."""
    return {
        a.LEGACY_PROVIDER: "openai", "llm.request.type": "chat", a.REQUEST_MODEL: model, a.RESPONSE_MODEL: model,
        a.LEGACY_PROMPT_TOKENS: 420, a.LEGACY_COMPLETION_TOKENS: 380, "llm.usage.total_tokens": 800,
        a.RESPONSE_ID: "chatcmpl-foreign", a.SERVER_ADDRESS: "api.openai.com",
        "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Summarise the invoice.",
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": OUTPUT_CLEAN,
        "gen_ai.completion.0.finish_reason": "stop",
    }


@dataclasses.dataclass
class Pool:
    """Ended spans to replay, and the record to publish for each (``None``: a foreign span)."""

    spans: list[ReadableSpan]
    records: list[GenAICall | None]


def make_pools(n: int, name: str, attrs: Mapping[str, Any], record: GenAICall) -> dict[str, Pool]:
    collector = Collector()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(collector)
    tracer = tracer_provider.get_tracer("bench.pipeline")
    records = {
        "ours_clean": [dataclasses.replace(record, user_id=f"user-{i % USERS}") for i in range(n)],
        "ours_flagged": [dataclasses.replace(record, user_id=f"user-{i % USERS}", output_text=OUTPUT_FLAGGED) for i in range(n)],
    }
    pools: dict[str, Pool] = {}
    for key in INPUTS:
        base = foreign_attributes(record.model or "gpt-4o-mini") if key == "foreign" else {**attrs, a.ENRICHED: True}
        scope = "opentelemetry.instrumentation.openai.v1" if key == "foreign" else "llm_telemetry.instrumentation.openai"
        scoped = tracer_provider.get_tracer(scope) if key == "foreign" else tracer
        start = len(collector.spans)
        for i in range(n):
            scoped.start_span(name, kind=SpanKind.CLIENT, attributes={**base, a.USER_ID: f"user-{i % USERS}"}).end()
        pools[key] = Pool(collector.spans[start:], records.get(key, [None] * n))  # type: ignore[arg-type]
    return pools


# --- pipelines -----------------------------------------------------------------------------------------------


def bench_settings(chain: Sequence[str], db_dir: str) -> Settings:
    """Settings loaded the real way; budgets large enough never to alert, no judge, a scratch review queue.

    Each pipeline gets its own review-queue file, as an app has one pipeline: several pipelines writing
    flagged items into one SQLite file at benchmark rates contend for its write lock.
    """
    db_file = os.path.join(db_dir, f"review-{next(_DB_NUMBERS)}.db")
    return load_settings({
        "LLM_TELEMETRY_PIPELINE_ENRICHERS": ",".join(chain) or "cost",
        "LLM_TELEMETRY_PIPELINE_WORKER_QUEUE_SIZE": "100000",
        "LLM_TELEMETRY_BUDGET_DAILY_USD": "1000000",
        "LLM_TELEMETRY_BUDGET_USER_HOURLY_USD": "100000",
        "LLM_TELEMETRY_JUDGE_CALLABLE": "none",
        "LLM_TELEMETRY_REVIEW_DB_PATH": db_file,
    })


def make_pipeline(
    chain: Sequence[str], next_processor: SpanProcessor, meter_provider: MeterProvider, db_dir: str,
) -> EnrichingSpanProcessor:
    """The processor the configurator would install for ``chain`` (the baseline: the same processor, no enrichers)."""
    settings = bench_settings(chain, db_dir)
    if not chain:  # build_pipeline always builds the configured chain
        return EnrichingSpanProcessor(next_processor, (), settings=settings, meter=meter_provider.get_meter("bench"))
    return build_pipeline(next_processor, settings, meter_provider=meter_provider)


def check_enrichment(pools: Mapping[str, Pool], meter_provider: MeterProvider, db_dir: str) -> None:
    """Print what each chain adds to one span of each input: the benchmark measures real work."""
    for chain, names in CHAINS.items():
        if not names:
            continue
        out = Collector()
        processor = make_pipeline(names, out, meter_provider, db_dir)
        measured: dict[str, set[str]] = {}
        for key in INPUTS:
            span, record = pools[key].spans[0], pools[key].records[0]
            measured[key] = set(processor.chain.measure(record, dict(span.attributes or {})).attributes) if record else set()
            processor.on_end(span)
        processor.shutdown()
        for key, enriched in zip(INPUTS, out.spans, strict=True):
            before, after = set(pools[key].spans[0].attributes or {}), set(enriched.attributes or {}) | measured[key]
            added = sorted(k.removeprefix("llm_telemetry.") for k in after - before)
            removed = f" -{len(before - after)} content attrs" if before - after else ""
            print(f"  check {chain:18} {key:13} +{len(added)} attrs ({', '.join(added)}){removed}")


# --- measuring -------------------------------------------------------------------------------------------------


def replay_sample(processor: EnrichingSpanProcessor, pool: Pool) -> float:
    """µs of this thread's CPU per call: our calls are measured by the chain (as the instrumentation does
    before the span ends) and then pass the processor marked; foreign spans are enriched in ``on_end``."""
    on_end, measure = processor.on_end, processor.chain.measure
    attrs = [dict(span.attributes or {}) for span in pool.spans]
    start = time.thread_time_ns()
    for span, record, span_attrs in zip(pool.spans, pool.records, attrs, strict=True):
        if record is not None:
            measure(record, span_attrs)
        on_end(span)
    return (time.thread_time_ns() - start) / 1e3 / len(pool.spans)


def end_to_end_sample(
    tracer_provider: TracerProvider, name: str, attrs: Mapping[str, Any], records: Sequence[GenAICall],
) -> dict[str, float]:
    """Spans per CPU-second (all threads) and per wall second: start, measure + attach, end, export."""
    tracer = tracer_provider.get_tracer("llm_telemetry.instrumentation.openai")
    attrs = dict(attrs)
    n = len(records)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for record in records:
        span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)
        ctx = span.get_span_context()
        record.trace_id, record.span_id = ctx.trace_id, ctx.span_id
        attach(side_channel.publish(record, attrs), span, None)  # as our instrumentation does, before the end
        span.end()
    tracer_provider.force_flush()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"spans_per_cpu_s": n / cpu, "spans_per_wall_s": n / wall, "us_per_span": cpu / n * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--spans", type=int, default=2000, help="spans per sample")
    args = parser.parse_args()
    # The pipeline logs once per foreign scope that it stripped content: expected here, not news.
    logging.getLogger("llm_telemetry.processors.pipeline").setLevel(logging.ERROR)

    reference = reference_us()
    print(f"load average before: {load_average()}; reference sum(range(1000)) = {reference:.1f} µs CPU")
    name, attrs, record = captured_call()
    pools = make_pools(args.spans, name, attrs, record)
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    with tempfile.TemporaryDirectory(prefix="llm-telemetry-bench-") as db_dir:
        check_enrichment(pools, meter_provider, db_dir)
        chains = {key: make_pipeline(chain, NoopProcessor(), meter_provider, db_dir) for key, chain in CHAINS.items()}
        for chain in chains.values():  # warm up every path (first-time logs, lazy compiles, metric series)
            for key in INPUTS:
                replay_sample(chain, pools[key])
        cells = [f"{chain}|{key}" for chain in CHAINS for key in INPUTS]
        replay = interleaved(cells, args.rounds, lambda cell: {"us": replay_sample(chains[cell.split("|")[0]], pools[cell.split("|")[1]])})

        # End to end: no pipeline at all, the empty pipeline, the default chain.
        e2e_records = pools["ours_clean"].records
        providers: dict[str, TracerProvider] = {}
        e2e_chains: dict[str, tuple[str, ...] | None] = {
            "no_pipeline": None, "baseline": (), "cost_budget_safety": CHAINS["cost_budget_safety"], "default": CHAINS["default"],
        }
        pipelines: dict[str, EnrichingSpanProcessor | None] = {}

        def _e2e(key: str) -> dict[str, float]:
            pipeline = pipelines[key]
            side_channel.connect(pipeline.chain if pipeline is not None else None, auto=False)
            return end_to_end_sample(providers[key], name, attrs, e2e_records)

        for key, chain in e2e_chains.items():
            providers[key] = TracerProvider()
            batch = BatchSpanProcessor(NullSpanExporter(), max_queue_size=args.spans * 4, max_export_batch_size=512)
            pipelines[key] = None if chain is None else make_pipeline(chain, batch, meter_provider, db_dir)
            providers[key].add_span_processor(batch if pipelines[key] is None else pipelines[key])
            _e2e(key)  # warm up
        e2e = interleaved(list(e2e_chains), args.rounds, lambda key: _e2e(key))
        stats = {key: processor.stats() for key, processor in chains.items()}
        for tracer_provider in providers.values():
            tracer_provider.shutdown()
        for processor in chains.values():
            processor.shutdown()

    report(args, replay, e2e, stats, reference)


def report(args: argparse.Namespace, replay: Mapping[str, Mapping[str, list[float]]], e2e: Mapping[str, Mapping[str, list[float]]],
           stats: Mapping[str, Mapping[str, Any]], reference: float) -> None:
    print(f"median of {args.rounds} interleaved rounds, {args.spans} spans per sample; this thread's CPU per on_end "
          "(added and ratio: medians of per-round pairs with the baseline)")
    summary: dict[str, Any] = {
        "rounds": args.rounds, "spans": args.spans, "reference_us": round(reference, 2), "replay_us_per_span": {}, "replay_added_us": {},
    }
    for key in INPUTS:
        print(f"{INPUT_LABELS[key]}:")
        base = replay[f"baseline|{key}"]["us"]
        for chain, names in CHAINS.items():
            spread = replay[f"{chain}|{key}"]["us"]
            us = median(spread)
            ratio, added_us = paired(spread, base)
            label = "pipeline, no enrichers (baseline)" if not names else f"[{', '.join(names)}]"
            added = "" if not names else f"  +{added_us:6.2f} µs added  {ratio:5.2f}x"
            print(f"  {label:38} {us:7.2f} µs/span  ({1e6 / us:>9,.0f} spans/s){added}   min..max {min(spread):.2f}..{max(spread):.2f}")
            summary["replay_us_per_span"][f"{chain}|{key}"] = round(us, 3)
            if names:
                summary["replay_added_us"][f"{chain}|{key}"] = round(added_us, 3)
    print("end to end through a TracerProvider (start span, measure + attach, end, batch → null exporter):")
    labels = {"no_pipeline": "no pipeline (BatchSpanProcessor only)", "baseline": "pipeline, no enrichers",
              "cost_budget_safety": "pipeline [cost, budget, safety]",
              "default": "default [cost, budget, safety, quality, openinference]"}
    summary["end_to_end"] = {}
    for key, label in labels.items():
        cpu_rate, wall_rate = median(e2e[key]["spans_per_cpu_s"]), median(e2e[key]["spans_per_wall_s"])
        us = median(e2e[key]["us_per_span"])
        print(f"  {label:38} {cpu_rate:>9,.0f} spans/CPU-s  {wall_rate:>9,.0f} spans/wall-s  ({us:.2f} µs CPU per span)")
        summary["end_to_end"][key] = {"spans_per_cpu_s": round(cpu_rate), "spans_per_wall_s": round(wall_rate), "us_per_span": round(us, 2)}
    target_us = summary["replay_added_us"]["cost_safety|ours_clean"]
    full = summary["replay_us_per_span"]["cost_budget_safety|ours_clean"]
    print(f"target ≤ 15 µs per span inline (cost + safety, 2 kB): {target_us:.2f} µs added, {full:.2f} µs whole on_end "
          f"with [cost, budget, safety] → {'met' if full <= 15 else 'NOT met'}")
    rate = 1e6 / full
    print(f"target ≥ 60,000 spans/s through the pipeline on one thread: {rate:,.0f} spans/s (replayed on_end, [cost, budget, safety]) "
          f"→ {'met' if rate >= 60_000 else 'NOT met'}; end to end incl. the OTel SDK's own span cost: "
          f"{summary['end_to_end']['cost_budget_safety']['spans_per_cpu_s']:,} spans/CPU-s")
    errors = {k: v["enricher_errors"] for k, v in stats.items() if v["enricher_errors"]}
    print(f"enricher errors: {errors or 'none'}")
    summary["enricher_errors"] = errors
    summary["load_average_after"] = load_average()
    print(f"load average after: {summary['load_average_after']}")
    print(summary_line("pipeline", summary))


if __name__ == "__main__":
    main()
