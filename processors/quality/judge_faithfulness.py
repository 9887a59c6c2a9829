"""LLM-judge faithfulness: ask a model, through the (instrumented) ``openai`` SDK, whether the answer's
claims are supported by the context, and read back a 0..1 score.

The judge call runs where the check runs — inside the eval case span — so it appears in the case's
trace with its own cost (feature ``eval_judge``). The prompt is a data file (``faithfulness_prompt.txt``,
placeholders ``$context``, ``$question``, ``$answer``). The answer is read leniently (JSON wrapped in
prose or code fences, scores as strings or outside 0..1); an answer with no usable ``score`` is a
`JudgeAnswerError`, which the check reports as a failed check with the error, never as a pass.
"""

from __future__ import annotations

import os
import string
import threading
from dataclasses import dataclass
from importlib import resources
from typing import Any

from llm_telemetry.attribution import attribute
from llm_telemetry.config import EvalSettings
from llm_telemetry.processors.judge_answer import JudgeAnswerError, json_object_in

PROMPT_FILE = "faithfulness_prompt.txt"
JUDGE_FEATURE = "eval_judge"
MAX_CHARS = 8000
"""Context, question and answer are each truncated to this many characters: bounded judge cost."""


@dataclass(frozen=True, slots=True)
class JudgeScore:
    score: float
    explanation: str
    unsupported: tuple[str, ...] = ()


def parse_score(answer: str | None) -> JudgeScore:
    """The score in a judge's answer: the outermost ``{...}``, ``score`` clamped to 0..1."""
    data = json_object_in(answer, "score")
    try:
        score = float(data["score"])
    except (TypeError, ValueError):
        raise JudgeAnswerError(f"the judge's `score` is not a number: {data['score']!r}") from None
    if score != score:
        raise JudgeAnswerError("the judge's `score` is NaN")
    unsupported = data.get("unsupported_claims") or []
    claims = tuple(str(c) for c in unsupported) if isinstance(unsupported, list) else ()
    explanation = data.get("explanation")
    text = explanation.strip()[:500] if isinstance(explanation, str) and explanation.strip() else ""
    if claims and not text:
        text = "unsupported: " + "; ".join(claims[:3])
    return JudgeScore(min(1.0, max(0.0, score)), text, claims)


def load_template() -> string.Template:
    text = resources.files("llm_telemetry.processors.quality").joinpath(PROMPT_FILE).read_text(encoding="utf-8")
    return string.Template(text)


@dataclass
class FaithfulnessJudge:
    """``(context, question, answer) -> JudgeScore`` over ``chat.completions``; the client is built on first use."""

    model: str
    base_url: str = ""
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        self._template = load_template()
        self._client: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: EvalSettings, *, model: str | None = None, base_url: str | None = None) -> FaithfulnessJudge:
        return cls(model or settings.judge_model, settings.judge_base_url if base_url is None else base_url, settings.judge_timeout_s)

    def __call__(self, context: str, question: str, answer: str) -> JudgeScore:
        message = self._template.safe_substitute(
            context=context[:MAX_CHARS], question=(question or "(not available)")[:MAX_CHARS], answer=answer[:MAX_CHARS],
        )
        with attribute(feature=JUDGE_FEATURE):
            response = self._get_client().chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": message}], temperature=0,
            )
        return parse_score(response.choices[0].message.content if response.choices else None)

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                import openai

                # A local OpenAI-compatible judge (base URL given) often needs no key; the SDK insists on one.
                key = os.environ.get("OPENAI_API_KEY") or ("unused" if self.base_url else None)
                self._client = openai.OpenAI(api_key=key, base_url=self.base_url or None, timeout=self.timeout_s, max_retries=1)
            return self._client
