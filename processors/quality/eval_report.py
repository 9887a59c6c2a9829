"""The result of an evaluation run: per-case results, totals, the printed table and JSON.

(The progress bar shown while a run goes is `llm_telemetry.progress.Progress`.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llm_telemetry.processors.quality.checks import CheckResult

_ID_WIDTH = 18


@dataclass
class CaseResult:
    case_id: str
    output: str | None
    expected: str | None
    checks: list[CheckResult] = field(default_factory=list)
    error: str | None = None
    """``TypeName: message`` when the target raised (the case then fails with score 0)."""
    duration_s: float = 0.0
    trace_id: str = ""
    span_id: str = ""
    response_id: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and all(c.passed for c in self.checks)

    @property
    def score(self) -> float:
        """Mean of the check scores (1.0 with no checks); 0 when the target raised."""
        if self.error is not None:
            return 0.0
        return sum(c.score for c in self.checks) / len(self.checks) if self.checks else 1.0

    @property
    def outcome(self) -> str:
        return "error" if self.error is not None else ("pass" if self.passed else "fail")

    def failure(self) -> str:
        """Why the case failed, in one line (empty if it passed)."""
        if self.error is not None:
            return f"target raised {self.error}"
        failed = [c for c in self.checks if not c.passed]
        return "; ".join(f"{c.name}: {c.explanation}" for c in failed[:2]) if failed else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.case_id, "outcome": self.outcome, "passed": self.passed, "score": round(self.score, 4),
            "output": self.output, "expected": self.expected, "error": self.error, "duration_s": round(self.duration_s, 4),
            "trace_id": self.trace_id, "span_id": self.span_id, "response_id": self.response_id,
            "checks": [
                {"name": c.name, "passed": c.passed, "score": round(c.score, 4), "explanation": c.explanation, "error": c.error}
                for c in self.checks
            ],
        }


@dataclass
class EvalReport:
    name: str
    cases: list[CaseResult]
    started_at: float
    """Wall-clock start (seconds since the epoch)."""
    duration_s: float
    trace_id: str = ""
    span_id: str = ""
    """The run span (``evaluate <dataset>``); empty when tracing is off."""
    target: str = ""

    @property
    def total(self) -> int:
        return len(self.cases)

    @property
    def passed(self) -> int:
        return sum(c.passed for c in self.cases)

    @property
    def errors(self) -> int:
        return sum(c.error is not None for c in self.cases)

    @property
    def failed(self) -> int:
        return self.total - self.passed - self.errors

    @property
    def pass_rate(self) -> float:
        return self.passed / self.total if self.total else 0.0

    @property
    def score(self) -> float:
        return sum(c.score for c in self.cases) / self.total if self.total else 0.0

    def case(self, case_id: str) -> CaseResult:
        for c in self.cases:
            if c.case_id == case_id:
                return c
        raise KeyError(case_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.name, "target": self.target, "started_at": self.started_at, "duration_s": round(self.duration_s, 3),
            "trace_id": self.trace_id, "total": self.total, "passed": self.passed, "failed": self.failed, "errors": self.errors,
            "pass_rate": round(self.pass_rate, 4), "score": round(self.score, 4), "cases": [c.to_dict() for c in self.cases],
        }

    def table(self) -> str:
        """The scored table: one line per case (result, score, each check), the reason under failing cases, totals."""
        lines = [f"evaluate {self.name}" + (f" ({self.target})" if self.target else "") + f": {self.total} cases"]
        header = f"{'case':{_ID_WIDTH}} {'result':6} {'score':>5}  checks"
        lines += [header, "-" * max(len(header), 60)]
        for c in self.cases:
            marks = " ".join(f"{r.name}:{'ok' if r.passed else 'FAIL'}" + ("" if r.score in (0.0, 1.0) else f"({r.score:.2f})")
                             for r in c.checks) or "-"
            result = {"pass": "pass", "fail": "FAIL", "error": "ERROR"}[c.outcome]
            lines.append(f"{c.case_id[:_ID_WIDTH]:{_ID_WIDTH}} {result:6} {c.score:5.2f}  {marks}")
            if not c.passed:
                lines.append(f"{'':{_ID_WIDTH}}   └ {c.failure()}")
        lines.append("-" * max(len(header), 60))
        lines.append(
            f"passed {self.passed}/{self.total} ({self.pass_rate:.1%}), failed {self.failed}, errors {self.errors}, "
            f"mean score {self.score:.3f}, {self.duration_s:.1f} s" + (f", trace {self.trace_id}" if self.trace_id else "")
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()
