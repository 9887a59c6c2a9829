"""Offline faithfulness: is every claim of an answer supported by the given context? No model, no download.

The source's heuristic (share of answer words that occur anywhere in the context) calls an answer
faithful when it reuses the context's vocabulary — which a wrong answer does: "issued on 2025-03-04"
against a context saying "issued 03/04/2025" (DD/MM) shares almost every word. Here instead:

1. The answer is split into claims (sentences, clauses ended by ``;`` and lines).
2. Each claim's content words (stop words dropped, light stemming), numbers and dates are extracted.
   Dates are normalised to (year, month, day) — ``03/04/2025``, ``3 April 2025``, ``April 3rd, 2025``
   and ``2025-04-03`` are the same date — reading numeric dates in the order the context declares
   (``DD/MM/YYYY`` written in it), else infers (a first field > 12 means day first), else ``date_order``.
3. A claim is *supported* when one context window (a sentence, or two adjacent ones) holds all of its
   numbers and dates exactly and at least ``word_support`` of its content words. A claim with a number
   or date that appears nowhere in the context is *contradicted*: a changed amount or a transposed date
   fails the check whatever the word overlap.

Score = supported claims / claims (claims with no content words, e.g. "Sure.", are skipped). The check
passes when no claim is contradicted and the score reaches its threshold.
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass, field

DateKey = tuple[int, int, int]

_MONTHS = {
    name: number
    for number, names in enumerate(
        (("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
         ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"), ("november", "nov"),
         ("december", "dec")),
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<mon>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_ORD = r"(?:st|nd|rd|th)?"
_ISO = re.compile(r"\b(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})\b")
_NUMERIC = re.compile(r"\b(?P<a>\d{1,2})(?P<sep>[/.\-])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4}|\d{2})\b")
_DAY_MONTH = re.compile(rf"\b(?P<d>\d{{1,2}}){_ORD}\s+(?:of\s+)?{_MONTH},?\s+(?P<y>\d{{4}})\b", re.IGNORECASE)
_MONTH_DAY = re.compile(rf"\b{_MONTH}\s+(?P<d>\d{{1,2}}){_ORD},?\s+(?P<y>\d{{4}})\b", re.IGNORECASE)
_DECLARED = re.compile(r"\b(?P<first>DD?|MM?)[/.\-](?P<second>DD?|MM?)[/.\-](?:YYYY|YY)\b")
_NUMBER = re.compile(r"(?<![\w.])[-+]?[$€£]?\d[\d,]*(?:\.\d+)?%?")
_WORD = re.compile(r"[a-z][a-z'\-]*")
_CLAIM_SPLIT = re.compile(r"(?<=[.!?;])\s+|\n+")
_NUMBER_WORD_TEXT = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty"
)
_NUMBER_WORDS = {
    **{w: i for i, w in enumerate(_NUMBER_WORD_TEXT.split())},
    **{w: 10 * i for i, w in enumerate(["thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], start=3)},
    "hundred": 100, "thousand": 1000,
}
_STOP_TEXT = (
    """a about above after again against all am an and any are as at be because been before being below between both but by
    can could did do does doing down during each few for from further had has have having he her here hers herself him
    himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or other
    our ours ourselves out over own same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which while who whom why will
    with within without would you your yours yourself yourselves also according based per via whose yes okay ok sure here's it's"""
)
_STOP = frozenset(_STOP_TEXT.split())
_CURRENCY_SYMBOLS = {"$": "dollar", "€": "euro", "£": "pound"}
_CURRENCY_WORDS = {"usd": "dollar", "dollars": "dollar", "eur": "euro", "euros": "euro", "gbp": "pound", "pounds": "pound"}


@dataclass(frozen=True, slots=True)
class ClaimVerdict:
    claim: str
    supported: bool
    contradicted: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Faithfulness:
    """The verdict on one answer: ``score`` in 0..1, per-claim verdicts, and a one-line explanation."""

    score: float
    claims: tuple[ClaimVerdict, ...]
    explanation: str

    @property
    def contradicted(self) -> tuple[ClaimVerdict, ...]:
        return tuple(c for c in self.claims if c.contradicted)

    def passed(self, threshold: float) -> bool:
        return not self.contradicted and self.score >= threshold


@dataclass(slots=True)
class _Facts:
    words: set[str] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)
    dates: set[DateKey] = field(default_factory=set)


@functools.lru_cache(maxsize=16384)
def stem(word: str) -> str:
    """A light suffix stripper: enough to match "invoices"/"invoice", "issued"/"issue", not a linguist."""
    for suffix, repl, min_len in (("ies", "y", 5), ("sses", "ss", 5), ("ing", "", 6), ("ed", "", 5), ("es", "", 5), ("s", "", 4)):
        if word.endswith(suffix) and len(word) >= min_len and not (suffix == "s" and word.endswith("ss")):
            return word[: len(word) - len(suffix)] + repl
    return word


def date_order(text: str, default: str = "DMY") -> str:
    """``DMY`` or ``MDY`` for numeric dates in ``text``: declared (``DD/MM/YYYY``), else inferred, else ``default``."""
    declared = _DECLARED.search(text)
    if declared:
        return "DMY" if declared.group("first").upper().startswith("D") else "MDY"
    day_first = month_first = False
    for m in _NUMERIC.finditer(text):
        a, b = int(m.group("a")), int(m.group("b"))
        day_first |= a > 12 >= b
        month_first |= b > 12 >= a
    if day_first != month_first:
        return "DMY" if day_first else "MDY"
    return default


def _year(text: str) -> int:
    y = int(text)
    return y if len(text) == 4 else (2000 + y if y < 70 else 1900 + y)


def _valid(y: int, m: int, d: int) -> bool:
    return 1 <= m <= 12 and 1 <= d <= 31


def _number(token: str) -> str | None:
    raw = token.strip("+$€£%")
    negative = raw.startswith("-")
    raw = raw.lstrip("-")
    if "," in raw:
        if not re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", raw):
            return None
        raw = raw.replace(",", "")
    try:
        value = float(raw)
    except ValueError:
        return None
    text = format(value, "g") if value != int(value) else str(int(value))
    return ("-" + text) if negative and value else text


def facts(text: str, order: str) -> _Facts:
    """Content-word stems, normalised numbers and (y, m, d) dates of ``text``; numeric dates read in ``order``."""
    out = _Facts()
    spans: list[tuple[int, int]] = []

    def add(m: re.Match[str], y: int, mo: int, d: int) -> None:
        if _valid(y, mo, d):
            out.dates.add((y, mo, d))
            out.numbers.add(str(y))  # "in 2025" is supported by a context date in 2025
            spans.append(m.span())

    for m in _ISO.finditer(text):
        add(m, int(m.group("y")), int(m.group("m")), int(m.group("d")))
    for m in _NUMERIC.finditer(text):
        a, b = int(m.group("a")), int(m.group("b"))
        d, mo = (a, b) if order == "DMY" else (b, a)
        add(m, _year(m.group("y")), mo, d)
    for pattern in (_DAY_MONTH, _MONTH_DAY):
        for m in pattern.finditer(text):
            add(m, int(m.group("y")), _MONTHS[m.group("mon").lower()], int(m.group("d")))
    rest = text
    if spans:  # blank the dates out so their parts are not read again as numbers
        pieces, last = [], 0
        for start, end in sorted(spans):
            if start >= last:
                pieces += [text[last:start], " "]
                last = end
        rest = "".join([*pieces, text[last:]])
    for m in _NUMBER.finditer(rest):
        value = _number(m.group())
        if value is not None:
            out.numbers.add(value)
            symbol = next((c for c in m.group() if c in _CURRENCY_SYMBOLS), None)
            if symbol:
                out.words.add(_CURRENCY_SYMBOLS[symbol])
    for word in _WORD.findall(rest.lower()):
        word = word.strip("'-")
        if word in _NUMBER_WORDS:
            out.numbers.add(str(_NUMBER_WORDS[word]))
        elif word in _MONTHS and len(word) > 3:
            out.words.add(word[:3])
        elif word in _CURRENCY_WORDS:
            out.words.add(_CURRENCY_WORDS[word])
        elif len(word) > 1 and word not in _STOP:
            out.words.add(stem(word))
    # A year alone in the context ("fiscal 2025") must support "2025" in the answer, and dates' years do already.
    return out


def split_claims(text: str) -> list[str]:
    return [c.strip() for c in _CLAIM_SPLIT.split(text) if c and c.strip()]


def check_faithfulness(answer: str, context: str, *, word_support: float = 0.6, default_order: str = "DMY") -> Faithfulness:
    """Judge ``answer`` against ``context`` claim by claim (see the module docstring)."""
    order = date_order(context, default_order)
    sentences = split_claims(context)
    sentence_facts = [facts(s, order) for s in sentences]
    windows = list(sentence_facts)
    for first, second in itertools.pairwise(sentence_facts):
        windows.append(_Facts(first.words | second.words, first.numbers | second.numbers, first.dates | second.dates))
    everything = _Facts()
    for f in sentence_facts:
        everything.words |= f.words
        everything.numbers |= f.numbers
        everything.dates |= f.dates

    verdicts: list[ClaimVerdict] = []
    for claim in split_claims(answer):
        c = facts(claim, order)
        if not (c.words or c.numbers or c.dates):
            continue
        missing_dates = c.dates - everything.dates
        missing_numbers = c.numbers - everything.numbers
        if missing_dates or missing_numbers:
            what = [f"date {y:04d}-{m:02d}-{d:02d}" for y, m, d in sorted(missing_dates)]
            what += [f"number {n}" for n in sorted(missing_numbers)]
            verdicts.append(ClaimVerdict(claim, False, True, f"{', '.join(what)} not in the context"))
            continue
        best = 0.0
        for w in windows:
            if c.dates <= w.dates and c.numbers <= w.numbers:
                recall = len(c.words & w.words) / len(c.words) if c.words else 1.0
                best = max(best, recall)
        if best >= word_support:
            verdicts.append(ClaimVerdict(claim, True, False, f"{best:.0%} of its words in one context passage"))
        else:
            verdicts.append(ClaimVerdict(claim, False, False, f"only {best:.0%} of its words in any context passage"))
    if not verdicts:
        return Faithfulness(1.0, (), "no factual claims in the answer")
    supported = sum(v.supported for v in verdicts)
    score = supported / len(verdicts)
    bad = [v for v in verdicts if not v.supported]
    explanation = f"{supported}/{len(verdicts)} claims supported by the context"
    if bad:
        first = bad[0]
        kind = "contradicted" if first.contradicted else "unsupported"
        explanation += f"; {kind}: {_quote(first.claim)} ({first.reason})"
        if len(bad) > 1:
            explanation += f" and {len(bad) - 1} more"
    return Faithfulness(score, tuple(verdicts), explanation)


def _quote(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
