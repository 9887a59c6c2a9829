"""Shared benchmark plumbing: the fake provider in its own process, CPU timing, medians, printing."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class NullSpanExporter(SpanExporter):
    """Accepts and discards spans: measures the SDK and our code, not a network.

    ``exported`` counts the spans it was given, so a benchmark can check how many spans a call made.
    """

    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans):
        self.exported += len(spans)
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


def interleaved(modes: Sequence[str], rounds: int, measure: Callable[[str], Mapping[str, float]]) -> dict[str, dict[str, list[float]]]:
    """Run ``measure(mode)`` for every mode, round after round; results[mode][metric] holds one value per round.

    Each round starts one mode later than the previous one, so no mode always runs first (or right after
    the same neighbour) while the machine's load drifts.
    """
    results: dict[str, dict[str, list[float]]] = {m: {} for m in modes}
    for r in range(rounds):
        start = r % len(modes)
        for mode in [*modes[start:], *modes[:start]]:
            for metric, value in measure(mode).items():
                results[mode].setdefault(metric, []).append(value)
    return results


def load_average() -> str:
    """The 1/5/15-minute load averages, for the report: the CPU is often shared while benchmarks run."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


def summary_line(benchmark: str, data: Mapping[str, Any]) -> str:
    """The one machine-readable line a benchmark prints last: ``BENCH {"benchmark": ..., ...}``."""
    return "BENCH " + json.dumps({"benchmark": benchmark, **data}, sort_keys=True)


def reference_us() -> float:
    """CPU µs of ``sum(range(1000))`` on this machine (median of 5): a yardstick to scale the figures by.

    A typical 2023 desktop core does it in about 8 µs; a shared or throttled VM core can take 2-3x that.
    """
    samples = []
    for _ in range(5):
        start = time.thread_time()
        for _ in range(500):
            sum(range(1000))
        samples.append((time.thread_time() - start) / 500 * 1e6)
    return statistics.median(samples)


def paired(values: Sequence[float], baseline: Sequence[float]) -> tuple[float, float]:
    """Median of the per-round ratios and of the per-round differences to the baseline measured in the same round.

    Pairing by round cancels most of the machine's drift (shared CPU, frequency changes) that separate
    medians of each mode would keep.
    """
    ratios = [v / b for v, b in zip(values, baseline, strict=True)]
    diffs = [v - b for v, b in zip(values, baseline, strict=True)]
    return statistics.median(ratios), statistics.median(diffs)
