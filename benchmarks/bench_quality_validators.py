"""Live output validators: CPU per call of each kind, and the pass-rate drop detector's delay and false alarms.

Target (from the issue): ≤ 10 µs for the date-consistency validator on a 500-character output; the
source story's regression alerted within 50 affected outputs.

1. **Per call** — CPU time on this thread (``time.thread_time``) per ``validate(prompt, output)``, median
   of interleaved rounds (each round starts with a different validator). Inputs are the source story's
   calls (tests/_quality_story.py): an invoice prompt of about 450 characters with two DD/MM/YYYY dates,
   and its JSON extraction of about 490 characters with two ISO dates, 200 different calls cycled. The
   baseline, measured in the same rounds: one bare ``re.search`` of an absent literal over the same
   output (the cheapest possible look at the text). Also: ``ValidatorSet.run`` with the default set
   (the built-in date validator) and with every kind, and ``PassRateDetector.observe``.
2. **Detection** — the story through the default set and detector (defaults: 200 baseline checks,
   ``min_drop`` 0.1, one false alarm per 1e6 checks): affected outputs (calls after the silent update,
   passing or not) until the alert, over many seeds; and false alarms over stationary streams of 1,000
   checks after the baseline (2 % base failure rate), at the default setting and at a tight one.

    python benchmarks/bench_quality_validators.py [--rounds 9] [--seeds 40]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "tests"))

from _common import interleaved, load_average, median, paired, reference_us, summary_line
from _quality_story import Call, invoice_call, story

from llm_telemetry.processors.quality.pass_rate import PassRateAlert, PassRateDetector
from llm_telemetry.processors.quality.validator_set import ValidatorSet
from llm_telemetry.processors.quality.validators import build_validator

T0 = 1_760_000_000_000_000_000


def looks_fine(prompt: str | None, output: str) -> bool:
    return "invoice_number" in output


SPECS: dict[str, dict[str, object]] = {
    "date_consistency (declared DD/MM/YYYY)": {"kind": "date_consistency", "input_format": "DD/MM/YYYY"},
    "date_consistency (format inferred/learned)": {"kind": "date_consistency"},
    "must_match": {"kind": "must_match", "pattern": r"INV-\d{5}"},
    "must_not_match": {"kind": "must_not_match", "pattern": r"(?i)\b(?:sorry|as an ai)\b"},
    "json": {"kind": "json"},
    "json_schema": {
        "kind": "json_schema",
        "schema": {
            "type": "object", "required": ["invoice_number", "issue_date", "total"],
            "properties": {"issue_date": {"type": "string", "format": "date"}, "total": {"type": "number"},
                           "items": {"type": "array", "items": {"type": "object", "required": ["quantity"]}}},
        },
    },
    "in_prompt (field)": {"kind": "in_prompt", "field": "supplier"},
    "in_prompt (pattern)": {"kind": "in_prompt", "pattern": r"INV-\d+"},
    "numbers_in_prompt (field)": {"kind": "numbers_in_prompt", "field": "items[*].unit_price"},
    "numbers_in_prompt (whole output)": {"kind": "numbers_in_prompt", "ignore_below": 10},
    "json_sum": {"kind": "json_sum", "total": "vat", "items": "vat"},
    "length": {"kind": "length", "min_chars": 20, "max_words": 400},
    "callable": {"kind": "callable", "function": f"{__name__}:looks_fine"},
}


def per_call(rounds: int) -> dict[str, float]:
    rng = random.Random(1)
    calls = [invoice_call(rng, transposed=False) for _ in range(200)]
    plain = [re.sub(r"\d{4}-\d\d-\d\d", "pending", c.output) for c in calls]  # no date at all
    sys.modules.setdefault(__name__, sys.modules["__main__"])
    validators = {label: build_validator(spec, where=label) for label, spec in SPECS.items()}
    default_set = ValidatorSet(include_runtime=False)
    default_set.add({"kind": "date_consistency"})
    every_set = ValidatorSet(include_runtime=False)
    for label, spec in SPECS.items():
        every_set.add({**spec, "name": label.replace(" ", "_")})
    detector = PassRateDetector(baseline_checks=50)
    absent = re.compile("zqzqzq")

    def cpu(fn: Callable[[Call], object], texts: list[Call]) -> float:
        start = time.thread_time()
        for _ in range(5):
            for call in texts:
                fn(call)
        return (time.thread_time() - start) / (5 * len(texts)) * 1e6

    no_date_calls = [Call(c.prompt, text, False, False) for c, text in zip(calls, plain, strict=True)]
    modes: dict[str, Callable[[], float]] = {"baseline: re.search over the output": lambda: cpu(lambda c: absent.search(c.output), calls)}
    for label, validator in validators.items():
        modes[label] = (lambda v: lambda: cpu(lambda c: v.validate(c.prompt, c.output), calls))(validator)
    modes["date_consistency (output without dates)"] = lambda: cpu(
        lambda c: validators["date_consistency (declared DD/MM/YYYY)"].validate(c.prompt, c.output), no_date_calls,
    )
    modes["ValidatorSet.run, default set (dates)"] = lambda: cpu(lambda c: default_set.run("invoice", "gpt-4o", c.prompt, c.output), calls)
    modes["ValidatorSet.run, every kind above"] = lambda: cpu(lambda c: every_set.run("invoice", "gpt-4o", c.prompt, c.output), calls)
    counter = iter(range(10**9))
    modes["PassRateDetector.observe"] = lambda: cpu(lambda c: detector.observe(("invoice", "dates"), True, T0 + next(counter), 1), calls)

    for fn in modes.values():  # warm up: imports, caches, the learned date format
        fn()
    results = interleaved(list(modes), rounds, lambda mode: {"us": modes[mode]()})
    baseline = results["baseline: re.search over the output"]["us"]
    print(f"\n1. CPU per call (median of {rounds} rounds; ratio = paired median vs the baseline)")
    sizes = statistics.fmean(len(c.output) for c in calls), statistics.fmean(len(c.prompt) for c in calls)
    print(f"   output {sizes[0]:.0f} chars, prompt {sizes[1]:.0f} chars")
    print(f"  {'validator':58} {'µs/call':>10}  {'ratio':>7}")
    out: dict[str, float] = {}
    for mode, data in results.items():
        value = median(data["us"])
        ratio, _ = paired(data["us"], baseline)
        out[mode] = value
        print(f"  {mode:58} {value:10.2f}  {ratio:6.1f}x")
    return out


def first_alert(calls: list[Call], good: int, detector: PassRateDetector) -> int | None:
    validators = ValidatorSet(include_runtime=False)
    validators.add({"kind": "date_consistency"})
    for index, call in enumerate(calls):
        for result in validators.run("invoice", "gpt-4o", call.prompt, call.output):
            if isinstance(detector.observe(("invoice", result.validator), result.passed, T0 + index, index + 1), PassRateAlert):
                return index - good + 1
    return None


def stationary_alarms(seed: int, arl: float, checks: int) -> int:
    rng = random.Random(seed)
    detector = PassRateDetector(false_alarm_checks=arl)
    alarms = 0
    for index in range(200 + checks):
        alarms += isinstance(detector.observe(("f", "v"), rng.random() >= 0.02, T0 + index, index), PassRateAlert)
    return alarms


def detection(seeds: int) -> dict[str, float]:
    print(f"\n2. Detection (date_consistency, format inferred/learned; {seeds} seeds)")
    delays: list[float] = []
    missed = 0
    for seed in range(seeds):
        calls = list(story(seed, good=400, affected=200))
        delay = first_alert(calls, 400, PassRateDetector())
        if delay is None or delay <= 0:
            missed += 1
        else:
            delays.append(delay)
    broken = sum(c.broken for c in story(0, good=0, affected=1000)) / 1000
    print(f"   story: 400 good calls (2 % base failures), then the silent update ({broken:.0%} of outputs wrong)")
    print(f"  {'affected outputs before the alert':58} median {median(delays):.0f}, p90 {sorted(delays)[int(0.9 * len(delays))]:.0f}, "
          f"max {max(delays):.0f}; missed or early: {missed}")
    print(f"  {'false alarms on stationary streams (2 % failures)':58} {'setting':>18}  {'per 1,000 checks':>17}  {'configured':>11}")
    out = {"delay_median": median(delays), "delay_max": max(delays), "missed": missed}
    for arl, runs in ((1_000_000.0, 200), (1_000.0, 200)):
        alarms = sum(stationary_alarms(seed, arl, 1000) for seed in range(runs))
        rate = alarms / runs
        print(f"  {'':58} {f'ARL {arl:,.0f}':>18}  {rate:17.3f}  {1000 / arl:11.3f}")
        out[f"false_alarms_per_1000_arl_{arl:g}"] = rate
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seeds", type=int, default=40)
    args = parser.parse_args()
    print(f"load average {load_average()}; reference sum(range(1000)) = {reference_us():.1f} µs (about 8 µs on a 2023 desktop core)")
    speeds = per_call(args.rounds)
    found = detection(args.seeds)
    date_us = speeds["date_consistency (format inferred/learned)"]
    print(
        f"\ndate validator {date_us:.1f} µs/call (target ≤ 10); "
        f"story alerted after {found['delay_max']:.0f} affected outputs at worst (target ≤ 50)"
    )
    print(summary_line("quality_validators", {"date_us": round(date_us, 2), **{k: round(v, 3) for k, v in found.items()},
                                              "per_call_us": {k: round(v, 2) for k, v in speeds.items()}}))


if __name__ == "__main__":
    main()
