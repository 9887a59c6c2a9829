"""The JSON kinds: ``json`` (parses), ``json_schema`` (`jsonschema` library) and ``json_sum`` (a total
equals the sum of its parts), plus the small JSON path syntax the field-reading kinds share.

JSON path: dot-separated keys with ``[n]`` indexes and ``[*]`` wildcards, optionally starting with
``$``: ``total``, ``customer.name``, ``items[*].amount``, ``lines[0]["unit price"]``. A path that finds
nothing yields no values.
"""

from __future__ import annotations

import json
import math
import re
from itertools import islice
from pathlib import Path
from typing import Any

from llm_telemetry.config import ConfigError
from llm_telemetry.processors.quality._spec import Spec, ValidationResult, quote

JSON_KEYS = ("strip_fences",)
SCHEMA_KEYS = ("schema", "schema_file", "strip_fences")
SUM_KEYS = ("total", "items", "tolerance", "strip_fences")

_WILDCARD = object()
_STEP = re.compile(r"""\.?([A-Za-z_][\w\-]*)|\[(\d+|\*)\]|\[\s*"([^"]+)"\s*\]|\[\s*'([^']+)'\s*\]""")
_NOT_JSON = object()

# --- parsing ---------------------------------------------------------------------------------------

_last: tuple[object, bool, Any, str] = (object(), False, _NOT_JSON, "")
"""The last output parsed: several JSON validators on one output parse it once (one tuple, swapped
atomically; an identity check, so a stale entry is never mistaken for the current output)."""


def parse_json(output: str, strip_fences: bool = True) -> tuple[Any, str]:
    """``(value, "")`` or ``(_NOT_JSON, reason)``; ``reason`` holds no content (position and kind only)."""
    global _last
    last = _last
    if last[0] is output and last[1] == strip_fences:
        return last[2], last[3]
    text = output.strip()
    if strip_fences and text.startswith("```"):
        first_newline = text.find("\n")
        if first_newline != -1 and text.endswith("```"):
            text = text[first_newline + 1 : -3].strip()
    try:
        value, reason = json.loads(text), ""
    except json.JSONDecodeError as exc:
        value, reason = _NOT_JSON, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except (ValueError, RecursionError) as exc:
        value, reason = _NOT_JSON, f"not valid JSON: {type(exc).__name__}"
    _last = (output, strip_fences, value, reason)
    return value, reason


def is_json(value: Any) -> bool:
    return value is not _NOT_JSON


# --- paths -----------------------------------------------------------------------------------------

def compile_path(spec: Spec, key: str, text: str) -> tuple[Any, ...]:
    """Parse a JSON path once, at build time; a bad one is a `ConfigError` naming validator and line."""
    path = text.strip()
    if path.startswith("$"):
        path = path[1:]
    steps: list[Any] = []
    at = 0
    while at < len(path):
        match = _STEP.match(path, at)
        if match is None or (match.group(1) is not None and at and not path.startswith(".", at)):
            raise spec.error(key, f"= {text!r} is not a JSON path (e.g. total, customer.name, items[*].amount)")
        name, index, quoted, single = match.groups()
        if name is not None:
            steps.append(name)
        elif index is not None:
            steps.append(_WILDCARD if index == "*" else int(index))
        else:
            steps.append(quoted if quoted is not None else single)
        at = match.end()
    if not steps:
        raise spec.error(key, f"= {text!r} is an empty JSON path")
    return tuple(steps)


def select(value: Any, steps: tuple[Any, ...]) -> list[Any]:
    """All values at ``steps`` (wildcards expand); missing keys and indexes yield nothing."""
    current = [value]
    for step in steps:
        following: list[Any] = []
        for item in current:
            if step is _WILDCARD:
                if isinstance(item, list):
                    following.extend(item)
                elif isinstance(item, dict):
                    following.extend(item.values())
            elif isinstance(step, int):
                if isinstance(item, list) and -len(item) <= step < len(item):
                    following.append(item[step])
            elif isinstance(item, dict) and step in item:
                following.append(item[step])
        current = following
        if not current:
            break
    return current


def path_text(steps: tuple[Any, ...]) -> str:
    return "$" + "".join(f"[{'*' if s is _WILDCARD else s}]" if not isinstance(s, str) else f".{s}" for s in steps)


# --- kinds -----------------------------------------------------------------------------------------

class JsonValidator:
    """The output parses as JSON (one Markdown code fence around it is accepted unless ``strip_fences = false``)."""

    kind = "json"

    def __init__(self, name: str, *, strip_fences: bool = True) -> None:
        self.name = name
        self._strip = strip_fences

    def validate(self, prompt: str | None, output: str) -> ValidationResult:
        value, reason = parse_json(output, self._strip)
        if is_json(value):
            return ValidationResult(self.name, True, 1.0, "valid JSON")
        return ValidationResult(self.name, False, 0.0, reason)


class JsonSchemaValidator:
    """The output is JSON valid against a JSON Schema (draft from ``$schema``, default 2020-12; formats checked)."""

    kind = "json_schema"

    def __init__(self, name: str, schema: dict[str, Any], *, strip_fences: bool = True, capture_content: bool = False) -> None:
        from jsonschema.validators import validator_for

        cls = validator_for(schema)
        cls.check_schema(schema)  # raises jsonschema.SchemaError
        self.name = name
        self._validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        self._strip = strip_fences
        self._capture = capture_content

    def validate(self, prompt: str | None, output: str) -> ValidationResult:
        value, reason = parse_json(output, self._strip)
        if not is_json(value):
            return ValidationResult(self.name, False, 0.0, reason)
        errors = list(islice(self._validator.iter_errors(value), 20))
        if not errors:
            return ValidationResult(self.name, True, 1.0, "valid against the schema")
        first = errors[0]
        count = f"{len(errors)}{'+' if len(errors) == 20 else ''}"
        text = f"{count} schema error(s); first at {first.json_path}: {first.validator} {_keyword_value(first.validator_value)}"
        if self._capture:
            text += f" ({quote(first.message)})"
        return ValidationResult(self.name, False, 0.0, text)


def _keyword_value(value: Any) -> str:
    """The schema's side of an error (``type integer``, ``required [...]``): schema text, not content."""
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:80] + "…"


class JsonSumValidator:
    """A JSON total equals the sum of its parts (``total = "total"``, ``items = "items[*].amount"`` or a
    list of paths such as ``["subtotal", "tax"]``) within ``tolerance``. Not applicable when the output
    is not JSON or has no total; numbers may be JSON numbers or numeric strings (``"1,234.50"``)."""

    kind = "json_sum"

    def __init__(self, name: str, total: tuple[Any, ...], items: tuple[tuple[Any, ...], ...], *, tolerance: float = 0.01,
                 strip_fences: bool = True) -> None:
        self.name = name
        self._total = total
        self._items = items
        self._tolerance = tolerance
        self._strip = strip_fences

    def validate(self, prompt: str | None, output: str) -> ValidationResult | None:
        value, _ = parse_json(output, self._strip)
        if not is_json(value):
            return None
        totals = select(value, self._total)
        if not totals:
            return None
        total = _number(totals[0])
        parts = [_number(item) for steps in self._items for item in select(value, steps)]
        if total is None or any(part is None for part in parts):
            bad = path_text(self._total) if total is None else "an item"
            return ValidationResult(self.name, False, 0.0, f"{bad} is not a number")
        computed = math.fsum(parts)  # type: ignore[arg-type]
        difference = abs(total - computed)
        if difference <= self._tolerance:
            return ValidationResult(self.name, True, 1.0, f"{path_text(self._total)} equals the sum of {len(parts)} item(s)")
        score = max(0.0, 1.0 - difference / max(abs(total), abs(computed), 1e-9))
        return ValidationResult(
            self.name, False, score,
            f"{path_text(self._total)} differs from the sum of {len(parts)} item(s) by {difference:.6g} (tolerance {self._tolerance:g})",
        )


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.replace(",", "").replace("_", "").strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


# --- builders --------------------------------------------------------------------------------------

def build_json(spec: Spec, capture: bool, base: Path | None) -> JsonValidator:
    return JsonValidator(spec.name, strip_fences=spec.flag("strip_fences", True))


def build_schema(spec: Spec, capture: bool, base: Path | None) -> JsonSchemaValidator:
    from jsonschema import SchemaError

    has_inline, has_file = "schema" in spec.raw, "schema_file" in spec.raw
    if has_inline == has_file:
        raise ConfigError(f"{spec.where}: validator {spec.name!r} (kind json_schema): set exactly one of `schema` or `schema_file`")
    key = "schema" if has_inline else "schema_file"
    if has_inline:
        schema = spec.get("schema")
    else:
        path = Path(spec.text("schema_file")).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                schema = yaml.safe_load(text)
            else:
                schema = json.loads(text)
        except OSError as exc:
            raise spec.error(key, f"= {str(path)!r}: cannot read the schema: {exc.strerror or exc}") from None
        except Exception as exc:
            raise spec.error(key, f"= {str(path)!r}: not valid JSON/YAML: {exc}") from None
    if not isinstance(schema, (dict, bool)):
        raise spec.error(key, f"must be a JSON Schema object (got {type(schema).__name__})")
    try:
        return JsonSchemaValidator(
            spec.name, dict(schema) if isinstance(schema, dict) else schema,  # type: ignore[arg-type]
            strip_fences=spec.flag("strip_fences", True), capture_content=capture,
        )
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path) or "(root)"
        raise spec.error(key, f"is not a valid JSON Schema: at {where}: {exc.message}") from None


def build_sum(spec: Spec, capture: bool, base: Path | None) -> JsonSumValidator:
    total = compile_path(spec, "total", spec.text("total"))
    items = tuple(compile_path(spec, "items", text) for text in spec.strings("items"))
    tolerance = spec.number("tolerance", 0.01, minimum=0.0)
    return JsonSumValidator(spec.name, total, items, tolerance=float(tolerance), strip_fences=spec.flag("strip_fences", True))
