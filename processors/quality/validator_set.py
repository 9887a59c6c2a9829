"""`ValidatorSet`: the validators that apply to a call, run on its output, never raising into the app.

Who builds it: the quality enricher, once, with `ValidatorSet.from_settings(settings)` (the validators
file, the built-in date-consistency validator, the content-capture flag). Validators can be added at
run time, to one set with `ValidatorSet.add` or process-wide with `add_validator` (every set built with
``include_runtime=True``, the default, sees those from its next call on).

Selection: each validator may be restricted to features and/or models (globs); the applicable list for
a (feature, model) pair is computed once and cached (bounded), so the per-call cost is one dict lookup
plus the validators themselves.

Failures: a validator that raises (or returns something other than a `ValidationResult`) gives no
result for that call; it is counted in `errors` per validator name and logged once, with its traceback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from llm_telemetry.config import ConfigError, Settings
from llm_telemetry.processors.quality._spec import Spec, ValidationResult, Validator
from llm_telemetry.processors.quality.dates import DateConsistencyValidator
from llm_telemetry.processors.quality.validators_file import Entry, entry_from_spec, load_validators_file, selection

logger = logging.getLogger(__name__)

_CACHE_LIMIT = 4096

# Validators added process-wide at run time (tuple swapped under the lock; readers need no lock).
_runtime: tuple[Entry, ...] = ()
_runtime_lock = threading.Lock()


def _entry(validator: Validator | Mapping[str, Any], feature: str | Sequence[str] | None, model: str | Sequence[str] | None,
           where: str, capture_content: bool) -> Entry:
    if isinstance(validator, Mapping):
        spec_map = dict(validator)
        if feature is not None:
            spec_map["feature"] = feature
        if model is not None:
            spec_map["model"] = model
        return entry_from_spec(Spec(spec_map, where), capture_content=capture_content, base_dir=None)
    name = getattr(validator, "name", None)
    if not isinstance(name, str) or not name or not callable(getattr(validator, "validate", None)):
        raise ConfigError(f"{where}: a validator needs a non-empty `name` and a `validate(prompt, output)` method (got {validator!r})")
    return Entry(validator, selection(feature, "feature", where), selection(model, "model", where), where)


def add_validator(
    validator: Validator | Mapping[str, Any], *, feature: str | Sequence[str] | None = None,
    model: str | Sequence[str] | None = None, capture_content: bool = False,
) -> Validator:
    """Add a validator process-wide, at run time: a `Validator` object or a spec mapping (as in the file).

    Every `ValidatorSet` built with ``include_runtime=True`` runs it from its next call on. A mapping is
    built here (``capture_content`` decides whether its explanations may quote content). Returns the
    validator; raises `ConfigError` on a bad spec or a duplicate name.
    """
    global _runtime
    entry = _entry(validator, feature, model, "add_validator()", capture_content)
    with _runtime_lock:
        if any(existing.validator.name == entry.validator.name for existing in _runtime):
            raise ConfigError(f"add_validator(): a validator named {entry.validator.name!r} was already added")
        _runtime = (*_runtime, entry)
    return entry.validator


def remove_validator(name: str) -> bool:
    """Remove a validator added with `add_validator`; ``False`` if there was none by that name."""
    global _runtime
    with _runtime_lock:
        kept = tuple(entry for entry in _runtime if entry.validator.name != name)
        removed = len(kept) != len(_runtime)
        _runtime = kept
    return removed


class ValidatorSet:
    """The validators of a process (or of a test), selected per call by feature and model."""

    def __init__(self, entries: Iterable[Entry | Validator] = (), *, capture_content: bool = False, include_runtime: bool = True) -> None:
        self.capture_content = capture_content
        self._include_runtime = include_runtime
        self._entries: tuple[Entry, ...] = ()
        self._lock = threading.Lock()
        self._cache: dict[tuple[str | None, str | None], tuple[object, object, tuple[Validator, ...]]] = {}
        self._errors: dict[str, int] = {}
        self._logged: set[str] = set()
        for item in entries:
            self._add_entry(item if isinstance(item, Entry) else _entry(item, None, None, "ValidatorSet()", capture_content))

    @classmethod
    def from_settings(cls, settings: Settings) -> ValidatorSet:
        """The set the settings describe: the validators file, plus the built-in date-consistency validator on
        every feature (unless disabled or the file declares one). Empty when ``validators.enabled`` is false.
        Raises `ConfigError` on a bad file, naming the file and line."""
        capture = settings.content.capture.enabled
        config = settings.validators
        if not config.enabled:
            return cls(capture_content=capture, include_runtime=False)
        entries = load_validators_file(config.file, capture_content=capture) if config.file is not None else []
        declared = any(
            getattr(e.validator, "kind", None) == DateConsistencyValidator.kind or e.validator.name == "date_consistency" for e in entries
        )
        if config.date_consistency and not declared:
            entries.append(Entry(DateConsistencyValidator(capture_content=capture), where="built-in"))
        return cls(entries, capture_content=capture)

    def _add_entry(self, entry: Entry) -> None:
        with self._lock:
            if any(existing.validator.name == entry.validator.name for existing in self._entries):
                raise ConfigError(f"{entry.where}: duplicate validator name {entry.validator.name!r}")
            self._entries = (*self._entries, entry)
            self._cache = {}

    def add(self, validator: Validator | Mapping[str, Any], *, feature: str | Sequence[str] | None = None,
            model: str | Sequence[str] | None = None) -> Validator:
        """Add a `Validator` object or a spec mapping (as in the file) to this set; returns the validator."""
        entry = _entry(validator, feature, model, "ValidatorSet.add()", self.capture_content)
        self._add_entry(entry)
        return entry.validator

    def entries(self) -> tuple[Entry, ...]:
        """This set's own entries, then the process-wide run-time ones (if included)."""
        return self._entries + (_runtime if self._include_runtime else ())

    def __len__(self) -> int:
        return len(self.entries())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(entry.validator.name for entry in self.entries())

    @property
    def errors(self) -> dict[str, int]:
        """Calls on which each validator raised (or returned a bad value), by validator name."""
        return dict(self._errors)

    def validators_for(self, feature: str | None, model: str | None) -> tuple[Validator, ...]:
        """The validators that apply to a call of ``feature`` on ``model`` (cached per pair)."""
        own, runtime = self._entries, (_runtime if self._include_runtime else ())
        cached = self._cache.get((feature, model))
        if cached is not None and cached[0] is own and cached[1] is runtime:
            return cached[2]
        selected = tuple(entry.validator for entry in (*own, *runtime) if entry.applies(feature, model))
        cache = self._cache
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[(feature, model)] = (own, runtime, selected)
        return selected

    def run(self, call_feature: str | None, call_model: str | None, prompt: str | None, output: str) -> list[ValidationResult]:
        """Results of every applicable validator that applies to this output. Never raises."""
        try:
            if not isinstance(output, str):
                return []
            results: list[ValidationResult] = []
            for validator in self.validators_for(call_feature, call_model):
                try:
                    result = validator.validate(prompt, output)
                except Exception:
                    self._failed(validator, None)
                    continue
                if result is None:
                    continue
                if type(result) is not ValidationResult:
                    self._failed(validator, result)
                    continue
                results.append(result)
            return results
        except Exception:  # our own bug: never into the app
            logger.exception("validator set failed on one output")
            return []

    def _failed(self, validator: Validator, returned: object) -> None:
        name = getattr(validator, "name", repr(validator))
        self._errors[name] = self._errors.get(name, 0) + 1  # racy under threads, at worst one count short
        if name in self._logged:
            return
        self._logged.add(name)
        if returned is None:
            logger.exception("validator %r raised; its result is skipped (further errors are counted, not logged)", name)
        else:
            logger.error(
                "validator %r returned a %s, not a ValidationResult; its result is skipped (further errors are counted, not logged)",
                name, type(returned).__name__,
            )
