"""`guard`: the blocking check for apps that want to refuse unsafe outputs before serving them.

The instrumentation only observes; it never alters what the SDK returns. An app that wants to block
asks explicitly::

    verdict = llm_telemetry.guard(answer, prompt=question)
    if not verdict.allowed:
        answer = verdict.replacement

It uses the same compiled screen as the span enricher (built once from the settings, on first use),
so a pattern the telemetry flags is a pattern the guard sees. Only ``block`` patterns refuse; ``flag``
patterns are reported (``action="flag"``) but allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_telemetry.config import get_settings
from llm_telemetry.processors.safety.screen import screen_for


@dataclass(frozen=True, slots=True)
class Verdict:
    """The guard's answer for one output."""

    allowed: bool
    """False when a ``block`` pattern matched the output (or the prompt, when one is given)."""
    action: str
    """``block``, ``flag`` or ``none``."""
    categories: tuple[str, ...] = ()
    pattern_ids: tuple[str, ...] = ()
    replacement: str | None = None
    """What to serve instead (``safety.refusal_message``) when not allowed."""


def guard(output: str, prompt: str | None = None) -> Verdict:
    """Screen ``output`` (and ``prompt``, if given) with the configured patterns; linear time, no I/O.

    Raises `ConfigError` if the safety settings (pattern file, disabled patterns) are invalid, and
    ``TypeError`` if ``output`` is not a string.
    """
    if not isinstance(output, str):
        raise TypeError(f"llm_telemetry.guard(output) takes a str, got {type(output).__name__}")
    settings = get_settings().safety
    screen = screen_for(settings)
    result = screen.scan(output)
    if prompt:
        result = result.merge(screen.scan(prompt))
    allowed = result.action != "block"
    return Verdict(
        allowed=allowed, action=result.action, categories=result.categories, pattern_ids=result.pattern_ids,
        replacement=None if allowed else settings.refusal_message,
    )
