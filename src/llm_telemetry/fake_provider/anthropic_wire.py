"""Anthropic wire format: Messages (JSON and SSE) and error bodies.

Shapes follow the API and the `anthropic` SDK's types (``anthropic/types``) and stream accumulator.
Usage follows Anthropic semantics: ``input_tokens`` *excludes* ``cache_read_input_tokens`` and
``cache_creation_input_tokens``, which are reported beside it.
"""

from __future__ import annotations

from typing import Any

from llm_telemetry.fake_provider.behaviour import Behaviour
from llm_telemetry.fake_provider.replies import JsonReply, Reply, StreamReply, new_id, sse

DATED_SUFFIX = "-20250514"
FALLBACK_MODEL = "claude-fake"

_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str) -> dict[str, Any]:
    """``{"type": "error", "error": {...}}`` as Anthropic sends it."""
    err_type = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": err_type, "message": message}}


def _usage(b: Behaviour, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": b.input_tokens,
        "cache_creation_input_tokens": b.cache_write_tokens,
        "cache_read_input_tokens": b.cache_read_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": b.cache_write_tokens, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def messages(body: dict[str, Any], b: Behaviour) -> Reply:
    model = b.response_model(body.get("model"), dated_suffix=DATED_SUFFIX, fallback=FALLBACK_MODEL)
    stop_reason = b.finish_reason or "end_turn"
    message: dict[str, Any] = {"id": new_id("msg_"), "type": "message", "role": "assistant", "model": model}
    if not body.get("stream"):
        reply = {
            **message,
            "content": [{"type": "text", "text": b.full_text()}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": _usage(b, b.completion_tokens()),
        }
        return JsonReply(200, reply, delay_s=b.generation_time_s())

    # message_start reports the input side; output_tokens there is the API's usual placeholder of 1.
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None, "usage": _usage(b, 1)}
    head = [
        _event("message_start", message=start),
        _event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        _event("ping"),
    ]
    content = [_event("content_block_delta", index=0, delta={"type": "text_delta", "text": c}) for c in b.content_chunks()]
    tail = [
        _event("content_block_stop", index=0),
        _event(
            "message_delta",
            delta={"stop_reason": stop_reason, "stop_sequence": None},
            usage={"output_tokens": b.completion_tokens()},
        ),
        _event("message_stop"),
    ]
    return StreamReply(head, content, tail)


def _event(kind: str, **fields: Any) -> bytes:
    """Anthropic names every SSE event and repeats the name as the payload's ``type``."""
    return sse({"type": kind, **fields}, event=kind)
