"""OpenAI wire formats: Chat Completions, Responses, Embeddings (JSON and SSE) and error bodies.

Shapes follow what the API sends and the `openai` SDK's types parse (checked against
``openai/types/chat``, ``openai/types/responses``): required fields are always present, optional ones
appear the way the API shows them. Usage follows OpenAI semantics: ``prompt_tokens`` / ``input_tokens``
already *include* the cached tokens reported in the details.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import time
from typing import Any

from llm_telemetry.fake_provider.behaviour import Behaviour
from llm_telemetry.fake_provider.replies import JsonReply, Reply, StreamReply, new_id, sse

DATED_SUFFIX = "-2024-07-18"
FALLBACK_MODEL = "gpt-fake"
DEFAULT_EMBEDDING_DIMENSIONS = 8

_ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    409: ("invalid_request_error", "conflict"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


def error_body(status: int, message: str) -> dict[str, Any]:
    """``{"error": {...}}`` as OpenAI sends it; 5xx are ``server_error``."""
    err_type, code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}


def _model(body: dict[str, Any], b: Behaviour) -> str:
    return b.response_model(body.get("model"), dated_suffix=DATED_SUFFIX, fallback=FALLBACK_MODEL)


# --- Chat Completions ----------------------------------------------------------------------------


def _chat_usage(b: Behaviour) -> dict[str, Any]:
    completion = b.completion_tokens()
    usage: dict[str, Any] = {
        "prompt_tokens": b.input_tokens,
        "completion_tokens": completion,
        "total_tokens": b.input_tokens + completion,
    }
    if b.cache_read_tokens or b.cache_write_tokens:
        details: dict[str, int] = {"cached_tokens": b.cache_read_tokens, "audio_tokens": 0}
        if b.cache_write_tokens:
            details["cache_write_tokens"] = b.cache_write_tokens
        usage["prompt_tokens_details"] = details
    if b.reasoning_tokens:
        usage["completion_tokens_details"] = {
            "reasoning_tokens": b.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    return usage


def chat_completions(body: dict[str, Any], b: Behaviour) -> Reply:
    model = _model(body, b)
    finish = b.finish_reason or "stop"
    common = {"id": new_id("chatcmpl-"), "created": int(time.time()), "model": model, "system_fingerprint": b.system_fingerprint}
    if not body.get("stream"):
        message = {"role": "assistant", "content": b.full_text(), "refusal": None, "annotations": []}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        reply = {**common, "object": "chat.completion", "choices": [choice], "usage": _chat_usage(b)}
        return JsonReply(200, reply, delay_s=b.generation_time_s())

    options = body.get("stream_options")
    send_usage = b.include_usage and isinstance(options, dict) and bool(options.get("include_usage"))

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        data: dict[str, Any] = {
            **common,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if send_usage:
            data["usage"] = None
        return sse(data)

    head = [chunk({"role": "assistant", "content": "", "refusal": None})]
    content = [chunk({"content": piece}) for piece in b.content_chunks()]
    tail = [chunk({}, finish)]
    if send_usage:
        tail.append(sse({**common, "object": "chat.completion.chunk", "choices": [], "usage": _chat_usage(b)}))
    tail.append(sse("[DONE]"))
    return StreamReply(head, content, tail)


# --- Responses -----------------------------------------------------------------------------------


def _responses_usage(b: Behaviour) -> dict[str, Any]:
    output = b.completion_tokens()
    return {
        "input_tokens": b.input_tokens,
        "input_tokens_details": {"cached_tokens": b.cache_read_tokens, "cache_write_tokens": b.cache_write_tokens},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": b.reasoning_tokens},
        "total_tokens": b.input_tokens + output,
    }


def _response_object(body: dict[str, Any], b: Behaviour, rid: str, created: int) -> dict[str, Any]:
    """The Response in its in-progress state (no output, no usage); callers fill in the end state."""
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": _model(body, b),
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": None,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def _finish(response: dict[str, Any], b: Behaviour, message: dict[str, Any], with_usage: bool) -> str:
    """Move ``response`` to its end state; returns the terminal event type."""
    response["output"] = [message]
    response["usage"] = _responses_usage(b) if with_usage else None
    if b.finish_reason in ("length", "max_output_tokens"):
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "max_output_tokens"}
        return "response.incomplete"
    response["status"] = "completed"
    response["completed_at"] = int(time.time())
    return "response.completed"


def responses(body: dict[str, Any], b: Behaviour) -> Reply:
    rid, item_id, created = new_id("resp_"), new_id("msg_"), int(time.time())
    response = _response_object(body, b, rid, created)
    text = b.full_text()
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    done_message = {"id": item_id, "type": "message", "status": "completed", "role": "assistant", "content": [part]}
    if not body.get("stream"):
        _finish(response, b, done_message, with_usage=True)
        return JsonReply(200, response, delay_s=b.generation_time_s())

    seq = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> bytes:
        return sse({"type": kind, "sequence_number": next(seq), **fields}, event=kind)

    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    head = [
        event("response.created", response=dict(response)),
        event("response.in_progress", response=dict(response)),
        event(
            "response.output_item.added",
            output_index=0,
            item={"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []},
        ),
        event("response.content_part.added", **where, part={**part, "text": ""}),
    ]
    content = [event("response.output_text.delta", **where, delta=piece, logprobs=[]) for piece in b.content_chunks()]
    tail = [
        event("response.output_text.done", **where, text=text, logprobs=[]),
        event("response.content_part.done", **where, part=part),
        event("response.output_item.done", output_index=0, item=done_message),
    ]
    terminal = _finish(response, b, done_message, with_usage=b.include_usage)
    tail.append(event(terminal, response=response))
    return StreamReply(head, content, tail)


# --- Embeddings ----------------------------------------------------------------------------------


def _embedding_inputs(raw: Any) -> list[str]:
    """One string per embedding to return; token arrays are embedded by their repr."""
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list):
        if raw and all(isinstance(x, int) for x in raw):
            return [repr(raw)]
        return [x if isinstance(x, str) else repr(x) for x in raw]
    return [repr(raw)]


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """Deterministic unit vector for ``text``: equal inputs embed equally, different ones differ."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((word / 0xFFFFFFFF) * 2.0 - 1.0 for word in struct.unpack("<8I", digest))
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def embeddings(body: dict[str, Any], b: Behaviour) -> Reply:
    dims = body.get("dimensions")
    dimensions = dims if isinstance(dims, int) and not isinstance(dims, bool) and dims > 0 else DEFAULT_EMBEDDING_DIMENSIONS
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(_embedding_inputs(body.get("input"))):
        vector = embedding_vector(text, dimensions)
        encoded: Any = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if as_base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    model = body.get("model") if isinstance(body.get("model"), str) else "text-embedding-fake"
    reply = {
        "object": "list",
        "data": data,
        "model": b.model or model,
        "usage": {"prompt_tokens": b.input_tokens, "total_tokens": b.input_tokens},
    }
    return JsonReply(200, reply, delay_s=b.first_token_delay_s)
