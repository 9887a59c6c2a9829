"""The small interfaces every enricher and the pipeline share.

An *enricher* looks at one finished GenAI call and returns extra span attributes and events; it never
mutates the span (``ReadableSpan`` is immutable in ``on_end``; the pipeline builds the enriched copy).
Anything slow (an LLM judge, embeddings) must not run in ``enrich``: submit it to the
`BackgroundWorker`, which runs it off the application thread and counts what a full queue drops.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from opentelemetry.metrics import Meter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import TracerProvider
from opentelemetry.util.types import AttributeValue

from llm_telemetry.config import Settings
from llm_telemetry.record import GenAICall

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class EnrichmentEvent:
    """A span event to add to the enriched span."""

    name: str
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    timestamp: int | None = None
    """Nanoseconds since the epoch; ``None`` means the span's end time."""


@dataclass(slots=True)
class Enrichment:
    """What one enricher adds to one span."""

    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    events: list[EnrichmentEvent] = field(default_factory=list)


@runtime_checkable
class Enricher(Protocol):
    """One step of the enrichment chain. ``enrich`` runs inline on the thread that ended the span.

    It must be fast (target: a few µs) and must not raise; the pipeline logs and counts any exception
    anyway. ``enrichments`` holds what earlier enrichers in the chain returned for this span (e.g. the
    budget enricher reads the cost enricher's ``llm_telemetry.cost.total_usd``).
    """

    name: str

    def enrich(self, call: GenAICall, span: ReadableSpan, enrichments: Enrichment) -> Enrichment | None: ...


@dataclass(slots=True)
class EnricherContext:
    """What the pipeline gives each enricher factory: settings, a meter, the worker, a tracer provider."""

    settings: Settings
    meter: Meter
    worker: BackgroundWorker
    tracer_provider: TracerProvider | None = None


class EnricherFactory(Protocol):
    """How an entry point (group ``llm_telemetry_enrichers``) builds an enricher."""

    def from_context(self, context: EnricherContext) -> Enricher: ...


class BackgroundWorker:
    """A bounded queue drained by one daemon thread. ``submit`` never blocks; overflow is counted.

    Why one thread: slow enrichers (LLM judge, embeddings) are I/O bound and rare (sampled); a single
    thread keeps ordering simple and resource use predictable. ``dropped`` and ``failed`` are exported
    as the ``llm_telemetry.dropped`` metric by the pipeline.
    """

    def __init__(self, max_queue: int = 1000, name: str = "llm-telemetry-worker") -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=max_queue)
        self._name = name
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0
        self.failed = 0
        self.completed = 0

    def submit(self, task: Callable[[], None]) -> bool:
        """Queue ``task``; returns False (and counts a drop) when the queue is full or shut down."""
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
                    self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            task = self._queue.get()
            try:
                if task is None:
                    return
                task()
                self.completed += 1
            except Exception:
                self.failed += 1
                logger.warning("llm-telemetry background task failed", exc_info=True)
            finally:
                self._queue.task_done()

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until queued tasks have run; False if ``timeout_s`` passed first."""
        if self._thread is None:
            return True
        done = threading.Event()
        try:
            # A blocking put: a full queue is a reason to wait here, not a dropped task.
            self._queue.put(done.set, timeout=timeout_s)
        except queue.Full:
            return False
        return done.wait(timeout_s)

    def shutdown(self, timeout_s: float = 1.0) -> None:
        """Stop after the queued tasks, waiting at most ``timeout_s`` (the thread is a daemon)."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            pass
        self._thread.join(timeout_s)

    def __len__(self) -> int:
        return self._queue.qsize()


def merge(into: Enrichment, other: Enrichment | None) -> None:
    if other is None:
        return
    into.attributes.update(other.attributes)
    into.events.extend(other.events)


def names(enrichers: Sequence[Enricher]) -> list[str]:
    return [e.name for e in enrichers]
