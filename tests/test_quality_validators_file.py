"""The validators file (TOML and YAML) and `ValidatorSet`: selection, errors with lines, never raising."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from llm_telemetry.config import ConfigError, load_settings
from llm_telemetry.processors.quality.dates import DateConsistencyValidator
from llm_telemetry.processors.quality.validator_set import ValidatorSet, add_validator, remove_validator
from llm_telemetry.processors.quality.validators import ValidationResult
from llm_telemetry.processors.quality.validators_file import load_validators_file, parse_validators

TOML = """\
# invoice extraction contracts
[[validators]]
name = "invoice_dates"
kind = "date_consistency"
feature = "invoice-*"
input_format = "DD/MM/YYYY"

[[validators]]
name = "invoice_json"
kind = "json_schema"
feature = ["invoice-extraction"]
model = "gpt-4o*"

[validators.schema]
type = "object"
required = ["total"]

[[validators]]
name = "no_apology"
kind = "must_not_match"
pattern = '(?i)\\bsorry\\b'
"""

YAML = """\
validators:
  - name: invoice_dates
    kind: date_consistency
    feature: invoice-*
    input_format: DD/MM/YYYY
  - name: short
    kind: length
    max_words: 200
"""


def test_toml_file_builds_every_entry_with_its_selection(tmp_path: Path) -> None:
    path = tmp_path / "validators.toml"
    path.write_text(TOML)
    entries = load_validators_file(path)
    assert [e.validator.name for e in entries] == ["invoice_dates", "invoice_json", "no_apology"]
    assert entries[0].features == ("invoice-*",) and entries[0].models is None
    assert entries[1].features == ("invoice-extraction",) and entries[1].models == ("gpt-4o*",)
    assert entries[0].where == f"{path}, line 2"
    validators = ValidatorSet(entries, include_runtime=False)
    names = [v.name for v in validators.validators_for("invoice-extraction", "gpt-4o-mini")]
    assert names == ["invoice_dates", "invoice_json", "no_apology"]
    assert [v.name for v in validators.validators_for("invoice-extraction", "claude-3")] == ["invoice_dates", "no_apology"]
    assert [v.name for v in validators.validators_for("chat", "gpt-4o")] == ["no_apology"]
    assert [v.name for v in validators.validators_for(None, None)] == ["no_apology"]


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "validators.yaml"
    path.write_text(YAML)
    entries = load_validators_file(path)
    assert [e.validator.name for e in entries] == ["invoice_dates", "short"]
    assert entries[1].where == f"{path}, line 6"


@pytest.mark.parametrize(
    ("text", "yaml_format", "message"),
    [
        # unknown keys name the key and its own line
        ('[[validators]]\nname = "a"\nkind = "length"\nmax_chars = 10\nmax_char = 5\n', False,
         r"v\.toml, line 5: validator 'a' \(kind length\): unknown key 'max_char'"),
        ("validators:\n  - name: a\n    kind: length\n    max_chars: 10\n    max_char: 5\n", True,
         r"v\.toml, line 5: validator 'a' \(kind length\): unknown key 'max_char'"),
        ('verbose = true\n[[validators]]\nname = "a"\nkind = "json"\n', False, r"v\.toml, line 1: unknown key 'verbose'"),
        ("validators: []\nextra: 1\n", True, r"v\.toml, line 2: unknown key 'extra'"),
        # bad regex / schema name the validator and the line of the option
        ('[[validators]]\nname = "r"\nkind = "must_match"\n\npattern = "(x"\n', False,
         r"v\.toml, line 5: validator 'r': `pattern` = '\(x' is not a valid RE2 regex"),
        ('[[validators]]\nname = "s"\nkind = "json_schema"\n[validators.schema]\ntype = 12\n', False,
         r"v\.toml, line 4: validator 's': `schema` is not a valid JSON Schema"),
        ("validators:\n  - name: s\n    kind: json_schema\n    schema:\n      type: 12\n", True,
         r"v\.toml, line 4: validator 's': `schema` is not a valid JSON Schema"),
        ('[[validators]]\nname = "a"\nkind = "json"\n[[validators]]\nname = "a"\nkind = "length"\nmax_chars = 1\n', False,
         r"v\.toml, line 5: duplicate validator name 'a' \(already defined at v\.toml, line 2\)"),
        ('[[validators]]\nname = "a"\nkind = "jsn"\n', False, r"v\.toml, line 3: validator 'a': unknown kind 'jsn'"),
        ('[[validators]]\nname = "a"\nkind = "json"\nfeature = 3\n', False, r"v\.toml, line 4: validator 'a': `feature` must be a glob"),
        ("[[validators]\n", False, r"v\.toml: not valid TOML"),
        ("validators: {a: 1}\n", True, r"v\.toml, line 1: `validators` must be a list of tables"),
    ],
)
def test_file_errors_name_the_line(text: str, yaml_format: bool, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_validators(text, "v.toml", yaml_format=yaml_format)


def test_unreadable_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"LLM_TELEMETRY_VALIDATORS_FILE='.*missing.toml': cannot read the validators file"):
        load_validators_file(tmp_path / "missing.toml")


def test_from_settings_reads_the_file_named_by_the_env_var(tmp_path: Path) -> None:
    path = tmp_path / "validators.toml"
    path.write_text(TOML)
    settings = load_settings({"LLM_TELEMETRY_VALIDATORS_FILE": str(path)})
    validators = ValidatorSet.from_settings(settings)
    assert validators.names == ("invoice_dates", "invoice_json", "no_apology")  # no extra built-in: the file declares dates
    default = ValidatorSet.from_settings(load_settings({}))
    assert default.names == ("date_consistency",) and isinstance(default.entries()[0].validator, DateConsistencyValidator)
    assert ValidatorSet.from_settings(load_settings({"LLM_TELEMETRY_VALIDATORS_DATE_CONSISTENCY": "false"})).names == ()
    assert len(ValidatorSet.from_settings(load_settings({"LLM_TELEMETRY_VALIDATORS_ENABLED": "false"}))) == 0
    captured = ValidatorSet.from_settings(load_settings({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}))
    assert captured.capture_content
    result = captured.run("f", "m", "due 05/03/2024, issued 25/03/2024", "due 2024-05-03")
    assert "transposed: 2024-05-03 (input 2024-03-05)" in result[0].explanation


def test_bad_file_fails_settings_loading_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "validators.toml"
    path.write_text('[[validators]]\nname = "a"\nkind = "length"\nmin_words = "ten"\n')
    with pytest.raises(ConfigError, match=rf"{path}, line 4: validator 'a': `min_words` must be an integer"):
        ValidatorSet.from_settings(load_settings({"LLM_TELEMETRY_VALIDATORS_FILE": str(path)}))


class Exploding:
    name = "exploding"

    def __init__(self) -> None:
        self.calls = 0

    def validate(self, prompt: str | None, output: str) -> ValidationResult | None:
        self.calls += 1
        raise RuntimeError("validator bug")


class WrongType:
    name = "wrong_type"

    def validate(self, prompt: str | None, output: str) -> object:
        return True


def test_run_never_raises_counts_and_logs_a_failing_validator_once(caplog: pytest.LogCaptureFixture) -> None:
    exploding = Exploding()
    validators = ValidatorSet([exploding, WrongType()], include_runtime=False)
    validators.add({"kind": "length", "name": "short", "max_chars": 5})
    with caplog.at_level(logging.ERROR, logger="llm_telemetry.processors.quality.validator_set"):
        for _ in range(3):
            results = validators.run("f", "m", "prompt", "a longer output")
            assert results == [ValidationResult("short", False, 5 / 15, "15 chars > max 5")]
    assert exploding.calls == 3
    assert validators.errors == {"exploding": 3, "wrong_type": 3}
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "validator 'exploding' raised" in messages[0] and "validator bug" in caplog.records[0].exc_text  # type: ignore[operator]
    assert "validator 'wrong_type' returned a bool, not a ValidationResult" in messages[1]
    assert validators.run("f", "m", "prompt", None) == []  # type: ignore[arg-type]


def test_validators_added_at_run_time() -> None:
    validators = ValidatorSet(include_runtime=True)
    assert validators.run("support", "gpt-4o", None, "Sorry, no.") == []
    add_validator({"kind": "must_not_match", "name": "no_sorry", "pattern": "(?i)sorry"}, feature="support*")
    try:
        assert [r.validator for r in validators.run("support", "gpt-4o", None, "Sorry, no.")] == ["no_sorry"]
        assert validators.run("billing", "gpt-4o", None, "Sorry, no.") == []
        with pytest.raises(ConfigError, match="already added"):
            add_validator({"kind": "json", "name": "no_sorry"})
    finally:
        assert remove_validator("no_sorry")
    assert validators.run("support", "gpt-4o", None, "Sorry, no.") == []
    own = ValidatorSet(include_runtime=False)
    own.add({"kind": "json", "name": "json"}, model=["gpt-*"])
    assert [r.passed for r in own.run(None, "gpt-4o", None, "{}")] == [True]
    assert own.run(None, "claude", None, "{}") == []
    with pytest.raises(ConfigError, match="duplicate validator name 'json'"):
        own.add({"kind": "json"})
    with pytest.raises(ConfigError, match="needs a non-empty `name` and a `validate"):
        own.add(object())  # type: ignore[arg-type]
