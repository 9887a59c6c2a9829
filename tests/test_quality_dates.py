"""The built-in date-consistency validator: formats found, format declared / inferred / learned, verdicts."""

from __future__ import annotations

import json
import random
from datetime import date

import pytest
from _quality_story import invoice_call

from llm_telemetry.config import ConfigError
from llm_telemetry.processors.quality.dates import (
    DAY_FIRST,
    MONTH_FIRST,
    DateConsistencyValidator,
    find_dates,
    find_dates_in_years,
    parse_order,
)
from llm_telemetry.processors.quality.validators import build_validator

PROMPT = "Invoice issued 05/03/2024, payment due 25/03/2024."


@pytest.mark.parametrize(
    ("text", "fixed", "pairs"),
    [
        ("issued 2024-03-05, due 2024/04/04 or 2024.05.06", [(2024, 3, 5), (2024, 4, 4), (2024, 5, 6)], []),
        ("on 05/03/2024 and 5.3.2024 and 05-03-2024", [], [(5, 3, 2024), (5, 3, 2024), (5, 3, 2024)]),
        ("short year 05/03/24, not 5.3.24", [], [(5, 3, 2024)]),
        ("3 April 2025; April 3, 2025; the 3rd of April, 2025; Apr. 3 2025; APRIL 3, 2025",
         [(2025, 4, 3)] * 5, []),
        ("at 2024-03-05T10:00:00Z", [(2024, 3, 5)], []),
    ],
)
def test_finds_numeric_iso_and_month_name_dates(text: str, fixed: list, pairs: list) -> None:
    found = find_dates(text)
    assert found is not None
    assert found.fixed == fixed
    assert found.pairs == pairs


@pytest.mark.parametrize(
    "text",
    [
        "no dates here at all",
        "version 1.5.20, phone 020-7946-0958, order 12345-06-07, 3.14159",
        "The Mayor of March 2024 may go",  # a month and a year are no date
        "totals 1,234.50 and 2024 units",
    ],
)
def test_no_date_is_none(text: str) -> None:
    assert find_dates(text) is None


def test_year_anchored_reading_finds_the_same_dates_as_a_full_scan() -> None:
    rng = random.Random(7)
    for _ in range(200):
        call = invoice_call(rng, transposed=False)
        full = find_dates(call.prompt)
        assert full is not None
        years = {y for _, _, y in full.pairs}
        near = find_dates_in_years(call.prompt, years)
        assert sorted(near.pairs) == sorted(full.pairs)
    text = "From 3 April 2025 to April 30, 2025 (ref 2025-05-01, 01/06/2025, 3.4.2025; not 05/03-2025 or 12025)"
    near = find_dates_in_years(text, {2025})
    assert sorted(near.fixed) == [(2025, 4, 3), (2025, 4, 30), (2025, 5, 1)]
    assert near.pairs == [(1, 6, 2025), (3, 4, 2025)]
    # Two-digit years are looked for when no date carries the full year.
    assert find_dates_in_years("issued 01/06/25, due 15/06/25", {2025}).pairs == [(1, 6, 2025), (15, 6, 2025)]


def test_correct_dates_pass_and_transposed_ones_fail_under_a_declared_format() -> None:
    validator = DateConsistencyValidator("dates", input_format=DAY_FIRST)
    good = validator.validate(PROMPT, '{"issued": "2024-03-05", "due": "2024-03-25"}')
    assert good is not None and good.passed and good.score == 1.0
    assert good.explanation == "2 output date(s) all found in the input; input format DD/MM/YYYY (declared)"
    bad = validator.validate(PROMPT, '{"issued": "2024-05-03", "due": "2024-03-25"}')
    assert bad is not None and not bad.passed and bad.score == 0.5
    assert "1 transposed (day/month swapped)" in bad.explanation and "0 not in the input" in bad.explanation
    assert "2024-05-03" not in bad.explanation  # content capture off: counts only


def test_content_capture_names_the_dates() -> None:
    validator = DateConsistencyValidator(input_format=DAY_FIRST, capture_content=True)
    result = validator.validate(PROMPT, "Issued 2024-05-03, due 2024-03-25, reminder on 2024-07-01.")
    assert result is not None and not result.passed
    assert result.validator == "date_consistency"
    assert "transposed: 2024-05-03 (input 2024-03-05)" in result.explanation
    assert "not in the input: 2024-07-01" in result.explanation
    assert result.score == pytest.approx(1 / 3)


def test_format_is_inferred_from_an_unambiguous_input_date() -> None:
    validator = DateConsistencyValidator(learn_format=False)
    result = validator.validate(PROMPT, "issued 2024-05-03")  # 25/03 shows the input is day first
    assert result is not None and not result.passed
    assert "(inferred)" in result.explanation and "1 transposed" in result.explanation
    us = validator.validate("Order placed 03/25/2024, shipped 04/05/2024", "shipped 2024-05-04")
    assert us is not None and not us.passed and "MM/DD/YYYY (inferred)" in us.explanation


def test_an_ambiguous_input_without_known_format_accepts_either_reading() -> None:
    validator = DateConsistencyValidator(learn_format=False)
    result = validator.validate("Issued 05/03/2024.", "issued 2024-05-03")
    assert result is not None and result.passed
    assert "input format unknown, 1 ambiguous input date(s) accepted either way" in result.explanation


def test_format_is_learned_from_earlier_inputs() -> None:
    validator = DateConsistencyValidator()
    rng = random.Random(3)
    while validator.learned_order is None:
        call = invoice_call(rng, transposed=False)
        validator.validate(call.prompt, call.output)
    assert validator.learned_order == DAY_FIRST
    result = validator.validate("Issued 05/03/2024.", "issued 2024-05-03")
    assert result is not None and not result.passed and "DD/MM/YYYY (learned)" in result.explanation


def test_mixed_evidence_learns_nothing() -> None:
    validator = DateConsistencyValidator()
    for _ in range(20):
        validator.validate("on 25/03/2024", "2024-03-25")
        validator.validate("on 03/25/2024", "2024-03-25")
    assert validator.learned_order is None


def test_numeric_output_dates_follow_the_declared_output_format() -> None:
    same = DateConsistencyValidator(input_format=DAY_FIRST)
    assert same.validate(PROMPT, "due 25/03/2024, issued 05/03/2024").passed  # type: ignore[union-attr]
    swapped = same.validate(PROMPT, "issued 03/05/2024")
    assert swapped is not None and "1 transposed" in swapped.explanation
    us_output = DateConsistencyValidator(input_format=DAY_FIRST, output_format=MONTH_FIRST)
    assert us_output.validate(PROMPT, "issued 03/05/2024, due 03/25/2024").passed  # type: ignore[union-attr]
    month_names = DateConsistencyValidator(input_format=DAY_FIRST)
    assert month_names.validate(PROMPT, "issued 5 March 2024, due March 25, 2024").passed  # type: ignore[union-attr]
    assert not month_names.validate(PROMPT, "issued May 3, 2024").passed  # type: ignore[union-attr]


def test_dates_only_in_the_output_are_reported() -> None:
    validator = DateConsistencyValidator(input_format=DAY_FIRST)
    result = validator.validate(PROMPT, "issued 2024-03-05; next review 2024-09-30")
    assert result is not None and not result.passed
    assert "1 matched, 0 transposed (day/month swapped), 1 not in the input" in result.explanation


def test_not_applicable_cases() -> None:
    validator = DateConsistencyValidator()
    assert validator.validate(PROMPT, "no date in this answer") is None
    assert validator.validate(None, "2024-03-05") is None
    assert validator.validate("a chat question without dates", "today is 2024-03-05") is None
    strict = DateConsistencyValidator(skip_without_input_dates=False)
    result = strict.validate("a question without dates", "the deadline is 2024-03-05")
    assert result is not None and not result.passed and "1 not in the input" in result.explanation


def test_every_source_story_transposition_of_a_swappable_date_is_caught() -> None:
    rng = random.Random(11)
    validator = DateConsistencyValidator(input_format=DAY_FIRST)
    undetectable = 0
    for _ in range(300):
        good = invoice_call(rng, transposed=False)
        assert validator.validate(good.prompt, good.output).passed  # type: ignore[union-attr]
        bad = invoice_call(rng, transposed=True)
        result = validator.validate(bad.prompt, bad.output)
        assert result is not None
        output = json.loads(bad.output)
        in_output = {output["issue_date"], output["due_date"]}
        in_input = {date(y, m, d).isoformat() for d, m, y in find_dates(bad.prompt).pairs}  # type: ignore[union-attr]
        if bad.broken and in_output == in_input:
            undetectable += 1  # issued 02/01, due 01/02: each swapped date is the other input date
            continue
        assert result.passed == (not bad.broken)
    assert undetectable <= 5  # of 300


@pytest.mark.parametrize("value", ["DD/MM/YYYY", "d.m.y", "DMY", "day_first", "dd-mm-yy"])
def test_day_first_spellings(value: str) -> None:
    assert parse_order(value) == DAY_FIRST


def test_bad_format_option_names_validator_and_key() -> None:
    assert parse_order("MM/DD/YYYY") == MONTH_FIRST and parse_order("auto") is None
    with pytest.raises(ConfigError, match=r"here: validator 'd': `input_format` = 'YYYY-MM-DD': must be auto"):
        build_validator({"kind": "date_consistency", "name": "d", "input_format": "YYYY-MM-DD"}, where="here")
    validator = build_validator({"kind": "date_consistency", "input_format": "DD/MM/YYYY"}, where="here")
    assert validator.name == "date_consistency"
    assert isinstance(validator, DateConsistencyValidator) and validator.input_order == DAY_FIRST
