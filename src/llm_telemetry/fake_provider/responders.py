"""Answers computed from the request, for scenarios where one fixed ``text`` per request is not enough.

A golden dataset or a canary sends many different prompts and expects each to get *its* answer; the
story's silent model update then changes those answers in one specific way. ``Behaviour.responder``
names one of these functions; the server calls it with the request body and serves what it returns
as the text.

- ``iso_dates``: every ``DD/MM/YYYY`` date in the last user message, as ISO 8601, comma-separated —
  what a correct date-extraction model answers.
- ``iso_dates_transposed``: the same after the silent update: a date whose day and month are both
  ≤ 12 is read as ``MM/DD/YYYY`` (day and month swapped); unambiguous dates (day > 12) stay right,
  as a real model would get them right.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_DMY = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b")
NO_DATE = "No date found."


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message of an OpenAI Chat / Responses or Anthropic Messages request."""
    if isinstance(body.get("input"), str):
        return str(body["input"])
    messages = body.get("messages") if isinstance(body.get("messages"), list) else body.get("input")
    for message in reversed(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict) or message.get("role", "user") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(
                str(part.get("text", "")) for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
    return ""


def _iso_dates(body: dict[str, Any], *, transpose: bool) -> str:
    found = []
    for day, month, year in _DMY.findall(last_user_text(body)):
        d, m = int(day), int(month)
        if transpose and d <= 12 and m <= 12:
            d, m = m, d
        found.append(f"{year}-{m:02d}-{d:02d}")
    return ", ".join(found) if found else NO_DATE


RESPONDERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "iso_dates": lambda body: _iso_dates(body, transpose=False),
    "iso_dates_transposed": lambda body: _iso_dates(body, transpose=True),
}


def respond(name: str, body: dict[str, Any]) -> str:
    return RESPONDERS[name](body)
