"""``llm-telemetry settings``: validate the configuration and every file it names, and print it as a table.

A setting that parses can still name a file that is missing or malformed (a pricing table, a safety
pattern pack, a judge prompt, a review database); at start-up that would cost the processor that reads
it. So this command loads each of them the way the processors do and reports every problem at once,
each naming the file (and line, where the file format allows). Exit code 2 when anything is wrong.
``--markdown`` prints the README's settings table instead.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

from llm_telemetry.config import CONFIG_FILE_ENV, ConfigError, Settings, describe, load_settings, origins


def _default_text(value: object) -> str:
    if value is None or value == () or value == {}:
        return "(unset)"
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
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


# --- the files the settings name ------------------------------------------------------------------------

def _check_pricing(settings: Settings) -> str:
    from llm_telemetry.processors.pricing import load_pricing

    table = load_pricing(settings.cost.pricing_file)
    return f"ok: {len(table)} priced models" + ("" if settings.cost.pricing_file else " (bundled table)")


def _check_patterns(settings: Settings) -> str:
    from llm_telemetry.processors.safety.patterns import resolve_patterns
    from llm_telemetry.processors.safety.screen import Screen

    screen = Screen(resolve_patterns(settings.safety), settings.safety.max_mem_mb)  # compiles every regex, as at start-up
    return f"ok: {len(screen)} patterns" + ("" if settings.safety.patterns_file else " (bundled packs)")


def _check_judge(settings: Settings) -> str:
    from llm_telemetry.processors.safety.judge import load_judge
    from llm_telemetry.processors.safety.openai_judge import load_template

    load_template(settings.judge.prompt_file)  # checked even when the judge is off: the file is named
    load_judge(settings.judge)
    used = "judge on" if settings.judge.sample_rate > 0 else "judge off (sample_rate 0)"
    return f"ok: {used}" + ("" if settings.judge.prompt_file else ", bundled prompt")


def _check_review_db(settings: Settings) -> str:
    path = settings.review.db_path
    if not path.exists():
        return "ok: not created yet (created on the first flagged output)"
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            count = conn.execute("SELECT COUNT(*) FROM review_items WHERE status = 'open'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"review.db_path = {str(path)!r}: not a review queue database: {exc}") from None
    return f"ok: {count} open items"


FILE_CHECKS: tuple[tuple[str, Callable[[Settings], object], Callable[[Settings], str]], ...] = (
    ("cost.pricing_file", lambda s: s.cost.pricing_file, _check_pricing),
    ("safety.patterns_file", lambda s: s.safety.patterns_file, _check_patterns),
    ("judge.prompt_file", lambda s: s.judge.prompt_file, _check_judge),
    ("review.db_path", lambda s: s.review.db_path, _check_review_db),
)


def check_files(settings: Settings) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(setting, file, status) for every file the settings name, and the problems found (all of them)."""
    rows: list[tuple[str, str, str]] = []
    errors: list[str] = []
    for name, path_of, check in FILE_CHECKS:
        path = path_of(settings)
        shown = str(path) if path is not None else "(bundled)"
        try:
            status = check(settings)
        except ConfigError as exc:
            errors.append(str(exc))
            status = "ERROR (below)"
        except Exception as exc:  # a file our loaders do not expect: still this file's problem, named
            errors.append(f"{name} = {shown!r}: {type(exc).__name__}: {exc}")
            status = "ERROR (below)"
        rows.append((name, shown, status))
    return rows, errors


# --- the table ------------------------------------------------------------------------------------------

def settings_table(settings: Settings, where: dict[tuple[str, str], str]) -> str:
    rows = [("setting", "value", "from")]
    for info in describe():
        value = getattr(getattr(settings, info.section), info.key)
        rows.append((f"{info.section}.{info.key}", _shorten(_default_text(value)), where.get((info.section, info.key), "default")))
    return _columns(rows)


_MAX_VALUE_CHARS = 48


def _shorten(text: str) -> str:
    """Long values (a path, a table of thresholds) are cut so the table stays readable; `--json` has them whole."""
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"


def _columns(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
        if index == 0:
            lines.append("  ".join("-" * width for width in widths) + "  " + "-" * len(row[-1]))
    return "\n".join(line.rstrip() for line in lines)


def _run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown_table())
        return 0
    settings = load_settings()  # raises ConfigError with a precise message (the CLI prints it, exit 2)
    config_file = os.environ.get(CONFIG_FILE_ENV, "").strip()
    print(f"config file ({CONFIG_FILE_ENV}): {config_file or 'none'}; environment variables win over it\n")
    print(settings_table(settings, origins()))
    rows, errors = check_files(settings)
    print()
    print(_columns([("file", "path", "status"), *rows]))
    if errors:
        print(file=sys.stderr)
        for error in errors:
            print(f"llm-telemetry: configuration error: {error}", file=sys.stderr)
        return 2
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "settings", help="validate settings (env + LLM_TELEMETRY_CONFIG file) and the files they name; print them as a table",
    )
    parser.add_argument("--markdown", action="store_true", help="print the settings table in Markdown")
    parser.set_defaults(func=_run)
