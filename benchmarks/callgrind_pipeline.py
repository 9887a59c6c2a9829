"""Instructions per ``on_end`` of the enriching pipeline, counted by valgrind's callgrind: immune to CPU sharing.

The same replay as ``bench_pipeline.py`` (same spans, records, chains and inputs), but counted in
instructions instead of timed, so the figures do not move with the machine's load. One child process
runs under callgrind with collection switched on only inside ``math.fsum`` (C symbol ``math_fsum``,
which nothing on these paths calls) and a dump after each call: every replay is one ``fsum`` over a
generator that ends the spans, so each dump holds exactly one cell's instructions, on the application
thread only (``--separate-threads``: the background worker's review-queue writes are not inline work).
A replay into a no-op processor gives the loop's own cost, which is subtracted.

    python benchmarks/callgrind_pipeline.py [--spans 200]

Instructions are not time, but their ratios track CPU time closely for this kind of code; the
µs figures come from ``bench_pipeline.py``.
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(__file__))

import bench_pipeline as bp
from _common import summary_line
from opentelemetry.sdk.trace import ReadableSpan

_TOTALS = re.compile(r"^totals:\s*(\d+)", re.MULTILINE)
CALIBRATION = "calibration"


def cells() -> list[str]:
    return [CALIBRATION] + [f"{chain}|{key}" for chain in bp.CHAINS for key in bp.INPUTS]


def _ended(on_end: Callable[[ReadableSpan], None], span: ReadableSpan) -> float:
    on_end(span)
    return 0.0


def child(data_file: str, spans: int) -> None:
    """Under valgrind: build everything, warm up, then one ``fsum`` per cell in `cells` order."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    with open(data_file, "rb") as f:
        name, attrs, record = pickle.load(f)
    pools = bp.make_pools(spans, name, attrs, record)
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    with tempfile.TemporaryDirectory(prefix="llm-telemetry-callgrind-") as db_dir:
        chains = {key: bp.make_pipeline(chain, bp.NoopProcessor(), meter_provider, db_dir) for key, chain in bp.CHAINS.items()}
        for processor in chains.values():
            for key in bp.INPUTS:
                for _ in range(2):
                    bp.replay_sample(processor, pools[key])
        noop = bp.NoopProcessor().on_end
        for cell in cells():
            if cell == CALIBRATION:
                pool, on_end = pools["ours_clean"], noop
            else:
                chain, key = cell.split("|")
                pool, on_end = pools[key], chains[chain].on_end
                if key != "foreign":  # our calls: the chain measures the record before the span ends
                    measure = chains[chain].chain.measure
                    on_end = _measured_then(measure, dict(pool.spans[0].attributes or {}), iter(pool.records), on_end)
            math.fsum(_ended(on_end, span) for span in pool.spans)
        for processor in chains.values():
            processor.shutdown()


def _measured_then(measure, attrs, records, on_end):  # type: ignore[no-untyped-def]
    """One callable per span: measure the next record (as our instrumentation does), then ``on_end``."""

    def step(span):  # type: ignore[no-untyped-def]
        measure(next(records), attrs)
        on_end(span)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=200)
    parser.add_argument("--keep-dumps", metavar="DIR", help="copy the per-cell callgrind dumps here (for callgrind_annotate)")
    parser.add_argument("--child", metavar="DATA_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.spans)
        return
    if shutil.which("valgrind") is None:
        print("skipped: valgrind is not installed (apt-get install valgrind)")
        return

    with tempfile.TemporaryDirectory(prefix="llm-telemetry-callgrind-") as out_dir:
        data_file = os.path.join(out_dir, "call.pickle")
        with open(data_file, "wb") as f:
            pickle.dump(bp.captured_call(), f)
        out = os.path.join(out_dir, "cg.out")
        cmd = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--collect-atstart=no",
            "--toggle-collect=math_fsum", "--dump-after=math_fsum", "--separate-threads=yes",
            sys.executable, os.path.abspath(__file__), "--child", data_file, "--spans", str(args.spans),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"callgrind child failed ({proc.returncode}): {proc.stderr[-3000:]}")
        dumps = sorted(glob.glob(out + ".*-01"), key=lambda p: int(p.rsplit(".", 1)[1].split("-")[0]))
        totals = []
        for path in dumps:
            with open(path) as f:
                found = _TOTALS.search(f.read())
            totals.append(int(found.group(1)) if found else 0)
        if args.keep_dumps and len(dumps) == len(cells()):
            os.makedirs(args.keep_dumps, exist_ok=True)
            for cell, path in zip(cells(), dumps, strict=True):
                shutil.copy(path, os.path.join(args.keep_dumps, f"callgrind.{cell.replace('|', '.')}.out"))
    if len(totals) != len(cells()):
        raise RuntimeError(f"expected {len(cells())} dumps (one per fsum), got {len(totals)} ({totals}): something else called fsum")
    per_span = {cell: total / args.spans for cell, total in zip(cells(), totals, strict=True)}
    loop = per_span.pop(CALIBRATION)
    print(f"instructions per on_end (callgrind Ir, application thread, {args.spans} spans per cell, "
          f"loop overhead {loop:,.0f} subtracted)")
    summary: dict[str, dict[str, int]] = {"instr_per_span": {}, "added_instr": {}}
    for key in bp.INPUTS:
        print(f"{bp.INPUT_LABELS[key]}:")
        base = per_span[f"baseline|{key}"] - loop
        for chain, names in bp.CHAINS.items():
            value = per_span[f"{chain}|{key}"] - loop
            label = "pipeline, no enrichers (baseline)" if not names else f"[{', '.join(names)}]"
            added = "" if not names else f"  +{value - base:>9,.0f} added  {value / base:5.2f}x"
            print(f"  {label:38} {value:>9,.0f} instr/span{added}")
            summary["instr_per_span"][f"{chain}|{key}"] = round(value)
            if names:
                summary["added_instr"][f"{chain}|{key}"] = round(value - base)
    print(summary_line("callgrind_pipeline", summary))


if __name__ == "__main__":
    main()
