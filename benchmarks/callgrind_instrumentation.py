"""Instructions added per call and per streamed chunk, counted by valgrind's callgrind: immune to CPU sharing.

The timing benchmarks report CPU time, which a busy or shared machine inflates and blurs. Instruction
counts do not depend on the load, so this is the secondary, noise-free measure of the same paths as
``bench_instrumentation.py`` (OpenAI chat, uninstrumented vs llm-telemetry with batch → null exporter).

Each measurement is a whole child process under ``valgrind --tool=callgrind`` (the fake provider runs
outside valgrind). Start-up and warm-up are the same in every child, so differences between children
isolate the work: per call = (Ir with ``base + extra_calls`` calls - Ir of the base child) / extra_calls;
per chunk = (Ir with ``extra_chunks`` more chunks per stream - base) / (streams * extra_chunks).
It is slow (valgrind runs Python ~50x slower): minutes, not seconds.

    python benchmarks/callgrind_instrumentation.py [--extra-calls 100] [--streams 5] [--extra-chunks 200] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(__file__))

from _common import provider_process, summary_line

MESSAGES = [{"role": "user", "content": "Extract the invoice date from: issued 03/04/2025."}]
BASE_CALLS = 10
BASE_CHUNKS = 10
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def child(mode: str, base_url: str, calls: int, streams: int, chunks: int) -> None:
    """What runs under valgrind: warm up, then ``calls`` calls and ``streams`` streams of ``chunks`` chunks."""
    import openai
    from _common import NullSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from llm_telemetry.fake_provider import Behaviour

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(NullSpanExporter()))
    if mode == "ours":
        from llm_telemetry.instrumentation.openai import OpenAIInstrumentor

        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    client = openai.OpenAI(api_key="bench", base_url=base_url + "/v1", max_retries=0)
    headers = Behaviour(chunks=["tok "] * chunks).header()

    def stream(h: dict[str, str]) -> None:
        for _chunk in client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}, extra_headers=h,
        ):
            pass

    for _ in range(3):  # warm up: connection, lazy imports, first-call caches
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        stream(Behaviour(chunks=["tok "] * BASE_CHUNKS).header())
    for _ in range(calls):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    for _ in range(streams):
        stream(headers)
    tracer_provider.shutdown()


def measure(mode: str, base_url: str, calls: int, streams: int, chunks: int, out_dir: str) -> int:
    out = os.path.join(out_dir, f"callgrind.{mode}.{calls}.{chunks}.out")
    cmd = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
        sys.executable, os.path.abspath(__file__), "--child", mode, "--base-url", base_url,
        "--calls", str(calls), "--streams", str(streams), "--chunks", str(chunks),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    found = _COLLECTED.search(proc.stderr)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run {mode} calls={calls} chunks={chunks} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extra-calls", type=int, default=100)
    parser.add_argument("--streams", type=int, default=5)
    parser.add_argument("--extra-chunks", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2, help="valgrind children at a time")
    parser.add_argument("--child", choices=("bare", "ours"), help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--chunks", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.base_url, args.calls, args.streams, args.chunks)
        return
    if shutil.which("valgrind") is None:
        print("skipped: valgrind is not installed (apt-get install valgrind)")
        return

    runs = {
        (mode, kind): (BASE_CALLS + (args.extra_calls if kind == "calls" else 0),
                       BASE_CHUNKS + (args.extra_chunks if kind == "chunks" else 0))
        for mode in ("bare", "ours") for kind in ("base", "calls", "chunks")
    }
    with (
        provider_process() as base_url,
        tempfile.TemporaryDirectory(prefix="llm-telemetry-callgrind-") as out_dir,
        ThreadPoolExecutor(args.jobs) as pool,
    ):
        futures = {key: pool.submit(measure, key[0], base_url, calls, args.streams, chunks, out_dir)
                   for key, (calls, chunks) in runs.items()}
        counts = {key: future.result() for key, future in futures.items()}

    summary: dict[str, float] = {}
    print(f"instructions (callgrind Ir), OpenAI chat; per call over {args.extra_calls} calls, "
          f"per chunk over {args.streams} streams x {args.extra_chunks} chunks")
    for mode in ("bare", "ours"):
        per_call = (counts[(mode, "calls")] - counts[(mode, "base")]) / args.extra_calls
        per_chunk = (counts[(mode, "chunks")] - counts[(mode, "base")]) / (args.streams * args.extra_chunks)
        summary[f"call_{mode}_instr"], summary[f"chunk_{mode}_instr"] = round(per_call), round(per_chunk)
    for what in ("call", "chunk"):
        bare, ours = summary[f"{what}_bare_instr"], summary[f"{what}_ours_instr"]
        print(f"  per {what:5}  uninstrumented {bare:>12,.0f}   llm-telemetry {ours:>12,.0f}   "
              f"added {ours - bare:>10,.0f} ({ours / bare:.3f}x)")
        summary[f"{what}_ratio"] = round(ours / bare, 4)
    print(summary_line("callgrind_instrumentation", summary))


if __name__ == "__main__":
    main()
