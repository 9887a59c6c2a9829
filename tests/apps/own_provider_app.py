"""An LLM app that sets up OpenTelemetry in its own code (no opentelemetry-instrument, no llm-telemetry config).

It builds its own TracerProvider and MeterProvider with OTLP exporters, instruments the OpenAI SDK with
our instrumentor, and makes two calls. Cost, budget and safety must arrive anyway: the instrumentation
hands every call to the enricher chain before the span ends, whoever installed the providers.
"""

from __future__ import annotations

import os

import openai
from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from llm_telemetry.fake_provider import Behaviour
from llm_telemetry.instrumentation.openai import OpenAIInstrumentor

tracer_provider = TracerProvider()
tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(tracer_provider)
meter_provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=60_000)])
metrics.set_meter_provider(meter_provider)
OpenAIInstrumentor().instrument()

client = openai.OpenAI(api_key="sk-own-secret", base_url=os.environ["FAKE_PROVIDER_URL"] + "/v1", max_retries=0)
messages = [{"role": "user", "content": "Who do I write to?"}]
client.chat.completions.create(model="gpt-4o-mini", messages=messages,
                               extra_headers=Behaviour(text="2025-04-03", input_tokens=1000, output_tokens=200).header())
client.chat.completions.create(model="gpt-4o-mini", messages=messages,
                               extra_headers=Behaviour(text="Write to billing@example.com.").header())
tracer_provider.shutdown()
meter_provider.shutdown()
print("own_provider_app: done")
