"""Embedding drift: embedder speed, drift-check cost, detection delay and false-alarm rate, on one core.

Targets (issue 6): default embedder ≥ 2,000 texts/s on one core (~500-char texts); a drift check with
calibration for reference 500 x window 500 x 256 dims ≤ 100 ms; detection delay in affected outputs and
the false-alarm rate over 1,000 stationary checks.

Baselines measured in the same run (ratios are ours / baseline):
- embedder: the same features hashed feature by feature in Python (``zlib.crc32`` per n-gram) — what a
  straightforward implementation costs;
- batch check: the textbook permutation test that gathers the two kernel blocks for every re-split;
- online update: recomputing the window's MMD² from scratch after each point (kernel of the window
  against the sub-reference and itself) instead of the incremental update.

CPU time is this thread's (``time.thread_time``); BLAS is pinned to one thread before numpy loads.

    python benchmarks/bench_quality_drift.py [--rounds 5] [--runs 20]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import itertools  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))

from _common import load_average, median, reference_us, summary_line  # noqa: E402

from llm_telemetry.processors.quality.drift import DriftConfig, DriftMonitor  # noqa: E402
from llm_telemetry.processors.quality.embedders import HashingEmbedder, normalize_rows  # noqa: E402
from llm_telemetry.processors.quality.mmd import median_bandwidth, permutation_test, rbf_kernel  # noqa: E402
from llm_telemetry.processors.quality.online_mmd import OnlineMMD  # noqa: E402

NAMES = ["Acme Ltd", "Globex", "Initech", "Umbrella Corp", "Stark Industries", "Wayne Enterprises"]
ITEMS = ["consulting", "hardware", "software licences", "travel", "training", "support"]
FILLER = ("The document lists line items for consulting, hardware and support. Payment terms are net 30 days. "
          "Please quote the invoice number on all correspondence. VAT is included at the standard rate. "
          "The supplier confirmed the delivery address and the bank details in the attached summary. ")


def prose(rnd: random.Random, *, swapped: bool = False) -> str:
    """~500 characters of extraction output with one ISO date (day and month transposed if ``swapped``)."""
    day, month = rnd.randint(1, 28), rnd.randint(1, 12)
    date = f"2025-{day:02d}-{month:02d}" if swapped else f"2025-{month:02d}-{day:02d}"
    head = f"Invoice from {rnd.choice(NAMES)} for {rnd.choice(ITEMS)} dated {date}, total {rnd.randint(100, 9999)} EUR. "
    return (head + (FILLER * 2)[rnd.randint(0, 60):])[:500]


def iso_json(rnd: random.Random, *, swapped: bool = False) -> str:
    day, month = rnd.randint(1, 28), rnd.randint(1, 12)
    first, second = (day, month) if swapped else (month, day)
    return f'{{"invoice_date": "2025-{first:02d}-{second:02d}", "currency": "EUR"}}'


def refusal(rnd: random.Random) -> str:
    return f"I'm sorry, but I can't help with extracting data from this document. Please send a clearer scan of page {rnd.randint(1, 9)}."


# --- baselines ---------------------------------------------------------------------------------------------

_WORD = re.compile(r"[0-9a-z\u00c0-\U0010ffff]+")


class NaiveHashingEmbedder:
    """The same kind of features, hashed one by one in Python: the straightforward implementation."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim))
        for row, text in enumerate(texts):
            t = " " + text.lower() + " "
            features = [t[i:i + n] for n in (3, 4, 5) for i in range(len(t) - n + 1)]
            words = _WORD.findall(t)
            features += words + [f"{u} {v}" for u, v in itertools.pairwise(words)]
            for f in features:
                h = zlib.crc32(f.encode())
                out[row, h % self.dim] += 1.0 if h & 0x80000000 else -1.0
        return normalize_rows(out)


def naive_permutation_test(x: np.ndarray, y: np.ndarray, n_permutations: int, seed: int = 0) -> float:
    """Permutation p-value with one kernel-block gather per re-split."""
    z = np.concatenate([x, y])
    k = rbf_kernel(z, z, median_bandwidth(z))
    n, m = len(x), len(y)

    def stat(ix: np.ndarray, iy: np.ndarray) -> float:
        kxx, kyy, kxy = k[np.ix_(ix, ix)], k[np.ix_(iy, iy)], k[np.ix_(ix, iy)]
        return ((kxx.sum() - n) / (n * (n - 1)) + (kyy.sum() - m) / (m * (m - 1)) - 2 * kxy.mean())

    rng = np.random.default_rng(seed)
    observed = stat(np.arange(n), np.arange(n, n + m))
    count = 0
    for _ in range(n_permutations):
        perm = rng.permutation(n + m)
        count += stat(perm[:n], perm[n:]) >= observed
    return (1 + count) / (1 + n_permutations)


def naive_update_score(det: OnlineMMD, window: np.ndarray) -> float:
    """The window's MMD² recomputed from scratch (what a non-incremental online detector does per point)."""
    x, s = det.reference_subset, det.sigma
    k_yy, k_xy = rbf_kernel(window, window, s), rbf_kernel(x, window, s)
    w = len(window)
    return (k_yy.sum() - w) / (w * (w - 1)) - 2 * k_xy.mean()


# --- measures ------------------------------------------------------------------------------------------------


def cpu(fn: Callable[[], object]) -> float:
    start = time.thread_time()
    fn()
    return time.thread_time() - start


def embedder_speed(rounds: int) -> dict[str, float]:
    rnd = random.Random(0)
    texts = [prose(rnd) for _ in range(2048)]
    hashing = HashingEmbedder()
    naive = NaiveHashingEmbedder()
    out: dict[str, list[float]] = {"hashing_b32": [], "hashing_b256": [], "naive": [], "wordllama": []}
    wordllama = None
    if importlib.util.find_spec("wordllama") is not None:
        from llm_telemetry.processors.quality.embedders import WordLlamaEmbedder

        wordllama = WordLlamaEmbedder()
    for _ in range(rounds):
        out["hashing_b32"].append(len(texts) / cpu(lambda: [hashing.embed(texts[i:i + 32]) for i in range(0, len(texts), 32)]))
        out["hashing_b256"].append(len(texts) / cpu(lambda: [hashing.embed(texts[i:i + 256]) for i in range(0, len(texts), 256)]))
        out["naive"].append(256 / cpu(lambda: naive.embed(texts[:256])))
        if wordllama is not None:  # its tokenizer may use more threads: this is its thread's CPU only
            t0 = time.perf_counter()
            wordllama.embed(texts)
            out["wordllama"].append(len(texts) / (time.perf_counter() - t0))
    return {k: median(v) for k, v in out.items() if v}


def batch_check_cost(rounds: int) -> dict[str, float]:
    emb = HashingEmbedder()
    rnd = random.Random(1)
    ref = emb.embed([prose(rnd) for _ in range(500)])
    win = emb.embed([prose(rnd) for _ in range(500)])
    ours = [cpu(lambda: permutation_test(ref, win, n_permutations=500)) for _ in range(rounds)]
    # 50 re-splits, scaled to 500: the gathers cost the same for each.
    naive = [cpu(lambda: naive_permutation_test(ref, win, n_permutations=50)) * 10 for _ in range(max(1, rounds // 2))]
    return {"ours_ms": median(ours) * 1e3, "naive_ms": median(naive) * 1e3}


def online_cost(rounds: int) -> dict[str, float]:
    rnd = random.Random(2)
    emb = HashingEmbedder()
    ref = emb.embed([prose(rnd) for _ in range(500)])
    stream = emb.embed([prose(rnd) for _ in range(500)])
    calib: list[float] = []
    for r in range(rounds):
        calib.append(cpu(lambda r=r: OnlineMMD(ref, ert=1000, window_size=50, seed=r)))
    det = OnlineMMD(ref, ert=1000, window_size=50, seed=0)
    inc = cpu(lambda: [det.update(p) for p in stream]) / len(stream)
    naive = cpu(lambda: [naive_update_score(det, stream[i:i + 50]) for i in range(0, 450, 3)]) / 150
    return {"calibration_ms": median(calib) * 1e3, "update_us": inc * 1e6, "naive_update_us": naive * 1e6}


def detection_delays(runs: int) -> dict[str, list[int | None]]:
    """Affected outputs up to and including the one whose window alerts (None: no alert within 300)."""
    scenarios: dict[str, tuple[Callable[[random.Random], str], Callable[[random.Random], str]]] = {
        "template change (refusals)": (iso_json, refusal),
        "transposed ISO dates, JSON output": (iso_json, lambda r: iso_json(r, swapped=True)),
        "transposed ISO dates in 500-char prose": (prose, lambda r: prose(r, swapped=True)),
    }
    emb = HashingEmbedder()
    out: dict[str, list[int | None]] = {}
    for name, (before, after) in scenarios.items():
        delays: list[int | None] = []
        for run in range(runs):
            rnd = random.Random(100 + run)
            monitor = DriftMonitor(emb, DriftConfig(seed=run))  # defaults: N=500, W=50, ERT=1000
            monitor.set_baseline(("f", "m"), [before(rnd) for _ in range(500)])
            delay = None
            for i in range(300):
                decisions = monitor.observe(("f", "m"), after(rnd), i + 1, i + 1)
                hit = next((d for d in decisions if d.alert), None)
                if hit is not None:
                    delay = hit.trace_id
                    break
            delays.append(delay)
        out[name] = delays
    return out


def stationary_pool() -> tuple[list[str], np.ndarray]:
    """20,000 outputs of one unchanged distribution and their embeddings: references and streams are drawn from it."""
    rnd = random.Random(7)
    texts = [prose(rnd) for _ in range(20_000)]
    return texts, HashingEmbedder().embed(texts)


def online_false_alarms(texts: list[str], runs: int, ert: float) -> list[int]:
    """Alert episodes per 1,000 stationary outputs through the DriftMonitor (one stream per reference; an
    episode ends after W outputs under the threshold, as in production), one count per seeded run."""
    rng = np.random.default_rng(int(ert))
    counts = []
    for run in range(runs):
        monitor = DriftMonitor(HashingEmbedder(), DriftConfig(ert=ert, seed=run))
        monitor.set_baseline(("f", "m"), [texts[i] for i in rng.choice(len(texts), 500)])
        decisions = [d for i in rng.choice(len(texts), 1000) for d in monitor.observe(("f", "m"), texts[i], 1, 1)]
        decisions += monitor.flush()
        counts.append(sum(d.alert is not None for d in decisions))
    return counts


def batch_false_alarms(pool: np.ndarray) -> float:
    """Rejection rate of the batch test at p ≤ 0.05 over 1,000 stationary checks (reference 100, window 50)."""
    rng = np.random.default_rng(8)
    return sum(
        permutation_test(pool[rng.choice(len(pool), 100)], pool[rng.choice(len(pool), 50)], n_permutations=200, seed=i).p_value <= 0.05
        for i in range(1000)
    ) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20, help="seeded runs per detection-delay scenario and false-alarm measure")
    args = parser.parse_args()
    print(f"load average {load_average()}; sum(range(1000)) = {reference_us():.1f} µs (≈ 8 µs on a 2023 desktop core)")

    speed = embedder_speed(args.rounds)
    batch = batch_check_cost(args.rounds)
    online = online_cost(args.rounds)
    print(f"\n  {'measure':58} {'ours':>10} {'target':>9} {'baseline':>10} {'ratio':>8}")

    def line(label: str, ours: float, target: str = "", baseline: float | None = None, digits: int = 0) -> None:
        ratio = f"{ours / baseline:7.3g}x" if baseline else ""
        base = f"{baseline:10.{digits}f}" if baseline else " " * 10
        print(f"  {label:58} {ours:10.{digits}f} {target:>9} {base} {ratio:>8}")

    line("hashing embedder, 500-char texts, batch 32 (texts/s)", speed["hashing_b32"], "≥ 2000", speed["naive"])
    line("hashing embedder, batch 256 (texts/s)", speed["hashing_b256"], "≥ 2000", speed["naive"])
    if "wordllama" in speed:
        line("wordllama embedder, batch 2048 (texts/s, wall clock)", speed["wordllama"])
    line("batch check 500 x 500 x 256, 500 permutations (ms)", batch["ours_ms"], "≤ 100", batch["naive_ms"], 1)
    line("online calibration N=500 W=50 ERT=1000, 10k sims (ms)", online["calibration_ms"], "", None, 1)
    line("online update per output, N=500 W=50 d=256 (µs)", online["update_us"], "", online["naive_update_us"], 1)

    delays = detection_delays(args.runs)
    print(f"\n  detection delay, defaults N=500 W=50 ERT=1000 ({args.runs} seeded runs; affected outputs until the alert)")
    summary: dict[str, object] = {**{f"embed_{k}": round(v) for k, v in speed.items()}, **{k: round(v, 2) for k, v in batch.items()},
                                  **{k: round(v, 2) for k, v in online.items()}}
    for name, values in delays.items():
        caught = sorted(v for v in values if v is not None)
        line = (f"median {np.median(caught):5.0f}  p90 {np.percentile(caught, 90):5.0f}  max {caught[-1]:4d}" if caught else "no alert")
        print(f"  {name:45} {line}   caught {len(caught)}/{len(values)} within 300")
        summary[f"delay_median::{name}"] = float(np.median(caught)) if caught else None
    texts, pool = stationary_pool()
    for ert in (200.0, 1000.0):
        counts = online_false_alarms(texts, args.runs, ert)
        per_1000 = float(np.mean(counts))
        print(f"  online alerts per 1,000 stationary outputs, ERT={ert:5.0f}: {per_1000:5.2f} (≤ {1000 / ert:.2f}: none inside an episode; "
              f"{args.runs} references, per run {counts})")
        summary[f"false_alarms_per_1000_ert{int(ert)}"] = per_1000
    batch_rate = batch_false_alarms(pool)
    print(f"  batch test at p ≤ 0.05 over 1,000 stationary checks: {batch_rate:.3f} rejected (expected 0.050)")
    summary["batch_false_alarm_rate"] = batch_rate
    print(summary_line("quality_drift", summary))


if __name__ == "__main__":
    main()
