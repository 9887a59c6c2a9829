"""What the output statistics read from one call: a small, content-free `CallStats`.

Measuring (reading the output text: refusal phrases, JSON parse, language) is split from observing
(the change detectors), so the text is read once, where it is available (in-process, from the side
channel), and the detectors get plain numbers and flags. A record rebuilt from span attributes
without content still gives token counts and finish reasons; the text statistics are then ``None`` and
not counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from llm_telemetry.config import QualitySettings
from llm_telemetry.processors.quality.language import LanguageDetector, make_detector
from llm_telemetry.processors.quality.refusals import RefusalMatcher, load_phrases
from llm_telemetry.record import GenAICall

LENGTH_FINISH_REASONS = frozenset({"length", "max_tokens", "max_output_tokens"})
"""Output cut at the token limit: OpenAI chat ``length``, Anthropic ``max_tokens``, Responses ``max_output_tokens``."""
REFUSAL_FINISH_REASONS = frozenset({"content_filter", "refusal"})
_TEXT_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})


@dataclass(frozen=True, slots=True)
class CallStats:
    """One call's contribution to the output statistics (``None``: not measurable for this call)."""

    output_chars: int | None = None
    output_tokens: int | None = None
    refusal: bool | None = None
    finish_length: bool | None = None
    json_like: bool | None = None
    """The output looks like JSON (starts with ``{`` or ``[``, or is a fenced ``json`` block)."""
    json_valid: bool | None = None
    """It parses (only measured when it looks like JSON)."""
    language: str | None = None


def _json_body(text: str) -> str | None:
    """The JSON the output seems to carry (fence stripped), or None if it does not look like JSON."""
    body = text.strip()
    if body.startswith("```"):
        first_newline = body.find("\n")
        if first_newline < 0 or body[3:first_newline].strip().lower() not in ("json", ""):
            return None
        body = body[first_newline + 1:]
        body = body[: body.rfind("```")] if body.rstrip().endswith("```") else body
        body = body.strip()
    return body if body[:1] in ("{", "[") else None


class OutputMeasurer:
    """Turns a finished call into `CallStats`. Stateless after construction; thread-safe."""

    __slots__ = ("language", "refusals", "sample_chars")

    def __init__(self, refusals: RefusalMatcher, language: LanguageDetector | None, sample_chars: int = 400) -> None:
        self.refusals, self.language, self.sample_chars = refusals, language, sample_chars

    @classmethod
    def from_settings(cls, settings: QualitySettings) -> OutputMeasurer:
        return cls.create(
            refusals_file=settings.stats_refusals_file,
            language_detector=settings.stats_language_detector,
            sample_chars=settings.stats_sample_chars,
        )

    @classmethod
    def create(cls, *, refusals_file: Path | None = None, language_detector: str = "stopwords", sample_chars: int = 400) -> OutputMeasurer:
        matcher = RefusalMatcher.from_pack(load_phrases(refusals_file), sample_chars)
        return cls(matcher, make_detector(language_detector, min(sample_chars, 240)), sample_chars)

    def measure(self, call: GenAICall) -> CallStats | None:
        """None for calls with no output to measure (errors, embeddings)."""
        if call.error_type is not None or call.operation not in _TEXT_OPERATIONS:
            return None
        reasons = call.finish_reasons
        finish_length = any(r in LENGTH_FINISH_REASONS for r in reasons) if reasons else None
        filtered = any(r in REFUSAL_FINISH_REASONS for r in reasons)
        tokens = call.output_tokens if call.output_tokens is not None and not call.output_tokens_estimated else None
        text = call.output_text
        if text is None:
            return CallStats(None, tokens, True if filtered else None, finish_length)
        refusal = filtered or self.refusals.matches(text)
        body = _json_body(text) if text else None
        json_valid: bool | None = None
        if body is not None:
            try:
                json.loads(body)
                json_valid = True
            except ValueError:
                json_valid = False
        language = self.language.detect(text) if self.language is not None and body is None and text else None
        return CallStats(len(text), tokens, refusal, finish_length, body is not None, json_valid, language)
