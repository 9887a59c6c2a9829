"""Exporter wrappers that keep a dead or hung telemetry backend from slowing the app down.

The stock OTLP exporters retry with exponential backoff for up to their timeout (10 s by default),
and the SDK flushes every signal at exit one after the other, each with its own retries: a short
script whose collector is down takes many times longer to exit. `ExportGuard` puts a circuit breaker
and hard deadlines around any exporter (the per-signal wrappers are in `resilient_exporters`):

- every export is bounded by ``export.timeout_s`` (retries included); it runs on the wrapper's own
  worker thread so a hung socket is abandoned at the deadline instead of blocking the caller;
- after a failure, exports are skipped for ``export.retry_backoff_s`` instead of retried, so a dead
  backend costs one failed attempt per window, not one per batch; span and log batches that were never
  delivered wait in a bounded retry buffer and go out with the next export (overflow counted);
- at shutdown (`ExportGuard.begin_shutdown`) one deadline covers what is left of every signal, and
  the stock exporters are asked to stop retrying (a refused connection then fails in milliseconds).

The worker thread is started with the wrapper, never lazily: the final flush runs in an ``atexit``
handler, where Python 3.12+ refuses to start threads.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from opentelemetry.instrumentation.utils import suppress_instrumentation

from llm_telemetry.exporters.failures import ExportFailure, from_exception, note_log_record, watching

logger = logging.getLogger(__name__)

Signal = Literal["traces", "metrics", "logs"]
Outcome = Literal["exported", "failed", "skipped", "abandoned"]
"""What became of one export: sent; answered with a failure; never sent (circuit open, busy, past the
shutdown deadline); or still running at the deadline (it may yet arrive: a late success is counted)."""
REASON_FAILED: Literal["export_failed"] = "export_failed"
REASON_SKIPPED: Literal["export_skipped"] = "export_skipped"
_POLL_S = 0.02
"""How often a waiting export re-reads the shutdown deadline (set from another thread)."""
_OTLP_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.common.http",
)
_quiet_threads: set[int] = set()


class _ExporterLogs(logging.Filter):
    """Reads the stock exporters' log lines: what they say about a failure, and whether to print them.

    Every line first goes to `failures.note_log_record`, which tells the running export why it failed
    (an HTTP 405, a gRPC UNIMPLEMENTED, a refused connection). Then the per-attempt lines from our export
    threads are dropped once shutdown began: at exit a dead backend would otherwise print "retrying in
    1.0s" / "aborting retry" for every signal; `Providers.report_drops` says it once, with totals.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        note_log_record(record)
        return record.thread not in _quiet_threads


_quiet_filter = _ExporterLogs()
for _name in _OTLP_LOGGERS:
    # First in line: the exporters' own DuplicateFilter drops a repeated line (the same failure for metrics
    # then for logs, within 20 s) and later filters never see it — nor would we, to classify it.
    logging.getLogger(_name).filters.insert(0, _quiet_filter)


@dataclass(frozen=True, slots=True)
class DropCounts:
    """What one exporter sent and dropped. Items are spans, metric data points or log records."""

    exported_items: int = 0
    failed_items: int = 0
    skipped_items: int = 0
    failed_batches: int = 0
    skipped_batches: int = 0

    @property
    def dropped_items(self) -> int:
        return self.failed_items + self.skipped_items

    @property
    def dropped_batches(self) -> int:
        return self.failed_batches + self.skipped_batches

    def __add__(self, other: DropCounts) -> DropCounts:
        return DropCounts(
            self.exported_items + other.exported_items,
            self.failed_items + other.failed_items,
            self.skipped_items + other.skipped_items,
            self.failed_batches + other.failed_batches,
            self.skipped_batches + other.skipped_batches,
        )


class _Job:
    __slots__ = ("abandoned", "context", "done", "export", "failure", "items", "ok")

    def __init__(self, export: Callable[[], bool], items: int) -> None:
        self.export = export
        self.items = items
        self.context = contextvars.copy_context()
        self.done = threading.Event()
        self.ok = False
        self.abandoned = False
        self.failure: ExportFailure | None = None
        """Why the export failed, if the exporter said (its log lines, or the exception it raised)."""

    def note(self, failure: ExportFailure) -> None:
        self.failure = failure


class _Runner:
    """One daemon thread that runs one export at a time, so the caller can stop waiting at a deadline."""

    def __init__(self, name: str, on_done: Callable[[_Job], None]) -> None:
        self._name = name
        self._on_done = on_done
        self.start()

    def start(self) -> None:
        """Start the thread (again after a fork: threads do not survive it)."""
        self._cond = threading.Condition()
        self._job: _Job | None = None
        self._stopped = False
        self.thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self.thread.start()

    def submit(self, job: _Job) -> None:
        with self._cond:
            self._job = job
            self._cond.notify()

    def stop(self) -> None:
        """Let the thread end once it is idle (after the job it runs, if any)."""
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while self._job is None and not self._stopped:
                        self._cond.wait()
                    if self._job is None:
                        return
                    job, self._job = self._job, None
                try:
                    job.ok = bool(job.context.run(_run_job, job))
                except Exception as exc:
                    logger.debug("llm-telemetry: exporter raised", exc_info=True)
                    job.ok = False
                    job.failure = from_exception(exc) or job.failure
                self._on_done(job)
        finally:
            _quiet_threads.discard(threading.get_ident())  # thread ids are reused


def _run_job(job: _Job) -> bool:
    """Run the export with instrumentation off (the exporter's own HTTP/gRPC calls must not become spans),
    noting what the exporter's log lines say about a failure."""
    with suppress_instrumentation(), watching(job.note):
        return job.export()


class ExportGuard:
    """Circuit breaker and deadlines around one exporter; signal-agnostic (the wrappers below adapt it).

    ``endpoint`` only names the backend in log lines. ``stop_retries`` asks the wrapped exporter to make
    no further retries (called when shutdown begins).
    """

    def __init__(
        self,
        signal: Signal,
        endpoint: str,
        timeout_s: float,
        retry_backoff_s: float,
        stop_retries: Callable[[], None] | None = None,
    ) -> None:
        self.signal: Signal = signal
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.retry_backoff_s = retry_backoff_s
        self._stop_retries = stop_retries
        self._lock = threading.Lock()
        self._busy = False
        self._open_until = 0.0
        self._deadline = float("inf")
        self._in_outage = False
        self._outage_dropped = 0
        self._counts = DropCounts()
        self._last_failure: ExportFailure | None = None
        self.refused_for_good = False
        self.closed = False
        """`close` ran: the wrapper's shutdown is done (a second one, e.g. from two processors, does nothing)."""
        """The last export failed because the backend refused the data itself (see `ExportFailure.permanent`)."""
        self._runner = _Runner(f"llm-telemetry-export-{signal}", self._job_done)
        if hasattr(os, "register_at_fork"):
            weak_reset = weakref.WeakMethod(self._after_fork)

            def _after_in_child() -> None:
                if (reset := weak_reset()) is not None:
                    reset()

            os.register_at_fork(after_in_child=_after_in_child)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._busy = False
        self._runner.start()

    @property
    def counts(self) -> DropCounts:
        return self._counts

    @property
    def unreachable(self) -> bool:
        """True when the last export attempt failed (the backend is believed down)."""
        return self._in_outage

    @property
    def last_failure(self) -> ExportFailure | None:
        """Why the most recent failed export failed, when known (kept after a recovery: it explains the drops)."""
        return self._last_failure

    def begin_shutdown(self, deadline: float) -> None:
        """From now on every export must finish by ``deadline`` (``time.monotonic()``), without retries."""
        self._deadline = min(self._deadline, deadline)
        if self._runner.thread.ident is not None:
            _quiet_threads.add(self._runner.thread.ident)
        if self._stop_retries is not None:
            try:
                self._stop_retries()
            except Exception:
                logger.debug("llm-telemetry: could not stop exporter retries", exc_info=True)

    def close(self) -> None:
        """No more exports: later ones are skipped, and the worker thread ends."""
        self.closed = True
        self.begin_shutdown(time.monotonic())
        self._runner.stop()

    def export(self, export: Callable[[], bool], items: int, timeout_s: float | None = None) -> bool:
        """Run ``export`` (True on success) within the limits, counting ``items`` as exported or dropped."""
        return self.export_outcome(export, items, timeout_s) == "exported"

    def export_outcome(self, export: Callable[[], bool], items: int, timeout_s: float | None = None) -> Outcome:
        """Like `export`, but says what happened, so a caller can keep a batch that was never delivered."""
        started = time.monotonic()
        with self._lock:
            if self._busy or started < self._open_until or started >= self._deadline:
                self._count(skipped_items=items, skipped_batches=1)
                if self._in_outage:
                    self._outage_dropped += items
                return "skipped"
            self._busy = True
        job = _Job(export, items)
        self._runner.submit(job)
        limit = started + (self.timeout_s if timeout_s is None else min(timeout_s, self.timeout_s))
        while True:
            remaining = min(limit, self._deadline) - time.monotonic()
            if remaining <= 0 or job.done.wait(min(remaining, _POLL_S)):
                break
        failure: ExportFailure | None = None
        with self._lock:
            finished = job.done.is_set()
            if not finished:
                job.abandoned = True  # the runner finishes it later; _job_done corrects the counts if it succeeds
            ok = job.ok and finished
            if ok:
                self._count(exported_items=items)
                recovered, self._in_outage = self._in_outage, False
                dropped_in_outage, self._outage_dropped = self._outage_dropped, 0
            else:
                self._count(failed_items=items, failed_batches=1)
                self._open_until = time.monotonic() + self.retry_backoff_s
                first_failure, self._in_outage = not self._in_outage, True
                self._outage_dropped += items
                failure = job.failure if finished else ExportFailure("timeout", f"no answer within {time.monotonic() - started:.2f} s")
                self._last_failure = failure or self._last_failure
            self.refused_for_good = failure is not None and failure.permanent
        if ok and recovered:
            logger.info("llm-telemetry: %s export to %s works again (%d items dropped meanwhile)", self.signal, self.endpoint,
                        dropped_in_outage)
        elif not ok and first_failure:
            log = logger.info if self._deadline != float("inf") else logger.warning  # at shutdown the summary says it
            why, advice = "", ""
            if failure is not None and failure.kind == "rejected":
                why, advice = f": the backend is reachable but rejected them ({failure.detail})", f". {failure.advice(self.signal)}"
            elif failure is not None and failure.kind == "timeout":
                why = f" ({failure.detail})"
            log(
                "llm-telemetry: %s export to %s failed%s; skipping exports for %.1f s (their data is counted as dropped)%s",
                self.signal, self.endpoint, why, self.retry_backoff_s, advice,
            )
        return "exported" if ok else ("failed" if finished else "abandoned")

    def retain(self, items: int, outcome: Outcome) -> None:
        """``items`` just counted as dropped (failed or skipped) are kept by the caller for a retry instead."""
        with self._lock:
            if outcome == "skipped":
                self._count(skipped_items=-items)
            else:
                self._count(failed_items=-items)
            self._outage_dropped = max(0, self._outage_dropped - items)

    def drop_retained(self, items: int) -> None:
        """Kept items the caller finally gives up on (its retry buffer overflowed, or shutdown came)."""
        with self._lock:
            self._count(failed_items=items)

    def _job_done(self, job: _Job) -> None:
        with self._lock:
            self._busy = False
            job.done.set()
            if job.abandoned and job.ok:  # it arrived after all: the backend is alive
                self._count(exported_items=job.items, failed_items=-job.items, failed_batches=-1)
                self._open_until = 0.0
                self._in_outage = False

    def _count(self, **delta: int) -> None:
        self._counts = self._counts + DropCounts(**delta)


def stop_otlp_retries(exporter: object) -> None:
    """Ask a stock OTLP exporter to stop retrying (each attempt fails at once after this).

    Best effort: it sets the exporters' private "shutdown in progress" events, whose only effect is to
    cut the backoff sleep between retries. If a future version renames them, the deadline in
    `ExportGuard` still bounds the time; only a refused connection stops being instant.
    """
    for holder in (exporter, getattr(exporter, "_client", None)):
        for name in ("_shutdown_in_progress", "_shutdown_event", "_shutdown_is_occuring"):
            event = getattr(holder, name, None)
            if isinstance(event, threading.Event):
                event.set()
