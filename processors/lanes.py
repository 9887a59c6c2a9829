"""Background lanes: bounded queues, each drained by its own daemon thread, for work that must not run inline.

Why lanes and not one queue: the LLM judge takes seconds per call, embeddings and drift checks are
batched CPU work, review-queue writes are disk I/O. On one shared queue a slow judge starves drift;
with one lane each, a full lane drops (and counts) only its own work. ``submit`` never blocks the
application thread.

Fork safety: a thread does not survive ``fork()``. After a fork every worker in the child forgets its
parent's thread and queue (the parent's pending tasks are the parent's to run) and starts a fresh
thread on its next ``submit``, so a forked worker (gunicorn, multiprocessing) keeps working.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Mapping

logger = logging.getLogger(__name__)

DEFAULT_LANE = "default"
_workers: weakref.WeakSet[BackgroundWorker] = weakref.WeakSet()


class BackgroundWorker:
    """A bounded queue drained by one daemon thread. ``submit`` never blocks; overflow is counted.

    ``dropped`` (queue full) and ``failed`` (task raised) are exported through ``llm_telemetry.dropped``.
    """

    def __init__(self, max_queue: int = 1000, name: str = "llm-telemetry-worker") -> None:
        self._max_queue = max_queue
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=max_queue)
        self._name = name
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0
        self.failed = 0
        self.completed = 0
        _workers.add(self)

    @property
    def name(self) -> str:
        return self._name

    def submit(self, task: Callable[[], None]) -> bool:
        """Queue ``task``; returns False (and counts a drop) when the queue is full."""
        self._ensure_started()
        try:
            self._queue.put_nowait(task)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, args=(self._queue,), name=self._name, daemon=True)
                    self._thread.start()

    def _run(self, tasks: queue.Queue[Callable[[], None] | None]) -> None:
        while True:
            task = tasks.get()
            try:
                if task is None:
                    return
                task()
                self.completed += 1
            except Exception:
                self.failed += 1
                logger.warning("llm-telemetry background task failed (lane %s)", self._name, exc_info=True)
            finally:
                tasks.task_done()

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until queued tasks have run; False if ``timeout_s`` passed first."""
        if self._thread is None:
            return True
        deadline = time.monotonic() + timeout_s
        done = threading.Event()
        try:
            # A blocking put: a full queue is a reason to wait here, not a dropped task.
            self._queue.put(done.set, timeout=timeout_s)
        except queue.Full:
            return False
        return done.wait(max(0.0, deadline - time.monotonic()))

    def shutdown(self, timeout_s: float = 1.0) -> None:
        """Stop after the queued tasks, waiting at most ``timeout_s`` (the thread is a daemon)."""
        thread = self._thread
        if thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            pass
        thread.join(timeout_s)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._queue = queue.Queue(maxsize=self._max_queue)
        self._thread = None

    def __len__(self) -> int:
        return self._queue.qsize()


def _reset_workers_after_fork() -> None:
    for worker in list(_workers):
        worker._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_workers_after_fork)


class Lanes:
    """Named `BackgroundWorker` lanes, created on first use, flushed and stopped together."""

    def __init__(self, max_queue: int = 1000, default: BackgroundWorker | None = None) -> None:
        self._max_queue = max_queue
        self._lanes: dict[str, BackgroundWorker] = {}
        self._lock = threading.Lock()
        if default is not None:
            self._lanes[DEFAULT_LANE] = default

    def get(self, name: str = DEFAULT_LANE) -> BackgroundWorker:
        lane = self._lanes.get(name)
        if lane is None:
            with self._lock:
                lane = self._lanes.get(name)
                if lane is None:
                    lane = self._lanes[name] = BackgroundWorker(self._max_queue, f"llm-telemetry-{name}")
        return lane

    @property
    def default(self) -> BackgroundWorker:
        return self.get(DEFAULT_LANE)

    def all(self) -> list[BackgroundWorker]:
        with self._lock:
            return list(self._lanes.values())

    def pending(self) -> int:
        return sum(len(lane) for lane in self.all())

    def flush(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        ok = True
        for lane in self.all():
            # A full queue refuses the flush marker: let it drain first.
            while len(lane) and time.monotonic() < deadline:
                time.sleep(0.001)
            ok = lane.flush(max(0.0, deadline - time.monotonic())) and ok
        return ok

    def shutdown(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for lane in self.all():
            lane.shutdown(max(0.0, deadline - time.monotonic()))

    def dropped_counts(self) -> Mapping[str, int]:
        """Drops by ``llm_telemetry.dropped.reason``: ``worker_queue_full`` for the default lane, ``<lane>_queue_full`` else."""
        out: dict[str, int] = {}
        for name, lane in list(self._lanes.items()):
            prefix = "worker" if name == DEFAULT_LANE else name
            out[f"{prefix}_queue_full"] = lane.dropped
            out[f"{prefix}_task_failed"] = lane.failed
        return out
