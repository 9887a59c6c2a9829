"""Golden datasets: cases with an input, an expected answer and the checks to run, from JSONL or YAML.

A dataset file is either JSONL (one case object per line; blank lines are skipped) or YAML (a list of
cases, or a mapping with ``name``, ``system``, ``checks`` — default checks for cases without their own —
and ``cases``). A case::

    id: inv-2291                         # optional, default "#<n>"; must be unique
    input: "Invoice INV-2291, issued 03/04/2025"   # a prompt string, or `messages: [{role, content}, ...]`
    system: "Extract the invoice date as ISO 8601"  # optional (dataset-level `system` is the default)
    context: "…"                         # optional string or list of strings (RAG documents)
    expected: "2025-04-03"               # optional expected answer
    checks: [exact, {contains: [...]}, {regex: "..."}, {json_field: {path: a.b, equals: 1}},
             {validator: {...}}, {faithfulness: {method: offline}}]
    metadata: {...}                      # free-form, carried to the report

Why so strict: a typo in a golden dataset (``expcted:``) would otherwise silently test nothing, so
unknown keys and malformed checks are errors naming the file and line (`DatasetError`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CASE_KEYS = frozenset({"id", "input", "messages", "system", "context", "expected", "checks", "metadata"})
DATASET_KEYS = frozenset({"name", "system", "checks", "cases"})


class DatasetError(ValueError):
    """A dataset file or case is malformed; the message names the file and line."""


class _Loader(yaml.SafeLoader):
    """YAML without implicit timestamps: an unquoted ``expected: 2025-04-03`` is the text the model must answer."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class Case:
    """One golden case. ``input`` is the prompt string or the message list given to the target."""

    id: str
    input: str | list[dict[str, Any]]
    expected: str | None = None
    system: str | None = None
    context: tuple[str, ...] = ()
    checks: tuple[Any, ...] = ()
    """Built `Check` objects (see `checks.build_check`)."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    where: str = ""
    """``file:line`` of the case, for messages."""

    @property
    def context_text(self) -> str:
        return "\n\n".join(self.context)

    @property
    def prompt_text(self) -> str:
        """System, context and input as one text (what a validator compares the output against)."""
        parts = [self.system or "", self.context_text]
        if isinstance(self.input, str):
            parts.append(self.input)
        else:
            parts.extend(str(m.get("content", "")) for m in self.input if isinstance(m.get("content"), str))
        return "\n".join(p for p in parts if p)


@dataclass(frozen=True)
class Dataset:
    name: str
    cases: tuple[Case, ...]
    source: str = "<python>"

    def __len__(self) -> int:
        return len(self.cases)


def load_dataset(path: str | Path, *, name: str | None = None) -> Dataset:
    """Read a ``.jsonl`` / ``.json`` / ``.yaml`` / ``.yml`` dataset file; `DatasetError` names file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read dataset: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return _from_yaml(text, path, name)
    if suffix in (".jsonl", ".ndjson", ".json"):
        return _from_jsonl(text, path, name)
    raise DatasetError(f"{path}: unknown dataset format {suffix!r} (use .jsonl or .yaml)")


def dataset_from_records(
    records: Iterable[Mapping[str, Any]], *, name: str = "dataset", system: str | None = None, default_checks: Sequence[Any] = (),
) -> Dataset:
    """A dataset from in-memory case mappings (the same keys as in a file), e.g. ``evaluate(f, data=[...])``."""
    builder = _Builder(name, "<python>", system, default_checks)
    for index, record in enumerate(records, start=1):
        builder.add(record, f"<python> case {index}", {})
    return builder.dataset()


def as_dataset(data: Dataset | str | Path | Iterable[Mapping[str, Any]], name: str | None = None) -> Dataset:
    """Whatever `evaluate` was given, as a `Dataset`."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, Path)):
        return load_dataset(data, name=name)
    return dataset_from_records(data, name=name or "dataset")


# --- parsing --------------------------------------------------------------------------------------


def _from_jsonl(text: str, path: Path, name: str | None) -> Dataset:
    builder = _Builder(name or path.stem, str(path), None, ())
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not valid JSON: {exc.msg} (column {exc.colno})") from None
        builder.add(record, where, {})
    return builder.dataset()


def _from_yaml(text: str, path: Path, name: str | None) -> Dataset:
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise DatasetError(f"{path}: the dataset is empty")
        top_lines = _key_lines(root, path)
        items: list[yaml.Node]
        meta: dict[str, Any] = {}
        if isinstance(root, yaml.MappingNode):
            for key_node, value_node in root.value:
                key = loader.construct_object(key_node, deep=True)
                if key not in DATASET_KEYS:
                    known = ", ".join(sorted(DATASET_KEYS))
                    raise DatasetError(f"{path}:{top_lines.get(key, 1)}: unknown dataset key {key!r} (known: {known})")
                if key == "cases":
                    if not isinstance(value_node, yaml.SequenceNode):
                        raise DatasetError(f"{path}:{value_node.start_mark.line + 1}: `cases` must be a list of cases")
                    items = list(value_node.value)
                else:
                    meta[key] = loader.construct_object(value_node, deep=True)
            if "cases" not in top_lines:
                raise DatasetError(f"{path}: a dataset mapping needs a `cases` list")
        elif isinstance(root, yaml.SequenceNode):
            items = list(root.value)
        else:
            raise DatasetError(f"{path}:{root.start_mark.line + 1}: a dataset is a list of cases or a mapping with `cases`")
        system = meta.get("system")
        if system is not None and not isinstance(system, str):
            raise DatasetError(f"{path}:{top_lines.get('system', 1)}: `system` must be a string")
        defaults = meta.get("checks") or []
        if not isinstance(defaults, list):
            raise DatasetError(f"{path}:{top_lines.get('checks', 1)}: `checks` must be a list")
        builder = _Builder(name or str(meta.get("name") or path.stem), str(path), system, defaults, f"{path}:{top_lines.get('checks', 1)}")
        for node in items:
            where = f"{path}:{node.start_mark.line + 1}"
            record = loader.construct_object(node, deep=True)
            builder.add(record, where, _key_lines(node, path))
        return builder.dataset()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise DatasetError(f"{path}{line}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    finally:
        loader.dispose()


def _key_lines(node: yaml.Node, path: Path) -> dict[Any, int]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


class _Builder:
    def __init__(self, name: str, source: str, system: str | None, default_checks: Sequence[Any], defaults_where: str = "") -> None:
        self.name = name
        self.source = source
        self.system = system
        self.default_specs = list(default_checks)
        self.defaults_where = defaults_where or source
        self.cases: list[Case] = []
        self.seen: dict[str, str] = {}

    def add(self, record: Any, where: str, key_lines: Mapping[Any, int]) -> None:
        from llm_telemetry.processors.quality.checks import build_check

        path = where.rsplit(":", 1)[0] if key_lines else None

        def at(key: str) -> str:
            return f"{path}:{key_lines[key]}" if path and key in key_lines else where

        if not isinstance(record, Mapping):
            raise DatasetError(f"{where}: a case must be a mapping, got {type(record).__name__}")
        for key in record:
            if key not in CASE_KEYS:
                raise DatasetError(f"{at(key)}: unknown case key {key!r} (known: {', '.join(sorted(CASE_KEYS))})")
        case_id = record.get("id", f"#{len(self.cases) + 1}")
        if not isinstance(case_id, (str, int)) or isinstance(case_id, bool) or str(case_id).strip() == "":
            raise DatasetError(f"{at('id')}: case `id` must be a non-empty string, got {case_id!r}")
        case_id = str(case_id)
        if case_id in self.seen:
            raise DatasetError(f"{at('id')}: duplicate case id {case_id!r} (first at {self.seen[case_id]})")
        self.seen[case_id] = where
        prompt = _input(record, at)
        system = record.get("system", self.system)
        if system is not None and not isinstance(system, str):
            raise DatasetError(f"{at('system')}: `system` must be a string")
        expected = record.get("expected")
        if expected is not None and not isinstance(expected, str):
            # JSON-ish expected answers (numbers, objects) are compared as their JSON text.
            expected = json.dumps(expected, ensure_ascii=False) if not isinstance(expected, (int, float)) else str(expected)
        context = _context(record.get("context"), at("context"))
        metadata = record.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            raise DatasetError(f"{at('metadata')}: `metadata` must be a mapping")
        specs = record.get("checks")
        if specs is None:
            specs, checks_where = self.default_specs, self.defaults_where
            if not specs and expected is not None:
                specs = ["exact"]
        else:
            checks_where = at("checks")
            if not isinstance(specs, list):
                raise DatasetError(f"{checks_where}: `checks` must be a list")
        checks = tuple(build_check(spec, where=f"{checks_where} (case {case_id!r})") for spec in specs)
        for check in checks:
            check.validate_case(expected=expected, where=f"{checks_where} (case {case_id!r})")
        self.cases.append(Case(case_id, prompt, expected, system, context, checks, dict(metadata), where))

    def dataset(self) -> Dataset:
        if not self.cases:
            raise DatasetError(f"{self.source}: the dataset has no cases")
        return Dataset(self.name, tuple(self.cases), self.source)


def _input(record: Mapping[str, Any], at: Any) -> str | list[dict[str, Any]]:
    if ("input" in record) == ("messages" in record):
        raise DatasetError(f"{at('input')}: a case needs exactly one of `input` (a prompt) or `messages`")
    value = record.get("input", record.get("messages"))
    key = "input" if "input" in record else "messages"
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(
        isinstance(m, Mapping) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
    ):
        return [dict(m) for m in value]
    raise DatasetError(f"{at(key)}: `{key}` must be a prompt string or a non-empty list of {{role, content}} messages")


def _context(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise DatasetError(f"{where}: `context` must be a string or a list of strings")
