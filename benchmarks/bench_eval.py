"""Golden-dataset evaluation and feedback: cost and accuracy, each against a baseline measured in the same run.

1. Offline faithfulness on generated invoice answers (fixed seed): how often the source's word-overlap
   heuristic and our claim check call a *wrong* answer (transposed date, changed amount) faithful, and a
   *right* one (paraphrased, reformatted date) unfaithful; and the CPU per answer of each.
2. ``evaluate()`` per case (spans, events, metrics; null exporter) vs calling target + checks directly.
3. ``remember_call`` and ``feedback`` per call (in-memory log exporter, metrics registered).

    .venv/bin/python benchmarks/bench_eval.py [--rounds 7] [--answers 400]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable

from _common import NullSpanExporter, median, row
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from llm_telemetry.config import load_settings
from llm_telemetry.processors.quality.checks import Sample, build_check
from llm_telemetry.processors.quality.datasets import dataset_from_records
from llm_telemetry.processors.quality.evaluate import evaluate
from llm_telemetry.processors.quality.faithfulness import check_faithfulness
from llm_telemetry.processors.quality.feedback import FeedbackTracker
from llm_telemetry.record import GenAICall

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
FILLER = (
    "The supplier confirmed delivery of all items listed on the purchase order. Payment should be made by bank transfer "
    "to the account given on the first page. Late payments incur a fee as described in the terms and conditions. "
)


def word_overlap(answer: str, context: str) -> float:
    context_words = set(context.lower().split())
    words = answer.lower().split()
    return sum(1 for w in words if w in context_words) / max(len(words), 1)


def make_cases(n: int, seed: int = 7) -> list[tuple[str, str, bool]]:
    """(answer, context, faithful) — half faithful (reformatted), half wrong (transposed date or changed amount)."""
    rng = random.Random(seed)
    cases = []
    for i in range(n):
        day, month, year = rng.randint(1, 12), rng.randint(1, 12), rng.randint(2020, 2026)
        while day == month:
            month = rng.randint(1, 12)
        amount = rng.randint(100, 9999) + rng.choice([0, 0.5, 0.25])
        context = (
            f"Invoice INV-{1000 + i} was issued by Acme Ltd on {day:02d}/{month:02d}/{year}. The total amount is "
            f"${amount:,.2f}, payable within 30 days. Dates in this document are DD/MM/YYYY. " + FILLER * 6
        )
        kind = i % 4
        head = f"Invoice INV-{1000 + i} was issued by Acme Ltd on"
        if kind == 0:
            answer = f"{head} {year}-{month:02d}-{day:02d}. The total amount is ${amount:,.2f}."
        elif kind == 1:
            answer = f"Acme Ltd issued invoice INV-{1000 + i} on {day} {MONTHS[month - 1]} {year}, for ${amount:,.2f}."
        elif kind == 2:  # the story: day and month swapped
            answer = f"{head} {year}-{day:02d}-{month:02d}. The total amount is ${amount:,.2f}."
        else:
            answer = f"{head} {year}-{month:02d}-{day:02d}. The total amount is ${amount + 10:,.2f}."
        cases.append((answer, context, kind < 2))
    return cases


def accuracy(cases: list[tuple[str, str, bool]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    judges: dict[str, Callable[[str, str], bool]] = {
        "word overlap >= 0.5 (source)": lambda ans, ctx: word_overlap(ans, ctx) >= 0.5,
        "word overlap >= 0.8": lambda ans, ctx: word_overlap(ans, ctx) >= 0.8,
        "claim check (ours, threshold 0.75)": lambda ans, ctx: check_faithfulness(ans, ctx).passed(0.75),
    }
    for name, faithful in judges.items():
        wrong = [faithful(ans, ctx) for ans, ctx, ok in cases if not ok]
        right = [faithful(ans, ctx) for ans, ctx, ok in cases if ok]
        out[name] = {"wrong_called_faithful": sum(wrong) / len(wrong), "right_called_unfaithful": 1 - sum(right) / len(right)}
    return out


def per_item_us(fn: Callable[[], None], n: int) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--answers", type=int, default=400)
    args = parser.parse_args()
    cases = make_cases(args.answers)
    answer_chars = sum(len(a) for a, _, _ in cases) / len(cases)
    context_chars = sum(len(c) for _, c, _ in cases) / len(cases)

    acc = accuracy(cases)
    print(f"offline faithfulness on {len(cases)} generated answers (~{answer_chars:.0f} chars, context ~{context_chars:.0f} chars):")
    print(f"  {'method':40} {'wrong answers called faithful':>30} {'right answers called unfaithful':>32}")
    for name, values in acc.items():
        print(f"  {name:40} {values['wrong_called_faithful']:30.1%} {values['right_called_unfaithful']:32.1%}")

    timings: dict[str, list[float]] = {"overlap": [], "ours": [], "direct": [], "evaluate": [], "remember": [], "feedback": []}
    records = [{"id": f"c{i}", "input": ctx, "expected": ans, "context": ctx, "checks": ["exact", "faithfulness"]}
               for i, (ans, ctx, _) in enumerate(cases[:100])]
    dataset = dataset_from_records(records, name="bench")
    answers = {ctx: ans for ans, ctx, _ in cases[:100]}
    settings = load_settings({})
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(NullSpanExporter()))
    mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    lp = LoggerProvider()
    tracker = FeedbackTracker(meter_provider=mp, logger_provider=lp, settings=settings)
    calls = [GenAICall("chat", "openai", request_model="m", response_id=f"chatcmpl-{i}", feature="bench", trace_id=i + 1, span_id=i + 1)
             for i in range(1000)]
    checks = [build_check(spec, where="bench") for spec in ("exact", "faithfulness")]

    def direct() -> None:
        for case in dataset.cases:
            out = answers[case.input]  # type: ignore[index]
            for check in checks:
                check.run(Sample(case, out, case.context_text))

    for _ in range(args.rounds):
        timings["overlap"].append(per_item_us(lambda: [word_overlap(a, c) for a, c, _ in cases], len(cases)))
        timings["ours"].append(per_item_us(lambda: [check_faithfulness(a, c) for a, c, _ in cases], len(cases)))
        timings["direct"].append(per_item_us(direct, len(dataset)))
        timings["evaluate"].append(per_item_us(
            lambda: evaluate(lambda q: answers[q], dataset, quiet=True, tracer_provider=tp, meter_provider=mp, settings=settings),
            len(dataset),
        ))
        timings["remember"].append(per_item_us(lambda: [tracker.remember_call(c) for c in calls], len(calls)))
        timings["feedback"].append(per_item_us(
            lambda: [tracker.feedback("thumbs_down", response_id=c.response_id, category="wrong_date") for c in calls], len(calls),
        ))
    med = {k: median(v) for k, v in timings.items()}
    print(f"\nmedian of {args.rounds} rounds (µs per item; ratio vs the baseline above it):")
    print(row("word overlap per answer (baseline)", med["overlap"]))
    print(row("claim-check faithfulness per answer", med["ours"], med["overlap"]))
    print(row("target + 2 checks per case, direct (baseline)", med["direct"]))
    print(row("evaluate() per case (2 spans, 2 events, metrics)", med["evaluate"], med["direct"]))
    print(row("remember_call per call", med["remember"]))
    print(row("feedback per call (log record + counters)", med["feedback"]))
    print("BENCH " + json.dumps({"accuracy": acc, "median_us": {k: round(v, 2) for k, v in med.items()}}))
    tp.shutdown()
    mp.shutdown()
    lp.shutdown()


if __name__ == "__main__":
    main()
