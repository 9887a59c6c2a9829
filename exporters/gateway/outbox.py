"""The delivery queue: requests waiting for the upstream, bounded by bytes in memory and (optionally) on disk.

Why reserve before enriching: enrichment has effects beyond the span (budget spend, safety counts,
review items). If the gateway enriched a request and then found no room for it, the sender would retry
it and the spend would be counted twice. So a receiver first *reserves* room for the request (a
generous estimate of its enriched size), enriches only if it got it, then *commits* the real payload;
with no room anywhere it refuses the request before touching it, with a retryable status.

Order: every item gets a sequence number; the sender takes the oldest first, from memory or disk, and
batches items of the same signal up to a byte limit. Items being sent still count against the bound, so
memory stays bounded by ``max_bytes`` plus at most one estimate overshoot per concurrent request.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

from llm_telemetry.exporters.gateway.otlp import SIGNALS, Signal
from llm_telemetry.exporters.gateway.spill import Item, SpillStore

logger = logging.getLogger(__name__)

Location = Literal["memory", "disk"]


@dataclass(slots=True)
class Reservation:
    where: Location
    size: int


class DeliveryQueue:
    """Bounded FIFO of serialized OTLP requests, memory first, then the spill directory if there is one."""

    def __init__(self, max_bytes: int, spill: SpillStore | None = None, spill_max_bytes: int = 0) -> None:
        self.max_bytes = max_bytes
        self.spill = spill
        self.spill_max_bytes = spill_max_bytes if spill is not None else 0
        self._cond = threading.Condition()
        self._memory: dict[Signal, deque[Item]] = {s: deque() for s in SIGNALS}
        self._disk: dict[Signal, deque[Item]] = {s: deque() for s in SIGNALS}
        self.memory_bytes = 0
        self.disk_bytes = 0
        self._reserved: dict[Location, int] = {"memory": 0, "disk": 0}
        self._in_flight = 0
        last = 0
        if spill is not None:
            for item in spill.load():
                self._disk[item.signal].append(item)
                self.disk_bytes += item.size
                last = item.seq
            if self.disk_bytes:
                logger.info("llm-telemetry gateway: %d requests (%d bytes) from an earlier run wait in %s",
                            self.pending_requests(), self.disk_bytes, spill.directory)
        self._seq = itertools.count(last + 1)

    # --- receivers -----------------------------------------------------------------------------------

    def reserve(self, size: int) -> Reservation | None:
        """Room for ``size`` bytes, in memory if possible, else on disk; ``None`` when both are full."""
        with self._cond:
            if self.memory_bytes + self._reserved["memory"] + size <= self.max_bytes:
                self._reserved["memory"] += size
                return Reservation("memory", size)
            if self.spill is not None and self.disk_bytes + self._reserved["disk"] + size <= self.spill_max_bytes:
                self._reserved["disk"] += size
                return Reservation("disk", size)
        return None

    def release(self, reservation: Reservation) -> None:
        with self._cond:
            self._reserved[reservation.where] -= reservation.size

    def commit(self, reservation: Reservation, signal: Signal, payloads: list[tuple[bytes, int]]) -> int:
        """Queue ``payloads`` ((bytes, items) pairs) in the reserved place; returns items lost to a failed spill write."""
        if reservation.where == "memory":
            with self._cond:
                self._reserved["memory"] -= reservation.size
                for payload, items in payloads:
                    self._memory[signal].append(Item(next(self._seq), signal, items, len(payload), payload=payload))
                    self.memory_bytes += len(payload)
                self._cond.notify_all()
            return 0
        lost = 0
        written: list[Item] = []
        assert self.spill is not None
        for payload, items in payloads:
            with self._cond:
                item = Item(next(self._seq), signal, items, len(payload))
            try:
                self.spill.write(item, payload)
                written.append(item)
            except OSError as exc:
                lost += items
                logger.error("llm-telemetry gateway: could not write to the spill directory %s (%s); %d items lost",
                             self.spill.directory, exc, items)
        with self._cond:
            self._reserved["disk"] -= reservation.size
            for item in written:
                self._disk[signal].append(item)
                self.disk_bytes += item.size
            self._cond.notify_all()
        return lost

    def put(self, signal: Signal, payload: bytes, items: int) -> bool:
        """Queue one request at once (the gateway's own telemetry); False when there is no room."""
        reservation = self.reserve(len(payload))
        if reservation is None:
            return False
        return self.commit(reservation, signal, [(payload, items)]) == 0

    # --- the sender ------------------------------------------------------------------------------------

    def take(self, max_bytes: int, timeout_s: float) -> list[Item]:
        """The oldest items of one signal, up to ``max_bytes`` together (at least one); [] after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                signal = self._oldest_signal()
                if signal is not None:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)
            memory, disk = self._memory[signal], self._disk[signal]
            batch: list[Item] = []
            total = 0
            while memory or disk:
                source = memory if memory and (not disk or memory[0].seq < disk[0].seq) else disk
                if batch and total + source[0].size > max_bytes:
                    break
                item = source.popleft()
                batch.append(item)
                total += item.size
            self._in_flight += len(batch)
            return batch

    def _oldest_signal(self) -> Signal | None:
        best: tuple[int, Signal] | None = None
        for signal in SIGNALS:
            for source in (self._memory[signal], self._disk[signal]):
                if source and (best is None or source[0].seq < best[0]):
                    best = (source[0].seq, signal)
        return None if best is None else best[1]

    def done(self, batch: list[Item]) -> None:
        """``batch`` was delivered (or given up): free its room."""
        with self._cond:
            for item in batch:
                if item.path is not None:
                    self.disk_bytes -= item.size
                else:
                    self.memory_bytes -= item.size
            self._in_flight -= len(batch)
            self._cond.notify_all()
        for item in batch:
            if item.path is not None and self.spill is not None:
                self.spill.remove(item)

    def retry(self, batch: list[Item]) -> None:
        """Put ``batch`` back at the head of its queues (delivery failed, will be retried)."""
        with self._cond:
            for item in reversed(batch):
                if item.path is not None:
                    item.payload = None  # read again from disk: keep memory for memory items
                    self._disk[item.signal].appendleft(item)
                else:
                    self._memory[item.signal].appendleft(item)
            self._in_flight -= len(batch)
            self._cond.notify_all()

    # --- shutdown and introspection ----------------------------------------------------------------------

    def spill_memory(self) -> tuple[int, int]:
        """Move what waits in memory to disk, as far as the spill bound allows: (items spilled, items that did not fit)."""
        with self._cond:
            waiting = sorted((item for signal in SIGNALS for item in self._memory[signal]), key=lambda i: i.seq)
            for signal in SIGNALS:
                self._memory[signal].clear()
        spilled = left = 0
        for item in waiting:
            payload = item.payload or b""
            fits = self.spill is not None and self.disk_bytes + item.size <= self.spill_max_bytes
            if fits:
                assert self.spill is not None
                try:
                    self.spill.write(item, payload)
                except OSError as exc:
                    logger.error("llm-telemetry gateway: could not spill at shutdown (%s)", exc)
                    fits = False
            with self._cond:
                self.memory_bytes -= item.size
                if fits:
                    item.payload = None
                    self._disk[item.signal].append(item)
                    self.disk_bytes += item.size
            if fits:
                spilled += item.items
            else:
                left += item.items
        return spilled, left

    def sizes(self) -> dict[str, int]:
        with self._cond:
            return {"memory": self.memory_bytes, "disk": self.disk_bytes}

    def pending_requests(self) -> int:
        return sum(len(self._memory[s]) + len(self._disk[s]) for s in SIGNALS) + self._in_flight

    def pending_items(self) -> int:
        with self._cond:
            return sum(item.items for s in SIGNALS for source in (self._memory[s], self._disk[s]) for item in source)

    def wait_empty(self, timeout_s: float) -> bool:
        """Wait until nothing is queued or in flight; False if ``timeout_s`` passed first."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.pending_requests():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True
