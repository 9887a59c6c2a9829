"""Shared benchmark plumbing: the fake provider in its own process, CPU timing, medians, printing."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class NullSpanExporter(SpanExporter):
    """Accepts and discards spans: measures the SDK and our code, not a network."""

    def export(self, spans):
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


@contextmanager
def provider_process() -> Iterator[str]:
    """Run ``python -m llm_telemetry.fake_provider`` in its own process; yield its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm_telemetry.fake_provider", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"fake provider did not start: {line!r}")
        yield line.split(" ", 1)[1]
    finally:
        proc.terminate()
        proc.wait(10)


def cpu_seconds(fn: Callable[[], None]) -> float:
    """CPU time of this process (all its threads) spent running ``fn``."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


def row(label: str, value_us: float, baseline_us: float | None = None) -> str:
    ratio = f"{value_us / baseline_us:6.2f}x" if baseline_us else "      "
    return f"  {label:58} {value_us:10.2f} µs  {ratio}"
