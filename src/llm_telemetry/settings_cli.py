"""``llm-telemetry settings``: check the configuration, or print the settings table (README source)."""

from __future__ import annotations

import argparse
from pathlib import Path

from llm_telemetry.config import describe, load_settings


def _default_text(value: object) -> str:
    if value is None or value == () or value == {}:
        return "(unset)"
    if isinstance(value, tuple):
        return ",".join(value)
    if hasattr(value, "value"):
        return str(value.value)  # enum
    if isinstance(value, Path) and value.is_relative_to(Path.home()):
        return "~/" + value.relative_to(Path.home()).as_posix()  # the same table whoever generates it
    return str(value)


def markdown_table() -> str:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for info in describe():
        default = _default_text(info.default)
        rows.append(f"| `{info.env}` | `{default}` | {info.doc} |")
    return "\n".join(rows)


def _run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown_table())
        return 0
    settings = load_settings()  # raises ConfigError with a precise message
    print(settings)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("settings", help="validate settings (env + LLM_TELEMETRY_CONFIG file) and print them")
    parser.add_argument("--markdown", action="store_true", help="print the settings table in Markdown")
    parser.set_defaults(func=_run)
