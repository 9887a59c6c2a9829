"""What measures every GenAI call before export: cost, budgets, safety and quality.

`EnricherChain` runs the configured enrichers (entry-point group ``llm_telemetry_enrichers``) over one
call record; our instrumentation hands it every call before the span ends (sampled or not), and
`EnrichingSpanProcessor` runs the same chain over GenAI spans of other instrumentations and hands an
enriched copy to the next processor (typically a `BatchSpanProcessor` with an OTLP exporter).
"""

from llm_telemetry.processors.base import Enricher, EnricherContext, Enrichment, EnrichmentEvent
from llm_telemetry.processors.chain import EnricherChain, build_chain, build_enrichers
from llm_telemetry.processors.lanes import BackgroundWorker, Lanes
from llm_telemetry.processors.pipeline import EnrichingSpanProcessor, build_pipeline

__all__ = [
    "BackgroundWorker",
    "Enricher",
    "EnricherChain",
    "EnricherContext",
    "EnrichingSpanProcessor",
    "Enrichment",
    "EnrichmentEvent",
    "Lanes",
    "build_chain",
    "build_enrichers",
    "build_pipeline",
]
