"""The refusal phrase pack: which outputs count as refusals for the refusal-rate statistic.

The bundled pack (``refusals.toml``, English plus six European languages) can be extended with a
user file of the same format (``quality.stats_refusals_file``). Matching is one compiled alternation of
the escaped phrases over the lower-cased start of the output: refusals open the answer, and reading a
bounded prefix keeps the cost flat whatever the output length.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import re2

from llm_telemetry.config import ConfigError

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def _line_of(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if re.match(rf"^\s*\[?\s*{re.escape(key)}\s*[\]=]", line):
            return number
    return None


def parse_phrase_pack(text: str, source: str) -> dict[str, tuple[str, ...]]:
    """``[phrases] <language> = ["...", ...]`` → language → phrases; errors name the source, key and line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    for key in data:
        if key != "phrases":
            line = _line_of(text, key)
            where = f"{source}, line {line}" if line else source
            raise ConfigError(f"{where}: unknown key {key!r} in a refusal phrase file (expected one table [phrases])")
    table = data.get("phrases", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [phrases] must be a table of language = [phrases]")
    out: dict[str, tuple[str, ...]] = {}
    for language, phrases in table.items():
        if not isinstance(phrases, list) or not all(isinstance(p, str) and p.strip() for p in phrases):
            line = _line_of(text, language)
            where = f"{source}, line {line}" if line else source
            raise ConfigError(f"{where}: phrases.{language} must be a list of non-empty strings, got {phrases!r}")
        out[language] = tuple(p.strip().lower().translate(_APOSTROPHES) for p in phrases)
    return out


def load_phrases(user_file: Path | None = None) -> dict[str, tuple[str, ...]]:
    """The bundled pack, extended by ``user_file`` (its phrases are added to the same languages)."""
    bundled = resources.files("llm_telemetry.processors.quality").joinpath("refusals.toml").read_text(encoding="utf-8")
    pack = parse_phrase_pack(bundled, "bundled refusals.toml")
    if user_file is not None:
        try:
            text = user_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"quality.stats_refusals_file = {str(user_file)!r}: cannot read: {exc.strerror or exc}") from None
        for language, phrases in parse_phrase_pack(text, str(user_file)).items():
            pack[language] = pack.get(language, ()) + phrases
    return pack


class RefusalMatcher:
    """Does the start of an output contain a refusal phrase?"""

    __slots__ = ("_pattern", "phrase_count", "sample_chars")

    def __init__(self, phrases: Iterable[str], sample_chars: int = 600) -> None:
        unique = sorted({p.lower().translate(_APOSTROPHES) for p in phrases}, key=len, reverse=True)
        self.phrase_count = len(unique)
        self.sample_chars = sample_chars
        # RE2 (a DFA, already our safety screen's engine): ~4 µs for 600 characters where Python's
        # backtracking alternation of the same phrases takes ~25 µs.
        self._pattern = re2.compile(r"\b(?:" + "|".join(re.escape(p) for p in unique) + ")") if unique else None

    @classmethod
    def from_pack(cls, pack: dict[str, tuple[str, ...]], sample_chars: int = 600) -> RefusalMatcher:
        return cls((p for phrases in pack.values() for p in phrases), sample_chars)

    def matches(self, text: str) -> bool:
        if self._pattern is None or not text:
            return False
        sample = text[: self.sample_chars].lower()
        if not sample.isascii():
            sample = sample.translate(_APOSTROPHES)
        return self._pattern.search(sample) is not None
