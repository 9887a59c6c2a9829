"""The default safety judge: asks an OpenAI-compatible chat model, through the (instrumented) ``openai`` SDK.

The prompt template is a data file (``judge_prompt.txt``, or ``judge.prompt_file``) with ``$prompt``
and ``$output`` placeholders, so it can be tuned without code. The answer is parsed defensively:
models wrap JSON in prose or code fences, write ``"true"`` for ``true`` and scores outside 0..1; an
answer with no usable ``flagged`` is an error (counted by the runner), never a silent "safe".

The API key comes from ``OPENAI_API_KEY`` in the environment at call time and is only handed to the
SDK; it never reaches a span, a log or the review queue.
"""

from __future__ import annotations

import os
import string
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from llm_telemetry.config import ConfigError, JudgeSettings, env_var
from llm_telemetry.processors.judge_answer import JudgeAnswerError, json_object_in
from llm_telemetry.processors.safety.judge import JudgeVerdict

DEFAULT_PROMPT_FILE = "judge_prompt.txt"
MAX_JUDGED_CHARS = 8000
"""Prompt and output are truncated to this many characters each: bounded judge cost per call."""
MAX_EXPLANATION_CHARS = 500
_NO_PROMPT = "(not available)"


def load_template(path: Path | None) -> string.Template:
    """The judge prompt template: ``path``, or the bundled one. It must contain ``$output``."""
    if path is None:
        text = resources.files("llm_telemetry.processors.safety").joinpath(DEFAULT_PROMPT_FILE).read_text(encoding="utf-8")
        origin = DEFAULT_PROMPT_FILE
    else:
        origin = f"judge.prompt_file = {str(path)!r} ({env_var('judge', 'prompt_file')})"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{origin}: cannot read the judge prompt template: {exc.strerror or exc}") from None
    if "$output" not in text and "${output}" not in text:
        raise ConfigError(f"{origin}: the judge prompt template must contain the $output placeholder")
    return string.Template(text)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    raise JudgeAnswerError(f"`flagged` must be true or false, got {value!r}")


def _score(value: Any) -> float | None:
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None
    if score != score:  # NaN
        return None
    return min(1.0, max(0.0, score))


def parse_verdict(answer: str | None) -> JudgeVerdict:
    """The verdict in a judge model's answer: the outermost ``{...}`` in it, read leniently."""
    data = json_object_in(answer, "flagged")
    category = data.get("category")
    category = category.strip() if isinstance(category, str) and category.strip().lower() not in ("", "none", "null") else None
    explanation = data.get("explanation")
    explanation = explanation.strip()[:MAX_EXPLANATION_CHARS] if isinstance(explanation, str) and explanation.strip() else None
    return JudgeVerdict(flagged=_flag(data["flagged"]), category=category, score=_score(data.get("score")), explanation=explanation)


@dataclass
class OpenAIJudge:
    """``(prompt, output) -> JudgeVerdict`` over ``chat.completions``; the SDK client is built on first use."""

    model: str
    base_url: str
    template: string.Template
    timeout_s: float = 20.0

    def __post_init__(self) -> None:
        self._client: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: JudgeSettings) -> OpenAIJudge:
        return cls(settings.model, settings.base_url, load_template(settings.prompt_file), settings.timeout_s)

    def __call__(self, prompt: str | None, output: str) -> JudgeVerdict:
        message = self.template.safe_substitute(
            prompt=(prompt or _NO_PROMPT)[:MAX_JUDGED_CHARS], output=output[:MAX_JUDGED_CHARS],
        )
        response = self._get_client().chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": message}],
        )
        answer = response.choices[0].message.content if response.choices else None
        return parse_verdict(answer)

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                import openai

                # A missing OPENAI_API_KEY makes the SDK raise here; the runner counts it as a judge failure.
                self._client = openai.OpenAI(
                    api_key=os.environ.get("OPENAI_API_KEY"), base_url=self.base_url or None,
                    timeout=self.timeout_s, max_retries=1,
                )
            return self._client
