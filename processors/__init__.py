"""Span processors that enrich GenAI spans before export: cost, budgets, safety (and drift next).

`build_pipeline` is the one factory: it returns an `EnrichingSpanProcessor` that runs the configured
enrichers (entry-point group ``llm_telemetry_enrichers``) over every GenAI span and hands an enriched
copy to the next processor (typically a `BatchSpanProcessor` with an OTLP exporter).
"""

from llm_telemetry.processors.base import BackgroundWorker, Enricher, EnricherContext, Enrichment, EnrichmentEvent
from llm_telemetry.processors.pipeline import EnrichingSpanProcessor, build_enrichers, build_pipeline

__all__ = [
    "BackgroundWorker",
    "Enricher",
    "EnricherContext",
    "EnrichingSpanProcessor",
    "Enrichment",
    "EnrichmentEvent",
    "build_enrichers",
    "build_pipeline",
]
