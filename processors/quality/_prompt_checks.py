"""The kinds that hold the output to its prompt: ``in_prompt`` (extracted values must occur in the prompt)
and ``numbers_in_prompt`` (numbers must occur in the prompt) — the cheap guards against an extraction
that invents a name, an amount or an id.

Values come from the output through an RE2 ``pattern`` (the group named ``value``, else group 1, else
the whole match) or a JSON ``field`` path (see `_json_checks`). Both kinds are not applicable without a
prompt or when nothing was extracted.

Numbers (``numbers_in_prompt``): ``1,234.50`` and ``1234.5`` are the same number (``decimal_comma =
true`` reads ``1.234,50``); signs are ignored (an output's ``-10.00`` discount matches the prompt's
``10.00``); numbers below ``ignore_below`` in absolute value are skipped (list numbering, small counts).
Parts of dates are numbers too (``2024-03-25`` is 2024, 3 and 25), so a date's numbers match in any
format; whether its day and month were read right is the date-consistency validator's job.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from llm_telemetry.config import ConfigError
from llm_telemetry.processors.quality._json_checks import compile_path, is_json, parse_json, path_text, select
from llm_telemetry.processors.quality._spec import Spec, ValidationResult, quote

IN_PROMPT_KEYS = ("pattern", "field", "ignore_case", "normalize_whitespace")
NUMBERS_KEYS = ("pattern", "field", "ignore_below", "decimal_comma")

# A number starts after no letter, digit or decimal point (INV20931 and the 20 of 1.5.20 are no numbers).
_NUMBER = re.compile(r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+(?![\d,]\d)|\d+)(?:\.\d+)?(?!\d)")
_NUMBER_DECIMAL_COMMA = re.compile(r"(?<![\w,])(?:\d{1,3}(?:\.\d{3})+(?![\d.]\d)|\d+)(?:,\d+)?(?!\d)")


class _Extractor:
    """Values of the output through an RE2 pattern or a JSON path."""

    def __init__(self, regexp: Any = None, path: tuple[Any, ...] | None = None) -> None:
        self._regexp = regexp
        self._path = path
        if regexp is not None:
            self._group: int | str = "value" if "value" in regexp.groupindex else (1 if regexp.groups >= 1 else 0)
        self.label = f"field {path_text(path)}" if path is not None else "pattern"

    def values(self, output: str) -> list[str] | None:
        """The extracted values as text; ``None`` when the output is not JSON and a field was asked for."""
        if self._regexp is not None:
            out: list[str] = []
            try:
                matches = self._regexp.finditer(output)
            except UnicodeEncodeError:
                matches = self._regexp.finditer(output.encode("utf-8", "replace").decode("utf-8"))
            for match in matches:
                value = match.group(self._group)
                if value:
                    out.append(value)
                if len(out) >= 1000:
                    break
            return out
        value, _ = parse_json(output)
        if not is_json(value):
            return None
        return [_as_text(item) for item in select(value, self._path) if item is not None and not isinstance(item, (dict, list))]  # type: ignore[arg-type]


def _as_text(item: Any) -> str:
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, float) and item.is_integer():
        return str(int(item))
    return str(item)


def _extractor(spec: Spec, compile_re2: Callable[[Spec, str], Any], *, required: bool) -> _Extractor | None:
    has_pattern, has_field = "pattern" in spec.raw, "field" in spec.raw
    if has_pattern and has_field:
        raise ConfigError(f"{spec.where}: validator {spec.name!r} (kind {spec.kind}): set `pattern` or `field`, not both")
    if has_pattern:
        return _Extractor(regexp=compile_re2(spec, "pattern"))
    if has_field:
        return _Extractor(path=compile_path(spec, "field", spec.text("field")))
    if required:
        raise ConfigError(f"{spec.where}: validator {spec.name!r} (kind {spec.kind}): set `pattern` or `field`")
    return None


class InPromptValidator:
    """Every value extracted from the output occurs in the prompt (after optional case and whitespace folding)."""

    kind = "in_prompt"

    def __init__(self, name: str, extractor: _Extractor, *, ignore_case: bool = False, normalize_whitespace: bool = True,
                 capture_content: bool = False) -> None:
        self.name = name
        self._extractor = extractor
        self._ignore_case = ignore_case
        self._normalize = normalize_whitespace
        self._capture = capture_content

    def _fold(self, text: str) -> str:
        if self._normalize:
            text = " ".join(text.split())
        return text.casefold() if self._ignore_case else text

    def validate(self, prompt: str | None, output: str) -> ValidationResult | None:
        if prompt is None:
            return None
        values = self._extractor.values(output)
        if not values:
            return None
        haystack = self._fold(prompt)
        missing = [value for value in values if self._fold(value) not in haystack]
        found = len(values) - len(missing)
        if not missing:
            return ValidationResult(self.name, True, 1.0, f"{found} value(s) from the {self._extractor.label} all in the prompt")
        text = f"{len(missing)} of {len(values)} value(s) from the {self._extractor.label} not in the prompt"
        if self._capture:
            text += ": " + ", ".join(quote(value) for value in missing[:5])
        return ValidationResult(self.name, False, found / len(values), text)


class NumbersInPromptValidator:
    """Every number of the output (or of the extracted values) occurs in the prompt."""

    kind = "numbers_in_prompt"

    def __init__(self, name: str, extractor: _Extractor | None = None, *, ignore_below: float = 0.0, decimal_comma: bool = False,
                 capture_content: bool = False) -> None:
        self.name = name
        self._extractor = extractor
        self._ignore_below = ignore_below
        self._regex = _NUMBER_DECIMAL_COMMA if decimal_comma else _NUMBER
        self._decimal_comma = decimal_comma
        self._capture = capture_content

    def _numbers(self, texts: Iterable[str]) -> list[tuple[float, str]]:
        out: list[tuple[float, str]] = []
        for text in texts:
            for token in self._regex.findall(text):
                plain = token.replace(".", "").replace(",", ".") if self._decimal_comma else token.replace(",", "")
                value = float(plain)
                if value >= self._ignore_below:
                    out.append((value, token))
        return out

    def validate(self, prompt: str | None, output: str) -> ValidationResult | None:
        if prompt is None:
            return None
        texts: list[str] | None = [output]
        if self._extractor is not None:
            texts = self._extractor.values(output)
            if texts is None:
                return None
        numbers = self._numbers(texts)
        if not numbers:
            return None
        known = {value for value, _ in self._numbers((prompt,))}
        missing = [token for value, token in numbers if value not in known]
        found = len(numbers) - len(missing)
        if not missing:
            return ValidationResult(self.name, True, 1.0, f"{found} number(s) all in the prompt")
        text = f"{len(missing)} of {len(numbers)} number(s) not in the prompt"
        if self._capture:
            text += ": " + ", ".join(quote(token) for token in missing[:5])
        return ValidationResult(self.name, False, found / len(numbers), text)


def build_in_prompt(spec: Spec, capture: bool, compile_re2: Callable[[Spec, str], Any]) -> InPromptValidator:
    extractor = _extractor(spec, compile_re2, required=True)
    assert extractor is not None
    return InPromptValidator(
        spec.name, extractor, ignore_case=spec.flag("ignore_case", False),
        normalize_whitespace=spec.flag("normalize_whitespace", True), capture_content=capture,
    )


def build_numbers(spec: Spec, capture: bool, compile_re2: Callable[[Spec, str], Any]) -> NumbersInPromptValidator:
    return NumbersInPromptValidator(
        spec.name, _extractor(spec, compile_re2, required=False),
        ignore_below=float(spec.number("ignore_below", 0.0, minimum=0.0)),
        decimal_comma=spec.flag("decimal_comma", False), capture_content=capture,
    )
