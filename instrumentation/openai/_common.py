"""Pieces every OpenAI operation shares: server address, request parameters, usage normalisation."""

from __future__ import annotations

from typing import Any

from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a
from llm_telemetry.instrumentation._wrap import given
from llm_telemetry.record import GenAICall

PROVIDER = "openai"



def server_of(instance: Any) -> tuple[str | None, int | None]:
    """(host, port) of the client behind a resource object; never raises."""
    try:
        url = instance._client.base_url
        host = url.host or None
        port = url.port or (443 if url.scheme == "https" else 80)
        return host, port
    except Exception:
        return None, None


def new_record(operation: str, instance: Any, model: Any, stream: bool) -> GenAICall:
    host, port = server_of(instance)
    return GenAICall(
        operation=operation,
        provider=PROVIDER,
        request_model=model if isinstance(model, str) else None,
        streaming=stream,
        server_address=host,
        server_port=port,
    )


def put(attrs: dict[str, AttributeValue], name: str, value: Any, kind: type | tuple[type, ...]) -> None:
    if (given(value) and isinstance(value, kind) and not isinstance(value, bool)) or (kind is bool and isinstance(value, bool)):
        attrs[name] = value


def stop_sequences(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def read_chat_usage(record: GenAICall, usage: Any) -> None:
    """Chat Completions usage: ``prompt_tokens`` already includes cached tokens (OpenAI semantics)."""
    if usage is None:
        return
    record.input_tokens = getattr(usage, "prompt_tokens", None)
    record.output_tokens = getattr(usage, "completion_tokens", None)
    details = getattr(usage, "prompt_tokens_details", None)
    if details is not None:
        record.cache_read_tokens = getattr(details, "cached_tokens", None) or None
        record.cache_write_tokens = getattr(details, "cache_write_tokens", None) or None
    completion_details = getattr(usage, "completion_tokens_details", None)
    if completion_details is not None and getattr(completion_details, "reasoning_tokens", None):
        record.extra["reasoning_tokens"] = completion_details.reasoning_tokens


def read_responses_usage(record: GenAICall, usage: Any) -> None:
    """Responses / Embeddings usage: ``input_tokens`` includes cached tokens (OpenAI semantics)."""
    if usage is None:
        return
    record.input_tokens = getattr(usage, "input_tokens", None)
    record.output_tokens = getattr(usage, "output_tokens", None)
    details = getattr(usage, "input_tokens_details", None)
    if details is not None:
        record.cache_read_tokens = getattr(details, "cached_tokens", None) or None
        record.cache_write_tokens = getattr(details, "cache_write_tokens", None) or None
    output_details = getattr(usage, "output_tokens_details", None)
    if output_details is not None and getattr(output_details, "reasoning_tokens", None):
        record.extra["reasoning_tokens"] = output_details.reasoning_tokens


def common_request_attributes(kwargs: dict[str, Any], stream: bool) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {a.REQUEST_STREAM: stream}
    temperature = kwargs.get("temperature")
    if given(temperature) and isinstance(temperature, (int, float)):
        attrs[a.REQUEST_TEMPERATURE] = float(temperature)
    top_p = kwargs.get("top_p")
    if given(top_p) and isinstance(top_p, (int, float)):
        attrs[a.REQUEST_TOP_P] = float(top_p)
    return attrs
