"""The built-in date-consistency validator: every date in the output must be a date of the input.

The source story: invoices carry ``05/03/2024`` meaning 5 March; after a silent model update the
extraction returns ``2024-05-03``. Nothing else moves (latency, cost, errors), and only dates whose day
is at most 12 can be transposed at all, so a fraction of outputs goes wrong and looks plausible.

How a call is checked:

- Dates are found in both texts: numeric ``D/M/Y`` or ``M/D/Y`` (separators ``/ . -``, years 1900-2099;
  2-digit years with ``/`` only), year-first ``YYYY-MM-DD`` (also ``/`` and ``.``; always year, month,
  day), and English month names (``3 April 2025``, ``3rd of April, 2025``, ``April 3, 2025``,
  ``Apr. 3 2025``; capitalised or upper-case month). Dates without a year are not dates here.
- The input's numeric dates are read under its format: declared (``input_format = "DD/MM/YYYY"``),
  else inferred from this input (``25/03/2024`` can only be day first), else learned from earlier
  inputs seen by this validator (at least `LEARN_MIN_VOTES` inputs that showed their order, with
  `LEARN_MIN_SHARE` of them agreeing). An input date that is still ambiguous counts under both readings
  (then its transposition cannot be told apart, and is not reported).
- Each output date is *matched* (it is an input date), *transposed* (its day/month swap is an input
  date: the source's failure) or *unmatched* (it appears only in the output). Numeric output dates are
  read under ``output_format`` if declared, else under the input's format.
- The result: passed when every output date is matched; score = matched / output dates. Not applicable
  (``None``) when the output has no date, when there is no prompt, or when the input has no date and
  ``skip_without_input_dates`` is true (the default: a chat answer that mentions a date is no contract
  breach; set it false for extraction features, where a date the input lacks is invented).

Speed: see `_date_finding` (about 9 µs per call for a 500-character output and input with two dates each,
measured by benchmarks/bench_quality_validators.py).
"""

from __future__ import annotations

import re

from llm_telemetry.processors.quality._date_finding import (
    DAY_FIRST,
    MONTH_FIRST,
    FoundDates,
    find_dates,
    find_dates_in_years,
    valid_date,
)
from llm_telemetry.processors.quality._spec import Spec, ValidationResult

__all__ = [
    "DAY_FIRST", "MONTH_FIRST", "DateConsistencyValidator", "FoundDates", "build", "find_dates", "find_dates_in_years", "parse_order",
]

LEARN_MIN_VOTES = 10
LEARN_MIN_SHARE = 0.95

_FORMAT_NAMES = {DAY_FIRST: "DD/MM/YYYY", MONTH_FIRST: "MM/DD/YYYY"}

def parse_order(value: str) -> str | None:
    """``DD/MM/YYYY``-like spellings (any separators, ``D.M.Y``, ``DMY``), ``day_first``, ``month_first``
    or ``auto`` → `DAY_FIRST`, `MONTH_FIRST` or ``None``; raises ValueError otherwise."""
    text = value.strip().lower()
    if text in ("auto", ""):
        return None
    if text in ("day_first", "day-first"):
        return DAY_FIRST
    if text in ("month_first", "month-first"):
        return MONTH_FIRST
    letters = "".join(dict.fromkeys(ch for ch in text if ch in "dmy"))
    if letters == "dmy" and re.fullmatch(r"[dmy/.\- ]+", text):
        return DAY_FIRST
    if letters == "mdy" and re.fullmatch(r"[dmy/.\- ]+", text):
        return MONTH_FIRST
    raise ValueError(
        "must be auto, DD/MM/YYYY (day first) or MM/DD/YYYY (month first); year-first dates are always read as year-month-day"
    )


def _iso(y: int, m: int, d: int) -> str:
    return f"{y:04d}-{m:02d}-{d:02d}"


class DateConsistencyValidator:
    """Every date of the output is a date of the input, read under the input's declared or inferred format."""

    kind = "date_consistency"

    def __init__(
        self,
        name: str = "date_consistency",
        *,
        input_format: str | None = None,
        output_format: str | None = None,
        learn_format: bool = True,
        skip_without_input_dates: bool = True,
        capture_content: bool = False,
    ) -> None:
        self.name = name
        self.input_order = input_format
        self.output_order = output_format
        self.learn_format = learn_format
        self.skip_without_input_dates = skip_without_input_dates
        self.capture_content = capture_content
        self._votes = {DAY_FIRST: 0, MONTH_FIRST: 0}
        self._pass_texts: dict[tuple[object, ...], str] = {}

    @property
    def learned_order(self) -> str | None:
        """The order most inputs showed, once `LEARN_MIN_VOTES` showed one and `LEARN_MIN_SHARE` agree."""
        day, month = self._votes[DAY_FIRST], self._votes[MONTH_FIRST]
        total = day + month
        if total < LEARN_MIN_VOTES:
            return None
        if day >= LEARN_MIN_SHARE * total:
            return DAY_FIRST
        if month >= LEARN_MIN_SHARE * total:
            return MONTH_FIRST
        return None

    def _input_order(self, near: FoundDates, prompt: str, full: FoundDates | None) -> tuple[str | None, str]:
        """The input's day/month order and where it came from (declared, inferred, learned or unknown).

        ``near`` holds the input dates in the output's years; only when one of them is ambiguous and the
        order is not declared or learned is the whole input scanned for a date that shows its order.
        """
        evidence = near.evidence()
        if evidence is None and self.input_order is None and any(a != b and a <= 12 and b <= 12 for a, b, _ in near.pairs):
            if full is None:
                full = find_dates(prompt)
            evidence = full.evidence() if full is not None else None
        if evidence is not None and self.learn_format:
            self._votes[evidence] += 1  # racy under threads, harmless: a vote more or less
        if self.input_order is not None:
            return self.input_order, "declared"
        if evidence is not None:
            return evidence, "inferred"
        learned = self.learned_order if self.learn_format else None
        if learned is not None:
            return learned, "learned"
        return None, "unknown"

    def validate(self, prompt: str | None, output: str) -> ValidationResult | None:
        if prompt is None:  # no input to compare with (a span without content, e.g. in the gateway): skip the scan
            return None
        out = find_dates(output)
        if out is None:
            return None
        years = {y for y, _, _ in out.fixed}
        years.update(y for _, _, y in out.pairs)
        inp = find_dates_in_years(prompt, years)
        full = None
        if not inp:
            full = find_dates(prompt)
            if full is None and self.skip_without_input_dates:
                return None
        order, order_source = self._input_order(inp, prompt, full)
        known, ambiguous = _input_dates(inp, order)
        matched, transposed, unmatched = _classify(out, known, self.output_order or order)
        if not transposed and not unmatched:
            key = (matched, order, order_source, ambiguous)
            text = self._pass_texts.get(key)
            if text is None:
                text = f"{matched} output date(s) all found in the input; {_format_note(order, order_source, ambiguous)}"
                if len(self._pass_texts) < 256:
                    self._pass_texts[key] = text
            return ValidationResult(self.name, True, 1.0, text)
        total = matched + len(transposed) + len(unmatched)
        text = (
            f"{total} output date(s): {matched} matched, {len(transposed)} transposed (day/month swapped), "
            f"{len(unmatched)} not in the input; {_format_note(order, order_source, ambiguous)}"
        )
        if self.capture_content:
            if transposed:
                text += "; transposed: " + ", ".join(f"{_iso(*got)} (input {_iso(*want)})" for got, want in transposed[:5])
            if unmatched:
                text += "; not in the input: " + ", ".join(_iso(*date) for date in unmatched[:5])
        return ValidationResult(self.name, False, matched / total, text)


def _input_dates(inp: FoundDates, order: str | None) -> tuple[set[int], int]:
    """The input's dates as ``yyyymmdd`` integers under ``order``, and how many stayed ambiguous."""
    known = {y * 10000 + m * 100 + d for y, m, d in inp.fixed}
    ambiguous = 0
    for a, b, y in inp.pairs:
        day_first, month_first = valid_date(y, b, a), valid_date(y, a, b)
        if (order == DAY_FIRST and day_first) or (day_first and not month_first):
            known.add(y * 10000 + b * 100 + a)
        elif (order == MONTH_FIRST and month_first) or (month_first and not day_first):
            known.add(y * 10000 + a * 100 + b)
        elif day_first:  # both readings valid, order unknown: accept either
            known.add(y * 10000 + b * 100 + a)
            known.add(y * 10000 + a * 100 + b)
            ambiguous += a != b
    return known, ambiguous


Date = tuple[int, int, int]


def _classify(out: FoundDates, known: set[int], order: str | None) -> tuple[int, list[tuple[Date, Date]], list[Date]]:
    """Output dates matched, transposed (with the input date they swap) and not in the input."""
    matched = 0
    transposed: list[tuple[Date, Date]] = []
    unmatched: list[Date] = []
    dates = out.fixed
    if out.pairs:
        dates = list(out.fixed)
        for a, b, y in out.pairs:
            if order == DAY_FIRST:
                dates.append((y, b, a))
            elif order == MONTH_FIRST:
                dates.append((y, a, b))
            elif y * 10000 + b * 100 + a in known or y * 10000 + a * 100 + b in known:
                matched += 1
            else:
                unmatched.append((y, b, a))
    for y, m, d in dates:
        if y * 10000 + m * 100 + d in known:
            matched += 1
        elif m != d and y * 10000 + d * 100 + m in known:
            transposed.append(((y, m, d), (y, d, m)))
        else:
            unmatched.append((y, m, d))
    return matched, transposed, unmatched


def _format_note(order: str | None, source: str, ambiguous: int) -> str:
    note = f"input format {_FORMAT_NAMES[order]} ({source})" if order else "input format unknown"
    if ambiguous:
        note += f", {ambiguous} ambiguous input date(s) accepted either way"
    return note


KEYS = ("input_format", "output_format", "learn_format", "skip_without_input_dates")


def build(spec: Spec, capture_content: bool) -> DateConsistencyValidator:
    orders: dict[str, str | None] = {}
    for key in ("input_format", "output_format"):
        value = spec.text(key, "auto")
        try:
            orders[key] = parse_order(value)
        except ValueError as exc:
            raise spec.error(key, f"= {value!r}: {exc}") from None
    return DateConsistencyValidator(
        spec.name,
        input_format=orders["input_format"],
        output_format=orders["output_format"],
        learn_format=spec.flag("learn_format", True),
        skip_without_input_dates=spec.flag("skip_without_input_dates", True),
        capture_content=capture_content,
    )
