"""Shaping prompt and output content into the GenAI semantic-convention JSON, with truncation.

Only runs when content capture is on: the record itself keeps the raw text for in-process processors.
"""

from __future__ import annotations

import json
from typing import Any

from llm_telemetry import attributes as a
from llm_telemetry.record import GenAICall


def text_message(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": text}]}


def _truncate(value: str, limit: int) -> tuple[str, bool]:
    if len(value) <= limit:
        return value, False
    return value[:limit], True


def content_attributes(record: GenAICall, limit: int) -> dict[str, Any]:
    """``gen_ai.input.messages`` / ``output.messages`` / ``system_instructions`` for ``record``.

    Each JSON value is cut to ``limit`` characters (a cut value is no longer valid JSON, which is the
    honest signal; ``llm_telemetry.content.truncated`` says so too).
    """
    out: dict[str, Any] = {}
    truncated = False
    if record.input_messages:
        out[a.INPUT_MESSAGES], cut = _truncate(json.dumps(record.input_messages, ensure_ascii=False, default=str), limit)
        truncated |= cut
    if record.system_instructions:
        system = [{"type": "text", "content": record.system_instructions}]
        out[a.SYSTEM_INSTRUCTIONS], cut = _truncate(json.dumps(system, ensure_ascii=False), limit)
        truncated |= cut
    if record.output_text is not None:
        finish = record.finish_reasons[0] if record.finish_reasons else None
        output = [
            {"role": "assistant", "parts": [{"type": "text", "content": record.output_text}], "finish_reason": finish}
        ]
        out[a.OUTPUT_MESSAGES], cut = _truncate(json.dumps(output, ensure_ascii=False), limit)
        truncated |= cut
    if truncated:
        out[a.CONTENT_TRUNCATED] = True
    return out


def messages_from_chat(messages: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """(system instructions, semconv input messages) from an OpenAI/Anthropic-style ``messages`` list.

    Accepts dicts or SDK models; text parts are kept, other parts are recorded by type only.
    """
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for message in messages or ():
        get = message.get if isinstance(message, dict) else lambda k, d=None, m=message: getattr(m, k, d)
        role = get("role", "user") or "user"
        parts = _parts(get("content"))
        if role in ("system", "developer"):
            system.extend(p["content"] for p in parts if p.get("type") == "text")
            continue
        out.append({"role": role, "parts": parts})
    return ("\n".join(system) if system else None), out


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    for block in content if isinstance(content, (list, tuple)) else (content,):
        if isinstance(block, str):
            parts.append({"type": "text", "content": block})
            continue
        get = block.get if isinstance(block, dict) else lambda k, d=None, b=block: getattr(b, k, d)
        kind = get("type", None) or "unknown"
        text = get("text", None)
        if kind in ("text", "input_text", "output_text") and isinstance(text, str):
            parts.append({"type": "text", "content": text})
        elif kind == "tool_result":
            parts.append({"type": "tool_call_response", "id": get("tool_use_id", None), "response": _flatten(get("content", None))})
        else:
            parts.append({"type": str(kind)})
    return parts


def _flatten(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    texts = [p["content"] for p in _parts(content) if p.get("type") == "text"]
    return "".join(texts) if texts else None
