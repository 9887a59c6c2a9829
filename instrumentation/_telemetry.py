"""What an instrumentor needs at run time: a tracer, the metric instruments and the settings it reads.

Built once in ``_instrument()``; the wrappers only read from it, so the per-call path does no lookups.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.metrics import Counter, Histogram, MeterProvider, get_meter
from opentelemetry.trace import Tracer, TracerProvider, get_tracer

from llm_telemetry import __version__
from llm_telemetry import attributes as a
from llm_telemetry.config import ContentCapture, Settings, get_settings

SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"


@dataclass(slots=True)
class Telemetry:
    tracer: Tracer
    duration: Histogram
    token_usage: Histogram
    time_to_first_chunk: Histogram
    time_per_output_chunk: Histogram
    stalls: Counter
    capture: ContentCapture
    max_content_chars: int
    stall_threshold_s: float
    chunk_events: bool
    per_chunk_metric: bool
    openai_stream_include_usage: bool


def build_telemetry(
    scope: str,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    settings: Settings | None = None,
) -> Telemetry:
    settings = settings or get_settings(lenient=True)
    tracer = get_tracer(scope, __version__, tracer_provider, schema_url=SCHEMA_URL)
    meter = get_meter(scope, __version__, meter_provider, schema_url=SCHEMA_URL)
    return Telemetry(
        tracer=tracer,
        duration=meter.create_histogram(
            a.METRIC_OPERATION_DURATION, unit="s", description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(a.DURATION_BUCKETS),
        ),
        token_usage=meter.create_histogram(
            a.METRIC_TOKEN_USAGE, unit="{token}", description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(a.TOKEN_BUCKETS),
        ),
        time_to_first_chunk=meter.create_histogram(
            a.METRIC_TIME_TO_FIRST_CHUNK, unit="s",
            description="Time from issuing the request to receiving the first content chunk of the response stream.",
            explicit_bucket_boundaries_advisory=list(a.TIME_TO_FIRST_CHUNK_BUCKETS),
        ),
        time_per_output_chunk=meter.create_histogram(
            a.METRIC_TIME_PER_OUTPUT_CHUNK, unit="s",
            # Per gap by default (semconv); one mean per stream when stream.per_chunk_metric is off (documented deviation).
            description="Time between consecutive content chunks of a response stream.",
            explicit_bucket_boundaries_advisory=list(a.TIME_PER_CHUNK_BUCKETS),
        ),
        stalls=meter.create_counter(
            a.METRIC_STREAM_STALLS, unit="{stall}", description="Gaps between streamed chunks above the stall threshold.",
        ),
        capture=settings.content.capture,
        max_content_chars=settings.content.max_chars,
        stall_threshold_s=settings.stream.stall_threshold_s,
        chunk_events=settings.stream.chunk_events,
        per_chunk_metric=settings.stream.per_chunk_metric,
        openai_stream_include_usage=settings.openai.stream_include_usage,
    )
