"""Finding dates in text, fast: the part of the date-consistency validator (`dates`) that reads texts.

Formats: numeric ``D/M/Y`` or ``M/D/Y`` (separators ``/ . -``; 2-digit years with ``/`` only), year-first
``YYYY-MM-DD`` (also ``/`` and ``.``; always year, month, day), and English month names (``3 April 2025``,
``3rd of April, 2025``, ``April 3, 2025``, ``Apr. 3 2025``; capitalised or upper-case month). Years
1900-2099 are found reliably (the no-date fast path looks for ``19`` / ``20``). Dates without a year are
not dates here.

Speed (CPython's regex engine costs a few ns per character it has to try a pattern at, ~0.3 µs per match
object): `find_dates` scans once with a regex whose every branch starts with a literal (a date separator
followed by digits, or a month name's capital), so the engine skips through the text in C and stops only
at real candidates. `find_dates_in_years` reads the input only around the years the output mentions,
with one regex per year that starts with the year's literal digits (string-search speed) and reads day
and month through fixed-width lookbehinds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DAY_FIRST = "dmy"
MONTH_FIRST = "mdy"

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


def valid_date(y: int, m: int, d: int) -> bool:
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
