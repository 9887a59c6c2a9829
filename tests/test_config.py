"""Settings: defaults, config file (TOML and YAML), environment precedence, and precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_telemetry.config import ConfigError, ContentCapture, load_settings


def test_defaults_are_safe() -> None:
    settings = load_settings({})
    assert settings.content.capture is ContentCapture.NO_CONTENT
    assert settings.budget.daily_usd is None
    assert settings.pipeline.enrichers == ("cost", "budget", "safety", "quality", "openinference")
    assert settings.stream.stall_threshold_s == 0.5


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", ContentCapture.SPAN_ONLY), ("False", ContentCapture.NO_CONTENT), ("span_and_event", ContentCapture.SPAN_AND_EVENT),
     ("EVENT_ONLY", ContentCapture.EVENT_ONLY), ("NO_CONTENT", ContentCapture.NO_CONTENT)],
)
def test_content_capture_values(value: str, expected: ContentCapture) -> None:
    assert load_settings({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": value}).content.capture is expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LLM_TELEMETRY_BUDGET_DAILY_USD": "lots"}, "budget.daily_usd = 'lots' (environment variable LLM_TELEMETRY_BUDGET_DAILY_USD)"),
        ({"LLM_TELEMETRY_BUDGET_DAILY_USD": "-5"}, "must be >= 0"),
        ({"LLM_TELEMETRY_BUDGET_TIMEZONE": "Mars/Olympus"}, "not a known IANA time zone"),
        ({"LLM_TELEMETRY_STREAM_CHUNK_EVENTS": "maybe"}, "expected true or false"),
        ({"LLM_TELEMETRY_BUDGET_FEATURE_DAILY_USD": "chat:5"}, "'chat:5' is not name=amount"),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "sometimes"}, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"),
        ({"LLM_TELEMETRY_JUDGE_SAMPLE_RATE": "1.5"}, "must be <= 1"),
    ],
)
def test_bad_environment_values_name_the_variable_and_value(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert message in str(caught.value)


def test_toml_file_and_environment_precedence(tmp_path: Path) -> None:
    path = tmp_path / "llm-telemetry.toml"
    path.write_text('[budget]\ndaily_usd = 100\nfeature_daily_usd = { chat = 20.0 }\n\n[stream]\nstall_threshold_s = 0.25\n')
    settings = load_settings({"LLM_TELEMETRY_CONFIG": str(path), "LLM_TELEMETRY_BUDGET_DAILY_USD": "50"})
    assert settings.budget.daily_usd == 50  # the environment wins
    assert settings.budget.feature_daily_usd == {"chat": 20.0}
    assert settings.stream.stall_threshold_s == 0.25


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "llm-telemetry.yaml"
    path.write_text("safety:\n  screen_prompts: true\njudge:\n  sample_rate: 0.05\n")
    settings = load_settings({"LLM_TELEMETRY_CONFIG": str(path)})
    assert settings.safety.screen_prompts is True
    assert settings.judge.sample_rate == 0.05


def test_bad_file_value_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[budget]\n# daily budget\ndaily_usd = \"a hundred\"\n")
    with pytest.raises(ConfigError) as caught:
        load_settings({"LLM_TELEMETRY_CONFIG": str(path)})
    assert f"budget.daily_usd = 'a hundred' ({path}, line 3): expected a number" == str(caught.value)


def test_unknown_key_and_section_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[budget]\ndaily_usd = 1\ndaily_limit = 5\n")
    with pytest.raises(ConfigError, match=r"line 3: unknown setting budget.daily_limit"):
        load_settings({"LLM_TELEMETRY_CONFIG": str(path)})
    path.write_text("[budgets]\ndaily_usd = 1\n")
    with pytest.raises(ConfigError, match=r"unknown section \[budgets\]"):
        load_settings({"LLM_TELEMETRY_CONFIG": str(path)})


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings({"LLM_TELEMETRY_CONFIG": str(tmp_path / "missing.toml")})
    path = tmp_path / "broken.toml"
    path.write_text("[budget\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({"LLM_TELEMETRY_CONFIG": str(path)})


def test_cli_settings_reports_errors_with_exit_code_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from llm_telemetry.cli import main

    monkeypatch.setenv("LLM_TELEMETRY_BUDGET_DAILY_USD", "x")
    assert main(["settings"]) == 2
    assert "LLM_TELEMETRY_BUDGET_DAILY_USD" in capsys.readouterr().err
