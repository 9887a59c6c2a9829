"""The sender: one thread that takes batches from the delivery queue and forwards them, retrying with backoff.

A batch is the oldest queued requests of one signal concatenated (protobuf merges them) up to
``batch_max_bytes``. A retryable failure puts the batch back at the head of the queue and waits: the
server's own delay if it gave one, else exponential backoff with jitter (0.5 s doubling to 30 s). Nothing
is dropped for being old: while the upstream is down the queue fills, then the receivers refuse new
requests with a retryable status — the queue, not the sender, decides what cannot be kept. A permanent
refusal (bad request, unknown service) drops the batch, counted and logged with the upstream's message.
"""

from __future__ import annotations

import logging
import random
import threading
import time

from llm_telemetry.exporters.gateway.outbox import DeliveryQueue
from llm_telemetry.exporters.gateway.spill import Item, SpillStore
from llm_telemetry.exporters.gateway.stats import DROP_SPILL_FAILED, DROP_UPSTREAM_REJECTED, GatewayStats
from llm_telemetry.exporters.gateway.upstream import Outcome, Upstream

logger = logging.getLogger(__name__)

INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
_LOG_EVERY_S = 30.0
SHUTDOWN_RETRY_S = 0.25
"""After SIGTERM, a failed batch is retried this often until the shutdown deadline."""


class Backoff:
    """Exponential backoff with ±20 % jitter, capped; a server-given delay wins (capped at 5 min)."""

    def __init__(self, initial_s: float = INITIAL_BACKOFF_S, maximum_s: float = MAX_BACKOFF_S) -> None:
        self._initial = initial_s
        self._maximum = maximum_s
        self._next = initial_s
        self._random = random.Random()

    def delay(self, server_hint_s: float | None = None) -> float:
        if server_hint_s is not None:
            return min(server_hint_s, 300.0)
        value = self._next * self._random.uniform(0.8, 1.2)
        self._next = min(self._next * 2, self._maximum)
        return value

    def reset(self) -> None:
        self._next = self._initial


class Sender:
    """Drains ``queue`` into ``upstream`` on its own thread until `stop`."""

    def __init__(
        self, queue: DeliveryQueue, upstream: Upstream, stats: GatewayStats, *,
        batch_max_bytes: int, timeout_s: float, backoff: Backoff | None = None,
    ) -> None:
        self._queue = queue
        self._upstream = upstream
        self._stats = stats
        self._batch_max = batch_max_bytes
        self._timeout = timeout_s
        self._backoff = backoff or Backoff()
        self._stopping = threading.Event()
        self._deadline: float | None = None
        self._thread = threading.Thread(target=self._run, name="llm-telemetry-gateway-sender", daemon=True)
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_success_at: float | None = None
        self.retry_at: float | None = None
        self._last_logged = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self, deadline: float) -> None:
        """Keep delivering until the queue is empty or ``deadline`` (``time.monotonic``) passes, then stop."""
        self._deadline = deadline
        self._stopping.set()  # also ends a backoff wait
        if self._thread.ident is None:
            return  # never started
        self._thread.join(max(0.0, deadline - time.monotonic()) + self._timeout + 1.0)

    def state(self) -> dict[str, object]:
        now = time.time()
        return {
            "target": self._upstream.description,
            "healthy": self.consecutive_failures == 0,
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
            "last_error_age_s": None if self.last_error_at is None else round(now - self.last_error_at, 1),
            "last_success_age_s": None if self.last_success_at is None else round(now - self.last_success_at, 1),
            "retry_in_s": None if self.retry_at is None else max(0.0, round(self.retry_at - now, 1)),
        }

    # --- the loop -----------------------------------------------------------------------------------

    def _remaining(self) -> float | None:
        return None if self._deadline is None else self._deadline - time.monotonic()

    def _run(self) -> None:
        while True:
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                return
            batch = self._queue.take(self._batch_max, 0.2)
            if not batch:
                if self._stopping.is_set():
                    return
                continue
            self._deliver(batch)

    def _deliver(self, batch: list[Item]) -> None:
        loaded = self._payload(batch)
        if loaded is None:
            return
        payload, batch = loaded
        signal = batch[0].signal
        items = sum(item.items for item in batch)
        timeout = self._timeout
        remaining = self._remaining()
        if remaining is not None:
            timeout = max(0.05, min(timeout, remaining))
        try:
            outcome = self._upstream.export(signal, payload, items, timeout)
        except Exception as exc:  # a bug in a client library must not kill the sender
            logger.debug("llm-telemetry gateway: upstream export raised", exc_info=True)
            outcome = Outcome(False, True, message=f"{type(exc).__name__}: {exc}")
        if outcome.ok:
            self._delivered(batch, signal, items, outcome)
        elif outcome.retryable:
            self._queue.retry(batch)
            self._failed(outcome, items)
            delay = self._backoff.delay(outcome.retry_after_s)
            self.retry_at = time.time() + delay
            if not self._stopping.wait(delay):
                return
            # Shutting down: retry soon (the upstream may just be back), but never in a tight loop.
            remaining = self._remaining()
            time.sleep(min(SHUTDOWN_RETRY_S, max(0.0, remaining if remaining is not None else SHUTDOWN_RETRY_S)))
        else:
            self._queue.done(batch)
            self._stats.add_dropped(DROP_UPSTREAM_REJECTED, items)
            self._failed(outcome, items)
            logger.error("llm-telemetry gateway: %s refused %d %s items for good (%s); they are dropped and counted",
                         self._upstream.description, items, signal, outcome.message)

    def _payload(self, batch: list[Item]) -> tuple[bytes, list[Item]] | None:
        """The batch's bytes (spilled items read from disk) and the items that could be read."""
        parts: list[bytes] = []
        for item in batch:
            if item.payload is not None:
                parts.append(item.payload)
                continue
            try:
                parts.append(SpillStore.read(item))
            except OSError as exc:
                logger.error("llm-telemetry gateway: spilled request %s is unreadable (%s); %d items lost", item.path, exc, item.items)
                self._stats.add_dropped(DROP_SPILL_FAILED, item.items)
                self._queue.done([item])
                batch = [other for other in batch if other is not item]
        if not batch:
            return None
        return b"".join(parts), batch

    def _delivered(self, batch: list[Item], signal: str, items: int, outcome: Outcome) -> None:
        self._queue.done(batch)
        self._stats.add_exported(signal, items - outcome.rejected_items)  # type: ignore[arg-type]
        if outcome.rejected_items:
            self._stats.add_dropped(DROP_UPSTREAM_REJECTED, outcome.rejected_items)
            logger.warning("llm-telemetry gateway: %s rejected %d of %d %s items: %s",
                           self._upstream.description, outcome.rejected_items, items, signal, outcome.message)
        if self.consecutive_failures:
            logger.info("llm-telemetry gateway: %s is reachable again after %d failed attempts",
                        self._upstream.description, self.consecutive_failures)
        self.consecutive_failures = 0
        self.retry_at = None
        self.last_success_at = time.time()
        self._backoff.reset()

    def _failed(self, outcome: Outcome, items: int) -> None:
        self.consecutive_failures += 1
        self.last_error = outcome.message
        self.last_error_at = time.time()
        now = time.monotonic()
        if self.consecutive_failures == 1 or now - self._last_logged >= _LOG_EVERY_S:
            self._last_logged = now
            queued = self._queue.sizes()
            logger.warning(
                "llm-telemetry gateway: export to %s failed (%s); %s (queued: %d bytes in memory, %d on disk)",
                self._upstream.description, outcome.message,
                "retrying with backoff" if outcome.retryable else "not retryable", queued["memory"], queued["disk"],
            )
