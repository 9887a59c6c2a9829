"""The source story, replayable: invoice-date extraction through the real OpenAI SDK and the fake provider.

Used by ``llm-telemetry demo`` and by the tests that check the quality layer catches the story.

`run_story` sends ``good`` calls answered correctly (``iso_dates``), then the provider's silent update:
a new system fingerprint and response model, and ambiguous dates (day and month both ≤ 12) come back
transposed (``iso_dates_transposed``). Prompts are seeded, so every run sends the same invoices.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llm_telemetry.attribution import attribute
from llm_telemetry.fake_provider import Behaviour

if TYPE_CHECKING:
    import openai

SYSTEM = "Extract the invoice date as ISO 8601 (YYYY-MM-DD)."
FEATURE = "invoice-dates"
MODEL = "gpt-4o-mini"


@dataclass
class StoryRun:
    affected: list[int] = field(default_factory=list)
    """Indexes (in call order) of the calls whose answer the update got wrong."""
    first_update_call: int = 0
    response_ids: list[str] = field(default_factory=list)


def invoice_prompt(rng: random.Random, number: int) -> tuple[str, bool]:
    """A prompt, and whether its date is ambiguous (the update transposes it)."""
    day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.choice((2024, 2025))
    ambiguous = day <= 12 and day != month
    return f"Invoice INV-{number:05d} from ACME GmbH, issued {day:02d}/{month:02d}/{year}, net 30 days.", ambiguous


def run_story(client: openai.OpenAI, good: int, updated: int, *, seed: int = 7,
              after_each: Callable[[int], None] | None = None) -> StoryRun:
    """``good`` correct answers, then ``updated`` answers after the silent update; returns what was affected."""
    rng = random.Random(seed)
    run = StoryRun(first_update_call=good)
    before = Behaviour(responder="iso_dates", system_fingerprint="fp_44709d6fcb", input_tokens=58, output_tokens=6).header()
    after = Behaviour(responder="iso_dates_transposed", system_fingerprint="fp_f1c8e2a7b9", model="gpt-4o-mini-2026-11-04",
                      input_tokens=58, output_tokens=6).header()
    with attribute(user_id="user-17", feature=FEATURE):
        for index in range(good + updated):
            prompt, ambiguous = invoice_prompt(rng, index)
            header = before if index < good else after
            if index >= good and ambiguous:
                run.affected.append(index)
            response = client.chat.completions.create(
                model=MODEL, messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
                temperature=0, extra_headers=header,
            )
            run.response_ids.append(response.id)
            if after_each is not None:
                after_each(index)
    return run
