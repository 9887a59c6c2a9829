"""Golden dataset files: JSONL and YAML, every check type, and errors that name the file and line."""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _eval_helpers import DATES_YAML

from llm_telemetry.processors.quality.checks import (
    ContainsCheck,
    ExactCheck,
    FaithfulnessCheck,
    JsonFieldCheck,
    RegexCheck,
    Sample,
    build_check,
)
from llm_telemetry.processors.quality.datasets import Case, DatasetError, dataset_from_records, load_dataset


def run(check: Any, output: str, *, expected: str | None = None, context: str = "", prompt: str = "q") -> Any:
    case = Case("c", prompt, expected, context=(context,) if context else ())
    return check.run(Sample(case, output, context))


def test_yaml_dataset_with_defaults_system_and_per_case_checks(write_dataset: Any) -> None:
    ds = load_dataset(write_dataset(DATES_YAML))
    assert ds.name == "invoice-dates"
    assert [c.id for c in ds.cases] == ["inv-0304", "inv-2503", "inv-0711"]
    first = ds.cases[0]
    assert first.system == "Extract the invoice date as ISO 8601. Input dates are DD/MM/YYYY."
    assert first.expected == "2025-04-03"
    assert [type(c) for c in first.checks] == [ExactCheck]  # no checks + an expected answer: exact
    assert [type(c) for c in ds.cases[2].checks] == [ExactCheck, RegexCheck]
    assert ds.cases[2].where.endswith("ds.yaml:10")


def test_jsonl_dataset_with_messages_context_and_every_check_type(write_dataset: Any) -> None:
    path = write_dataset([
        {"id": "rag-1", "input": "When was the invoice issued?", "context": ["Invoice 7 was issued on 03/04/2025.", "It is paid."],
         "expected": "3 April 2025",
         "checks": ["exact", {"contains": ["April", "2025"]}, {"regex": {"pattern": "\\d{4}", "name": "has_year"}},
                    {"faithfulness": "offline"}, {"type": "faithfulness", "method": "judge", "threshold": 0.9, "name": "judged"}]},
        {"id": 2, "messages": [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "Total?"}],
         "checks": [{"json_field": {"path": "invoice.total", "equals": 1200.5}}], "metadata": {"owner": "billing"}},
    ], name="golden.jsonl")
    ds = load_dataset(path)
    assert ds.name == "golden"
    rag, js = ds.cases
    assert rag.context_text == "Invoice 7 was issued on 03/04/2025.\n\nIt is paid."
    assert [c.name for c in rag.checks] == ["exact", "contains", "has_year", "faithfulness", "judged"]
    judged = rag.checks[4]
    assert isinstance(judged, FaithfulnessCheck) and (judged.method, judged.threshold) == ("judge", 0.9)
    assert js.id == "2" and isinstance(js.input, list) and js.metadata == {"owner": "billing"}
    assert isinstance(js.checks[0], JsonFieldCheck)
    assert "Total?" in js.prompt_text and "Answer in JSON." in js.prompt_text


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ('{"id": "a", "input": "x", "expected": "y"}\n{"id": "b", "input": "x", "expcted": "y"}\n', "d.jsonl",
         "d.jsonl:2: unknown case key 'expcted'"),
        ('{"id": "a", "input": "x"}\n\n{"id": "b", "input": "x",}\n', "d.jsonl", "d.jsonl:3: not valid JSON"),
        ("cases:\n  - id: a\n    input: x\n    checks: [exact]\n", "d.yaml", "d.yaml:4 (case 'a'): check 'exact' needs `expected`"),
        ("cases:\n  - id: a\n    input: x\n  - id: a\n    input: y\n", "d.yaml", "d.yaml:4: duplicate case id 'a' (first at"),
        ("cases:\n  - id: a\n    input: x\n    checks:\n      - regex: '(unclosed'\n", "d.yaml",
         "d.yaml:4 (case 'a'): check 'regex': bad regular"),
        ("cases:\n  - id: a\n    input: x\n    checks: [{contains: {facts: [b], case: false}}]\n", "d.yaml",
         "unknown option(s) case for check 'contains'"),
        ("cases:\n  - id: a\n    input: x\n    checks: [sentiment]\n", "d.yaml", "unknown check 'sentiment'"),
        ("cases:\n  - id: a\n    input: x\n    checks: [{faithfulness: {method: vibes}}]\n", "d.yaml", "`method` must be offline or judge"),
        ("cases:\n  - id: a\n    input: x\n    system: [1]\n", "d.yaml", "d.yaml:4: `system` must be a string"),
        ("cases:\n  - id: a\n    prompt: x\n", "d.yaml", "d.yaml:3: unknown case key 'prompt'"),
        ("cases:\n  - id: a\n    input: x\n      bad: indent\n", "d.yaml", "d.yaml:4: not valid YAML"),
        ("name: x\ncase:\n  - id: a\n", "d.yaml", "d.yaml:2: unknown dataset key 'case'"),
        ("", "d.jsonl", "the dataset has no cases"),
        ("cases:\n  - id: a\n", "d.txt", "unknown dataset format '.txt'"),
    ],
)
def test_bad_datasets_name_the_file_and_line(write_dataset: Any, content: str, name: str, message: str) -> None:
    with pytest.raises(DatasetError) as info:
        load_dataset(write_dataset(content, name=name))
    assert message in str(info.value)


def test_unquoted_yaml_dates_and_numbers_stay_answers(write_dataset: Any) -> None:
    path = write_dataset("cases:\n  - id: 1\n    input: x\n    expected: 2025-04-03\n    checks: [exact, {contains: [2025, 04/03]}]\n"
                         "  - id: 2\n    input: y\n    expected: 42\n")
    first, second = load_dataset(path).cases
    assert (first.id, first.expected, second.expected) == ("1", "2025-04-03", "42")
    assert first.checks[1].facts == ("2025", "04/03")


def test_missing_file_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cannot read dataset"):
        load_dataset(tmp_path / "nope.yaml")


def test_exact_contains_regex_and_json_field_results() -> None:
    assert run(ExactCheck(), "  2025-04-03 \n", expected="2025-04-03").passed
    miss = run(ExactCheck(), "2025-03-04", expected="2025-04-03")
    assert (miss.passed, miss.score, miss.explanation) == (False, 0.0, "expected '2025-04-03', got '2025-03-04'")

    contains = run(ContainsCheck(("Acme", "30 days", "2025-04-03")), "ACME, payable in 30 days, from 2025-03-04")
    assert not contains.passed and contains.score == pytest.approx(2 / 3)
    assert "missing 1/3 key facts: '2025-04-03'" in contains.explanation
    assert not run(ContainsCheck(("30",)), "due in 300 days").passed  # "30" is a whole number, not part of 300

    assert run(RegexCheck(r"^\d{4}-\d{2}-\d{2}$"), "2025-04-03").passed
    assert run(RegexCheck("sorry", must_match=False), "Sorry, I cannot").passed  # case-sensitive: no match
    assert not run(RegexCheck("(?i)sorry", must_match=False), "Sorry, I cannot").passed

    json_check = JsonFieldCheck("invoice.lines.0.sku", "A-1")
    assert run(json_check, '```json\n{"invoice": {"lines": [{"sku": "A-1"}]}}\n```').passed
    wrong = run(json_check, '{"invoice": {"lines": [{"sku": "B-2"}]}}')
    assert not wrong.passed and wrong.explanation == 'invoice.lines.0.sku = "B-2", expected "A-1"'
    assert run(json_check, "not json").explanation.startswith("output is not JSON")
    assert run(json_check, '{"invoice": {}}').explanation == "no field 'invoice.lines.0.sku' in the output JSON"


def test_faithfulness_check_needs_context() -> None:
    result = run(FaithfulnessCheck(), "The invoice was issued on 2025-04-03.")
    assert (result.passed, result.error) == (False, "no_context")


# --- validator checks: the section-1 validators, through their fixed interface -----------------------------


@dataclass(frozen=True, slots=True)
class _ValidationResult:
    validator: str
    passed: bool
    score: float
    explanation: str


class _MaxLength:
    """A stand-in validator with the interface of llm_telemetry.processors.quality.validators."""

    name = "max_length"

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def validate(self, prompt: str | None, output: str) -> _ValidationResult | None:
        if not output:
            return None  # not applicable
        ok = len(output) <= self.limit
        return _ValidationResult(self.name, ok, 1.0 if ok else 0.0, "" if ok else f"{len(output)} chars > {self.limit} (prompt {prompt!r})")


def _build_validator(spec: Mapping[str, Any], *, where: str) -> _MaxLength:
    if spec.get("type") != "max_length":
        raise ValueError(f"{where}: unknown validator type {spec.get('type')!r}")
    return _MaxLength(int(spec["max"]))


@pytest.fixture
def standin_validators(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real module is written in parallel with this interface; the test checks our side of it.
    module = types.ModuleType("llm_telemetry.processors.quality.validators")
    module.build_validator = _build_validator  # type: ignore[attr-defined]
    module.ValidationResult = _ValidationResult  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)


def test_validator_check_uses_build_validator_and_skips_when_not_applicable(standin_validators: None) -> None:
    ds = dataset_from_records([{"id": "v", "input": "Say hi", "checks": [{"validator": {"type": "max_length", "max": 5}}]}])
    (check,) = ds.cases[0].checks
    assert check.name == "max_length"
    ok, too_long = run(check, "hi", prompt="Say hi"), run(check, "hello there", prompt="Say hi")
    assert ok.passed and not too_long.passed
    assert too_long.explanation == "11 chars > 5 (prompt 'Say hi')"
    assert run(check, "") is None


def test_validator_spec_errors_name_where(standin_validators: None, write_dataset: Any) -> None:
    path = write_dataset("cases:\n  - id: a\n    input: x\n    checks:\n      - validator: {type: sentiment}\n")
    with pytest.raises(DatasetError, match=r"d?s\.yaml:4 \(case 'a'\): unknown validator type 'sentiment'"):
        load_dataset(path)


def test_function_evaluators_accept_langsmith_style_results() -> None:
    def faithfulness_evaluator(output: str, case: Case) -> dict[str, Any]:
        return {"key": "overlap", "score": 0.25, "comment": "low overlap"}

    check = build_check(faithfulness_evaluator, where="test")
    result = run(check, "x")
    assert (result.name, result.passed, result.score, result.explanation) == ("overlap", False, 0.25, "low overlap")
    assert run(build_check(lambda output, case: True, where="t"), "x").passed
    boom = run(build_check(lambda output, case: 1 / 0, where="t"), "x")
    assert not boom.passed and boom.error == "ZeroDivisionError"
