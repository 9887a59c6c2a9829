"""The OTLP gateway (`llm-telemetry collector`): throughput, memory during an upstream outage, enrichment cost per span.

Targets (issue 7): ≥ 10,000 spans/s received → enriched → forwarded over OTLP/gRPC in and out on one core,
and ≥ 0.5x a pass-through receiver measured in the same run; memory bounded while the upstream is down
for 60 s under load; the cost of enrichment on the export path next to the in-process ``on_end`` path.

1. **Throughput.** Two gateway processes, both pinned to CPU 0: ``enrich`` (the default chain: cost, budget,
   safety) and ``pass-through`` (the same gateway with ``--no-enrich``: it still parses every request,
   removes content and re-encodes). This process, pinned to CPU 1, is both the load (pre-encoded
   ``ExportTraceServiceRequest`` batches of 512 spans, as the SDK's batch processor sends, several calls
   in flight) and the upstream (a raw gRPC server counting the spans it receives). A round pushes N
   spans through one gateway and stops the clock when the upstream has them all. Reported: spans per
   wall-clock second, and spans per CPU-second of the gateway process (read from /proc; the fairer figure
   on a shared machine). Rounds alternate between the modes.
2. **Outage.** A fresh enriching gateway forwards to a port nobody listens on while the load runs for
   ``--outage-s`` seconds (60 by default); its RSS is sampled every 0.25 s. Then the upstream appears and
   the script measures how long the gateway takes to deliver everything it accepted (and checks it all
   arrived). Refused requests (queue full) are what the sender keeps.
3. **Per span, in process, one thread.** The gateway's request path (parse, enrich, strip, encode) with and
   without the chain, and ``EnrichingSpanProcessor.on_end`` (the in-process path for spans of other
   instrumentations) with and without the chain, on spans with the same attributes.

Spans look like our OpenAI instrumentation's chat spans with a 2 kB output in ``gen_ai.output.messages``
(as a sender with content capture on sends them; the gateway, capture off, removes it), 16 users.

    python benchmarks/bench_gateway.py [--rounds 5] [--batches 40] [--outage-s 60] [--genai-fraction 1.0] [--env KEY=VALUE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

import grpc
import requests
from _common import load_average, reference_us, summary_line
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from llm_telemetry.exporters.gateway.otlp import encode_value

TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
BATCH = 512
USERS = 16
_SENTENCE = ("The invoice was issued on 3 April 2025 and is payable within thirty days of receipt; the supplier "
             "confirmed the amounts, the tax rate and the delivery address in the attached summary. ")
OUTPUT = (_SENTENCE * 20)[:2048]
GENAI_SPAN: dict[str, Any] = {
    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.response.id": "chatcmpl-bench",
    "gen_ai.response.finish_reasons": ("stop",), "gen_ai.usage.input_tokens": 420, "gen_ai.usage.output_tokens": 380,
    "gen_ai.request.max_tokens": 512, "gen_ai.request.temperature": 0.2, "gen_ai.request.stream": False,
    "server.address": "api.openai.com", "server.port": 443, "llm_telemetry.feature": "summary",
    "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": OUTPUT}], "finish_reason": "stop"}]),
}
OTHER_SPAN: dict[str, Any] = {"http.request.method": "POST", "url.path": "/summaries", "http.response.status_code": 200,
                              "server.address": "app.internal", "server.port": 8080}
GATEWAY_ENV = {
    "LLM_TELEMETRY_PIPELINE_WORKER_QUEUE_SIZE": "100000",
    "LLM_TELEMETRY_BUDGET_DAILY_USD": "1000000",
    "LLM_TELEMETRY_BUDGET_USER_HOURLY_USD": "100000",
    "LLM_TELEMETRY_JUDGE_CALLABLE": "none",
}
EXTRA_ENV: dict[str, str] = {}
"""``--env KEY=VALUE`` settings for every gateway of the run (e.g. ``LLM_TELEMETRY_DRIFT_ENABLED=false``)."""


# --- load ------------------------------------------------------------------------------------------------

def make_batches(count: int, genai_fraction: float) -> list[bytes]:
    """``count`` serialized requests of 512 spans; unique ids; every 1/fraction-th span a GenAI span."""
    out = []
    every = max(1, round(1 / genai_fraction)) if genai_fraction > 0 else 0
    for b in range(count):
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        kv = resource_spans.resource.attributes.add()
        kv.key, kv.value.string_value = "service.name", "bench-app"
        scope = resource_spans.scope_spans.add()
        scope.scope.name = "llm_telemetry.instrumentation.openai"
        now = time.time_ns()
        for i in range(BATCH):
            span = scope.spans.add()
            span.trace_id = (b * BATCH + i + 1).to_bytes(16, "big")
            span.span_id = (i + 1).to_bytes(8, "big")
            span.start_time_unix_nano, span.end_time_unix_nano = now - 1_500_000_000, now
            genai = every and i % every == 0
            span.name = "chat gpt-4o-mini" if genai else "POST /summaries"
            attributes = {**GENAI_SPAN, "user.id": f"user-{i % USERS}"} if genai else OTHER_SPAN
            for key, value in attributes.items():
                pair: KeyValue = span.attributes.add()
                pair.key = key
                encode_value(pair.value, value)
        out.append(request.SerializeToString())
    return out


class Sink:
    """The upstream: a raw OTLP/gRPC trace service that counts spans."""

    def __init__(self, port: int = 0) -> None:
        self.spans = 0
        self._cond = threading.Condition()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                                   options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
        handler = grpc.unary_unary_rpc_method_handler(self._export)
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService", {"Export": handler}),
            grpc.method_handlers_generic_handler("opentelemetry.proto.collector.metrics.v1.MetricsService",
                                                 {"Export": grpc.unary_unary_rpc_method_handler(lambda r, c: b"")})))
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self._server.start()

    def _export(self, body: bytes, context: grpc.ServicerContext) -> bytes:
        request = ExportTraceServiceRequest.FromString(body)
        count = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        with self._cond:
            self.spans += count
            self._cond.notify_all()
        return b""

    def wait_for(self, total: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.spans < total:
                if not self._cond.wait(max(0.0, deadline - time.monotonic())) and time.monotonic() >= deadline:
                    return False
        return True

    def stop(self) -> None:
        self._server.stop(None)


def drive(address: str, batches: list[bytes], in_flight: int) -> int:
    """Send every batch (``in_flight`` calls at a time); returns how many the gateway accepted."""
    channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", -1)])
    call = channel.unary_unary(TRACE_METHOD)
    accepted = 0
    pending: list[grpc.Future] = []
    for batch in batches:
        if len(pending) >= in_flight:
            accepted += _settle(pending.pop(0))
        pending.append(call.future(batch, timeout=60))
    for future in pending:
        accepted += _settle(future)
    channel.close()
    return accepted


def _settle(future: grpc.Future) -> int:
    try:
        future.result()
        return 1
    except grpc.RpcError:
        return 0


# --- the gateway process -------------------------------------------------------------------------------------

class GatewayProcess:
    def __init__(self, upstream_port: int, *, enrich: bool, db_dir: str, cpu: int | None, extra: list[str] | None = None) -> None:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLM_TELEMETRY_"))}, **GATEWAY_ENV,
               **EXTRA_ENV, "LLM_TELEMETRY_REVIEW_DB_PATH": os.path.join(db_dir, f"review-{upstream_port}-{enrich}.db")}
        flags = ["--listen-grpc", "127.0.0.1:0", "--listen-http", "127.0.0.1:0", "--upstream", f"grpc://127.0.0.1:{upstream_port}",
                 "--metrics-interval", "3600", "--log-level", "ERROR", "--shutdown-timeout", "2", *(extra or [])]
        if not enrich:
            flags.append("--no-enrich")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llm_telemetry.cli", "collector", *flags], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=env, preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"gateway did not start: {line!r}")
        addresses = dict(part.split("=", 1) for part in line.split()[1:])
        self.grpc, self.http = addresses["grpc"], addresses["http"]

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def health(self) -> dict[str, Any]:
        return requests.get(f"http://{self.http}/health", timeout=10).json()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


# --- 1. throughput ---------------------------------------------------------------------------------------------

def throughput(args: argparse.Namespace, batches: list[bytes], db_dir: str) -> dict[str, dict[str, float]]:
    sink = Sink()
    gateways = {mode: GatewayProcess(sink.port, enrich=mode == "enrich", db_dir=db_dir, cpu=0) for mode in ("enrich", "pass-through")}
    results: dict[str, dict[str, list[float]]] = {mode: {"wall": [], "cpu": []} for mode in gateways}
    spans = len(batches) * BATCH
    try:
        drive(gateways["enrich"].grpc, batches[:4], args.in_flight)  # warm-up: imports, channels, pattern compilation
        drive(gateways["pass-through"].grpc, batches[:4], args.in_flight)
        sink.wait_for(8 * BATCH, 60)
        for r in range(args.rounds):
            order = list(gateways) if r % 2 == 0 else list(reversed(gateways))
            for mode in order:
                gateway = gateways[mode]
                target = sink.spans + spans
                cpu_before, wall_before = gateway.cpu_seconds(), time.perf_counter()
                accepted = drive(gateway.grpc, batches, args.in_flight)
                if accepted != len(batches) or not sink.wait_for(target, 300):
                    raise RuntimeError(f"{mode}: {accepted}/{len(batches)} accepted, {sink.spans - target + spans}/{spans} arrived")
                wall = time.perf_counter() - wall_before
                cpu = gateway.cpu_seconds() - cpu_before
                results[mode]["wall"].append(spans / wall)
                results[mode]["cpu"].append(spans / cpu)
                print(f"  round {r + 1} {mode:13} {spans / wall:9,.0f} spans/s wall  {spans / cpu:9,.0f} spans/CPU-s", flush=True)
    finally:
        for gateway in gateways.values():
            gateway.stop()
        sink.stop()
    summary = {mode: {k: statistics.median(v) for k, v in values.items()} for mode, values in results.items()}
    summary["ratio"] = {
        kind: statistics.median(e / p for e, p in zip(results["enrich"][kind], results["pass-through"][kind], strict=True))
        for kind in ("cpu", "wall")
    }
    return summary


# --- 2. outage -------------------------------------------------------------------------------------------------

def outage(args: argparse.Namespace, batches: list[bytes], db_dir: str) -> dict[str, float]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = GatewayProcess(port, enrich=True, db_dir=db_dir, cpu=0, extra=["--queue-max-bytes", args.queue_max])
    baseline = gateway.rss_mib()
    peak = baseline
    accepted = refused = 0
    stop = threading.Event()
    lock = threading.Lock()

    def load(worker: int) -> None:
        nonlocal accepted, refused
        channel = grpc.insecure_channel(gateway.grpc, options=[("grpc.max_send_message_length", -1)])
        call = channel.unary_unary(TRACE_METHOD)
        index = worker
        while not stop.is_set():
            try:
                call(batches[index % len(batches)], timeout=30)
                with lock:
                    accepted += 1
            except grpc.RpcError:
                with lock:
                    refused += 1
                time.sleep(0.05)  # a refused sender backs off (the SDK waits the 5 s RetryInfo; this is harsher)
            index += args.in_flight
        channel.close()

    threads = [threading.Thread(target=load, args=(w,), daemon=True) for w in range(args.in_flight)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    while time.monotonic() - started < args.outage_s:
        peak = max(peak, gateway.rss_mib())
        time.sleep(0.25)
    stop.set()
    for thread in threads:
        thread.join()
    health = gateway.health()
    peak = max(peak, gateway.rss_mib())
    sink = Sink(port)
    recovered = time.monotonic()
    arrived = sink.wait_for(accepted * BATCH, 600)
    drain = time.monotonic() - recovered
    delivered = sink.spans
    gateway.stop()
    sink.stop()
    if not arrived:
        print(f"  outage: only {delivered} of {accepted * BATCH} accepted spans arrived", flush=True)
    return {
        "outage_s": args.outage_s, "rss_before_mib": baseline, "rss_peak_mib": peak,
        "queue_bytes_at_end": health["queue"]["memory_bytes"], "queue_max_bytes": health["queue"]["memory_max_bytes"],
        "accepted_spans": accepted * BATCH, "refused_requests": refused, "delivered_spans": delivered, "drain_s": drain,
    }


# --- 3. per-span CPU, in process ---------------------------------------------------------------------------

def per_span(args: argparse.Namespace, batches: list[bytes], db_dir: str) -> dict[str, float]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

    from llm_telemetry.config import load_settings
    from llm_telemetry.exporters.gateway.enrich import OtlpEnricher
    from llm_telemetry.processors.chain import build_chain
    from llm_telemetry.processors.pipeline import EnrichingSpanProcessor

    settings = load_settings({**GATEWAY_ENV, **EXTRA_ENV, "LLM_TELEMETRY_REVIEW_DB_PATH": os.path.join(db_dir, "per-span.db")})
    chain = build_chain(settings, MeterProvider())
    enricher, plain = OtlpEnricher(chain, settings), OtlpEnricher(None, settings)

    class Keep(SpanProcessor):
        def __init__(self) -> None:
            self.spans: list[ReadableSpan] = []

        def on_end(self, span: ReadableSpan) -> None:
            self.spans.append(span)

    keep = Keep()
    provider = TracerProvider()
    provider.add_span_processor(keep)
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai.v1")
    for i in range(BATCH):
        tracer.start_span("chat gpt-4o-mini", attributes={**GENAI_SPAN, "user.id": f"user-{i % USERS}"}).end()
    noop = Keep()
    on_end_chain = EnrichingSpanProcessor(noop, settings=settings, chain=chain)
    on_end_plain = EnrichingSpanProcessor(noop, (), settings=settings)
    payload = batches[0]

    def gateway_path(target: OtlpEnricher) -> float:
        started = time.thread_time()
        request = ExportTraceServiceRequest.FromString(payload)
        target.process_traces(request)
        request.SerializeToString()
        return (time.thread_time() - started) / BATCH * 1e6

    def on_end_path(processor: EnrichingSpanProcessor) -> float:
        started = time.thread_time()
        for span in keep.spans:
            processor.on_end(span)
        noop.spans.clear()
        return (time.thread_time() - started) / BATCH * 1e6

    cells = {"gateway_enrich": lambda: gateway_path(enricher), "gateway_pass": lambda: gateway_path(plain),
             "on_end_enrich": lambda: on_end_path(on_end_chain), "on_end_pass": lambda: on_end_path(on_end_plain)}
    samples: dict[str, list[float]] = {name: [] for name in cells}
    for _ in range(args.rounds * 4):
        for name, cell in cells.items():
            samples[name].append(cell())
    out = {name: statistics.median(values) for name, values in samples.items()}
    out["gateway_added"] = out["gateway_enrich"] - out["gateway_pass"]
    out["on_end_added"] = out["on_end_enrich"] - out["on_end_pass"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40, help="batches of 512 spans per throughput round")
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--genai-fraction", type=float, default=1.0, help="share of GenAI spans (the rest: HTTP server spans)")
    parser.add_argument("--outage-s", type=float, default=60.0)
    parser.add_argument("--queue-max", default="128MiB", help="--queue-max-bytes of the outage gateway")
    parser.add_argument("--skip", action="append", default=[], choices=("throughput", "outage", "per-span"))
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra LLM_TELEMETRY_* setting for the gateways (repeatable), e.g. LLM_TELEMETRY_DRIFT_ENABLED=false")
    args = parser.parse_args()
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("LLM_TELEMETRY_"):
            sys.exit(f"--env {item!r}: expected LLM_TELEMETRY_<SECTION>_<KEY>=VALUE")
        EXTRA_ENV[key] = value
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs 2 CPUs: the gateway runs on CPU 0, load and upstream on CPU 1")
    os.sched_setaffinity(0, {1})
    print(f"load average before: {load_average()}; sum(range(1000)) = {reference_us():.1f} µs (desktop ≈ 8)", flush=True)
    batches = make_batches(args.batches, args.genai_fraction)
    print(f"{len(batches)} batches of {BATCH} spans, {len(batches[0]) / BATCH:,.0f} bytes per span, "
          f"GenAI fraction {args.genai_fraction:g}", flush=True)
    if EXTRA_ENV:
        print(f"extra settings: {' '.join(f'{k}={v}' for k, v in EXTRA_ENV.items())}", flush=True)
    data: dict[str, Any] = {"genai_fraction": args.genai_fraction, "env": EXTRA_ENV}
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as db_dir:
        if "throughput" not in args.skip:
            print("1. throughput, OTLP/gRPC in and out, gateway pinned to one CPU", flush=True)
            result = throughput(args, batches, db_dir)
            data["throughput"] = result
            for mode in ("enrich", "pass-through"):
                print(f"  {mode:13} median {result[mode]['wall']:9,.0f} spans/s wall  {result[mode]['cpu']:9,.0f} spans/CPU-s")
            print(f"  enrich / pass-through: {result['ratio']['cpu']:.2f}x per CPU-second, {result['ratio']['wall']:.2f}x wall "
                  "(target >= 0.5x; >= 10,000 spans/s)")
        if "per-span" not in args.skip:
            print("3. CPU per span, in process, one thread (µs)", flush=True)
            result = per_span(args, batches, db_dir)
            data["per_span_us"] = result
            print(f"  gateway path: pass-through {result['gateway_pass']:.1f}, enrich {result['gateway_enrich']:.1f} "
                  f"-> enrichment adds {result['gateway_added']:.1f} µs/span")
            print(f"  on_end path:  pass-through {result['on_end_pass']:.1f}, enrich {result['on_end_enrich']:.1f} "
                  f"-> enrichment adds {result['on_end_added']:.1f} µs/span")
        if "outage" not in args.skip:
            print(f"2. upstream down for {args.outage_s:g} s under load (--queue-max-bytes {args.queue_max})", flush=True)
            result = outage(args, batches, db_dir)
            data["outage"] = result
            print(f"  RSS {result['rss_before_mib']:.0f} MiB before, peak {result['rss_peak_mib']:.0f} MiB; queue at the end "
                  f"{result['queue_bytes_at_end'] / 2**20:.0f} of {result['queue_max_bytes'] / 2**20:.0f} MiB")
            print(f"  accepted {result['accepted_spans']:,} spans, refused {result['refused_requests']:,} requests (queue full); "
                  f"after recovery {result['delivered_spans']:,} delivered in {result['drain_s']:.1f} s")
    print(f"load average after: {load_average()}", flush=True)
    print(summary_line("gateway", data))


if __name__ == "__main__":
    main()
