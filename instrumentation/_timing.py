"""Summary statistics of the gaps between streamed chunks (time between tokens, TBT)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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
