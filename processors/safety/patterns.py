"""Safety pattern packs: the bundled TOML files plus the user's file, validated into one list.

A pack is a TOML (or, for user files, YAML) document with a list of patterns::

    [[patterns]]
    id = "pii.credit_card"          # unique; what `disabled_patterns` and the span's pattern_ids name
    category = "pii"                # what metrics and the span's categories name
    action = "flag"                 # "block" (guard refuses, hard-block rate) or "flag" (review)
    regex = '''\\b\\d{13,19}\\b'''      # RE2 syntax; use (?i) inline for case-insensitive
    validator = "luhn"              # optional post-match check on the candidate text (see validators.py)
    mask = true                     # optional: report a masked form of the matched text (secrets)
    description = "..."             # optional

A user file may also carry ``disable = ["pattern.id", "category", ...]``. Any mistake (unknown key,
bad action, unknown validator, duplicate id, a disabled name that matches nothing) is a `ConfigError`
naming the file, the pattern id and, when it can be found, the line: a typo must not silently switch a
safety check off. Regex errors are reported by `screen.Screen`, which compiles each pattern once.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from llm_telemetry.config import ConfigError, SafetySettings, env_var
from llm_telemetry.processors.safety.validators import VALIDATORS

ACTIONS = ("flag", "block")
ACTION_RANK: Mapping[str, int] = {"none": 0, "flag": 1, "block": 2}
"""Strength of an action: a span's action is its strongest matched pattern's (block > flag > none)."""

DEFAULT_PACKS: tuple[str, ...] = (
    "pack_hard_block.toml",
    "pack_pii.toml",
    "pack_secrets.toml",
    "pack_prompt_injection.toml",
)
"""Bundled packs, data files next to this module."""

_NAME = re.compile(r"[A-Za-z0-9_.:\-]+")
_REQUIRED = ("id", "category", "action", "regex")
_OPTIONAL = ("validator", "mask", "description")
_FILE_KEYS = ("patterns", "disable")


@dataclass(frozen=True, slots=True)
class Pattern:
    """One screen pattern, with where it was defined (for error messages)."""

    id: str
    category: str
    action: str
    regex: str
    validator: str | None = None
    mask: bool = False
    description: str = ""
    source: str = ""
    line: int | None = None

    @property
    def where(self) -> str:
        """``file, line N`` or just the file: the prefix of every error about this pattern."""
        return f"{self.source}, line {self.line}" if self.line else self.source


@dataclass(frozen=True, slots=True)
class PatternFile:
    """What one pack file holds."""

    patterns: tuple[Pattern, ...]
    disable: tuple[str, ...] = ()


def parse_pack(text: str, source: str, *, yaml_format: bool = False) -> PatternFile:
    """Parse and validate one pack's text; ``source`` names it in errors."""
    try:
        if yaml_format:
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:  # both parsers name the line in their message
        raise ConfigError(f"{source}: not valid {'YAML' if yaml_format else 'TOML'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a table with a `patterns` list")
    unknown = sorted(set(data) - set(_FILE_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)} (known: {', '.join(_FILE_KEYS)})")
    raw_patterns = data.get("patterns", [])
    if not isinstance(raw_patterns, list):
        raise ConfigError(f"{source}: `patterns` must be a list of tables")
    lines = _id_lines(text)
    patterns = tuple(_pattern(raw, index, source, lines) for index, raw in enumerate(raw_patterns))
    disable = data.get("disable", [])
    if not isinstance(disable, list) or not all(isinstance(item, str) and _NAME.fullmatch(item) for item in disable):
        raise ConfigError(f"{source}: `disable` must be a list of pattern ids or categories, got {disable!r}")
    return PatternFile(patterns, tuple(disable))


def _pattern(raw: Any, index: int, source: str, lines: Mapping[str, int]) -> Pattern:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: patterns[{index}] must be a table, got {raw!r}")
    pattern_id = raw.get("id")
    if not isinstance(pattern_id, str) or not _NAME.fullmatch(pattern_id):
        raise ConfigError(f"{source}: patterns[{index}] needs an `id` of letters, digits and _ . : - (got {pattern_id!r})")
    line = lines.get(pattern_id)
    where = f"{source}, line {line}" if line else source
    label = f"{where}: pattern {pattern_id!r}"
    unknown = sorted(set(raw) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise ConfigError(f"{label}: unknown key(s) {', '.join(unknown)} (known: {', '.join(_REQUIRED + _OPTIONAL)})")
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise ConfigError(f"{label}: missing {', '.join(missing)}")
    category, action, regex = raw["category"], raw["action"], raw["regex"]
    if not isinstance(category, str) or not _NAME.fullmatch(category):
        raise ConfigError(f"{label}: category must be letters, digits and _ . : - (got {category!r})")
    if action not in ACTIONS:
        raise ConfigError(f"{label}: action must be one of {', '.join(ACTIONS)} (got {action!r})")
    if not isinstance(regex, str) or not regex:
        raise ConfigError(f"{label}: regex must be a non-empty string (got {regex!r})")
    validator = raw.get("validator")
    if validator is not None and validator not in VALIDATORS:
        raise ConfigError(f"{label}: unknown validator {validator!r} (known: {', '.join(sorted(VALIDATORS))})")
    mask = raw.get("mask", False)
    if not isinstance(mask, bool):
        raise ConfigError(f"{label}: mask must be true or false (got {mask!r})")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{label}: description must be a string")
    return Pattern(pattern_id, category, action, regex, validator, mask, description, source, line)


_ID_LINE = re.compile(r"""^\s*-?\s*id\s*[=:]\s*["']?([A-Za-z0-9_.:\-]+)["']?\s*(?:#.*)?$""")


def _id_lines(text: str) -> dict[str, int]:
    """Best-effort line of each ``id = "<id>"`` (TOML) or ``id: <id>`` (YAML), first occurrence."""
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = _ID_LINE.match(line)
        if match:
            lines.setdefault(match.group(1), number)
    return lines


def load_default_packs() -> list[PatternFile]:
    """The bundled packs, in `DEFAULT_PACKS` order."""
    folder = resources.files("llm_telemetry.processors.safety")
    return [parse_pack(folder.joinpath(name).read_text(encoding="utf-8"), name) for name in DEFAULT_PACKS]


def load_user_file(path: Path) -> PatternFile:
    """The user's pattern file (TOML, or YAML for ``.yaml`` / ``.yml``)."""
    origin = f"{env_var('safety', 'patterns_file')}={str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{origin}: cannot read safety patterns file: {exc.strerror or exc}") from None
    return parse_pack(text, str(path), yaml_format=path.suffix.lower() in (".yaml", ".yml"))


def combine(files: Sequence[PatternFile], disabled: Iterable[tuple[str, str]] = ()) -> list[Pattern]:
    """All patterns of ``files`` minus the disabled ones; duplicate ids and unknown names are errors.

    ``disabled`` holds ``(name, origin)`` pairs: each name is a pattern id or a category, ``origin``
    says where it was written so that a name that matches nothing can be reported precisely.
    """
    by_id: dict[str, Pattern] = {}
    for pack in files:
        for pattern in pack.patterns:
            first = by_id.get(pattern.id)
            if first is not None:
                raise ConfigError(f"{pattern.where}: duplicate pattern id {pattern.id!r} (already defined in {first.where})")
            by_id[pattern.id] = pattern
    categories = {p.category for p in by_id.values()}
    off: set[str] = set()
    for name, origin in disabled:
        if name not in by_id and name not in categories:
            raise ConfigError(
                f"{origin}: {name!r} is neither a safety pattern id nor a category "
                f"(categories: {', '.join(sorted(categories))})"
            )
        off.add(name)
    return [p for p in by_id.values() if p.id not in off and p.category not in off]


def resolve_patterns(settings: SafetySettings) -> list[Pattern]:
    """The patterns the screen uses: bundled packs + ``patterns_file``, minus the disabled ones."""
    files = load_default_packs()
    disabled = [(name, f"safety.disabled_patterns ({env_var('safety', 'disabled_patterns')})") for name in settings.disabled_patterns]
    if settings.patterns_file is not None:
        user = load_user_file(settings.patterns_file)
        files.append(user)
        disabled.extend((name, f"{settings.patterns_file}: disable") for name in user.disable)
    return combine(files, disabled)
