"""The ``llm-telemetry`` command: one sub-command module per job, registered here.

Each sub-command module exposes ``register(subparsers)`` which adds its parser and sets ``func``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# module path → its ``register`` adds one or more sub-commands
_COMMAND_MODULES: tuple[str, ...] = (
    "llm_telemetry.demo",
    "llm_telemetry.settings_cli",
    "llm_telemetry.processors.safety.review_cli",
    "llm_telemetry.exporters.store.report_cli",
    "llm_telemetry.processors.quality.eval_cli",
    "llm_telemetry.fake_provider.cli",
    "llm_telemetry.exporters.gateway.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-telemetry", description="OpenTelemetry-native monitoring for LLM apps.")
    sub = parser.add_subparsers(dest="command", required=True)
    for module_name in _COMMAND_MODULES:
        module = importlib.import_module(module_name)
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from llm_telemetry.config import ConfigError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"llm-telemetry: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
