"""What every validator shares: its result type, its protocol, and the checked reader of its options.

Kept apart from `validators` (which re-exports `ValidationResult` and `Validator`) so the modules that
implement the kinds can import these without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a
from llm_telemetry.config import ConfigError

MAX_DETAIL_CHARS = 120
"""Bound on any piece of content an explanation quotes (only when content capture is on)."""


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """The verdict of one validator on one output.

    ``explanation`` is short and content-free (counts, kinds, field paths) unless the validator was
    built with ``capture_content=True``: it goes on the span as ``gen_ai.evaluation.explanation``,
    which is exported even when prompts and outputs are not.
    """

    validator: str
    passed: bool
    score: float
    explanation: str

    @property
    def label(self) -> str:
        """``pass`` or ``fail``: the ``gen_ai.evaluation.score.label``."""
        return a.EVALUATION_LABEL_PASS if self.passed else a.EVALUATION_LABEL_FAIL

    def event_attributes(self) -> dict[str, AttributeValue]:
        """The attributes of its ``gen_ai.evaluation.result`` span event (semconv names)."""
        return {
            a.EVALUATION_NAME: self.validator,
            a.EVALUATION_SCORE_VALUE: float(self.score),
            a.EVALUATION_SCORE_LABEL: self.label,
            a.EVALUATION_EXPLANATION: self.explanation,
        }


@runtime_checkable
class Validator(Protocol):
    """A content contract. ``validate`` returns ``None`` when the check does not apply to this output
    (e.g. no date in it): not-applicable outputs count neither as passes nor as failures."""

    name: str

    def validate(self, prompt: str | None, output: str) -> ValidationResult | None: ...


def quote(text: str) -> str:
    """A piece of content for an explanation, bounded (callers only quote when content capture is on)."""
    return repr(text if len(text) <= MAX_DETAIL_CHARS else text[:MAX_DETAIL_CHARS] + "…")


COMMON_KEYS = ("name", "kind", "feature", "model", "description")
"""Keys every validator entry may carry; ``feature`` / ``model`` select calls (see `validator_set`)."""

_MISSING: Any = object()


class Spec:
    """One validator entry, read with type checks; every error names the validator and where the key is.

    ``locate(key)`` gives the position of a key (``"validators.toml, line 12"``); without a locator
    every key is reported at ``where``, the entry's own position.
    """

    def __init__(self, raw: Mapping[str, Any], where: str, locate: Callable[[str], str] | None = None) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: a validator must be a table of options, got {type(raw).__name__}")
        self.raw = raw
        self.where = where
        self._locate = locate
        kind = raw.get("kind")
        if not isinstance(kind, str) or not kind:
            raise ConfigError(f"{self.at('kind')}: validator needs a `kind` (got {kind!r})")
        self.kind = kind
        name = raw.get("name", kind)
        if not isinstance(name, str) or not name.strip() or len(name) > 128:
            raise ConfigError(f"{self.at('name')}: validator `name` must be a non-empty string (got {name!r})")
        self.name = name.strip()

    def at(self, key: str) -> str:
        if self._locate is None or key not in self.raw:
            return self.where
        return self._locate(key)

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.at(key)}: validator {self.name!r}: `{key}` {message}")

    def check_keys(self, known: tuple[str, ...]) -> None:
        """Unknown keys are errors: a typo (``max_char``) must not silently switch a check off."""
        allowed = (*COMMON_KEYS, *known)
        for key in self.raw:
            if key not in allowed:
                raise ConfigError(
                    f"{self.at(key)}: validator {self.name!r} (kind {self.kind}): unknown key {key!r} "
                    f"(known: {', '.join(allowed)})"
                )

    def get(self, key: str, default: Any = _MISSING) -> Any:
        if key in self.raw:
            return self.raw[key]
        if default is _MISSING:
            raise ConfigError(f"{self.where}: validator {self.name!r} (kind {self.kind}): missing required key `{key}`")
        return default

    def text(self, key: str, default: Any = _MISSING) -> Any:
        value = self.get(key, default)
        if value is not default and (not isinstance(value, str) or not value):
            raise self.error(key, f"must be a non-empty string (got {value!r})")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false (got {value!r})")
        return value

    def number(self, key: str, default: Any = _MISSING, *, minimum: float | None = None, maximum: float | None = None) -> Any:
        value = self.get(key, default)
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise self.error(key, f"must be a number (got {value!r})")
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be >= {minimum:g} (got {value!r})")
        if maximum is not None and value > maximum:
            raise self.error(key, f"must be <= {maximum:g} (got {value!r})")
        return value

    def integer(self, key: str, default: Any = _MISSING, *, minimum: int = 0) -> Any:
        value = self.get(key, default)
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(key, f"must be an integer >= {minimum} (got {value!r})")
        return value

    def strings(self, key: str, default: Any = _MISSING) -> Any:
        """A string or a list of strings, as a tuple."""
        value = self.get(key, default)
        if value is default:
            return value
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(item, str) and item for item in items):
            raise self.error(key, f"must be a non-empty string or list of strings (got {value!r})")
        return tuple(items)
