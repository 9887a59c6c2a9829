"""Summary statistics of the gaps between streamed chunks (time between tokens, TBT), and token estimates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class GapStats:
    mean: float
    p50: float
    p95: float
    p99: float
    max: float


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method) of already-sorted values."""
    n = len(sorted_values)
    if n == 1:
        return sorted_values[0]
    position = (n - 1) * q
    low = int(position)
    high = min(low + 1, n - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def gap_stats(gaps: Sequence[float]) -> GapStats | None:
    """Mean, p50, p95, p99 and max of ``gaps``; ``None`` when there are none (0 or 1 chunk)."""
    if not gaps:
        return None
    ordered = sorted(gaps)
    return GapStats(
        mean=sum(ordered) / len(ordered),
        p50=percentile(ordered, 0.50),
        p95=percentile(ordered, 0.95),
        p99=percentile(ordered, 0.99),
        max=ordered[-1],
    )


def estimate_tokens(text: str, content_chunks: int) -> int:
    """Output tokens of a stream that reported no usage.

    Providers stream roughly one token per content chunk; where chunks are coarser than that, ~4
    characters per token (the usual English average) is the better bound. The larger of the two is used.
    """
    by_chars = (len(text) + 3) // 4
    return max(content_chunks, by_chars)


PER_MESSAGE_TOKENS = 4
"""Tokens each message costs beyond its text (role and chat formatting; OpenAI documents 3-4)."""


def estimate_input_tokens(system: str | None, messages: Sequence[dict[str, Any]] | None) -> int | None:
    """Input tokens of a request whose stream reported no usage; ``None`` if the request carried no text.

    A documented approximation, not a tokenizer: ``ceil(characters / 4)`` over the system instructions
    and every text part of every message (~4 characters per token is the usual English average; code and
    non-Latin scripts run denser, so those prompts are underestimated), plus `PER_MESSAGE_TOKENS` per
    message. Images, audio and tool definitions are not counted.

    Why not ``tiktoken`` where it is installed: its first use of an encoding downloads the BPE file
    (network, on the application's thread, at the end of a stream) unless it is already cached, and
    loading one costs ~0.5 s of CPU; and no tokenizer is exact for another vendor's model anyway. The
    estimate is flagged (``llm_telemetry.usage.input_tokens_estimated``) so it is never mistaken for a
    count; the exact count needs ``stream_options.include_usage`` (see ``openai.stream_include_usage``).
    """
    chars = len(system) if system else 0
    count = 1 if system else 0
    for message in messages or ():
        count += 1
        for part in message.get("parts", ()):
            text = part.get("content") if part.get("type") == "text" else part.get("response")
            if isinstance(text, str):
                chars += len(text)
    if not count:
        return None
    return (chars + 3) // 4 + PER_MESSAGE_TOKENS * count
