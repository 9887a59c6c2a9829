"""The README documents every setting, exactly as the settings table defines it."""

from __future__ import annotations

from pathlib import Path

from llm_telemetry.config import describe
from llm_telemetry.settings_cli import markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_settings_table_is_generated_from_the_settings_table() -> None:
    text = README.read_text(encoding="utf-8")
    assert markdown_table() in text, "README settings table is stale: run `llm-telemetry settings --markdown`"
    for info in describe():
        assert f"`{info.env}`" in text


def test_readme_first_two_commands_install_demo_and_test() -> None:
    text = README.read_text(encoding="utf-8")
    commands = [line for line in text.splitlines() if line.startswith((".venv/", "python3 -m venv"))]
    assert commands[0] == 'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]" && .venv/bin/llm-telemetry demo'
    assert commands[1] == ".venv/bin/pytest -q"
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[0] in ci and commands[1] in ci
