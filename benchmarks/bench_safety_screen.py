"""Safety screen speed by kind of text and size, and what the inline cap leaves on the app's thread.

Why: the screen is linear, but RE2's DFA is much slower per byte on digit-heavy text (card- or
IBAN-like digit groups keep many patterns alive) than on prose, and it runs on the thread that ends
the span. With ``safety.inline_screen_chars`` (64 Ki by default) only the head of a long output is
screened inline; the rest is screened in overlapping windows on a background lane.

For prose and digit-heavy text of 1 kB, 64 kB and 1 MB (bundled patterns, fixed seeds), each round
measures on this thread's CPU clock:

- **full**: ``Screen.scan`` of the whole text (what one call cost before the cap), µs/call and µs/byte;
- **inline**: ``plan_screen`` + ``Screen.scan`` of the inline part (what the app's thread pays now);
- **deferred**: ``Screen.scan_deferred`` of the rest (what the background lane pays).

Modes are interleaved round by round; ratios are medians of per-round pairs against **prose of the
same size** measured in the same round.

    python benchmarks/bench_safety_screen.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(__file__))

from _common import interleaved, load_average, median, paired, reference_us, summary_line

from llm_telemetry.config import SafetySettings
from llm_telemetry.processors.safety.screen import Screen, plan_screen, screen_for

SIZES = {"1kB": 1_000, "64kB": 64_000, "1MB": 1_000_000}
KINDS = ("prose", "digits")
INLINE_CHARS = SafetySettings().inline_screen_chars
WORDS = ("the", "invoice", "was", "paid", "within", "thirty", "days", "and", "our", "support", "team", "confirmed",
         "delivery", "of", "order", "to", "customer", "address", "on", "Monday", "please", "check", "status")


def prose(size: int, seed: int = 11) -> str:
    rng = random.Random(seed)
    parts: list[str] = []
    total = 0
    while total < size:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 16))).capitalize() + ". "
        parts.append(sentence)
        total += len(sentence)
    return "".join(parts)[:size]


def digits(size: int, seed: int = 11) -> str:
    """Card- and IBAN-like groups: 4-digit groups with spaces or dashes, some with a country prefix."""
    rng = random.Random(seed)
    parts: list[str] = []
    total = 0
    while total < size:
        groups = [f"{rng.randrange(10_000):04d}" for _ in range(rng.randint(3, 6))]
        sep = rng.choice((" ", "-", " "))
        head = f"DE{rng.randrange(100):02d} " if rng.random() < 0.2 else ""
        chunk = head + sep.join(groups) + rng.choice((" ", ", ", "; ", "\n"))
        parts.append(chunk)
        total += len(chunk)
    return "".join(parts)[:size]


def cpu_us(fn: Callable[[], object], repeat: int) -> float:
    """CPU µs per call of ``fn`` on this thread, over ``repeat`` calls."""
    start = time.thread_time_ns()
    for _ in range(repeat):
        fn()
    return (time.thread_time_ns() - start) / repeat / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    screen: Screen = screen_for(SafetySettings())
    texts = {(kind, size): (prose if kind == "prose" else digits)(n) for kind in KINDS for size, n in SIZES.items()}
    repeats = {"1kB": 400, "64kB": 10, "1MB": 1}
    print(f"llm-telemetry safety screen: {len(screen)} bundled patterns, inline cap {INLINE_CHARS} chars, "
          f"{args.rounds} rounds; reference sum(range(1000)) = {reference_us():.2f} µs; load {load_average()}")
    for (kind, size), text in texts.items():
        result = screen.scan(text)
        print(f"  {kind:6} {size:>5}: {len(text):>9,} chars, verdict {result.action} {list(result.categories)}")

    modes = [f"{kind}|{size}" for size in SIZES for kind in KINDS]

    def measure(mode: str) -> dict[str, float]:
        kind, size = mode.split("|")
        text = texts[(kind, size)]
        n = repeats[size]
        plan = plan_screen(text, INLINE_CHARS)
        return {
            "full_us": cpu_us(lambda: screen.scan(text), n),
            "inline_us": cpu_us(lambda: screen.scan(plan_screen(text, INLINE_CHARS).inline), n),
            "deferred_us": cpu_us(lambda: screen.scan_deferred(plan), n) if plan.windows else 0.0,
        }

    screen.scan(texts[("digits", "64kB")])  # warm the DFA caches before the first timed round
    results = interleaved(modes, args.rounds, measure)

    summary: dict[str, object] = {"inline_chars": INLINE_CHARS, "rounds": args.rounds, "cells": {}}
    print(f"\n{'text':16} {'full µs/call':>13} {'µs/byte':>9} {'vs prose':>8} {'inline µs/call':>15} {'vs prose':>8} {'deferred µs':>12}")
    for size, n_chars in SIZES.items():
        base = results[f"prose|{size}"]
        for kind in KINDS:
            cell = results[f"{kind}|{size}"]
            full, inline, deferred = median(cell["full_us"]), median(cell["inline_us"]), median(cell["deferred_us"])
            full_ratio, _ = paired(cell["full_us"], base["full_us"])
            inline_ratio, _ = paired(cell["inline_us"], base["inline_us"])
            per_byte = full / n_chars
            print(f"{kind + ' ' + size:16} {full:13.1f} {per_byte:9.4f} {full_ratio:7.1f}x "
                  f"{inline:15.1f} {inline_ratio:7.1f}x {deferred:12.1f}")
            summary["cells"][f"{kind}|{size}"] = {  # type: ignore[index]
                "full_us": round(full, 1), "us_per_byte": round(per_byte, 5), "full_vs_prose": round(full_ratio, 2),
                "inline_us": round(inline, 1), "inline_vs_prose": round(inline_ratio, 2), "deferred_us": round(deferred, 1),
            }
    worst_inline = max(median(results[m]["inline_us"]) for m in modes)
    print(f"\nworst inline time per call (any kind, any size): {worst_inline / 1000:.2f} ms "
          f"(bounded by the cap: the 64 kB and 1 MB texts screen the same ≤ {INLINE_CHARS} chars inline)")
    summary["worst_inline_ms"] = round(worst_inline / 1000, 3)
    summary["load_average_after"] = load_average()
    print(f"load average after: {summary['load_average_after']}")
    print(summary_line("safety_screen", summary))


if __name__ == "__main__":
    main()
