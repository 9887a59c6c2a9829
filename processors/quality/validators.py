"""Live output validators: declarative content contracts checked on every GenAI output.

One validator is built from one entry of a validators file (or a mapping from Python) by
`build_validator`; its ``kind`` picks the check:

=====================  ==============================================================================
kind                   options (besides ``name``, ``kind``, ``feature``, ``model``, ``description``)
=====================  ==============================================================================
``must_match``         ``pattern`` (RE2): the output must contain a match
``must_not_match``     ``pattern`` (RE2): the output must not contain a match
``json``               ``strip_fences`` (default true: accept one Markdown code fence around the JSON)
``json_schema``        ``schema`` (inline table) or ``schema_file`` (JSON/YAML file), ``strip_fences``
``in_prompt``          ``pattern`` (RE2; group ``value``, else group 1, else the match) or ``field``
                       (JSON path such as ``customer.name`` or ``items[*].sku``); ``ignore_case``:
                       every extracted value must occur in the prompt
``numbers_in_prompt``  optional ``pattern`` / ``field`` to restrict the numbers, ``ignore_below``,
                       ``decimal_comma``: every number of the output must occur in the prompt
``json_sum``           ``total`` and ``items`` (JSON paths), ``tolerance``: total = sum of the items
``length``             ``min_chars``, ``max_chars``, ``min_words``, ``max_words``
``callable``           ``function = "module:function"``, ``threshold``: your own check
``date_consistency``   ``input_format``, ``output_format``, ``learn_format``, ``skip_without_input_dates``
                       (see `dates`)
=====================  ==============================================================================

A validator returns ``None`` when it does not apply (no prompt for ``in_prompt``, no number, no date,
output not JSON for ``json_sum``): such outputs count neither as passes nor as failures. Explanations
name counts, kinds and paths, never prompt or output text, unless the validator is built with
``capture_content=True`` (the `ValidatorSet` passes the process's content-capture setting).

User regexes run on RE2 (linear time: a model output cannot make a check hang), like the safety screen.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import re2

from llm_telemetry.config import ConfigError
from llm_telemetry.processors.quality import _json_checks, _prompt_checks, dates
from llm_telemetry.processors.quality._spec import Spec, ValidationResult, Validator, quote

__all__ = ["KINDS", "ValidationResult", "Validator", "build_validator", "compile_re2"]


def compile_re2(spec: Spec, key: str) -> Any:
    """The RE2 regex under ``key``; a bad one is a `ConfigError` naming the validator and the line."""
    pattern = spec.text(key)
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        detail = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
        raise spec.error(key, f"= {pattern!r} is not a valid RE2 regex: {detail}") from None


def _safe_text(text: str) -> str:
    """RE2 needs UTF-8: lone surrogates (from a JSON ``\\ud800`` escape) are replaced."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


class RegexValidator:
    """``must_match`` / ``must_not_match``: one RE2 search over the output."""

    def __init__(self, name: str, regexp: Any, *, must_match: bool, capture_content: bool = False) -> None:
        self.name = name
        self.kind = "must_match" if must_match else "must_not_match"
        self._regexp = regexp
        self._must_match = must_match
        self._capture = capture_content

    def validate(self, prompt: str | None, output: str) -> ValidationResult:
        try:
            match = self._regexp.search(output)
        except UnicodeEncodeError:
            match = self._regexp.search(_safe_text(output))
        if self._must_match:
            if match is not None:
                return ValidationResult(self.name, True, 1.0, "required pattern found")
            return ValidationResult(self.name, False, 0.0, "required pattern not found")
        if match is None:
            return ValidationResult(self.name, True, 1.0, "forbidden pattern absent")
        text = f"forbidden pattern found at character {match.start()}"
        if self._capture:
            text += f": {quote(match.group())}"
        return ValidationResult(self.name, False, 0.0, text)


class LengthValidator:
    """Output length within bounds, in characters and/or words (``str.split`` words)."""

    kind = "length"

    def __init__(
        self, name: str, *, min_chars: int | None = None, max_chars: int | None = None,
        min_words: int | None = None, max_words: int | None = None,
    ) -> None:
        self.name = name
        self._bounds = (("chars", min_chars, max_chars), ("words", min_words, max_words))
        self._words = min_words is not None or max_words is not None

    def validate(self, prompt: str | None, output: str) -> ValidationResult:
        sizes = {"chars": len(output), "words": len(output.split()) if self._words else 0}
        score = 1.0
        problems: list[str] = []
        for unit, low, high in self._bounds:
            size = sizes[unit]
            if low is not None and size < low:
                problems.append(f"{size} {unit} < min {low}")
                score = min(score, size / low)
            elif high is not None and size > high:
                problems.append(f"{size} {unit} > max {high}")
                score = min(score, high / size)
        if problems:
            return ValidationResult(self.name, False, score, "; ".join(problems))
        return ValidationResult(self.name, True, 1.0, f"{sizes['chars']} chars within bounds")


class CallableValidator:
    """Your function ``f(prompt, output)`` returning a bool, a score in [0, 1] (passed when ≥ ``threshold``),
    a `ValidationResult` (its ``validator`` is set to this validator's name) or ``None`` (not applicable).
    Its explanation is yours: keep content out of it unless content capture is on."""

    kind = "callable"

    def __init__(self, name: str, function: Callable[[str | None, str], Any], *, threshold: float = 0.5) -> None:
        self.name = name
        self._function = function
        self._threshold = threshold

    def validate(self, prompt: str | None, output: str) -> ValidationResult | None:
        value = self._function(prompt, output)
        if value is None:
            return None
        if isinstance(value, ValidationResult):
            return value if value.validator == self.name else replace(value, validator=self.name)
        if isinstance(value, bool):
            return ValidationResult(self.name, value, 1.0 if value else 0.0, f"check returned {value}")
        if isinstance(value, (int, float)):
            score = min(1.0, max(0.0, float(value)))
            return ValidationResult(self.name, score >= self._threshold, score, f"score {score:.3g} (threshold {self._threshold:g})")
        raise TypeError(f"validator {self.name!r}: the function returned a {type(value).__name__}, not a bool, float or ValidationResult")


def load_function(spec: Spec, key: str = "function") -> Callable[..., Any]:
    """Import ``module:function`` (dotted attributes allowed after the colon)."""
    text = spec.text(key)
    module_name, sep, attr_path = text.partition(":")
    if not sep or not module_name or not attr_path:
        raise spec.error(key, f"= {text!r}: expected module:function")
    try:
        target: object = importlib.import_module(module_name)
    except Exception as exc:
        raise spec.error(key, f"= {text!r}: cannot import module {module_name!r}: {exc}") from None
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise spec.error(key, f"= {text!r}: module {module_name!r} has no attribute {attr_path!r}") from None
    if not callable(target):
        raise spec.error(key, f"= {text!r} is a {type(target).__name__}, not a callable")
    return target


# --- the kinds: each declares its keys and builds from a checked Spec -------------------------------

Builder = Callable[[Spec, bool, Path | None], Validator]


def _regex(must_match: bool) -> Builder:
    def build(spec: Spec, capture: bool, base: Path | None) -> Validator:
        return RegexValidator(spec.name, compile_re2(spec, "pattern"), must_match=must_match, capture_content=capture)

    return build


def _length(spec: Spec, capture: bool, base: Path | None) -> Validator:
    bounds = {key: spec.integer(key, None) for key in ("min_chars", "max_chars", "min_words", "max_words")}
    if all(value is None for value in bounds.values()):
        raise ConfigError(f"{spec.where}: validator {spec.name!r} (kind length): set at least one of {', '.join(bounds)}")
    for unit in ("chars", "words"):
        low, high = bounds[f"min_{unit}"], bounds[f"max_{unit}"]
        if low is not None and high is not None and low > high:
            raise spec.error(f"min_{unit}", f"= {low} is above max_{unit} = {high}")
    return LengthValidator(spec.name, **bounds)


def _callable(spec: Spec, capture: bool, base: Path | None) -> Validator:
    return CallableValidator(spec.name, load_function(spec), threshold=spec.number("threshold", 0.5, minimum=0.0, maximum=1.0))


KINDS: Mapping[str, tuple[tuple[str, ...], Builder]] = {
    "must_match": (("pattern",), _regex(True)),
    "must_not_match": (("pattern",), _regex(False)),
    "json": (_json_checks.JSON_KEYS, _json_checks.build_json),
    "json_schema": (_json_checks.SCHEMA_KEYS, _json_checks.build_schema),
    "json_sum": (_json_checks.SUM_KEYS, _json_checks.build_sum),
    "in_prompt": (_prompt_checks.IN_PROMPT_KEYS, lambda spec, capture, base: _prompt_checks.build_in_prompt(spec, capture, compile_re2)),
    "numbers_in_prompt": (
        _prompt_checks.NUMBERS_KEYS, lambda spec, capture, base: _prompt_checks.build_numbers(spec, capture, compile_re2),
    ),
    "length": (("min_chars", "max_chars", "min_words", "max_words"), _length),
    "callable": (("function", "threshold"), _callable),
    "date_consistency": (dates.KEYS, lambda spec, capture, base: dates.build(spec, capture)),
}
"""Every kind: the option keys it accepts and its builder ``(spec, capture_content, base_dir)``."""


def build_spec(spec: Spec, *, capture_content: bool = False, base_dir: Path | None = None) -> Validator:
    """Build from a `Spec` (the file loader's entry point: its Spec locates each key's line)."""
    entry = KINDS.get(spec.kind)
    if entry is None:
        raise ConfigError(f"{spec.at('kind')}: validator {spec.name!r}: unknown kind {spec.kind!r} (known: {', '.join(KINDS)})")
    keys, builder = entry
    spec.check_keys(keys)
    return builder(spec, capture_content, base_dir)


def build_validator(
    spec: Mapping[str, Any], *, where: str, capture_content: bool = False, base_dir: Path | None = None,
) -> Validator:
    """One validator from one entry of a validators file (or an equivalent mapping built in Python).

    ``where`` names the entry in errors (``"validators.toml line 12"``). ``capture_content`` lets the
    explanation quote the offending text (only when content capture is on). ``base_dir`` resolves a
    relative ``schema_file``. Raises `ConfigError` on any bad option.
    """
    return build_spec(Spec(spec, where), capture_content=capture_content, base_dir=base_dir)
