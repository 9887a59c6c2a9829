"""The small interfaces every enricher and the pipeline share.

An *enricher* looks at one finished GenAI call — the `GenAICall` record plus the span's attributes as a
plain mapping — and returns extra span attributes and events. It sees no SDK span object: the same
enricher runs in-process (our instrumentation hands it every call, sampled or not, before the span
ends), on spans of other instrumentations (rebuilt from attributes) and in the OTLP gateway (spans
decoded from protobuf). Anything slow (an LLM judge, embeddings) must not run in ``enrich``: submit it
to a background lane (`EnricherContext.lane`), which runs it off the application thread and counts
what a full queue drops.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from opentelemetry.metrics import Meter
from opentelemetry.trace import TracerProvider
from opentelemetry.util.types import AttributeValue

from llm_telemetry.config import Settings
from llm_telemetry.processors.lanes import BackgroundWorker, Lanes
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
    """One step of the enrichment chain. ``enrich`` runs inline on the thread that finished the call.

    It must be fast (target: a few µs) and must not raise; the chain logs and counts any exception
    anyway. ``attributes`` are the span's attributes (read-only); ``enrichments`` holds what earlier
    enrichers in the chain returned for this call (e.g. the budget enricher reads the cost enricher's
    ``llm_telemetry.cost.total_usd``). Identity and time come from the record (``call.trace_id``,
    ``call.end_time_ns``), never from the clock: a gateway may see calls late or replayed.
    """

    name: str

    def enrich(self, call: GenAICall, attributes: Mapping[str, AttributeValue], enrichments: Enrichment) -> Enrichment | None: ...


@dataclass
class EnricherContext:
    """What the chain gives each enricher factory: settings, a meter, background lanes, a tracer provider.

    ``worker`` is the default lane; ``lane(name)`` gives a named one (``judge``, ``review``, ``quality``
    …) so a slow consumer never starves another (each has its own bounded queue and drop count).
    """

    settings: Settings
    meter: Meter
    worker: BackgroundWorker
    tracer_provider: TracerProvider | None = None
    lanes: Lanes | None = None

    def lane(self, name: str) -> BackgroundWorker:
        return self.lanes.get(name) if self.lanes is not None else self.worker


class EnricherFactory(Protocol):
    """How an entry point (group ``llm_telemetry_enrichers``) builds an enricher."""

    def from_context(self, context: EnricherContext) -> Enricher: ...


def merge(into: Enrichment, other: Enrichment | None) -> None:
    if other is None:
        return
    into.attributes.update(other.attributes)
    into.events.extend(other.events)


def names(enrichers: Sequence[Enricher]) -> list[str]:
    return [e.name for e in enrichers]

