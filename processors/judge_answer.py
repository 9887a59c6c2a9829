"""Reading a judge model's answer: the one JSON object in it, leniently (models wrap JSON in prose or fences).

Shared by the safety judge and the faithfulness judge, so both accept and reject answers the same way.
"""

from __future__ import annotations

import json
from typing import Any


class JudgeAnswerError(ValueError):
    """The judge model's answer had no usable verdict or score."""


def json_object_in(answer: str | None, required: str) -> dict[str, Any]:
    """The outermost ``{...}`` of ``answer`` as a dict that has the key ``required``; `JudgeAnswerError` otherwise."""
    if not answer or not answer.strip():
        raise JudgeAnswerError("the judge's answer is empty")
    start, end = answer.find("{"), answer.rfind("}")
    if start < 0 or end < start:
        raise JudgeAnswerError("the judge's answer holds no JSON object")
    try:
        data = json.loads(answer[start : end + 1])
    except ValueError:
        raise JudgeAnswerError("the judge's answer holds malformed JSON") from None
    if not isinstance(data, dict) or required not in data:
        raise JudgeAnswerError(f"the judge's answer has no `{required}` field")
    return data
