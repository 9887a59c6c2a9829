"""Serve the bundled fake provider until SIGTERM/SIGINT: ``llm-telemetry fake-provider`` and ``python -m``.

For trying llm-telemetry on one's own app without a provider account: point the app's OpenAI client at
``<url>/v1`` and its Anthropic client at ``<url>``; every call gets a scripted answer with usage. The
first line on stdout is ``READY <url>`` (benchmarks and tests wait for it to learn the port); the
next says how to use it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from llm_telemetry.fake_provider.behaviour import Behaviour
from llm_telemetry.fake_provider.server import FakeProvider


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default 0: any free port)")
    parser.add_argument("--behaviour", default=None, help="default Behaviour as JSON, e.g. '{\"first_token_delay_s\": 0.2}'")


def serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run until a signal; 1 if the address cannot be bound (said on stderr)."""
    try:
        default = Behaviour.from_json_text(args.behaviour, source="--behaviour") if args.behaviour else None
    except ValueError as exc:
        parser.error(str(exc))

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    provider = FakeProvider(host=args.host, port=args.port, default=default)
    try:
        provider.start()
    except OSError as exc:
        print(f"fake provider: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"READY {provider.base_url}", flush=True)
        print(f"fake provider: OpenAI base_url {provider.openai_base_url}, Anthropic base_url {provider.anthropic_base_url} "
              "(any API key); Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        provider.stop()
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "fake-provider", help="serve the bundled fake OpenAI/Anthropic provider (scripted answers, no account needed)",
        description=__doc__,
    )
    add_arguments(parser)
    parser.set_defaults(func=lambda args: serve(args, parser))
