"""Model-version watch and output statistics: per-call cost, detection delay and false alarms.

1. **Cost per call** (thread CPU, interleaved rounds, median), against a baseline measured in the same
   rounds: a bare dict update per call (``counts[key] = counts.get(key, 0) + 1``). Records are
   `GenAICall`s with ~400-character English outputs (and 2 kB ones for the measure step), after the
   warm-up, so every detector is watching. Modes: ``ModelWatch.observe``; ``OutputStats.measure``
   (refusal phrases, JSON, language); ``OutputStats.observe`` on precomputed `CallStats` (the six
   detectors); ``observe_call`` (both); and with the py3langid detector when it is installed.
2. **Detection** per statistic, end to end through `OutputStats.observe_call` (default settings:
   warm-up 500 calls, 10,000 expected calls between false alarms per statistic): ``--replicates``
   streams of warm-up + 1,000 stationary checks + the injected change. Reported: false alarms in the
   1,000 stationary checks (mean per replicate, and the expectation 1,000/ert), detection delay in
   affected calls (median, 90th percentile, misses) and the error of the estimated change point.

    python benchmarks/bench_quality_stats.py [--rounds 9] [--calls 2000] [--replicates 30]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(__file__))

from _common import interleaved, load_average, median, paired, reference_us, summary_line

from llm_telemetry.processors.quality.model_watch import ModelWatch
from llm_telemetry.processors.quality.output_measure import OutputMeasurer
from llm_telemetry.processors.quality.output_stats import OutputStats
from llm_telemetry.record import GenAICall

T0 = 1_750_000_000_000_000_000
EN = "the invoice is dated and the payment is due within thirty days of that date for this order we have".split(" ")  # noqa: SIM905
FR = "la facture est datée du trois avril et le paiement est dû dans les trente jours pour cette commande".split(" ")  # noqa: SIM905
REFUSAL = "I'm sorry, but I can't help with that request."


def prose(rng: random.Random, words: list[str], low: int, high: int) -> str:
    return " ".join(rng.choice(words) for _ in range(rng.randint(low, high))) + "."


def record(i: int, text: str, finish: str = "stop", rng: random.Random | None = None) -> GenAICall:
    rid = "chatcmpl-" + "".join((rng or random).choice("ABCDEFGHabcdefgh0123456789") for _ in range(29))
    return GenAICall(
        operation="chat", provider="openai", request_model="gpt-4o", response_model="gpt-4o-2024-08-06", response_id=rid,
        system_fingerprint="fp_a", finish_reasons=(finish,), output_tokens=len(text.split()), output_text=text,
        feature="extract", trace_id=i + 1, span_id=i + 1, end_time_ns=T0 + i * 1_000_000,
    )


# --- 1. cost ----------------------------------------------------------------------------------------


def measure_cost(rounds: int, n: int) -> dict[str, dict[str, list[float]]]:
    rng = random.Random(1)
    calls = [record(i, prose(rng, EN, 60, 80), rng=rng) for i in range(n)]
    long_calls = [record(i, prose(rng, EN, 350, 400), rng=rng) for i in range(n)]
    watch = ModelWatch()
    stats = OutputStats()
    for i in range(600):  # past every warm-up: the detectors are watching
        warm = record(10_000 + i, prose(rng, EN, 60, 80), rng=rng)
        watch.observe(warm)
        stats.observe_call(warm)
    precomputed = [stats.measure(c) for c in calls]
    key = ("extract", "gpt-4o")
    counts: dict[tuple[str, str], int] = {}

    def baseline() -> None:
        for _ in calls:
            counts[key] = counts.get(key, 0) + 1

    def model_watch() -> None:
        for c in calls:
            watch.observe(c)

    def measure() -> None:
        for c in calls:
            stats.measure(c)

    def measure_2kb() -> None:
        for c in long_calls:
            stats.measure(c)

    def observe() -> None:
        for c, s in zip(calls, precomputed, strict=True):
            stats.observe(key, s, c.end_time_ns or 0, c.trace_id)  # type: ignore[arg-type]

    def observe_call() -> None:
        for c in calls:
            stats.observe_call(c)

    def watch_and_stats() -> None:
        for c in calls:
            watch.observe(c)
            stats.observe_call(c)

    modes: dict[str, Callable[[], None]] = {
        "baseline (dict update)": baseline,
        "ModelWatch.observe": model_watch,
        "OutputStats.measure (~400 chars)": measure,
        "OutputStats.measure (~2 kB)": measure_2kb,
        "OutputStats.observe (6 detectors)": observe,
        "OutputStats.observe_call": observe_call,
        "watch + observe_call": watch_and_stats,
    }
    try:
        langid = OutputMeasurer.create(language_detector="py3langid")
        langid.measure(calls[0])  # loads the model outside the timed rounds

        def measure_langid() -> None:
            for c in calls:
                langid.measure(c)

        modes["OutputStats.measure, py3langid (~400 chars)"] = measure_langid
    except ImportError:
        pass

    def run(mode: str) -> dict[str, float]:
        start = time.thread_time()
        modes[mode]()
        return {"us": (time.thread_time() - start) / n * 1e6}

    return interleaved(list(modes), rounds, run)


# --- 2. detection -----------------------------------------------------------------------------------

Maker = Callable[[random.Random, int, bool], GenAICall]


def _normal(rng: random.Random, i: int) -> GenAICall:
    if rng.random() < 0.01:
        return record(i, REFUSAL, rng=rng)
    return record(i, prose(rng, EN, 40, 80), "length" if rng.random() < 0.002 else "stop", rng=rng)


def _json_normal(rng: random.Random, i: int) -> GenAICall:
    body = json.dumps({"date": f"2025-04-{rng.randint(1, 28):02d}", "total": rng.randint(1, 999)})
    return record(i, body[:-3] if rng.random() < 0.01 else body, rng=rng)


SCENARIOS: dict[str, tuple[str, Maker]] = {
    # statistic: (change, maker(rng, i, changed))
    "output_chars": ("length halves", lambda r, i, ch: record(i, prose(r, EN, 20, 40), rng=r) if ch else _normal(r, i)),
    "output_tokens": ("length halves", lambda r, i, ch: record(i, prose(r, EN, 20, 40), rng=r) if ch else _normal(r, i)),
    "refusal": ("refusals 1 % -> 15 %", lambda r, i, ch: record(i, REFUSAL, rng=r) if ch and r.random() < 0.15 else _normal(r, i)),
    "finish_length": (
        "'length' 0.2 % -> 30 %",
        lambda r, i, ch: record(i, prose(r, EN, 40, 80), "length", rng=r) if ch and r.random() < 0.3 else _normal(r, i),
    ),
    "json_invalid": (
        "invalid JSON 1 % -> 20 %",
        lambda r, i, ch: record(i, '{"date": "2025-04', rng=r) if ch and r.random() < 0.2 else _json_normal(r, i),
    ),
    "language_other": ("English -> French", lambda r, i, ch: record(i, prose(r, FR, 40, 80), rng=r) if ch else _normal(r, i)),
}


def detection(replicates: int, stationary: int = 1000, after: int = 400) -> list[dict[str, object]]:
    rows = []
    for statistic, (change, maker) in SCENARIOS.items():
        false_alarms, delays, errors, misses = [], [], [], 0
        for rep in range(replicates):
            rng = random.Random(1000 * rep + len(statistic))
            stats = OutputStats()
            warmup = stats.warmup_calls * (2 if statistic == "json_invalid" else 1)  # JSON: inferred, then warmed
            start = warmup + stationary
            fa, caught = 0, None
            for i in range(start + after):
                for d in stats.observe_call(maker(rng, i, i >= start)):
                    if d.statistic != statistic or d.kind != "alert":
                        continue
                    if i < start:
                        fa += i >= warmup
                    elif caught is None:
                        caught = d
            false_alarms.append(fa)
            if caught is None:
                misses += 1
            else:
                delays.append(caught.detected_trace_id - 1 - start + 1)
                errors.append(caught.change_trace_id - 1 - start)
        delays.sort()
        rows.append({
            "statistic": statistic, "change": change,
            "false_alarms": sum(false_alarms), "checks": stationary * replicates,
            "false_alarms_per_1000": statistics.mean(false_alarms), "expected_per_1000": stationary / stats.ert_calls,
            "delay_median": median(delays) if delays else None,
            "delay_p90": delays[int(0.9 * (len(delays) - 1))] if delays else None,
            "change_point_error_median": median(errors) if errors else None, "misses": misses, "replicates": replicates,
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--replicates", type=int, default=30)
    args = parser.parse_args()
    print(f"load average {load_average()}; reference sum(range(1000)) = {reference_us():.1f} µs")

    cost = measure_cost(args.rounds, args.calls)
    base = cost["baseline (dict update)"]["us"]
    print(f"\nCost per call (thread CPU, median of {args.rounds} interleaved rounds of {args.calls} calls)")
    print(f"  {'mode':48} {'µs/call':>9} {'x baseline':>11} {'+µs':>8}")
    summary: dict[str, object] = {}
    for mode, values in cost.items():
        ratio, diff = paired(values["us"], base)
        print(f"  {mode:48} {median(values['us']):9.2f} {ratio:10.1f}x {diff:8.2f}")
        summary[mode] = round(median(values["us"]), 3)

    print(f"\nDetection (OutputStats defaults; {args.replicates} replicates; 1,000 stationary checks each, then the change)")
    header = (
        f"  {'statistic':15} {'change':26} {'FA':>4} {'checks':>7} {'FA/1000':>8} {'expected':>9} {'delay p50':>10} {'p90':>5} "
        f"{'cp err':>7} {'missed':>7}"
    )
    print(header)
    rows = detection(args.replicates)
    for r in rows:
        print(
            f"  {r['statistic']:15} {r['change']:26} {r['false_alarms']:4} {r['checks']:7} {r['false_alarms_per_1000']:8.3f} "
            f"{r['expected_per_1000']:9.3f} "
            f"{r['delay_median']!s:>10} {r['delay_p90']!s:>5} {r['change_point_error_median']!s:>7} "
            f"{r['misses']:>3}/{r['replicates']}"
        )
    print("  delay: affected calls up to and including the alerting one; cp err: estimated minus true change point (calls);")
    print("  missed: no alert in the 400 changed calls (e.g. a false alarm just before the change still open)")
    print(summary_line("quality_stats", {"cost_us": summary, "detection": rows}))


if __name__ == "__main__":
    main()
