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

Speed: the clean path is one pre-compiled regex scan whose every branch starts with a literal character
(a date separator followed by digits, or a month name's capital), so Python's regex engine skips through
the text in C and only stops at real candidates; the texts are only parsed further around those.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llm_telemetry.processors.quality._spec import Spec, ValidationResult

LEARN_MIN_VOTES = 10
LEARN_MIN_SHARE = 0.95

DAY_FIRST = "dmy"
MONTH_FIRST = "mdy"
_FORMAT_NAMES = {DAY_FIRST: "DD/MM/YYYY", MONTH_FIRST: "MM/DD/YYYY"}

# Every branch starts with a literal (the separator before a date's middle number, or a month's capital),
# so the regex engine skips through the text in C to the few places worth a look. The numeric branches
# capture the middle and last numbers; the first number is read just before the match.
_CANDIDATE = re.compile(
    r"/(\d\d?)/(\d{4}|\d\d?)(?!\d)|-(\d\d?)-(\d{4}|\d\d?)(?!\d)|\.(\d\d?)\.(\d{4}|\d\d?)(?!\d)"
    r"|J(?:an|u[nl])|Feb|Ma[ry]|A(?:pr|ug)|Sep|Oct|Nov|Dec|JAN|FEB|MA[RY]|A(?:PR|UG)|JU[NL]|SEP|OCT|NOV|DEC"
)
_MONTH = re.compile(
    r"(January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?(?![A-Za-z])",
    re.IGNORECASE,
)
_DAY_YEAR_AFTER = re.compile(r"\s+(\d\d?)(?:st|nd|rd|th)?,?\s+(\d{4})(?!\d)")
_YEAR_AFTER = re.compile(r",?\s+(\d{4})(?!\d)")
_DAY_BEFORE = re.compile(r"(?<!\d)(\d\d?)(?:st|nd|rd|th)?\s+(?:of\s+)?\Z")
# Read backwards from a year found by string search (see `find_dates_in_years`).
_DAY_MONTH_BEFORE = re.compile(r"(?<!\d)(\d\d?)([/.\-])(\d\d?)\2\Z")
_DAY_BEFORE_YEAR = re.compile(r"(?<!\d)(\d\d?)(?:st|nd|rd|th)?,?\s+\Z")
_WORD_BEFORE = re.compile(r"(?<![A-Za-z])([A-Za-z]{3,9})\.?\s+\Z")
_WORD_BEFORE_YEAR = re.compile(r"(?<![A-Za-z])([A-Za-z]{3,9})\.?,?\s+\Z")
_MONTH_NUMBER = {
    name: number
    for number, names in enumerate(
        (("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
         ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
         ("dec", "december")),
        start=1,
    )
    for name in names
}
_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _valid(y: int, m: int, d: int) -> bool:
    if not 1 <= m <= 12 or not 1 <= d <= _DAYS[m]:
        return False
    return not (m == 2 and d == 29 and (y % 4 != 0 or (y % 100 == 0 and y % 400 != 0)))


@dataclass(slots=True)
class FoundDates:
    """Dates found in one text: ``fixed`` have a known order (year-first or month name); ``pairs`` are
    numeric ``(a, b, year)`` whose day/month order depends on the text's format."""

    fixed: list[tuple[int, int, int]]
    pairs: list[tuple[int, int, int]]

    def __len__(self) -> int:
        return len(self.fixed) + len(self.pairs)

    def evidence(self) -> str | None:
        """The order this text shows on its own (a part above 12), or ``None`` (none, or both orders)."""
        day_first = month_first = False
        for a, b, _ in self.pairs:
            if a > 12 and b <= 12:
                day_first = True
            elif b > 12 and a <= 12:
                month_first = True
        if day_first != month_first:
            return DAY_FIRST if day_first else MONTH_FIRST
        return None


def find_dates(text: str) -> FoundDates | None:
    """The dates in ``text``, or ``None`` when it has none (the fast path)."""
    if "20" not in text and "19" not in text and "/" not in text:
        return None  # no year 1900-2099 and no slashed 2-digit year: three C substring searches
    fixed: list[tuple[int, int, int]] = []
    pairs: list[tuple[int, int, int]] = []
    end = 0
    for candidate in _CANDIDATE.finditer(text):
        at = candidate.start()
        if at < end:
            continue  # inside a date already read
        last = candidate.lastindex
        if last is None:
            end = _month_date(text, at, fixed)
            continue
        middle, tail = candidate.group(last - 1, last)
        if at >= 4 and text[at - 4 : at].isdigit():
            if len(tail) > 2 or (at > 4 and text[at - 5].isdigit()):
                continue  # 2024-03-2024, or a longer number
            fixed.append((int(text[at - 4 : at]), int(middle), int(tail)))
        else:
            lead = text[at - 2 : at] if at >= 2 and text[at - 2 : at].isdigit() else text[at - 1 : at]
            if not lead.isdigit() or (at > len(lead) and text[at - len(lead) - 1].isdigit()):
                continue
            if len(tail) == 4:
                pairs.append((int(lead), int(middle), int(tail)))
            elif len(tail) == 2 and last == 2:  # 2-digit year: slashes only (1.5.20 is a version number)
                pairs.append((int(lead), int(middle), _century(int(tail))))
            else:
                continue
        end = candidate.end()
    if not fixed and not pairs:
        return None
    return FoundDates(fixed, pairs)


def _century(year: int) -> int:
    return year + (2000 if year < 70 else 1900)


def _month_date(text: str, at: int, fixed: list[tuple[int, int, int]]) -> int:
    """Read ``April 3, 2025`` or ``3 April 2025`` around the month name at ``at``; returns where it ended."""
    if at and text[at - 1].isalpha():
        return at
    word = _MONTH.match(text, at)
    if word is None:
        return at
    month = _MONTH_NUMBER[word.group(1).lower()]
    after = _DAY_YEAR_AFTER.match(text, word.end())
    if after is not None:
        fixed.append((int(after.group(2)), month, int(after.group(1))))
        return after.end()
    day = _DAY_BEFORE.search(text, max(0, at - 12), at)
    if day is not None:
        year = _YEAR_AFTER.match(text, word.end())
        if year is not None:
            fixed.append((int(year.group(1)), month, int(day.group(1))))
            return year.end()
    return word.end()


_YEAR_PATTERN = (
    r"YEAR(?<!\d\d\d\d\d)(?!\d)(?:"  # the year, not inside a longer number; then what surrounds it:
    r"(?<=(?<!\d)(\d\d)([/.\-])(\d\d)[/.\-]\d{4})"  # DD/MM/YYYY (lookbehinds are fixed-width: one per width)
    r"|(?<=(?<!\d)(\d)([/.\-])(\d\d)[/.\-]\d{4})"
    r"|(?<=(?<!\d)(\d\d)([/.\-])(\d)[/.\-]\d{4})"
    r"|(?<=(?<!\d)(\d)([/.\-])(\d)[/.\-]\d{4})"
    r"|([/.\-])(\d\d?)\13(\d\d?)(?!\d)"  # YYYY-MM-DD
    r"|(?<=[ ,\t\n]\d{4})"  # after a space or comma: maybe a month-name date, read in Python
    r")"
)
_year_patterns: dict[int, re.Pattern[str]] = {}


def _year_regex(year: int) -> re.Pattern[str]:
    pattern = _year_patterns.get(year)
    if pattern is None:
        if len(_year_patterns) >= 512:
            _year_patterns.clear()
        pattern = _year_patterns[year] = re.compile(_YEAR_PATTERN.replace("YEAR", str(year)))
    return pattern


def find_dates_in_years(text: str, years: set[int]) -> FoundDates:
    """The dates of ``text`` whose year is one of ``years``: read only around each occurrence of a year.

    Why: the input is usually longer than the output, and only its dates in the output's years can match
    or be transposed. A regex that starts with the year's literal digits is searched at C string-search
    speed (no per-character work elsewhere), and its fixed-width lookbehinds read the day and month.
    """
    fixed: list[tuple[int, int, int]] = []
    pairs: list[tuple[int, int, int]] = []
    for year in years:
        for match in _year_regex(year).finditer(text):
            last = match.lastindex
            if last is None:
                _month_date_before_year(text, match.start(), year, fixed)
            elif last <= 12:
                first, separator, middle = match.group(last - 2, last - 1, last)
                if text[match.start() - 1] == separator:  # 05/03-2024 is no date
                    pairs.append((int(first), int(middle), year))
            else:
                fixed.append((year, int(match.group(14)), int(match.group(15))))
        if not fixed and not pairs and _century(year % 100) == year:
            _two_digit_years(text, year, pairs)
    return FoundDates(fixed, pairs)


def _two_digit_years(text: str, year: int, pairs: list[tuple[int, int, int]]) -> None:
    """``05/03/24`` for 2024 (slashes only), looked for when the text shows no date with the full year."""
    short = f"/{year % 100:02d}"
    at = text.find(short)
    while at != -1:
        if not text[at + 3 : at + 4].isdigit():
            before = _DAY_MONTH_BEFORE.search(text, max(0, at - 5), at + 1)
            if before is not None and before.group(2) == "/":
                pairs.append((int(before.group(1)), int(before.group(3)), year))
        at = text.find(short, at + 3)


def _month_date_before_year(text: str, at: int, year: int, fixed: list[tuple[int, int, int]]) -> None:
    """``April 3, 2025`` or ``3 April 2025`` ending with the year at ``at``."""
    day = _DAY_BEFORE_YEAR.search(text, max(0, at - 8), at)
    if day is not None:  # April 3, 2025
        month = _WORD_BEFORE.search(text, max(0, day.start() - 12), day.start())
        if month is not None and month.group(1).lower() in _MONTH_NUMBER:
            fixed.append((year, _MONTH_NUMBER[month.group(1).lower()], int(day.group(1))))
        return
    month = _WORD_BEFORE_YEAR.search(text, max(0, at - 14), at)
    if month is not None and month.group(1).lower() in _MONTH_NUMBER:  # 3 April 2025
        day = _DAY_BEFORE.search(text, max(0, month.start() - 12), month.start())
        if day is not None:
            fixed.append((year, _MONTH_NUMBER[month.group(1).lower()], int(day.group(1))))


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
        out = find_dates(output)
        if out is None or prompt is None:
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
        day_first, month_first = _valid(y, b, a), _valid(y, a, b)
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
