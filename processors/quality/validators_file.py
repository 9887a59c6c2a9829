"""The validators file (``LLM_TELEMETRY_VALIDATORS_FILE``): TOML, or YAML for ``.yaml`` / ``.yml``.

::

    [[validators]]
    name = "invoice_dates"            # unique; the pass-rate metric and alerts name it
    kind = "date_consistency"         # see `validators` for every kind and its options
    feature = "invoice-*"             # optional: glob or list of globs on llm_telemetry.feature
    model = ["gpt-4o*", "claude-*"]   # optional: globs on the response (else request) model
    input_format = "DD/MM/YYYY"

    [[validators]]
    name = "invoice_schema"
    kind = "json_schema"
    feature = "invoice-extraction"
    schema_file = "invoice.schema.json"   # relative to this file

or in YAML ``validators: [{name: ..., kind: ..., ...}]``. Every mistake is a `ConfigError` naming the
file and line: an unknown key (the line of that key), a bad regex or schema (the line of ``pattern`` /
``schema``), a duplicate name (both lines). TOML line numbers are found by scanning the text (``tomllib``
keeps none); YAML's come from PyYAML's node marks.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from llm_telemetry.config import ConfigError, env_var
from llm_telemetry.processors.quality._spec import Spec, Validator
from llm_telemetry.processors.quality.validators import build_spec

FILE_KEYS = ("validators",)


@dataclass(frozen=True, slots=True)
class Entry:
    """A validator and the calls it applies to: ``None`` selects every feature / model."""

    validator: Validator
    features: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    where: str = "python"

    def applies(self, feature: str | None, model: str | None) -> bool:
        """Globs are case-sensitive; a call without a feature (or model) matches only an unrestricted entry."""
        if self.features is not None and (feature is None or not any(fnmatchcase(feature, glob) for glob in self.features)):
            return False
        return self.models is None or (model is not None and any(fnmatchcase(model, glob) for glob in self.models))


def selection(value: Any, key: str, where: str) -> tuple[str, ...] | None:
    """``feature`` / ``model``: a glob or a list of globs (``None`` = all)."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items or not all(isinstance(item, str) and item.strip() for item in items):
        raise ConfigError(f"{where}: `{key}` must be a glob or a non-empty list of globs (got {value!r})")
    return tuple(item.strip() for item in items)


def entry_from_spec(spec: Spec, *, capture_content: bool, base_dir: Path | None) -> Entry:
    validator = build_spec(spec, capture_content=capture_content, base_dir=base_dir)
    label = f"validator {spec.name!r}"
    description = spec.raw.get("description", "")
    if not isinstance(description, str):
        raise spec.error("description", f"must be a string (got {description!r})")
    return Entry(
        validator,
        selection(spec.raw.get("feature"), "feature", f"{spec.at('feature')}: {label}"),
        selection(spec.raw.get("model"), "model", f"{spec.at('model')}: {label}"),
        spec.where,
    )


# --- line finding ----------------------------------------------------------------------------------

_TOML_ENTRY = re.compile(r"^\s*\[\[\s*validators\s*\]\]\s*(?:#.*)?$")
_TOML_SUBTABLE = re.compile(r"""^\s*\[\s*validators\s*\.\s*["']?([A-Za-z0-9_\-]+)["']?""")
_TOML_TABLE = re.compile(r"^\s*\[")
_TOML_KEY = re.compile(r"""^\s*["']?([A-Za-z0-9_\-]+)["']?\s*=""")


@dataclass(slots=True)
class _Lines:
    top: dict[str, int]
    entries: list[tuple[int, dict[str, int]]]
    """Per entry: the line it starts on and the line of each of its keys."""


def _toml_lines(text: str) -> _Lines:
    top: dict[str, int] = {}
    entries: list[tuple[int, dict[str, int]]] = []
    current: dict[str, int] | None = None
    in_subtable = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _TOML_ENTRY.match(line):
            current, in_subtable = {}, False
            entries.append((number, current))
            continue
        sub = _TOML_SUBTABLE.match(line)
        if sub and current is not None:
            current.setdefault(sub.group(1), number)  # [validators.schema]: the entry's `schema` key
            in_subtable = True
            continue
        if _TOML_TABLE.match(line):
            current, in_subtable = None, False
            continue
        key = _TOML_KEY.match(line)
        if key:
            if current is not None and not in_subtable:
                current.setdefault(key.group(1), number)
            elif current is None and not entries:
                top.setdefault(key.group(1), number)
    return _Lines(top, entries)


def _yaml_load(text: str) -> tuple[Any, _Lines]:
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    lines = _Lines({}, [])
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            lines.top.setdefault(str(key_node.value), key_node.start_mark.line + 1)
            if key_node.value == "validators" and isinstance(value_node, yaml.SequenceNode):
                for item in value_node.value:
                    keys: dict[str, int] = {}
                    if isinstance(item, yaml.MappingNode):
                        for k, _ in item.value:
                            keys.setdefault(str(k.value), k.start_mark.line + 1)
                    lines.entries.append((item.start_mark.line + 1, keys))
    return data, lines


# --- parsing ---------------------------------------------------------------------------------------

def parse_validators(
    text: str, source: str, *, yaml_format: bool = False, capture_content: bool = False, base_dir: Path | None = None,
) -> list[Entry]:
    """Parse and build every validator of one file's text; ``source`` names the file in errors."""
    try:
        if yaml_format:
            data, lines = _yaml_load(text)
        else:
            data, lines = tomllib.loads(text), _toml_lines(text)
    except Exception as exc:  # both parsers name the line in their message
        raise ConfigError(f"{source}: not valid {'YAML' if yaml_format else 'TOML'}: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a table with a `validators` list")

    def at(line: int | None) -> str:
        return f"{source}, line {line}" if line else source

    for key in data:
        if key not in FILE_KEYS:
            raise ConfigError(f"{at(lines.top.get(key))}: unknown key {key!r} (known: {', '.join(FILE_KEYS)})")
    raw = data.get("validators", [])
    if not isinstance(raw, list):
        raise ConfigError(f"{at(lines.top.get('validators'))}: `validators` must be a list of tables")
    out: list[Entry] = []
    seen: dict[str, str] = {}
    for index, item in enumerate(raw):
        start, key_lines = lines.entries[index] if index < len(lines.entries) else (lines.top.get("validators"), {})
        where = at(start) if start else f"{source}: validators[{index}]"
        locate: Callable[[str], str] = lambda key, key_lines=key_lines, where=where: at(key_lines[key]) if key in key_lines else where  # noqa: E731
        spec = Spec(item, where, locate)
        entry = entry_from_spec(spec, capture_content=capture_content, base_dir=base_dir)
        if spec.name in seen:
            raise ConfigError(f"{spec.at('name')}: duplicate validator name {spec.name!r} (already defined at {seen[spec.name]})")
        seen[spec.name] = spec.at("name")
        out.append(entry)
    return out


def load_validators_file(path: Path, *, capture_content: bool = False) -> list[Entry]:
    """The validators of ``path`` (TOML, or YAML for ``.yaml`` / ``.yml``); relative schema files resolve next to it."""
    origin = f"{env_var('validators', 'file')}={str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{origin}: cannot read the validators file: {exc.strerror or exc}") from None
    return parse_validators(
        text, str(path), yaml_format=path.suffix.lower() in (".yaml", ".yml"),
        capture_content=capture_content, base_dir=path.parent,
    )

