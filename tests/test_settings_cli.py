"""``llm-telemetry settings``: a readable table of every setting and where it came from, and every file checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_telemetry.cli import main


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.startswith("LLM_TELEMETRY_") or name == "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT":
            monkeypatch.delenv(name)
    monkeypatch.setenv("LLM_TELEMETRY_REVIEW_DB_PATH", str(tmp_path / "state" / "review.db"))
    return monkeypatch


def run(capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["settings"])
    out, err = capsys.readouterr()
    return code, out, err


def row(out: str, setting: str, table: int = 0) -> list[str]:
    """The cells of ``setting``'s row in the settings table (0) or the files table (1)."""
    lines = [line for line in out.splitlines() if line.startswith(setting + " ")]
    return lines[table].split()


def test_settings_print_as_a_table_with_their_origin(clean_env, tmp_path: Path, capsys) -> None:
    config = tmp_path / "llm-telemetry.toml"
    config.write_text("[budget]\ndaily_usd = 25\n\n[cost]\nuser_dimension = false\n", encoding="utf-8")
    clean_env.setenv("LLM_TELEMETRY_CONFIG", str(config))
    clean_env.setenv("LLM_TELEMETRY_BUDGET_DAILY_USD", "5")
    code, out, err = run(capsys)
    assert (code, err) == (0, "")
    assert "Settings(" not in out and len(max(out.splitlines(), key=len)) < 200  # not one long repr line
    assert row(out, "budget.daily_usd") == ["budget.daily_usd", "5.0", "LLM_TELEMETRY_BUDGET_DAILY_USD"]  # env wins
    assert row(out, "cost.user_dimension") == ["cost.user_dimension", "False", f"{config},", "line", "5"]
    assert row(out, "content.capture") == ["content.capture", "NO_CONTENT", "default"]
    status = row(out, "cost.pricing_file", table=1)
    assert status[2] == "ok:" and status[3].isdigit()  # the bundled table, loaded and counted
    assert "not created yet" in out


def test_every_named_file_is_checked_and_every_problem_reported(clean_env, tmp_path: Path, capsys) -> None:
    pricing = tmp_path / "prices.toml"
    pricing.write_text('[acme.models]\n"good" = { input = 1, output = 2 }\n"half" = { input = 1 }\n', encoding="utf-8")
    patterns = tmp_path / "patterns.toml"
    patterns.write_text('[[patterns]]\nid = "x.bad"\ncategory = "x"\naction = "flag"\nregex = \'(unclosed\'\n', encoding="utf-8")
    review = tmp_path / "review.db"
    review.write_text("not a database, a text file", encoding="utf-8")
    clean_env.setenv("LLM_TELEMETRY_COST_PRICING_FILE", str(pricing))
    clean_env.setenv("LLM_TELEMETRY_SAFETY_PATTERNS_FILE", str(patterns))
    clean_env.setenv("LLM_TELEMETRY_JUDGE_PROMPT_FILE", str(tmp_path / "missing-prompt.txt"))
    clean_env.setenv("LLM_TELEMETRY_REVIEW_DB_PATH", str(review))
    code, out, err = run(capsys)
    assert code == 2
    errors = [line for line in err.splitlines() if line]
    assert len(errors) == 4, err
    assert f"{pricing}, line 3: model 'half': missing field 'output'" in err
    assert f"{patterns}, line 2: pattern 'x.bad': invalid RE2 regex" in err
    assert "missing-prompt.txt" in err and "No such file" in err
    assert str(review) in err and "not a review queue database" in err
    assert out.count("ERROR (below)") == 4


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("missing.toml", None, "cannot read pricing file: No such file or directory"),
        ("broken.toml", '[acme.models]\n"m" = { input = 1, output = \n', "not valid TOML: "),
        ("broken.json", '{"acme": {"models": {\n  "m": {"input": 1, "output": }\n}}}', "line 2"),
    ],
)
def test_a_missing_or_malformed_pricing_file_is_an_error_naming_file_and_line(
    clean_env, tmp_path: Path, capsys, name: str, body: str | None, expected: str,
) -> None:
    path = tmp_path / name
    if body is not None:
        path.write_text(body, encoding="utf-8")
    clean_env.setenv("LLM_TELEMETRY_COST_PRICING_FILE", str(path))
    code, _, err = run(capsys)
    assert code == 2
    assert str(path) in err and expected in err
    if name == "broken.toml":
        assert "line 2" in err


def test_a_bad_setting_value_stops_before_the_table(clean_env, capsys) -> None:
    clean_env.setenv("LLM_TELEMETRY_SAFETY_INLINE_SCREEN_CHARS", "10")
    code, out, err = run(capsys)
    assert code == 2 and out == ""
    assert "LLM_TELEMETRY_SAFETY_INLINE_SCREEN_CHARS" in err and "must be >= 4096" in err
