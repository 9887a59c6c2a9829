"""The quality enricher: every quality signal taken from one call record, inline or on the quality lane.

Inline (a few µs): the prompt fingerprint for loop detection (and, as they land, validators, the
model-version watch and output statistics). Batched work (embedding drift) goes to its own background
lane. Alerts go through one `AlertBook` (log record + metric + span event + log line).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a
from llm_telemetry.processors.base import EnricherContext, Enrichment
from llm_telemetry.processors.quality.alerts import AlertBook
from llm_telemetry.record import GenAICall

_FINGERPRINT_PERSON = b"llm-telemetry"


def prompt_fingerprint(call: GenAICall) -> str | None:
    """A 64-bit hash of the prompt (system + messages), or None without one.

    Not a secret-keeping device: equal prompts give equal fingerprints (that is the point: loop detection),
    so a guessed short prompt can be confirmed. It never carries the prompt itself.
    """
    text = call.prompt_text
    if not text:
        return None
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8, person=_FINGERPRINT_PERSON).hexdigest()


class QualityEnricher:
    """Adds quality attributes and events to each GenAI call and feeds the quality metrics and alerts."""

    name = "quality"

    def __init__(self, alerts: AlertBook | None = None) -> None:
        self.alerts = alerts if alerts is not None else AlertBook()

    @classmethod
    def from_context(cls, context: EnricherContext) -> QualityEnricher:
        return cls(AlertBook(context.meter))

    def enrich(self, call: GenAICall, attributes: Mapping[str, AttributeValue], enrichments: Enrichment) -> Enrichment | None:
        out: dict[str, AttributeValue] = {}
        fingerprint = prompt_fingerprint(call)
        if fingerprint is not None:
            out[a.PROMPT_FINGERPRINT] = fingerprint
        return Enrichment(out) if out else None
