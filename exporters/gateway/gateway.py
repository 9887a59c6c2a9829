"""`Gateway`: receive OTLP, enrich GenAI spans, queue, forward — and report on itself.

The receivers (`grpc_server`, `http_server`) only speak their protocol; every request goes through
`Gateway.ingest`, which decides what happens to it: refuse (malformed, oversized, no room, stopping),
or enrich and queue it for the sender. The gateway's own telemetry — its counters, the enricher chain's
cost/budget/safety metrics, the judge's spans — is produced by an OpenTelemetry SDK whose exporters put
it in the same queue, so it reaches the upstream "with the rest" and survives the same outages.

    gateway = Gateway(GatewayConfig(upstream="grpc://tempo:4317"))
    gateway.start()          # binds, starts the sender
    ...
    gateway.stop()           # refuses new data, flushes (bounded), spills or counts what is left
"""

from __future__ import annotations

import enum
import hmac
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError, Message
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from llm_telemetry import __version__
from llm_telemetry.config import Settings, load_settings
from llm_telemetry.exporters.gateway import otlp_json
from llm_telemetry.exporters.gateway.delivery import Sender
from llm_telemetry.exporters.gateway.enrich import OtlpEnricher
from llm_telemetry.exporters.gateway.options import GatewayConfig
from llm_telemetry.exporters.gateway.otlp import SPECS, Signal, count_items, split
from llm_telemetry.exporters.gateway.outbox import DeliveryQueue
from llm_telemetry.exporters.gateway.self_telemetry import QueueMetricExporter, QueueSpanExporter
from llm_telemetry.exporters.gateway.spill import SpillStore
from llm_telemetry.exporters.gateway.stats import (
    DROP_QUEUE_FULL,
    DROP_SHUTDOWN,
    DROP_SPILL_FAILED,
    REFUSED_INTERNAL,
    REFUSED_MALFORMED,
    REFUSED_OVERSIZED,
    REFUSED_QUEUE_FULL,
    REFUSED_SHUTTING_DOWN,
    GatewayStats,
)
from llm_telemetry.exporters.gateway.upstream import make_upstream
from llm_telemetry.processors.chain import METER_NAME, EnricherChain, build_chain
from llm_telemetry.processors.metrics import DropCounter

logger = logging.getLogger(__name__)

GATEWAY_SERVICE_NAME = "llm-telemetry-gateway"
RETRY_AFTER_S = 5.0
"""What a refused sender is told to wait (gRPC RetryInfo, HTTP Retry-After) when the queue is full or we stop."""
FULL_STATUS_S = 10.0


class Verdict(enum.Enum):
    OK = "ok"
    MALFORMED = REFUSED_MALFORMED
    OVERSIZED = REFUSED_OVERSIZED
    QUEUE_FULL = REFUSED_QUEUE_FULL
    SHUTTING_DOWN = REFUSED_SHUTTING_DOWN
    INTERNAL = REFUSED_INTERNAL


@dataclass(frozen=True, slots=True)
class IngestResult:
    verdict: Verdict
    message: str = ""
    retry_after_s: float | None = None


class Gateway:
    """The OTLP gateway; `start` binds the receivers, `stop` flushes. Thread-safe `ingest`."""

    def __init__(self, config: GatewayConfig, settings: Settings | None = None) -> None:
        self.config = config
        self.settings = settings if settings is not None else load_settings()
        self.stats = GatewayStats()
        self.upstream = make_upstream(config.upstream, config.upstream_protocol, dict(config.upstream_headers), config.upstream_ca_file)
        self.spill = SpillStore(config.spill_dir) if config.spill_dir is not None else None
        self.queue = DeliveryQueue(config.queue_max_bytes, self.spill, config.spill_max_bytes)
        self._started_at = time.time()
        self._stopping = False
        self._stopped = threading.Event()
        self._last_full_at = 0.0
        self._last_full_logged = -60.0
        self._token = f"bearer {config.auth_token}".encode() if config.auth_token else None

        resource = Resource.create({} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: GATEWAY_SERVICE_NAME})
        reader = PeriodicExportingMetricReader(
            QueueMetricExporter(self.enqueue_own), export_interval_millis=config.metrics_interval_s * 1000
        )
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(QueueSpanExporter(self.enqueue_own)))
        self.chain: EnricherChain | None = None
        if config.enrich:
            self.chain = build_chain(self.settings, self.meter_provider, self.tracer_provider, strict=True)
            drops = self.chain.drops
        else:
            drops = DropCounter(self.meter_provider.get_meter(METER_NAME, __version__))
        self.enricher = OtlpEnricher(self.chain, self.settings)
        drops.add_source(self.stats.dropped_counts)
        drops.add_source(self.enricher.dropped_counts)
        self.drops = drops
        self.stats.enriched_source = lambda: self.enricher.spans_enriched
        self.stats.queue_source = self.queue.sizes
        self.stats.register(self.meter_provider.get_meter("llm_telemetry.gateway", __version__))
        self.sender = Sender(self.queue, self.upstream, self.stats, batch_max_bytes=config.batch_max_bytes,
                             timeout_s=config.upstream_timeout_s)
        self.receivers: list[Any] = []

    # --- life cycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind every receiver (raises `ConfigError` naming an address that cannot be bound) and start sending."""
        from llm_telemetry.exporters.gateway.grpc_server import GrpcReceiver
        from llm_telemetry.exporters.gateway.http_server import HttpReceiver

        config = self.config
        try:
            if config.listen_grpc is not None:
                self.receivers.append(GrpcReceiver(self, config.listen_grpc))
            if config.listen_http is not None:
                self.receivers.append(HttpReceiver(self, config.listen_http, otlp=True))
            if config.listen_health is not None:
                self.receivers.append(HttpReceiver(self, config.listen_health, otlp=False))
        except Exception:
            for receiver in self.receivers:
                receiver.stop(0)
            raise
        self.sender.start()
        for receiver in self.receivers:
            receiver.start()

    def addresses(self) -> dict[str, str]:
        """``{"grpc": "127.0.0.1:4317", "http": ..., "health": ...}`` as bound (port 0 resolved)."""
        return {receiver.kind: receiver.address for receiver in self.receivers}

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop receiving, flush the gateway's own telemetry, deliver what is queued until the deadline.

        What is still queued at the deadline goes to the spill directory (sent at the next start) or, without
        one, is counted as dropped (``gateway_shutdown_unsent``) and logged. Idempotent.
        """
        if self._stopping:
            self._stopped.wait()
            return
        self._stopping = True
        timeout = self.config.shutdown_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        try:
            for receiver in self.receivers:
                receiver.stop(min(1.0, timeout / 4))
            if self.chain is not None:
                self.chain.shutdown(max(0.0, min(2.0, (deadline - time.monotonic()) / 4)))
            self.tracer_provider.shutdown()
            self.meter_provider.shutdown(timeout_millis=max(100.0, (deadline - time.monotonic()) * 250))
            self.sender.stop(deadline)
            self._settle_leftovers()
        finally:
            self.upstream.close()
            if self.spill is not None:
                self.spill.close()
            self._stopped.set()
            counts = self.stats.snapshot()
            logger.info("llm-telemetry gateway stopped: received %s, enriched %s, exported %s, refused %s, dropped %s",
                        counts["received"], counts["enriched"], counts["exported"], counts["refused"], counts["dropped"])

    def _settle_leftovers(self) -> None:
        if not self.queue.pending_requests():
            return
        if self.spill is not None:
            spilled, left = self.queue.spill_memory()
            waiting = self.queue.pending_items()
            logger.warning("llm-telemetry gateway: %d items wait in %s for the next start (%d moved there at shutdown)",
                           waiting, self.spill.directory, spilled)
        else:
            left = self.queue.pending_items()
        if left:
            self.stats.add_dropped(DROP_SHUTDOWN, left)
            logger.error("llm-telemetry gateway: %d items were not delivered to %s before the shutdown deadline and are lost "
                         "(use --spill-dir to keep them, or a longer --shutdown-timeout)", left, self.upstream.description)

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def auth_required(self) -> bool:
        return self._token is not None

    # --- the request path ------------------------------------------------------------------------------

    def authorized(self, header: str | bytes | None) -> bool:
        """True when auth is off, or ``header`` is ``Bearer <token>`` (constant-time comparison)."""
        if self._token is None:
            return True
        if not header:
            return False
        value = header.encode() if isinstance(header, str) else header
        scheme, _, rest = value.partition(b" ")
        return hmac.compare_digest(scheme.lower() + b" " + rest.strip(), self._token)

    def ingest(self, signal: Signal, body: bytes, *, json: bool = False) -> IngestResult:
        """Decide one request's fate: refuse it, or enrich and queue it. Never raises."""
        if self._stopping:
            return self._refuse(Verdict.SHUTTING_DOWN, "the gateway is shutting down", RETRY_AFTER_S)
        if len(body) > self.config.max_request_bytes:
            return self._refuse(Verdict.OVERSIZED, f"request of {len(body)} bytes is larger than the gateway's limit of "
                                f"{self.config.max_request_bytes} (--max-request-bytes)")
        try:
            request = otlp_json.parse(signal, body) if json else _parse(signal, body)
        except (DecodeError, ValueError) as exc:
            return self._refuse(Verdict.MALFORMED, f"not a valid OTLP {signal} request: {exc}")
        try:
            return self._accept(signal, request, body, json)
        except Exception:
            logger.exception("llm-telemetry gateway: internal error on a %s request", signal)
            return self._refuse(Verdict.INTERNAL, "internal error in the gateway (logged)")

    def _accept(self, signal: Signal, request: Message, body: bytes, json: bool) -> IngestResult:
        items = count_items(signal, request)
        if items == 0:
            return IngestResult(Verdict.OK)
        size = request.ByteSize() if json else len(body)
        reservation = self.queue.reserve(size + size // 2 + 4096)
        if reservation is None:
            now = time.monotonic()
            if now - self._last_full_logged >= 30.0:  # at most every 30 s while it lasts
                sizes = self.queue.sizes()
                logger.warning("llm-telemetry gateway: the queue is full (%d bytes in memory, %d on disk; upstream %s: %s); "
                               "refusing requests with a retry hint, counted in %s{reason=%s}", sizes["memory"], sizes["disk"],
                               self.upstream.description, self.sender.last_error or "slow", "llm_telemetry.dropped", DROP_QUEUE_FULL)
                self._last_full_logged = now
            self._last_full_at = now
            self.stats.add_dropped(DROP_QUEUE_FULL, items)
            return self._refuse(Verdict.QUEUE_FULL, "the gateway's queue is full (the upstream is slow or down); retry later",
                                RETRY_AFTER_S)
        committed = False
        try:
            if signal == "traces":
                changed = self.enricher.process_traces(request)  # type: ignore[arg-type]
            elif signal == "logs":
                changed = self.enricher.process_logs(request)  # type: ignore[arg-type]
            else:
                changed = False
            payload = request.SerializeToString() if changed or json else body
            limit = self.config.batch_max_bytes
            parts = [(payload, items)] if len(payload) <= limit else split(signal, request, limit)
            lost = self.queue.commit(reservation, signal, parts)
            committed = True
        finally:
            if not committed:
                self.queue.release(reservation)
        self.stats.add_received(signal, items)
        self.stats.add_dropped(DROP_SPILL_FAILED, lost)
        return IngestResult(Verdict.OK)

    def _refuse(self, verdict: Verdict, message: str, retry_after_s: float | None = None) -> IngestResult:
        self.stats.add_refused(verdict.value)
        return IngestResult(verdict, message, retry_after_s)

    def refuse(self, reason: str) -> None:
        """Count a refusal the receivers decide themselves (``unauthenticated``, ``unsupported_media_type`` …)."""
        self.stats.add_refused(reason)

    def enqueue_own(self, signal: Signal, payload: bytes, items: int) -> bool:
        """Queue the gateway's own telemetry (self-metrics, judge spans); counted as dropped when there is no room."""
        if self.queue.put(signal, payload, items):
            return True
        self.stats.add_dropped(DROP_QUEUE_FULL, items)
        return False

    # --- health ----------------------------------------------------------------------------------------

    def health(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) of ``GET /health``: 200 while accepting, 503 when stopping or full.

        ``full``: a request was refused for lack of room in the last 10 s; ``degraded``: the last export failed.
        """
        sizes = self.queue.sizes()
        config = self.config
        upstream = self.sender.state()
        if self._stopping:
            status = "stopping"
        elif self._last_full_at and time.monotonic() - self._last_full_at < FULL_STATUS_S:
            status = "full"
        elif not upstream["healthy"]:
            status = "degraded"
        else:
            status = "ok"
        body = {
            "status": status,
            "version": __version__,
            "uptime_s": round(time.time() - self._started_at, 1),
            "enrichment": [e.name for e in self.chain.enrichers] if self.chain is not None else "off (pass-through)",
            "content_capture": self.settings.content.capture.value,
            "upstream": upstream,
            "queue": {
                "memory_bytes": sizes["memory"], "memory_max_bytes": config.queue_max_bytes,
                "disk_bytes": sizes["disk"], "disk_max_bytes": config.spill_max_bytes if self.spill is not None else 0,
                "spill_dir": str(self.spill.directory) if self.spill is not None else None,
                "pending_requests": self.queue.pending_requests(),
            },
            "counts": {**self.stats.snapshot(), "dropped": {k: v for k, v in self.drops.counts().items() if v}},
        }
        return (503 if status in ("stopping", "full") else 200), body


def _parse(signal: Signal, body: bytes) -> Message:
    request = SPECS[signal].request()
    request.ParseFromString(body)
    return request
