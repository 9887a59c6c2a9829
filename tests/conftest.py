"""Shared fixtures: a real OTel SDK pipeline in memory, and the bundled fake provider."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from _records import records
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_telemetry.config import load_settings, set_settings
from llm_telemetry.fake_provider import FakeProvider
from llm_telemetry.side_channel import side_channel

# No test writes to the user's real review queue (~/.local/state/llm-telemetry/review.db).
os.environ["LLM_TELEMETRY_REVIEW_DB_PATH"] = os.path.join(tempfile.mkdtemp(prefix="llm-telemetry-tests-"), "review.db")

# Fixture modules of each test area (plain modules in tests/, registered here once).
pytest_plugins = [
    "_openai_helpers", "_anthropic_helpers", "_fake_provider_helpers", "_eval_helpers", "_canned_provider", "_both_sdks",
    "_otelcol_helpers",
]


@pytest.fixture(autouse=True)
def _side_channel_tap() -> Iterator[None]:
    """Unit tests see each published record (``records.take``) and measure only with a chain they connect.

    (The default, auto-built chain is what users get; the subprocess end-to-end tests run it as they do.)
    """
    side_channel.connect(None, auto=False)
    side_channel.add_observer(records)
    yield
    side_channel.remove_observer(records)
    records.clear()
    side_channel.connect(None, auto=False)


@dataclass
class Otel:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def metrics(self) -> dict[str, list]:
        """Metric name → data points (all scopes)."""
        out: dict[str, list] = {}
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out


@pytest.fixture
def otel() -> Iterator[Otel]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    yield Otel(tp, mp, exporter, reader)
    tp.shutdown()
    mp.shutdown()


@pytest.fixture(scope="session")
def _provider_server() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture
def fake_provider(_provider_server: FakeProvider) -> Iterator[FakeProvider]:
    _provider_server.reset()
    yield _provider_server
    _provider_server.reset()


@pytest.fixture
def settings_env() -> Iterator[object]:
    """Call ``settings_env({...})`` to load settings from a dict of env vars for this test."""

    def apply(env: dict[str, str]) -> None:
        set_settings(load_settings(env))

    yield apply
    set_settings(None)
