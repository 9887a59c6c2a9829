"""Every validator kind, built as from a validators file entry: verdicts, scores, content-free explanations."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llm_telemetry import attributes as a
from llm_telemetry.config import ConfigError
from llm_telemetry.processors.quality.validators import KINDS, ValidationResult, Validator, build_validator

PROMPT = "Invoice INV-20931 from ACME Supplies Ltd. Net 1,234.50 EUR, VAT 246.90 EUR, total 1,481.40 EUR. Customer: Jane Doe."
OUTPUT = json.dumps(
    {"invoice": "INV-20931", "supplier": "ACME Supplies Ltd", "customer": {"name": "Jane Doe"},
     "lines": [{"amount": 1234.5}, {"amount": 246.9}], "total": 1481.4}
)


def build(spec: dict[str, Any], *, capture: bool = False) -> Validator:
    return build_validator(spec, where="test entry", capture_content=capture)


def check(spec: dict[str, Any], output: str = OUTPUT, prompt: str | None = PROMPT, *, capture: bool = False) -> ValidationResult | None:
    return build(spec, capture=capture).validate(prompt, output)


def test_must_match_and_must_not_match() -> None:
    assert check({"kind": "must_match", "pattern": r"INV-\d+"}).passed  # type: ignore[union-attr]
    missing = check({"kind": "must_match", "pattern": r"PO-\d+"})
    assert missing == ValidationResult("must_match", False, 0.0, "required pattern not found")
    assert check({"kind": "must_not_match", "pattern": r"(?i)as an ai"}).passed  # type: ignore[union-attr]
    found = check({"kind": "must_not_match", "name": "no_apology", "pattern": r"(?i)sorry"}, "Sorry, I cannot")
    assert found == ValidationResult("no_apology", False, 0.0, "forbidden pattern found at character 0")
    quoted = check({"kind": "must_not_match", "pattern": r"(?i)sorry"}, "Sorry, I cannot", capture=True)
    assert quoted is not None and quoted.explanation.endswith(": 'Sorry'")


def test_regex_runs_in_linear_time_on_a_pathological_output() -> None:
    # (a+)+$ backtracks exponentially in `re`; RE2 answers at once.
    assert not check({"kind": "must_match", "pattern": r"^(a+)+$"}, "a" * 50_000 + "!").passed  # type: ignore[union-attr]
    assert check({"kind": "must_match", "pattern": r"x"}, "x \ud800 y").passed  # type: ignore[union-attr]  # lone surrogate


def test_json() -> None:
    assert check({"kind": "json"}).passed  # type: ignore[union-attr]
    assert check({"kind": "json"}, "```json\n{\"a\": 1}\n```").passed  # type: ignore[union-attr]
    fenced = check({"kind": "json", "strip_fences": False}, "```json\n{\"a\": 1}\n```")
    assert fenced is not None and not fenced.passed
    broken = check({"kind": "json"}, '{"a": 1,, "secret": "text"}')
    assert broken is not None and not broken.passed
    assert broken.explanation == "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 9"


SCHEMA = {
    "type": "object",
    "required": ["invoice", "total"],
    "properties": {
        "invoice": {"type": "string", "pattern": "^INV-"},
        "total": {"type": "number"},
        "due": {"type": "string", "format": "date"},
    },
}


def test_json_schema() -> None:
    assert check({"kind": "json_schema", "schema": SCHEMA}).passed  # type: ignore[union-attr]
    wrong = check({"kind": "json_schema", "schema": SCHEMA}, '{"invoice": "INV-1", "total": "1481.40 EUR"}')
    assert wrong is not None and not wrong.passed
    assert wrong.explanation == '1 schema error(s); first at $.total: type number'
    assert "1481.40" not in wrong.explanation
    dated = check({"kind": "json_schema", "schema": SCHEMA}, '{"invoice": "INV-1", "total": 1, "due": "2024-25-03"}', capture=True)
    assert dated is not None and not dated.passed and "format date" in dated.explanation and "2024-25-03" in dated.explanation
    assert not check({"kind": "json_schema", "schema": SCHEMA}, "not json").passed  # type: ignore[union-attr]


def test_json_schema_from_a_file(tmp_path) -> None:
    (tmp_path / "invoice.schema.json").write_text(json.dumps(SCHEMA))
    validator = build_validator({"kind": "json_schema", "schema_file": "invoice.schema.json"}, where="x", base_dir=tmp_path)
    assert validator.validate(None, OUTPUT).passed  # type: ignore[union-attr]


def test_in_prompt_by_pattern_and_by_field() -> None:
    assert check({"kind": "in_prompt", "pattern": r"INV-\d+"}).passed  # type: ignore[union-attr]
    assert check({"kind": "in_prompt", "field": "customer.name"}).passed  # type: ignore[union-attr]
    invented = check({"kind": "in_prompt", "field": "supplier"}, '{"supplier": "Globex SARL"}')
    assert invented is not None and not invented.passed
    assert invented.explanation == "1 of 1 value(s) from the field $.supplier not in the prompt"
    named = check({"kind": "in_prompt", "pattern": r"(?i)customer (?P<value>\w+ \w+)", "ignore_case": True}, "Customer JANE DOE")
    assert named is not None and named.passed
    assert check({"kind": "in_prompt", "field": "missing.path"}) is None  # nothing extracted: not applicable
    assert check({"kind": "in_prompt", "pattern": "INV"}, prompt=None) is None


def test_numbers_in_prompt() -> None:
    result = check({"kind": "numbers_in_prompt", "field": "lines[*].amount"})
    assert result is not None and result.passed and result.explanation == "2 number(s) all in the prompt"
    whole = check({"kind": "numbers_in_prompt"}, "Net 1234.50, VAT 246.9, total 1,481.40; invoice INV-20931.")
    assert whole is not None and whole.passed
    invented = check({"kind": "numbers_in_prompt"}, "total 1,500.00 EUR and VAT 246.90", capture=True)
    assert invented is not None and not invented.passed and invented.score == 0.5
    assert invented.explanation == "1 of 2 number(s) not in the prompt: '1,500.00'"
    assert check({"kind": "numbers_in_prompt", "ignore_below": 10}, "step 1, step 2, 246.90").passed  # type: ignore[union-attr]
    european = check({"kind": "numbers_in_prompt", "decimal_comma": True}, "Summe 1.481,40", prompt="Total 1.481,40 EUR")
    assert european is not None and european.passed
    assert check({"kind": "numbers_in_prompt"}, "no numbers") is None


def test_json_sum() -> None:
    spec = {"kind": "json_sum", "total": "total", "items": "lines[*].amount"}
    ok = check(spec)
    assert ok is not None and ok.passed and ok.explanation == "$.total equals the sum of 2 item(s)"
    off = check(spec, '{"total": 1500, "lines": [{"amount": 1234.5}, {"amount": 246.9}]}')
    assert off is not None and not off.passed and "differs from the sum of 2 item(s) by 18.6" in off.explanation
    parts = check({"kind": "json_sum", "total": "$.total", "items": ["net", "vat"]}, '{"net": "1,234.50", "vat": 246.9, "total": 1481.4}')
    assert parts is not None and parts.passed
    assert check(spec, "not json") is None and check(spec, '{"lines": []}') is None


def test_length() -> None:
    assert check({"kind": "length", "min_chars": 10, "max_words": 50}).passed  # type: ignore[union-attr]
    short = check({"kind": "length", "min_chars": 100}, "too short")
    assert short == ValidationResult("length", False, 0.09, "9 chars < min 100")
    long = check({"kind": "length", "max_words": 2}, "one two three four")
    assert long is not None and not long.passed and long.score == 0.5 and long.explanation == "4 words > max 2"


def returns_bool(prompt: str | None, output: str) -> bool:
    return "INV" in output


def returns_score(prompt: str | None, output: str) -> float:
    return 0.3


def returns_result(prompt: str | None, output: str) -> ValidationResult | None:
    return None if not output else ValidationResult("inner", False, 0.2, "custom reason")


def test_callable_kinds_of_return() -> None:
    assert check({"kind": "callable", "function": f"{__name__}:returns_bool"}).passed  # type: ignore[union-attr]
    scored = check({"kind": "callable", "name": "tone", "function": f"{__name__}:returns_score", "threshold": 0.25})
    assert scored == ValidationResult("tone", True, 0.3, "score 0.3 (threshold 0.25)")
    result = check({"kind": "callable", "name": "mine", "function": f"{__name__}:returns_result"})
    assert result == ValidationResult("mine", False, 0.2, "custom reason")
    assert check({"kind": "callable", "function": f"{__name__}:returns_result"}, "") is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "nope"}, r"test entry: validator 'nope': unknown kind 'nope' \(known: must_match,"),
        ({"name": "x"}, r"validator needs a `kind`"),
        ({"kind": "must_match", "pattern": "(unclosed"},
         r"validator 'must_match': `pattern` = '\(unclosed' is not a valid RE2 regex: missing \)"),
        ({"kind": "must_match", "pattern": "a", "patern": "b"},
         r"unknown key 'patern' \(known: name, kind, feature, model, description, pattern\)"),
        ({"kind": "must_match"}, r"missing required key `pattern`"),
        ({"kind": "json_schema", "schema": {"type": "nonsense"}}, r"`schema` is not a valid JSON Schema: at type: 'nonsense' is not valid"),
        ({"kind": "json_schema"}, r"set exactly one of `schema` or `schema_file`"),
        ({"kind": "json_sum", "total": "a..b", "items": "c"}, r"`total` = 'a..b' is not a JSON path"),
        ({"kind": "length"}, r"set at least one of min_chars"),
        ({"kind": "length", "min_chars": 10, "max_chars": 5}, r"`min_chars` = 10 is above max_chars = 5"),
        ({"kind": "length", "max_words": -1}, r"`max_words` must be an integer >= 0"),
        ({"kind": "callable", "function": "no_such_module_xyz:f"}, r"cannot import module 'no_such_module_xyz'"),
        ({"kind": "callable", "function": "json:nope"}, r"module 'json' has no attribute 'nope'"),
        ({"kind": "in_prompt"}, r"set `pattern` or `field`"),
        ({"kind": "numbers_in_prompt", "decimal_comma": "yes"}, r"`decimal_comma` must be true or false"),
    ],
)
def test_bad_specs_are_config_errors_naming_the_validator(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(spec)


def test_every_kind_is_tested_here() -> None:
    with open(__file__, encoding="utf-8") as handle:
        source = handle.read()
    for kind in KINDS:
        assert f'"kind": "{kind}"' in source or kind == "date_consistency"  # dates: test_quality_dates.py


def test_result_event_attributes_use_the_semconv_names() -> None:
    result = ValidationResult("dates", False, 0.5, "1 transposed")
    assert result.label == "fail"
    assert result.event_attributes() == {
        a.EVALUATION_NAME: "dates",
        a.EVALUATION_SCORE_VALUE: 0.5,
        a.EVALUATION_SCORE_LABEL: "fail",
        a.EVALUATION_EXPLANATION: "1 transposed",
    }
