"""``llm-telemetry demo``: the whole pipeline on an embedded fake provider, no external service.

It starts the bundled fake provider, instruments the real OpenAI and Anthropic SDKs and replays the
source story: an invoice-date extraction feature answered correctly, then the provider's silent update
(new fingerprint and model version, day and month transposed, same latency and cost). Around it: a
streamed chat with a stall, an output that leaks PII, a rate-limited call, a model with no price. It
prints what would be exported — the spans (the invoice calls summarised) with latency, tokens, cost and
safety verdict, then the metrics — and ends with what the quality layer found: the regression's
validator, feature, start and affected outputs, and the model-version change. Everything also goes to
an embedded store for ``llm-telemetry report``. With ``--otlp`` (or ``OTEL_EXPORTER_OTLP_ENDPOINT``
set) the same data also goes to an OTLP endpoint.

The demo's flagged outputs go to a review queue of its own (a fresh temporary directory, or
``--state-dir``), never to the user's real one (``review.db_path``): demo items must not mix with
real ones. It says where it wrote.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_telemetry import attributes as a
from llm_telemetry.attribution import attribute
from llm_telemetry.config import get_settings
from llm_telemetry.demo_quality import quality_summary
from llm_telemetry.exporters.store.exporters import StoreMetricExporter, StoreSpanExporter, open_store
from llm_telemetry.processors.quality.enricher import QualityEnricher

STORY_FEATURE = "invoice-dates"
STORY_GOOD_CALLS = 240
STORY_UPDATED_CALLS = 90


def _run_scenario(provider: Any) -> None:
    import anthropic
    import openai

    from llm_telemetry.demo_story import run_story
    from llm_telemetry.fake_provider import Behaviour
    from llm_telemetry.progress import Progress

    oai = openai.OpenAI(api_key="demo-key", base_url=provider.openai_base_url, max_retries=0)
    claude = anthropic.Anthropic(api_key="demo-key", base_url=provider.anthropic_base_url, max_retries=0)

    # The story: correct extractions, then the silent model update (same latency, same cost).
    progress = Progress(STORY_GOOD_CALLS + STORY_UPDATED_CALLS, unit="invoice calls")
    run_story(oai, STORY_GOOD_CALLS, STORY_UPDATED_CALLS, after_each=lambda _: progress.advance())
    progress.close()

    with attribute(user_id="user-42", session_id="sess-2", feature="support-chat"):
        provider.enqueue(
            Behaviour(
                chunks=["Sure", ", ", "let ", "me ", "check ", "your ", "order", "."],
                first_token_delay_s=0.35, inter_token_delay_s=0.03, stalls={5: 0.8},
            )
        )
        stream = oai.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Where is my order?"}], stream=True,
            stream_options={"include_usage": True},
        )
        for _ in stream:
            pass
        provider.enqueue(
            Behaviour(text="You can reach our billing team at billing.lead@example.com or 555-867-5309.",
                      first_token_delay_s=0.12, inter_token_delay_s=0.02, input_tokens=900, cache_read_tokens=800)
        )
        with claude.messages.stream(
            model="claude-sonnet-4-5", max_tokens=200, messages=[{"role": "user", "content": "Who handles billing?"}]
        ) as message_stream:
            message_stream.get_final_message()

    with attribute(user_id="user-42", feature="batch-summaries"):
        provider.enqueue(Behaviour(error_status=429, error_message="rate limited"))
        try:
            oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Summarise"}])
        except openai.RateLimitError:
            pass
        provider.enqueue(Behaviour(text="A summary.", input_tokens=1200, output_tokens=40))
        oai.chat.completions.create(model="acme-internal-llm", messages=[{"role": "user", "content": "Summarise"}])
        oai.embeddings.create(model="text-embedding-3-small", input=["invoice 2291", "invoice 2292"])


def _fmt(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def _print_spans(spans: list[ReadableSpan]) -> None:
    header = (
        f"{'span':34} {'status':6} {'ttft s':>7} {'tbt p95':>8} {'stalls':>6} {'in/out tok':>11} {'cost USD':>10}  "
        f"{'safety':18} user/feature"
    )
    print(header)
    print("-" * len(header))
    story = [span for span in spans if (span.attributes or {}).get(a.FEATURE) == STORY_FEATURE]
    shown = {id(story[0]), id(story[-1])} if story else set()
    for span in spans:
        attrs = span.attributes or {}
        if a.OPERATION_NAME not in attrs:
            continue
        if attrs.get(a.FEATURE) == STORY_FEATURE and id(span) not in shown:
            if span is story[1]:
                print(f"{'  … ' + str(len(story) - 2) + ' more invoice-dates calls (first and last shown)':60}")
            continue
        if a.USAGE_OUTPUT_TOKENS_ESTIMATE in attrs:  # a stream without usage: our estimate, marked as such
            tokens = f"{attrs.get(a.USAGE_INPUT_TOKENS, '-')}/{attrs[a.USAGE_OUTPUT_TOKENS_ESTIMATE]}~"
        else:
            tokens = f"{attrs.get(a.USAGE_INPUT_TOKENS, '-')}/{attrs.get(a.USAGE_OUTPUT_TOKENS, '-')}"
        cost = _fmt(attrs.get(a.COST_TOTAL_USD), ".6f")
        if attrs.get(a.COST_UNKNOWN_MODEL):
            cost = "unknown"
        safety = "-"
        if attrs.get(a.SAFETY_FLAGGED):
            safety = f"{attrs.get(a.SAFETY_ACTION)}:{','.join(attrs.get(a.SAFETY_CATEGORIES, ()))}"
        status = "ERROR" if span.status.status_code.name == "ERROR" else "ok"
        who = f"{attrs.get(a.USER_ID, '-')}/{attrs.get(a.FEATURE, '-')}"
        print(
            f"{span.name[:34]:34} {status:6} {_fmt(attrs.get(a.RESPONSE_TIME_TO_FIRST_CHUNK), '7.3f'):>7} "
            f"{_fmt(attrs.get(a.STREAM_TBT_P95), '8.3f'):>8} {_fmt(attrs.get(a.STREAM_STALL_COUNT), 'd'):>6} "
            f"{tokens:>11} {cost:>10}  {safety[:18]:18} {who}"
        )
        for event in span.events:
            if event.name in (a.EVENT_STALL, a.EVENT_BUDGET_CROSSED):
                details = ", ".join(f"{k.rsplit('.', 1)[-1]}={v:.3f}" if isinstance(v, float) else f"{k.rsplit('.', 1)[-1]}={v}"
                                    for k, v in (event.attributes or {}).items())
                print(f"{'':36}event {event.name}: {details}")


def _print_metrics(reader: InMemoryMetricReader) -> None:
    data = reader.get_metrics_data()
    merged: dict[str, tuple[str, list[Any]]] = {}  # one line per metric name, all instrumentation scopes together
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                merged.setdefault(metric.name, (metric.unit or "", []))[1].extend(metric.data.data_points)
    print("\nmetrics (name: series → value)")
    for name, (unit, points) in merged.items():
        if not points:
            continue
        if hasattr(points[0], "bucket_counts"):
            value = f"{sum(p.count for p in points)} observations, sum {sum(p.sum for p in points):.4f} {unit}"
        else:
            value = f"{sum(p.value for p in points):.6g} {unit}"
        print(f"  {name}: {len(points)} series → {value}")


def _otlp_processor() -> SpanProcessor | None:
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        return BatchSpanProcessor(OTLPSpanExporter(timeout=get_settings().export.timeout_s))
    except Exception as exc:  # the demo still runs without OTLP
        print(f"(OTLP export disabled: {exc})", file=sys.stderr)
        return None


def run(otlp: bool = False, state_dir: Path | None = None) -> int:
    from llm_telemetry.exporters.openinference import with_project_name
    from llm_telemetry.fake_provider import FakeProvider
    from llm_telemetry.instrumentation.anthropic import AnthropicInstrumentor
    from llm_telemetry.instrumentation.openai import OpenAIInstrumentor
    from llm_telemetry.processors.chain import build_chain
    from llm_telemetry.processors.pipeline import build_pipeline
    from llm_telemetry.side_channel import side_channel

    settings = get_settings()
    demo_dir = Path(state_dir) if state_dir is not None else Path(tempfile.mkdtemp(prefix="llm-telemetry-demo-"))
    review_db = demo_dir / "review.db"
    settings = dataclasses.replace(settings, review=dataclasses.replace(settings.review, db_path=review_db))
    exporter = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    store_path = demo_dir / "telemetry.db"
    readers: list[MetricReader] = [
        reader, PeriodicExportingMetricReader(StoreMetricExporter(str(store_path)), export_interval_millis=3_600_000),
    ]
    # The project name: sent to Arize Phoenix, the demo's spans land in its own project, not "default".
    resource = with_project_name(Resource.create({"service.name": "llm-telemetry-demo"}))
    meter_provider = MeterProvider(metric_readers=readers, resource=resource)
    tracer_provider = TracerProvider(resource=resource)
    # One enrichment pipeline, fanned out to the in-memory exporter (printed below) and optionally OTLP.
    sinks = SynchronousMultiSpanProcessor()
    sinks.add_span_processor(SimpleSpanProcessor(exporter))
    sinks.add_span_processor(SimpleSpanProcessor(StoreSpanExporter(str(store_path))))
    if otlp and (processor := _otlp_processor()) is not None:
        sinks.add_span_processor(processor)
    # One chain measures every call (our instrumentation hands each call to it before the span ends) and
    # enriches foreign GenAI spans in the processor.
    chain = build_chain(settings, meter_provider, tracer_provider)
    side_channel.connect(chain)
    tracer_provider.add_span_processor(build_pipeline(sinks, settings, chain=chain))
    instrumentors = [OpenAIInstrumentor(), AnthropicInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        with FakeProvider() as provider:
            print(f"llm-telemetry demo: fake provider at {provider.base_url}; content capture {settings.content.capture.value}; "
                  f"review queue of this demo: {review_db} (yours is not touched)\n")
            _run_scenario(provider)
        chain.flush(10.0)
        tracer_provider.force_flush()
        spans = list(exporter.get_finished_spans())
        _print_spans(spans)
        _print_metrics(reader)
        quality = next((e for e in chain.enrichers if isinstance(e, QualityEnricher)), None)
        if quality is not None:
            print()
            print("\n".join(quality_summary(spans, quality.alerts.history(), STORY_FEATURE)))
            store = open_store(str(store_path))
            for alert in quality.alerts.history():
                store.add_alert(alert.at_ns or 0, alert.attributes(), alert.trace_id)
    finally:
        side_channel.connect(None)
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
        tracer_provider.shutdown()
        meter_provider.shutdown()
    print(f"\nThe demo's telemetry is in an embedded store: llm-telemetry report --store {store_path} "
          f"(add --html report.html for the page)")
    if review_db.exists():
        print(f"\nThe demo's review items are in {review_db}: LLM_TELEMETRY_REVIEW_DB_PATH={review_db} llm-telemetry review list")
    print("\nNext: point a real app at a collector with `opentelemetry-instrument python app.py` (see README).")
    return 0


def _main(args: argparse.Namespace) -> int:
    return run(otlp=args.otlp or bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")), state_dir=args.state_dir)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("demo", help="run the monitoring pipeline against the bundled fake provider and print what it exports")
    parser.add_argument("--otlp", action="store_true", help="also export spans over OTLP/gRPC (OTEL_EXPORTER_OTLP_ENDPOINT)")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="where the demo keeps its own review queue (default: a new temporary directory)")
    parser.set_defaults(func=_main)
