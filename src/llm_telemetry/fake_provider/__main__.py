"""``python -m llm_telemetry.fake_provider``: the same as ``llm-telemetry fake-provider`` (see `cli`).

Benchmarks and the end-to-end test run the provider in its own process so its threads do not compete
with the measured app for the GIL; they wait for the ``READY <url>`` line to learn the port.
"""

from __future__ import annotations

import argparse
import sys

from llm_telemetry.fake_provider.cli import add_arguments, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_telemetry.fake_provider", description=__doc__)
    add_arguments(parser)
    return serve(parser.parse_args(argv), parser)


if __name__ == "__main__":
    sys.exit(main())
