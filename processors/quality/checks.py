"""The checks a golden case runs on an output: exact, contains (key facts), regex, json_field, validator,
faithfulness — and any Python evaluator function.

A check spec in a dataset is a bare name (``exact``), a one-key mapping whose value is the check's main
option (``{contains: [facts]}``, ``{regex: "..."}``, ``{faithfulness: judge}``, ``{validator: {...}}``) or its
options mapping, or a mapping with ``type`` plus options. Every check has a ``name`` (default: its type)
that becomes ``gen_ai.evaluation.name``. Specs are checked when the dataset loads, so a bad regex or an
unknown option fails before any model is called, naming the file and line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from llm_telemetry.processors.quality.datasets import DatasetError
from llm_telemetry.processors.quality.faithfulness import check_faithfulness

if TYPE_CHECKING:
    from llm_telemetry.processors.quality.datasets import Case
    from llm_telemetry.processors.quality.judge_faithfulness import FaithfulnessJudge

MAX_QUOTE = 160


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check on one output. ``error`` is set when the check could not run (then ``passed`` is False)."""

    name: str
    passed: bool
    score: float
    explanation: str = ""
    error: str | None = None

    @property
    def label(self) -> str:
        return "pass" if self.passed else "fail"


@dataclass(frozen=True)
class Sample:
    """What a check sees: the case, the target's output, the context to ground it in, and the judge."""

    case: Case
    output: str
    context: str
    judge: Callable[[str | None, str | None], FaithfulnessJudge] | None = None
    """``judge(model, base_url)``: the shared LLM faithfulness judge (model/base URL overrides or None)."""


class Check(Protocol):
    name: str

    def validate_case(self, *, expected: str | None, where: str) -> None:
        """Raise `DatasetError` when the case lacks what this check needs (e.g. an expected answer)."""

    def run(self, sample: Sample) -> CheckResult | None:
        """The result, or ``None`` when the check does not apply to this output."""


def quote(text: str | None) -> str:
    if text is None:
        return "nothing"
    return repr(text if len(text) <= MAX_QUOTE else text[: MAX_QUOTE - 1] + "…")


def _norm(text: str, ignore_case: bool) -> str:
    text = " ".join(text.split())
    return text.lower() if ignore_case else text


@dataclass
class ExactCheck:
    value: str | None = None
    ignore_case: bool = False
    name: str = "exact"

    def validate_case(self, *, expected: str | None, where: str) -> None:
        if self.value is None and expected is None:
            raise DatasetError(f"{where}: check {self.name!r} needs `expected` on the case or a `value`")

    def run(self, sample: Sample) -> CheckResult:
        want = self.value if self.value is not None else sample.case.expected or ""
        ok = _norm(sample.output, self.ignore_case) == _norm(want, self.ignore_case)
        return CheckResult(self.name, ok, 1.0 if ok else 0.0, "" if ok else f"expected {quote(want)}, got {quote(sample.output)}")


@dataclass
class ContainsCheck:
    facts: tuple[str, ...] | None = None
    ignore_case: bool = True
    name: str = "contains"

    def validate_case(self, *, expected: str | None, where: str) -> None:
        if not self.facts and expected is None:
            raise DatasetError(f"{where}: check {self.name!r} needs a list of key facts or `expected` on the case")

    def run(self, sample: Sample) -> CheckResult:
        facts = self.facts or (sample.case.expected or "",)
        text = _norm(sample.output, self.ignore_case)
        missing = [f for f in facts if not _fact_in(_norm(f, self.ignore_case), text)]
        score = (len(facts) - len(missing)) / len(facts)
        if not missing:
            return CheckResult(self.name, True, score, f"all {len(facts)} key facts present")
        return CheckResult(
            self.name, False, score,
            f"missing {len(missing)}/{len(facts)} key facts: {', '.join(quote(m) for m in missing[:3])}; got {quote(sample.output)}",
        )


def _fact_in(fact: str, text: str) -> bool:
    # Word boundaries where the fact starts/ends with a word character: "30" must not match "300".
    left = r"(?<!\w)" if fact[:1].isalnum() else ""
    right = r"(?!\w)" if fact[-1:].isalnum() else ""
    return re.search(left + re.escape(fact) + right, text) is not None


@dataclass
class RegexCheck:
    pattern: str
    must_match: bool = True
    name: str = "regex"

    def __post_init__(self) -> None:
        self._regex = re.compile(self.pattern)

    def validate_case(self, *, expected: str | None, where: str) -> None:
        return None

    def run(self, sample: Sample) -> CheckResult:
        found = self._regex.search(sample.output) is not None
        ok = found == self.must_match
        what = "matches" if found else "does not match"
        return CheckResult(self.name, ok, 1.0 if ok else 0.0, "" if ok else f"output {what} /{self.pattern}/: {quote(sample.output)}")


_MISSING = object()


@dataclass
class JsonFieldCheck:
    path: str
    equals: Any
    name: str = "json_field"

    def validate_case(self, *, expected: str | None, where: str) -> None:
        return None

    def run(self, sample: Sample) -> CheckResult:
        data = parse_json_output(sample.output)
        if data is _MISSING:
            return CheckResult(self.name, False, 0.0, f"output is not JSON: {quote(sample.output)}")
        value = data
        for part in self.path.split("."):
            if isinstance(value, Mapping) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
                value = value[int(part)]
            else:
                return CheckResult(self.name, False, 0.0, f"no field {self.path!r} in the output JSON")
        ok = value == self.equals
        return CheckResult(
            self.name, ok, 1.0 if ok else 0.0,
            "" if ok else f"{self.path} = {json.dumps(value, ensure_ascii=False)}, expected {json.dumps(self.equals, ensure_ascii=False)}",
        )


def parse_json_output(text: str) -> Any:
    """The JSON in a model output: the whole text, else a fenced ```json block; `_MISSING` if neither parses."""
    candidates = [text.strip()]
    fenced = re.search(r"```(?:json)?\s*\n(.*?)```", text, re.DOTALL)
    if fenced:
        candidates.append(fenced.group(1).strip())
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return _MISSING


@dataclass
class ValidatorCheck:
    """A section-1 output validator run offline; its ``None`` (not applicable) skips the check."""

    spec: Mapping[str, Any]
    where: str
    name: str = ""

    def __post_init__(self) -> None:
        try:
            from llm_telemetry.processors.quality.validators import build_validator
        except ImportError as exc:
            raise DatasetError(f"{self.where}: validator checks need llm_telemetry.processors.quality.validators ({exc})") from None
        try:
            self._validator = build_validator(self.spec, where=self.where)
        except DatasetError:
            raise
        except Exception as exc:  # the validators module raises its own ConfigError/ValueError naming `where`
            raise DatasetError(str(exc) if self.where in str(exc) else f"{self.where}: {exc}") from None
        self.name = self.name or str(getattr(self._validator, "name", "validator"))

    def validate_case(self, *, expected: str | None, where: str) -> None:
        return None

    def run(self, sample: Sample) -> CheckResult | None:
        result = self._validator.validate(sample.case.prompt_text or None, sample.output)
        if result is None:
            return None
        return CheckResult(self.name, bool(result.passed), float(result.score), result.explanation)


@dataclass
class FaithfulnessCheck:
    method: str = "offline"
    threshold: float = 0.75
    word_support: float = 0.6
    date_order: str = "DMY"
    model: str | None = None
    base_url: str | None = None
    name: str = "faithfulness"

    def validate_case(self, *, expected: str | None, where: str) -> None:
        return None

    def run(self, sample: Sample) -> CheckResult:
        if not sample.context.strip():
            return CheckResult(self.name, False, 0.0, "no context to check the answer against", error="no_context")
        if self.method == "offline":
            verdict = check_faithfulness(sample.output, sample.context, word_support=self.word_support, default_order=self.date_order)
            return CheckResult(self.name, verdict.passed(self.threshold), verdict.score, verdict.explanation)
        if sample.judge is None:
            return CheckResult(self.name, False, 0.0, "no LLM judge available", error="no_judge")
        question = sample.case.input if isinstance(sample.case.input, str) else sample.case.prompt_text
        try:
            judged = sample.judge(self.model, self.base_url)(sample.context, question, sample.output)
        except Exception as exc:  # SDK errors, unusable answers: the check fails visibly, the run goes on
            return CheckResult(self.name, False, 0.0, f"the faithfulness judge failed: {type(exc).__name__}: {exc}"[:300],
                               error=type(exc).__qualname__)
        return CheckResult(self.name, judged.score >= self.threshold, judged.score, judged.explanation)


@dataclass
class FunctionCheck:
    """A Python evaluator ``fn(output, case)`` (LangSmith's ``(run, example)`` order), any of these returns:
    ``bool``; a number (score, passes at ≥ 0.5); a mapping with ``score`` / ``passed`` / ``explanation``
    (or LangSmith's ``key`` / ``comment``); a `CheckResult`; ``None`` (not applicable)."""

    fn: Callable[[str, Case], Any]
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or getattr(self.fn, "__name__", type(self.fn).__name__)

    def validate_case(self, *, expected: str | None, where: str) -> None:
        return None

    def run(self, sample: Sample) -> CheckResult | None:
        try:
            value = self.fn(sample.output, sample.case)
        except Exception as exc:
            return CheckResult(self.name, False, 0.0, f"evaluator raised {type(exc).__name__}: {exc}"[:300], error=type(exc).__qualname__)
        return result_from(self.name, value)


def result_from(name: str, value: Any) -> CheckResult | None:
    if value is None or isinstance(value, CheckResult):
        return value
    if isinstance(value, bool):
        return CheckResult(name, value, 1.0 if value else 0.0)
    if isinstance(value, (int, float)):
        return CheckResult(name, float(value) >= 0.5, float(value))
    if isinstance(value, Mapping):
        name = str(value.get("name") or value.get("key") or name)
        score = value.get("score")
        passed = value.get("passed")
        if score is None and passed is None:
            return CheckResult(name, False, 0.0, f"evaluator returned neither score nor passed: {value!r}"[:300], error="bad_result")
        score_f = float(score) if score is not None else (1.0 if passed else 0.0)
        return CheckResult(name, bool(passed) if passed is not None else score_f >= 0.5, score_f,
                           str(value.get("explanation") or value.get("comment") or ""))
    return CheckResult(name, False, 0.0, f"evaluator returned {type(value).__name__}, expected bool, number or mapping", error="bad_result")


# --- building from specs ---------------------------------------------------------------------------

_MAIN_OPTION = {"exact": "value", "contains": "facts", "regex": "pattern", "faithfulness": "method"}
_OPTIONS: dict[str, frozenset[str]] = {
    "exact": frozenset({"value", "ignore_case", "name"}),
    "contains": frozenset({"facts", "ignore_case", "name"}),
    "regex": frozenset({"pattern", "must_match", "name"}),
    "json_field": frozenset({"path", "equals", "name"}),
    "validator": frozenset({"spec", "name"}),
    "faithfulness": frozenset({"method", "threshold", "word_support", "date_order", "model", "base_url", "name"}),
}


def build_check(spec: Any, *, where: str) -> Check:
    """A `Check` from a dataset spec, or from a Python callable; `DatasetError` names ``where`` on bad input."""
    if callable(spec) and not isinstance(spec, (str, Mapping)):
        return FunctionCheck(spec)
    kind, options = _split(spec, where)
    if kind not in _OPTIONS:
        raise DatasetError(f"{where}: unknown check {kind!r} (known: {', '.join(_OPTIONS)})")
    unknown = set(options) - _OPTIONS[kind]
    if unknown:
        raise DatasetError(f"{where}: unknown option(s) {', '.join(sorted(map(str, unknown)))} for check {kind!r} "
                           f"(known: {', '.join(sorted(_OPTIONS[kind]))})")
    try:
        return _make(kind, options, where)
    except DatasetError:
        raise
    except re.error as exc:
        raise DatasetError(f"{where}: check {kind!r}: bad regular expression: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: check {kind!r}: {exc}") from None


def _split(spec: Any, where: str) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, str):
        return spec, {}
    if not isinstance(spec, Mapping) or not spec:
        raise DatasetError(f"{where}: a check is a name or a mapping, got {spec!r}")
    if "type" in spec:
        kind = spec["type"]
        return str(kind), {k: v for k, v in spec.items() if k != "type"}
    if len(spec) != 1:
        raise DatasetError(f"{where}: a check mapping has one key (the check) or a `type`; got keys {', '.join(map(str, spec))}")
    ((kind, value),) = spec.items()
    kind = str(kind)
    if kind == "validator":
        # The whole mapping is the validator's own spec; to name the check use {type: validator, spec: ..., name: ...}.
        if not isinstance(value, Mapping):
            raise DatasetError(f"{where}: `validator` takes a validator spec mapping")
        return kind, {"spec": dict(value)}
    if kind == "json_field" and not isinstance(value, Mapping):
        raise DatasetError(f"{where}: `json_field` takes a mapping with `path` and `equals`")
    if isinstance(value, Mapping):
        return kind, dict(value)
    if value is True and kind in ("exact", "faithfulness"):
        return kind, {}
    main = _MAIN_OPTION.get(kind)
    if main is None:
        raise DatasetError(f"{where}: unknown check {kind!r} (known: {', '.join(_OPTIONS)})")
    return kind, {main: value}


def _bool(options: Mapping[str, Any], key: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"`{key}` must be true or false, got {value!r}")
    return value


def _fraction(options: Mapping[str, Any], key: str, default: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"`{key}` must be a number from 0 to 1, got {value!r}")
    return float(value)


def _opt_str(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"`{key}` must be a string, got {value!r}")
    return value


def _make(kind: str, options: Mapping[str, Any], where: str) -> Check:
    name = _opt_str(options, "name") or kind
    if kind == "exact":
        value = options.get("value")
        return ExactCheck(None if value is None else str(value), _bool(options, "ignore_case", False), name)
    if kind == "contains":
        facts = options.get("facts")
        if isinstance(facts, str):
            facts = [facts]
        if facts is not None and (not isinstance(facts, list) or not facts or not all(isinstance(f, (str, int, float)) for f in facts)):
            raise ValueError(f"`facts` must be a non-empty list of strings, got {facts!r}")
        return ContainsCheck(tuple(str(f) for f in facts) if facts else None, _bool(options, "ignore_case", True), name)
    if kind == "regex":
        pattern = options.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"`pattern` must be a non-empty string, got {pattern!r}")
        return RegexCheck(pattern, _bool(options, "must_match", True), name)
    if kind == "json_field":
        path = options.get("path")
        if not isinstance(path, str) or not path or "equals" not in options:
            raise ValueError("needs `path` (dotted, e.g. invoice.date or items.0.sku) and `equals`")
        return JsonFieldCheck(path, options["equals"], name)
    if kind == "validator":
        spec = options.get("spec")
        if not isinstance(spec, Mapping):
            raise ValueError("needs `spec`, a validator spec mapping")
        return ValidatorCheck(spec, where, _opt_str(options, "name") or "")
    method = options.get("method", "offline")
    if method not in ("offline", "judge"):
        raise ValueError(f"`method` must be offline or judge, got {method!r}")
    order = options.get("date_order", "DMY")
    if order not in ("DMY", "MDY"):
        raise ValueError(f"`date_order` must be DMY or MDY, got {order!r}")
    return FaithfulnessCheck(
        method, _fraction(options, "threshold", 0.75), _fraction(options, "word_support", 0.6), order,
        _opt_str(options, "model"), _opt_str(options, "base_url"), name,
    )
