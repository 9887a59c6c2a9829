"""The fast safety screen: every pattern compiled once into one RE2 set, scanned in linear time.

Why RE2 and a set: the text being screened is model output, which an attacker can steer; Python's
``re`` backtracks and a pattern like ``(a+)+$`` on 100 kB of ``a`` never returns. RE2 guarantees time
linear in the input, and ``re2.Set`` runs *all* patterns in one DFA pass, so the clean path (almost
every output) is one C call that reports only the always-matching sentinel. Only for the patterns the
set reports does the screen run their own compiled regex, and only when it needs the matched text
(a validator such as Luhn, or the match for the span when content capture is on).

Out of memory: ``RE2::Set`` has no NFA fallback; when its DFA runs out of ``max_mem`` it reports *no
match* and the Python binding (google-re2, ``_re2.Set.Match``) drops the error kind. RE2 probes the
DFA when the set compiles (a set too big for ``max_mem`` fails to compile: a `ConfigError` naming
``safety.max_mem_mb``), but to never mistake a failure at scan time for "clean", the set carries a
sentinel pattern (``\\z``) that matches every text: an answer without it is an error, and the screen
then falls back to running each pattern's own RE2 regex (which does fall back to the NFA, still linear)
and reports ``error="re2_set_out_of_memory"`` so it is counted.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import re2

from llm_telemetry.config import ConfigError, SafetySettings, env_var
from llm_telemetry.processors.safety.patterns import ACTION_RANK, Pattern, resolve_patterns
from llm_telemetry.processors.safety.validators import VALIDATORS, Validator

logger = logging.getLogger(__name__)

ERROR_SET_OUT_OF_MEMORY = "re2_set_out_of_memory"
MAX_MATCHES_PER_PATTERN = 5
MAX_MATCH_CHARS = 200
"""Bounds on reported match text: a user pattern like ``a+`` must not put 100 kB on a span."""
_SENTINEL = r"\z"


@dataclass(frozen=True, slots=True)
class ScreenResult:
    """What the screen found in one text. ``matches`` is only filled when asked for."""

    action: str = "none"
    """Strongest action of the matched patterns: ``block`` > ``flag`` > ``none``."""
    pattern_ids: tuple[str, ...] = ()
    """Sorted, like ``categories``."""
    categories: tuple[str, ...] = ()
    matches: tuple[str, ...] = ()
    """``"<pattern id>: <matched text>"``, masked for ``mask = true`` patterns, bounded in count and size."""
    flags: tuple[tuple[str, str], ...] = ()
    """Distinct (category, action) pairs, for the flags metric."""
    error: str | None = None

    @property
    def flagged(self) -> bool:
        return self.action != "none"

    def merge(self, other: ScreenResult) -> ScreenResult:
        """Union of two results (e.g. output and prompt)."""
        if not other.flagged and other.error is None:
            return self
        if not self.flagged and self.error is None:
            return other
        action = self.action if ACTION_RANK[self.action] >= ACTION_RANK[other.action] else other.action
        return ScreenResult(
            action=action,
            pattern_ids=tuple(sorted({*self.pattern_ids, *other.pattern_ids})),
            categories=tuple(sorted({*self.categories, *other.categories})),
            matches=self.matches + tuple(m for m in other.matches if m not in self.matches),
            flags=tuple(sorted({*self.flags, *other.flags})),
            error=self.error or other.error,
        )


CLEAN = ScreenResult()


# --- bounded inline screening ----------------------------------------------------------------------------
#
# The screen is linear, but not equally fast on every text: RE2's DFA runs several times slower per byte
# on digit-heavy text (card- or IBAN-like groups keep many patterns alive at once) than on prose, and it
# runs on the thread that ended the span — the app's, at the end of a stream. So only the first
# ``inline_chars`` are screened inline; the rest is screened later (a background lane), in overlapping
# windows so that a match across a cut is not lost.

SCREEN_OVERLAP_CHARS = 1024
"""Overlap of consecutive windows: any match up to this long lies whole in one window. Longer matches of
the bundled patterns (keys, tokens) also match by a prefix of this length, so they are still detected."""


@dataclass(frozen=True, slots=True)
class ScreenPlan:
    """How one text is screened: ``text[:inline_end]`` now, then each ``windows`` slice later.

    Cuts fall after whitespace where there is any near them, so that a window boundary is never a word
    boundary the text does not have (which could make ``\\b``-anchored patterns match inside a word).
    """

    text: str
    inline_end: int
    windows: tuple[tuple[int, int], ...] = ()
    """(start, end) of the deferred windows; each overlaps the previous one by >= the overlap."""

    @property
    def inline(self) -> str:
        return self.text if not self.windows else self.text[:self.inline_end]

    @property
    def deferred_chars(self) -> int:
        """Characters not screened inline."""
        return len(self.text) - self.inline_end if self.windows else 0


def plan_screen(text: str, inline_chars: int, *, window_chars: int | None = None, overlap: int = SCREEN_OVERLAP_CHARS) -> ScreenPlan:
    """Split ``text`` into an inline part of at most ``inline_chars`` and overlapping deferred windows.

    ``window_chars`` (default ``inline_chars``) bounds each deferred window; it must exceed three times
    the overlap so that windows advance whatever the cuts. Pure: no screening happens here.
    """
    if len(text) <= inline_chars:
        return ScreenPlan(text, len(text))
    window_chars = inline_chars if window_chars is None else window_chars
    if inline_chars <= overlap or window_chars <= 3 * overlap:
        raise ValueError(f"inline size {inline_chars} must exceed the overlap ({overlap}), window size {window_chars} three times it")
    inline_end = _cut_before(text, inline_chars, inline_chars - overlap)
    windows: list[tuple[int, int]] = []
    end = inline_end
    while end < len(text):
        start = _cut_before(text, end - overlap, end - 2 * overlap)
        end = len(text) if start + window_chars >= len(text) else _cut_before(text, start + window_chars, start + window_chars - overlap)
        windows.append((start, end))
    return ScreenPlan(text, inline_end, tuple(windows))


def _cut_before(text: str, position: int, floor: int) -> int:
    """The last index in (floor, position] right after whitespace, else ``position`` (no whitespace near)."""
    index = position
    while index > floor:
        if text[index - 1].isspace():
            return index
        index -= 1
    return position


class _Compiled:
    __slots__ = ("pattern", "regexp", "validator")

    def __init__(self, pattern: Pattern, regexp: Any, validator: Validator | None) -> None:
        self.pattern = pattern
        self.regexp = regexp
        self.validator = validator


def _error_text(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else exc
    return detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)


class Screen:
    """A compiled pattern set. Thread-safe: RE2 objects are immutable after compilation."""

    def __init__(self, patterns: list[Pattern], max_mem_mb: int = 64) -> None:
        options = re2.Options()
        options.max_mem = max_mem_mb << 20
        options.log_errors = False  # failures are reported here, not on stderr
        self.patterns = tuple(patterns)
        self._compiled: list[_Compiled] = []
        regex_set = re2.Set.SearchSet(options)
        for pattern in patterns:
            try:
                regexp = re2.compile(pattern.regex, options)
            except re2.error as exc:
                raise ConfigError(
                    f"{pattern.where}: pattern {pattern.id!r}: invalid RE2 regex {pattern.regex!r}: {_error_text(exc)}"
                ) from None
            regex_set.Add(pattern.regex)  # cannot fail: the same text just compiled with the same options
            validator = VALIDATORS[pattern.validator] if pattern.validator else None
            self._compiled.append(_Compiled(pattern, regexp, validator))
        self._sentinel = regex_set.Add(_SENTINEL)
        try:
            regex_set.Compile()
        except re2.error:
            raise ConfigError(
                f"safety.max_mem_mb = {max_mem_mb} ({env_var('safety', 'max_mem_mb')}): the RE2 set of {len(patterns)} "
                "safety patterns does not fit in that much memory; raise it or disable patterns"
            ) from None
        self._set = regex_set

    def __len__(self) -> int:
        return len(self._compiled)

    def scan(self, text: str, *, with_matches: bool = False) -> ScreenResult:
        """Screen ``text``. ``with_matches`` also reports the matched text (only when content capture is on)."""
        try:
            hits = self._set.Match(text)
        except UnicodeEncodeError:  # lone surrogates (e.g. from a JSON "\ud800" escape) have no UTF-8 form
            text = text.encode("utf-8", "replace").decode("utf-8")
            hits = self._set.Match(text)
        if hits is not None and len(hits) == 1:  # only the sentinel: the clean path
            return CLEAN
        return self._classify(text, hits, with_matches)

    def _classify(self, text: str, hits: list[int] | None, with_matches: bool) -> ScreenResult:
        error = None
        if not hits or self._sentinel not in hits:
            # The set gave no answer (DFA out of memory): fall back to each pattern's own RE2 regex.
            error = ERROR_SET_OUT_OF_MEMORY
            logger.warning("RE2 pattern set failed on a %d-char text; screened pattern by pattern instead", len(text))
            candidates = [c for c in self._compiled if c.regexp.search(text) is not None]
        else:
            candidates = [self._compiled[i] for i in sorted(hits) if i != self._sentinel]
        ids: list[str] = []
        categories: set[str] = set()
        flags: set[tuple[str, str]] = set()
        matches: list[str] = []
        action = "none"
        for compiled in candidates:
            pattern = compiled.pattern
            found: list[str] = []
            if compiled.validator is not None or with_matches:
                found = self._extract(compiled, text)
                if compiled.validator is not None and not found:
                    continue  # every candidate failed its checksum: not a match
            ids.append(pattern.id)
            categories.add(pattern.category)
            flags.add((pattern.category, pattern.action))
            if ACTION_RANK[pattern.action] > ACTION_RANK[action]:
                action = pattern.action
            if with_matches:
                matches.extend(f"{pattern.id}: {_mask(m) if pattern.mask else m[:MAX_MATCH_CHARS]}" for m in found)
        if not ids and error is None:
            return CLEAN
        return ScreenResult(action, tuple(sorted(ids)), tuple(sorted(categories)), tuple(matches), tuple(sorted(flags)), error)

    def scan_deferred(self, plan: ScreenPlan, *, with_matches: bool = False) -> ScreenResult:
        """Screen the deferred windows of ``plan`` (on a background lane), merged into one result."""
        result = CLEAN
        for start, end in plan.windows:
            result = result.merge(self.scan(plan.text[start:end], with_matches=with_matches))
        return result

    def mask_secrets(self, text: str) -> str:
        """``text`` with every match of a ``mask = true`` pattern replaced by its masked form, as on spans.

        For content kept outside the span (the review queue): a secret the span shows as ``sk-p…(51 chars)``
        is stored as ``sk-p…(51 chars)`` too. Matches that fail the pattern's validator stay as they are.
        """
        maskable = [(i, c) for i, c in enumerate(self._compiled) if c.pattern.mask]
        if not maskable or not text:
            return text
        try:
            hits = self._set.Match(text)
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
            hits = self._set.Match(text)
        if hits is not None and self._sentinel in hits:  # else the set failed: try every maskable pattern
            found = set(hits)
            maskable = [(i, c) for i, c in maskable if i in found]
        for _, compiled in maskable:
            validator = compiled.validator

            def replace(match: Any, validator: Validator | None = validator) -> str:
                candidate = match.group()
                return _mask(candidate) if validator is None or validator(candidate) else candidate

            text = compiled.regexp.sub(replace, text)
        return text

    @staticmethod
    def _extract(compiled: _Compiled, text: str) -> list[str]:
        out: list[str] = []
        for match in compiled.regexp.finditer(text):
            candidate = match.group()
            if compiled.validator is None or compiled.validator(candidate):
                out.append(candidate)
                if len(out) >= MAX_MATCHES_PER_PATTERN:
                    break
        return out


def _mask(text: str) -> str:
    """Enough to recognise a leaked credential's kind, never enough to use it."""
    return f"{text[:4]}…({len(text)} chars)"


# --- the process-wide screens, shared by the enricher and `guard` ---------------------------------------

_screens: dict[tuple[object, ...], Screen] = {}
_screens_lock = threading.Lock()


def screen_for(settings: SafetySettings) -> Screen:
    """The compiled screen for these settings, built once per distinct pattern configuration."""
    key = (settings.patterns_file, settings.disabled_patterns, settings.max_mem_mb)
    screen = _screens.get(key)
    if screen is None:
        with _screens_lock:
            screen = _screens.get(key)
            if screen is None:
                screen = _screens[key] = Screen(resolve_patterns(settings), settings.max_mem_mb)
    return screen
