"""``llm-telemetry eval`` and ``llm-telemetry canary``: a golden dataset through the instrumented SDK.

    llm-telemetry eval golden.yaml --model gpt-4o-mini [--base-url URL] [--json]
    llm-telemetry canary golden.yaml --model gpt-4o-mini --every 1h [--state PATH] [--once]

Telemetry goes where ``OTEL_*`` says (OTLP by default) when ``--otlp`` is given or
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_TRACES_EXPORTER`` is set; otherwise the run is local (table only).
Exit codes: ``eval`` 0 all cases pass, 1 some fail; ``canary --once`` 0 no drop, 1 drop; 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_telemetry.config import get_settings

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_every(text: str) -> float:
    """``30s``, ``5m``, ``1h``, ``1d`` or plain seconds; at least 1 s."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"--every {text!r}: expected a duration such as 30s, 15m, 1h or 1d")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"--every {text!r}: must be at least 1s")
    return seconds


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {value}")
    return value


@dataclass
class Telemetry:
    """The providers a run reports to; ``close`` flushes and shuts down what the command built itself."""

    tracer_provider: Any
    meter_provider: Any
    logger_provider: Any | None = None
    close: Callable[[], None] = field(default=lambda: None)


def telemetry_from_environment(otlp: bool, service_name: str) -> Telemetry:
    if otlp or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_TRACES_EXPORTER"):
        from llm_telemetry.exporters.providers import configure

        providers = configure(service_name=service_name, strict=False, set_global=True)
        return Telemetry(providers.tracer_provider, providers.meter_provider, providers.logger_provider, providers.shutdown)
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    tracer_provider, meter_provider = TracerProvider(), MeterProvider()

    def close() -> None:
        tracer_provider.shutdown()
        meter_provider.shutdown()

    return Telemetry(tracer_provider, meter_provider, None, close)


class _Instrumented:
    """The OpenAI and Anthropic SDKs instrumented for the duration of a command."""

    def __init__(self, telemetry: Telemetry) -> None:
        from llm_telemetry.instrumentation.anthropic import AnthropicInstrumentor
        from llm_telemetry.instrumentation.openai import OpenAIInstrumentor

        self._instrumentors = [OpenAIInstrumentor(), AnthropicInstrumentor()]
        self._telemetry = telemetry

    def __enter__(self) -> _Instrumented:
        for instrumentor in self._instrumentors:
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument(tracer_provider=self._telemetry.tracer_provider, meter_provider=self._telemetry.meter_provider)
        return self

    def __exit__(self, *exc: object) -> None:
        for instrumentor in self._instrumentors:
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()


def _build(args: argparse.Namespace, telemetry: Telemetry) -> tuple[Any, Any, Callable[..., Any]]:
    """(dataset, target, run) where ``run(**kw)`` evaluates the dataset once with the command's options."""
    from llm_telemetry.attribution import attribute
    from llm_telemetry.processors.quality.datasets import load_dataset
    from llm_telemetry.processors.quality.evaluate import evaluate
    from llm_telemetry.processors.quality.llm_target import LLMTarget

    dataset = load_dataset(args.dataset)
    target = LLMTarget(args.model, args.provider, args.base_url, args.temperature, args.max_tokens)

    def run(**kwargs: Any) -> Any:
        # The eval's own LLM calls are attributed to their own feature, apart from production traffic.
        with attribute(feature=f"eval:{dataset.name}"):
            return evaluate(
                target, dataset, concurrency=args.concurrency, progress=args.progress, tracer_provider=telemetry.tracer_provider,
                meter_provider=telemetry.meter_provider, judge_model=args.judge_model, judge_base_url=args.judge_base_url,
                target_name=target.description, **kwargs,
            )

    return dataset, target, run


def eval_command(args: argparse.Namespace, telemetry: Telemetry | None = None) -> int:
    """``llm-telemetry eval``; ``telemetry`` lets tests (and embedding apps) pass their own providers."""
    from llm_telemetry.processors.quality.datasets import DatasetError

    own = telemetry is None
    telemetry = telemetry or telemetry_from_environment(args.otlp, "llm-telemetry-eval")
    try:
        try:
            _, _, run = _build(args, telemetry)
        except (DatasetError, ValueError) as exc:
            print(f"llm-telemetry eval: {exc}", file=sys.stderr)
            return 2
        with _Instrumented(telemetry):
            report = run(quiet=args.json)
        if args.json:
            print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return 0 if report.passed == report.total else 1
    finally:
        if own:
            telemetry.close()


def default_state_path(dataset_name: str, model: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{dataset_name}--{model}")
    return get_settings().eval.canary_state_dir / f"{slug}.json"


def canary_command(args: argparse.Namespace, telemetry: Telemetry | None = None, stop: threading.Event | None = None) -> int:
    """``llm-telemetry canary``: ``--once`` runs one comparison; otherwise runs every ``--every`` until SIGTERM/SIGINT."""
    from llm_telemetry.processors.quality.canary import Canary, CanaryStateError
    from llm_telemetry.processors.quality.datasets import DatasetError

    own = telemetry is None
    telemetry = telemetry or telemetry_from_environment(args.otlp, "llm-telemetry-canary")
    try:
        try:
            dataset, target, run = _build(args, telemetry)
            state = Path(args.state).expanduser() if args.state else default_state_path(dataset.name, args.model)
            canary = Canary(
                lambda: run(quiet=not args.verbose), dataset.name, target.description, state, tolerance=args.tolerance,
                meter_provider=telemetry.meter_provider, logger_provider=telemetry.logger_provider,
            )
        except (DatasetError, CanaryStateError, ValueError) as exc:
            print(f"llm-telemetry canary: {exc}", file=sys.stderr)
            return 2
        with _Instrumented(telemetry):
            if args.once:
                try:
                    return 1 if canary.run_once().regressed else 0
                except CanaryStateError as exc:
                    print(f"llm-telemetry canary: {exc}", file=sys.stderr)
                    return 2
            stop = stop or _stop_on_signals()
            print(f"llm-telemetry canary: {dataset.name} ({target.description}) every {args.every:g}s, state {state}", flush=True)
            canary.run_forever(args.every, stop)
        return 0
    finally:
        if own:
            telemetry.close()


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: stop.set())
    return stop


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="golden dataset file (.jsonl or .yaml)")
    parser.add_argument("--model", required=True, help="model to evaluate")
    parser.add_argument("--base-url", default=None, help="API base URL (an OpenAI-compatible server, a gateway, a proxy)")
    parser.add_argument("--provider", choices=("auto", "openai", "anthropic"), default="auto",
                        help="SDK to call (auto: claude* models go to Anthropic, others to OpenAI)")
    parser.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0)")
    parser.add_argument("--max-tokens", type=_positive_int, default=1024, help="max output tokens per case")
    parser.add_argument("--concurrency", type=_positive_int, default=1, help="cases run at once (default 1)")
    parser.add_argument("--judge-model", default=None, help="model of the faithfulness judge (default eval.judge_model)")
    parser.add_argument("--judge-base-url", default=None, help="base URL of the faithfulness judge (default eval.judge_base_url)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: on a terminal, for long runs)")
    parser.add_argument("--otlp", action="store_true", help="export telemetry over OTLP (also when OTEL_EXPORTER_OTLP_ENDPOINT is set)")


def _eval_main(args: argparse.Namespace) -> int:
    return eval_command(args)


def _canary_main(args: argparse.Namespace) -> int:
    return canary_command(args)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("eval", help="run a golden dataset through a model and print the scored table")
    _common(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")
    parser.set_defaults(func=_eval_main)

    parser = sub.add_parser("canary", help="run a golden dataset on a schedule and alert when it drops versus the last good run")
    _common(parser)
    parser.add_argument("--every", type=parse_every, default=3600.0, help="period between runs: 30s, 15m, 1h, 1d (default 1h)")
    parser.add_argument("--state", default=None, help="state file keeping the last good run (default: eval.canary_state_dir)")
    parser.add_argument("--once", action="store_true", help="run once, compare, exit 1 on a drop")
    parser.add_argument("--tolerance", type=_fraction, default=0.1, help="score drop that counts as a change (default 0.1)")
    parser.add_argument("--verbose", action="store_true", help="print the scored table of every run")
    parser.set_defaults(func=_canary_main)


__all__ = ["Telemetry", "canary_command", "eval_command", "parse_every", "register"]
