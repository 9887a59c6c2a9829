"""Instructions added per call and per streamed chunk, counted by valgrind's callgrind: immune to CPU sharing.

The timing benchmarks report CPU time, which a busy or shared machine inflates and blurs. Instruction
counts do not depend on the load, so this is the secondary, noise-free measure of the same paths as
``bench_instrumentation.py`` / ``bench_peers.py`` (uninstrumented vs llm-telemetry, batch → null exporter;
for Anthropic also the SDK's native tracing alone and folded into ours).

Each measurement is a whole child process under ``valgrind --tool=callgrind`` (the fake provider runs
outside valgrind). Start-up and warm-up are the same in every child, so differences between children
isolate the work: per call = (Ir with ``base + extra_calls`` calls - Ir of the base child) / extra_calls;
per chunk = (Ir with ``extra_chunks`` more chunks per stream - base) / (streams * extra_chunks).
It is slow (valgrind runs Python ~50x slower): minutes, not seconds.

    python benchmarks/callgrind_instrumentation.py [--sdk openai|anthropic] [--extra-calls 100] [--streams 5] [--extra-chunks 200]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from _common import provider_process, summary_line

MESSAGES = [{"role": "user", "content": "Extract the invoice date from: issued 03/04/2025."}]
BASE_CALLS = 10
BASE_CHUNKS = 10
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


MODES = {
    "openai": ("bare", "official", "openllmetry", "openllmetry_no_content", "ours"),
    "anthropic": ("bare", "native", "ours", "ours_native"),
}
"""OpenAI peers run only where installed (see ``bench_peers.py``). Anthropic: ``bare`` has the SDK's
native tracing off, ``native`` on alone, ``ours_native`` both (folded into one span)."""
PEER_MODULES = {
    "official": "opentelemetry.instrumentation.genai.openai",
    "openllmetry": "opentelemetry.instrumentation.openai",
    "openllmetry_no_content": "opentelemetry.instrumentation.openai",
}


def available_modes(sdk: str) -> list[str]:
    """The modes of ``sdk`` whose instrumentation is installed here (peers are skipped with a note)."""
    modes = []
    for mode in MODES[sdk]:
        module = PEER_MODULES.get(mode)
        if module is not None:
            try:
                found = importlib.util.find_spec(module) is not None
            except ImportError:  # a parent package is missing
                found = False
            if not found:
                print(f"  skipped: {mode} ({module} is not installed)")
                continue
        modes.append(mode)
    return modes


def child(sdk: str, mode: str, base_url: str, calls: int, streams: int, chunks: int) -> None:
    """What runs under valgrind: warm up, then ``calls`` calls and ``streams`` streams of ``chunks`` chunks."""
    from _common import NullSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from llm_telemetry.fake_provider import Behaviour

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(NullSpanExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    call: Callable[[], None]
    stream: Callable[[dict[str, str]], None]
    if sdk == "openai":
        import openai

        instrumentor: Any = None
        if mode == "ours":
            from llm_telemetry.instrumentation.openai import OpenAIInstrumentor

            instrumentor = OpenAIInstrumentor()
        elif mode == "official":
            from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor as OfficialInstrumentor

            instrumentor = OfficialInstrumentor()
        elif mode.startswith("openllmetry"):
            from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetryInstrumentor

            if mode == "openllmetry_no_content":
                os.environ["TRACELOOP_TRACE_CONTENT"] = "false"
            instrumentor = OpenLLMetryInstrumentor()
        if instrumentor is not None:
            instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        client = openai.OpenAI(api_key="bench", base_url=base_url + "/v1", max_retries=0)

        def call() -> None:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

        def stream(h: dict[str, str]) -> None:
            for _chunk in client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}, extra_headers=h,
            ):
                pass
    else:
        import anthropic

        if mode in ("ours", "ours_native"):
            from llm_telemetry.instrumentation.anthropic import AnthropicInstrumentor

            AnthropicInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        native = {"tracer_provider": tracer_provider} if mode in ("native", "ours_native") else False
        aclient = anthropic.Anthropic(api_key="bench", base_url=base_url, max_retries=0, open_telemetry=native)

        def call() -> None:
            aclient.messages.create(model="claude-haiku-4-5", max_tokens=256, messages=MESSAGES)

        def stream(h: dict[str, str]) -> None:
            for _event in aclient.messages.create(
                model="claude-haiku-4-5", max_tokens=1024, messages=MESSAGES, stream=True, extra_headers=h,
            ):
                pass

    for _ in range(3):  # warm up: connection, lazy imports, first-call caches
        call()
        stream(Behaviour(chunks=["tok "] * BASE_CHUNKS).header())
    for _ in range(calls):
        call()
    headers = Behaviour(chunks=["tok "] * chunks).header()
    for _ in range(streams):
        stream(headers)
    tracer_provider.shutdown()


def measure(sdk: str, mode: str, base_url: str, calls: int, streams: int, chunks: int, out_dir: str) -> int:
    out = os.path.join(out_dir, f"callgrind.{sdk}.{mode}.{calls}.{chunks}.out")
    cmd = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
        sys.executable, os.path.abspath(__file__), "--sdk", sdk, "--child", mode, "--base-url", base_url,
        "--calls", str(calls), "--streams", str(streams), "--chunks", str(chunks),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    found = _COLLECTED.search(proc.stderr)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run {sdk} {mode} calls={calls} chunks={chunks} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extra-calls", type=int, default=100)
    parser.add_argument("--streams", type=int, default=5)
    parser.add_argument("--extra-chunks", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2, help="valgrind children at a time")
    parser.add_argument("--sdk", choices=tuple(MODES), default="openai")
    parser.add_argument("--child", choices=sorted({m for modes in MODES.values() for m in modes}), help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--chunks", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.sdk, args.child, args.base_url, args.calls, args.streams, args.chunks)
        return
    if shutil.which("valgrind") is None:
        print("skipped: valgrind is not installed (apt-get install valgrind)")
        return

    modes = available_modes(args.sdk)
    runs = {
        (mode, kind): (BASE_CALLS + (args.extra_calls if kind == "calls" else 0),
                       BASE_CHUNKS + (args.extra_chunks if kind == "chunks" else 0))
        for mode in modes for kind in ("base", "calls", "chunks")
    }
    with (
        provider_process() as base_url,
        tempfile.TemporaryDirectory(prefix="llm-telemetry-callgrind-") as out_dir,
        ThreadPoolExecutor(args.jobs) as pool,
    ):
        futures = {key: pool.submit(measure, args.sdk, key[0], base_url, calls, args.streams, chunks, out_dir)
                   for key, (calls, chunks) in runs.items()}
        counts = {key: future.result() for key, future in futures.items()}

    summary: dict[str, float] = {}
    print(f"instructions (callgrind Ir), {args.sdk}; per call over {args.extra_calls} calls, "
          f"per chunk over {args.streams} streams x {args.extra_chunks} chunks")
    for mode in modes:
        per_call = (counts[(mode, "calls")] - counts[(mode, "base")]) / args.extra_calls
        per_chunk = (counts[(mode, "chunks")] - counts[(mode, "base")]) / (args.streams * args.extra_chunks)
        summary[f"call_{mode}_instr"], summary[f"chunk_{mode}_instr"] = round(per_call), round(per_chunk)
    for what in ("call", "chunk"):
        bare = summary[f"{what}_bare_instr"]
        for mode in modes:
            value = summary[f"{what}_{mode}_instr"]
            added = "" if mode == "bare" else f"   added {value - bare:>10,.0f} ({value / bare:.3f}x)"
            print(f"  per {what:5} {mode:24} {value:>12,.0f}{added}")
            if mode != "bare":
                summary[f"{what}_{mode}_ratio"] = round(value / bare, 4)
    print(summary_line(f"callgrind_instrumentation_{args.sdk}", summary))


if __name__ == "__main__":
    main()
