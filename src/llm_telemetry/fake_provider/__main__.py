"""``python -m llm_telemetry.fake_provider``: serve until SIGTERM/SIGINT, announcing ``READY <url>`` on stdout.

Benchmarks and the end-to-end test run the provider in its own process so its threads do not compete
with the measured app for the GIL; they wait for the READY line to learn the port.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from llm_telemetry.fake_provider.behaviour import Behaviour
from llm_telemetry.fake_provider.server import FakeProvider


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_telemetry.fake_provider", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default 0: any free port)")
    parser.add_argument("--behaviour", default=None, help="default Behaviour as JSON, e.g. '{\"first_token_delay_s\": 0.2}'")
    args = parser.parse_args(argv)
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
        while not stop.wait(0.5):
            pass
    finally:
        provider.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
