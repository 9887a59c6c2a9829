"""The gateway's own counts: what it received, enriched, exported, refused and dropped, and its queue size.

One object holds them; the health endpoint shows them as JSON and observable instruments report them with
the rest of the gateway's metrics (which go upstream like any other telemetry). What the gateway drops
after accepting it is counted in the project-wide ``llm_telemetry.dropped`` counter (reasons ``gateway_*``),
so the existing ``LLMTelemetryDropped`` alert covers the gateway too. Requests it answers with an error
are counted in ``llm_telemetry.gateway.refused`` by reason: the sender keeps (and may retry) those.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from llm_telemetry import attributes as a
from llm_telemetry.exporters.gateway.otlp import SIGNALS, Signal

# llm_telemetry.dropped reasons (items lost after the gateway had them, or refused for lack of room).
DROP_QUEUE_FULL = "gateway_queue_full"
"""Items of requests refused because the memory queue and the spill directory were full (the sender may retry)."""
DROP_UPSTREAM_REJECTED = "gateway_upstream_rejected"
"""Items the upstream refused for good (a non-retryable status, or rejected in a partial success)."""
DROP_SHUTDOWN = "gateway_shutdown_unsent"
"""Items still queued when the shutdown deadline passed and no spill directory could take them."""
DROP_SPILL_FAILED = "gateway_spill_failed"
"""Items that could not be written to, or read back from, the spill directory."""

# llm_telemetry.gateway.reason values (requests answered with an error status).
REFUSED_MALFORMED = "malformed"
REFUSED_OVERSIZED = "oversized"
REFUSED_MEDIA_TYPE = "unsupported_media_type"
REFUSED_UNAUTHENTICATED = "unauthenticated"
REFUSED_QUEUE_FULL = "queue_full"
REFUSED_SHUTTING_DOWN = "shutting_down"
REFUSED_INTERNAL = "internal_error"


class GatewayStats:
    """Thread-safe cumulative counters; ``queue_bytes`` and ``enriched`` are read from their owners on demand."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received: dict[str, int] = dict.fromkeys(SIGNALS, 0)
        self.exported: dict[str, int] = dict.fromkeys(SIGNALS, 0)
        self.refused: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.enriched_source: Callable[[], int] = lambda: 0
        self.queue_source: Callable[[], Mapping[str, int]] = dict

    def add_received(self, signal: Signal, items: int) -> None:
        with self._lock:
            self.received[signal] += items

    def add_exported(self, signal: Signal, items: int) -> None:
        with self._lock:
            self.exported[signal] += items

    def add_refused(self, reason: str) -> None:
        with self._lock:
            self.refused[reason] = self.refused.get(reason, 0) + 1

    def add_dropped(self, reason: str, items: int) -> None:
        if items <= 0:
            return
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + items

    def dropped_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.dropped)

    def snapshot(self) -> dict[str, object]:
        """The counters as plain data (the health endpoint's ``counts``)."""
        enriched = self.enriched_source()
        with self._lock:
            return {
                "received": dict(self.received),
                "enriched": enriched,
                "exported": dict(self.exported),
                "refused": dict(self.refused),
                "dropped": dict(self.dropped),
            }

    def register(self, meter: Meter) -> None:
        """Observable instruments over these counters (collected with the gateway's other metrics)."""
        meter.create_observable_counter(
            a.METRIC_GATEWAY_RECEIVED, callbacks=[self._observe(lambda: self._copy(self.received), a.GATEWAY_SIGNAL)], unit="{item}",
            description="Spans, metric data points and log records the gateway accepted, by signal.",
        )
        meter.create_observable_counter(
            a.METRIC_GATEWAY_ENRICHED, callbacks=[lambda options: [Observation(self.enriched_source())]], unit="{span}",
            description="GenAI spans the gateway ran through the enricher chain.",
        )
        meter.create_observable_counter(
            a.METRIC_GATEWAY_EXPORTED, callbacks=[self._observe(lambda: self._copy(self.exported), a.GATEWAY_SIGNAL)], unit="{item}",
            description="Items the upstream accepted, by signal.",
        )
        meter.create_observable_counter(
            a.METRIC_GATEWAY_REFUSED, callbacks=[self._observe(lambda: self._copy(self.refused), a.GATEWAY_REASON)], unit="{request}",
            description="Requests the gateway answered with an error status, by reason (the sender keeps their data).",
        )
        meter.create_observable_gauge(
            a.METRIC_GATEWAY_QUEUE_SIZE, callbacks=[self._observe(self.queue_source, a.GATEWAY_QUEUE_LOCATION)], unit="By",
            description="Bytes waiting for the upstream, in memory and in the spill directory.",
        )

    def _observe(self, source: Callable[[], Mapping[str, int]], key: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(value, {key: name}) for name, value in source().items()]

        return observe

    def _copy(self, counts: dict[str, int]) -> dict[str, int]:
        with self._lock:
            return dict(counts)
