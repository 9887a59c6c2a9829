"""Added CPU per call and per streamed chunk: llm-telemetry beside the other GenAI instrumentations.

Same method as ``bench_instrumentation.py``: the fake provider runs in its own process, ``process_time``
counts every thread of this one (the batch span processor's export thread included), the modes are
interleaved round by round and the median of the rounds is reported in µs and as a ratio to the
uninstrumented SDK. Per-chunk cost is the slope between a short and a long stream.

OpenAI modes: uninstrumented; the official ``opentelemetry-instrumentation-genai-openai``; OpenLLMetry's
``opentelemetry-instrumentation-openai`` (its default captures content; measured with and without);
ours. Anthropic modes: uninstrumented (native tracing off); the SDK's native tracing alone; ours; ours
with native tracing on (folded into our span: one span per call). Only one instrumentation is active
at a time (instrument → measure → uninstrument), each with its own tracer provider (batch → null
exporter) and meter provider (in-memory reader). Peers that are not installed are skipped.

Peers belong in a scratch venv, never in the project's::

    python3 -m venv ../peers-venv
    ../peers-venv/bin/pip install -e '.[dev]' opentelemetry-instrumentation-genai-openai opentelemetry-instrumentation-openai
    ../peers-venv/bin/python benchmarks/bench_peers.py [--rounds 7] [--calls 300] [--chunks 400] [--only openai|anthropic]
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import wrapt

sys.path.insert(0, os.path.dirname(__file__))

from _common import NullSpanExporter, cpu_seconds, interleaved, load_average, median, paired, provider_process, reference_us, summary_line
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from llm_telemetry.fake_provider import Behaviour

_WRAPT_PROXY: type = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)  # wrapt 2.x renamed the base class

OPENAI_MESSAGES = [{"role": "user", "content": "Extract the invoice date from: issued 03/04/2025."}]
OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
OPENLLMETRY_CONTENT_ENV = "TRACELOOP_TRACE_CONTENT"


@dataclass
class Mode:
    """One way of running the SDK: how to switch it on and off, and how to make one call / one stream."""

    key: str
    label: str
    call: Callable[[], None]
    stream: Callable[[dict[str, str]], None]
    on: Callable[[], None] = lambda: None
    off: Callable[[], None] = lambda: None
    exporter: NullSpanExporter = field(default_factory=NullSpanExporter)
    tracer_provider: TracerProvider | None = None
    calls_made: int = 0


def telemetry_providers() -> tuple[TracerProvider, MeterProvider, NullSpanExporter]:
    exporter = NullSpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    return tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()]), exporter


def instrumented(key: str, label: str, instrumentor: Any, make_client: Callable[[TracerProvider], Any],
                 call: Callable[[Any], None], stream: Callable[[Any, dict[str, str]], None],
                 on_extra: Callable[[], None] = lambda: None, off_extra: Callable[[], None] = lambda: None) -> Mode:
    """A mode whose instrumentor (if any) is switched on with its own providers for each measurement."""
    tracer_provider, meter_provider, exporter = telemetry_providers()
    client = make_client(tracer_provider)

    def on() -> None:
        on_extra()
        if instrumentor is not None:
            instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

    def off() -> None:
        if instrumentor is not None:
            instrumentor.uninstrument()
        off_extra()

    return Mode(key, label, lambda: call(client), lambda h: stream(client, h), on, off, exporter, tracer_provider)


def assert_unwrapped(targets: Iterable[tuple[Any, str]]) -> None:
    """Every mode must start from the bare SDK: a wrapper left behind would bias the next mode."""
    for owner, name in targets:
        if isinstance(inspect.getattr_static(owner, name), _WRAPT_PROXY):
            where = getattr(owner, "__qualname__", getattr(owner, "__name__", repr(owner)))
            raise RuntimeError(f"{where}.{name} is still wrapped after uninstrument(); results would be biased")


def unwrap_paths(paths: Iterable[tuple[str, str]]) -> None:
    """Unwrap ``(module, "Class.method")`` pairs, one wrapt layer each, where the module is loaded.

    Needed for OpenLLMetry 0.62.x: its ``uninstrument()`` passes these pairs to
    ``opentelemetry.instrumentation.utils.unwrap``, which reads a string as ``"module.Class"`` plus a
    method name, so nothing is unwrapped and every ``instrument()`` would stack one more wrapper.
    """
    for module_name, path in paths:
        owner: Any = sys.modules.get(module_name)
        cls_name, method = path.split(".")
        owner = getattr(owner, cls_name, None)
        if owner is not None and isinstance(inspect.getattr_static(owner, method, None), _WRAPT_PROXY):
            unwrap(owner, method)


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


_OPENLLMETRY_WRAPPED: tuple[tuple[str, str], ...] = tuple(
    (module, f"{cls}.{method}")
    for module, classes, method in (
        ("openai.resources.chat.completions", ("Completions", "AsyncCompletions"), "create"),
        ("openai.resources.completions", ("Completions", "AsyncCompletions"), "create"),
        ("openai.resources.embeddings", ("Embeddings", "AsyncEmbeddings"), "create"),
        ("openai.resources.images", ("Images",), "generate"),
        ("openai.resources.responses", ("Responses", "AsyncResponses"), "create"),
        ("openai.resources.responses", ("Responses", "AsyncResponses"), "retrieve"),
        ("openai.resources.responses", ("Responses", "AsyncResponses"), "parse"),
        ("openai.resources.responses", ("Responses", "AsyncResponses"), "cancel"),
    )
    for cls in classes
)
"""What OpenLLMetry wraps on the paths a chat benchmark can reach (its beta/realtime wrappers are never called here)."""


# --- OpenAI -----------------------------------------------------------------------------------------------


def openai_modes(base_url: str) -> tuple[list[Mode], list[tuple[Any, str]]]:
    import openai
    from openai.resources.chat.completions import Completions

    def make_client(_tp: TracerProvider) -> Any:
        return openai.OpenAI(api_key="bench", base_url=base_url + "/v1", max_retries=0)

    def call(client: Any) -> None:
        client.chat.completions.create(model=OPENAI_MODEL, messages=OPENAI_MESSAGES)

    def stream(client: Any, headers: dict[str, str]) -> None:
        for _chunk in client.chat.completions.create(
            model=OPENAI_MODEL, messages=OPENAI_MESSAGES, stream=True, stream_options={"include_usage": True},
            extra_headers=headers,
        ):
            pass

    modes = [instrumented("bare", "uninstrumented SDK", None, make_client, call, stream)]
    try:
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor as OfficialInstrumentor
    except ImportError:
        print("  skipped: official opentelemetry-instrumentation-genai-openai is not installed")
    else:
        label = f"official genai-openai {version('opentelemetry-instrumentation-genai-openai')}"
        modes.append(instrumented("official", label, OfficialInstrumentor(), make_client, call, stream))
    try:
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetryInstrumentor
    except ImportError:
        print("  skipped: OpenLLMetry opentelemetry-instrumentation-openai is not installed")
    else:
        release = version("opentelemetry-instrumentation-openai")
        saved = os.environ.get(OPENLLMETRY_CONTENT_ENV)

        def content(value: str | None) -> Callable[[], None]:
            def set_env() -> None:
                if value is None:
                    os.environ.pop(OPENLLMETRY_CONTENT_ENV, None)
                else:
                    os.environ[OPENLLMETRY_CONTENT_ENV] = value
            return set_env

        def off(value: str | None) -> Callable[[], None]:
            def restore() -> None:
                unwrap_paths(_OPENLLMETRY_WRAPPED)
                content(value)()
            return restore

        traceloop = OpenLLMetryInstrumentor()
        modes.append(instrumented("openllmetry", f"OpenLLMetry {release} (default: content on)", traceloop, make_client,
                                  call, stream, content(None), off(saved)))
        modes.append(instrumented("openllmetry_no_content", f"OpenLLMetry {release}, {OPENLLMETRY_CONTENT_ENV}=false", traceloop,
                                  make_client, call, stream, content("false"), off(saved)))
    from llm_telemetry.instrumentation.openai import OpenAIInstrumentor

    modes.append(instrumented("ours", "llm-telemetry", OpenAIInstrumentor(), make_client, call, stream))
    return modes, [(Completions, "create")]


# --- Anthropic --------------------------------------------------------------------------------------------


def anthropic_modes(base_url: str) -> tuple[list[Mode], list[tuple[Any, str]]]:
    import anthropic
    from anthropic import _base_client
    from anthropic.resources.messages.messages import Messages

    def plain(_tp: TracerProvider) -> Any:
        return anthropic.Anthropic(api_key="bench", base_url=base_url, max_retries=0, open_telemetry=False)

    def native(tp: TracerProvider) -> Any:
        # What a global SDK tracer provider does for a client given no option; per client so modes do not share it.
        return anthropic.Anthropic(api_key="bench", base_url=base_url, max_retries=0, open_telemetry={"tracer_provider": tp})

    def call(client: Any) -> None:
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=256, messages=OPENAI_MESSAGES)

    def stream(client: Any, headers: dict[str, str]) -> None:
        for _event in client.messages.create(
            model=ANTHROPIC_MODEL, max_tokens=1024, messages=OPENAI_MESSAGES, stream=True, extra_headers=headers,
        ):
            pass

    modes = [
        instrumented("bare", "uninstrumented SDK (native tracing off)", None, plain, call, stream),
        instrumented("native", f"SDK native tracing alone (anthropic {version('anthropic')})", None, native, call, stream),
    ]
    try:
        from llm_telemetry.instrumentation.anthropic import AnthropicInstrumentor
    except ImportError:
        print("  skipped: llm_telemetry.instrumentation.anthropic.AnthropicInstrumentor does not exist yet")
    else:
        ours = AnthropicInstrumentor()
        modes.append(instrumented("ours", "llm-telemetry (native tracing off)", ours, plain, call, stream))
        modes.append(instrumented("ours_native", "llm-telemetry + native tracing (folded: one span)", ours, native, call, stream))
    targets: list[tuple[Any, str]] = [(Messages, "create"), (Messages, "stream")]
    if hasattr(_base_client, "start_api_call_span"):  # the native-tracing hook ours wraps
        targets.append((_base_client, "start_api_call_span"))
    return modes, targets


# --- measuring ---------------------------------------------------------------------------------------------


def run_sdk(sdk: str, modes: list[Mode], targets: list[tuple[Any, str]], args: argparse.Namespace) -> dict[str, Any]:
    short_h = Behaviour(chunks=["tok "] * 10).header()
    long_h = Behaviour(chunks=["tok "] * (10 + args.chunks)).header()
    n_streams = max(args.calls // 10, 10)
    by_key = {m.key: m for m in modes}

    def calls(mode: Mode) -> None:
        for _ in range(args.calls):
            mode.call()
        mode.calls_made += args.calls

    def streams(mode: Mode, headers: dict[str, str]) -> None:
        for _ in range(n_streams):
            mode.stream(headers)
        mode.calls_made += n_streams

    def flushed(fn: Callable[[], None], mode: Mode) -> Callable[[], None]:
        """The spans' export is part of the cost: flush inside the timed region."""
        def timed() -> None:
            fn()
            if mode.tracer_provider is not None:
                mode.tracer_provider.force_flush()
        return timed

    def measure(key: str) -> dict[str, float]:
        mode = by_key[key]
        assert_unwrapped(targets)
        mode.on()
        try:
            per_call = cpu_seconds(flushed(lambda: calls(mode), mode)) / args.calls
            short = cpu_seconds(flushed(lambda: streams(mode, short_h), mode)) / n_streams
            long = cpu_seconds(flushed(lambda: streams(mode, long_h), mode)) / n_streams
        finally:
            mode.off()
        return {"call_us": per_call * 1e6, "chunk_us": (long - short) / args.chunks * 1e6}

    for mode in modes:  # warm up: connections, lazy imports, first-call caches of every instrumentation
        mode.on()
        try:
            for _ in range(5):
                mode.call()
            mode.stream(short_h)
            mode.calls_made += 6
        finally:
            mode.off()
    results = interleaved([m.key for m in modes], args.rounds, measure)
    for mode in modes:
        if mode.tracer_provider is not None:
            mode.tracer_provider.shutdown()

    print(f"{sdk}: per non-streaming call (CPU µs: median; ratio and added: medians of per-round pairs with the uninstrumented SDK)")
    summary: dict[str, Any] = {}
    for mode in modes:
        c = median(results[mode.key]["call_us"])
        ratio, added = paired(results[mode.key]["call_us"], results["bare"]["call_us"])
        spans = mode.exporter.exported / mode.calls_made
        print(f"  {mode.label:58} {c:9.1f} µs  {ratio:5.2f}x  +{added:7.1f} µs  {spans:.2f} span/call")
        summary[mode.key] = {"call_us": round(c, 1), "call_ratio": round(ratio, 3), "call_added_us": round(added, 1),
                             "spans_per_call": round(spans, 3)}
    print(f"{sdk}: per streamed chunk (CPU µs, slope between 10 and {10 + args.chunks} chunks; same pairing)")
    for mode in modes:
        k = median(results[mode.key]["chunk_us"])
        ratio, added = paired(results[mode.key]["chunk_us"], results["bare"]["chunk_us"])
        print(f"  {mode.label:58} {k:9.1f} µs  {ratio:5.2f}x  +{added:7.1f} µs")
        summary[mode.key].update(chunk_us=round(k, 1), chunk_ratio=round(ratio, 3), chunk_added_us=round(added, 1))
    spread = {m.key: (min(results[m.key]["call_us"]), max(results[m.key]["call_us"])) for m in modes}
    print(f"{sdk}: per-call min..max over rounds: " + ", ".join(f"{k} {lo:.0f}..{hi:.0f}" for k, (lo, hi) in spread.items()))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--chunks", type=int, default=400)
    parser.add_argument("--only", choices=("openai", "anthropic"), default=None)
    args = parser.parse_args()

    reference = reference_us()
    print(f"load average before: {load_average()}; reference sum(range(1000)) = {reference:.1f} µs CPU")
    print(f"openai {version('openai')}, anthropic {version('anthropic')}, opentelemetry-sdk {version('opentelemetry-sdk')}; "
          f"median of {args.rounds} interleaved rounds, {args.calls} calls + 2x{max(args.calls // 10, 10)} streams per mode per round")
    summary: dict[str, Any] = {"rounds": args.rounds, "calls": args.calls, "chunks": args.chunks, "reference_us": round(reference, 2)}
    with provider_process() as base_url:
        if args.only in (None, "openai"):
            try:
                import openai  # noqa: F401
            except ImportError:
                print("  skipped: openai SDK not installed")
            else:
                modes, targets = openai_modes(base_url)
                summary["openai"] = run_sdk("OpenAI chat.completions", modes, targets, args)
        if args.only in (None, "anthropic"):
            try:
                import anthropic  # noqa: F401
            except ImportError:
                print("  skipped: anthropic SDK not installed")
            else:
                modes, targets = anthropic_modes(base_url)
                summary["anthropic"] = run_sdk("Anthropic messages", modes, targets, args)
    summary["load_average_after"] = load_average()
    print(f"load average after: {summary['load_average_after']}")
    print(summary_line("peers", summary))


if __name__ == "__main__":
    main()
