"""Pieces every OpenAI operation shares: server address, request parameters, usage normalisation."""

from __future__ import annotations

from typing import Any

from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a
from llm_telemetry.instrumentation._wrap import given
from llm_telemetry.record import GenAICall, checked_tokens

PROVIDER = "openai"
AZURE_PROVIDER = "azure.ai.openai"
"""``gen_ai.provider.name`` of ``openai.AzureOpenAI`` / ``AsyncAzureOpenAI`` clients (semconv's well-known value)."""
_AZURE_CLASSES = frozenset({"BaseAzureClient", "AzureOpenAI", "AsyncAzureOpenAI"})
_provider_of_type: dict[type, str] = {}



def server_of(instance: Any) -> tuple[str | None, int | None]:
    """(host, port) of the client behind a resource object; never raises."""
    try:
        url = instance._client.base_url
        host = url.host or None
        port = url.port or (443 if url.scheme == "https" else 80)
        return host, port
    except Exception:
        return None, None


def provider_of(instance: Any) -> str:
    """``azure.ai.openai`` for an Azure client behind the resource object, else ``openai``; never raises."""
    try:
        cls = type(instance._client)
    except Exception:
        return PROVIDER
    provider = _provider_of_type.get(cls)
    if provider is None:
        provider = AZURE_PROVIDER if any(c.__name__ in _AZURE_CLASSES for c in cls.__mro__) else PROVIDER
        _provider_of_type[cls] = provider
    return provider


def new_record(operation: str, instance: Any, model: Any, stream: bool) -> GenAICall:
    host, port = server_of(instance)
    return GenAICall(
        operation=operation,
        provider=provider_of(instance),
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
    _read_usage(record, usage, "prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details")


def read_responses_usage(record: GenAICall, usage: Any) -> None:
    """Responses / Embeddings usage: ``input_tokens`` includes cached tokens (OpenAI semantics)."""
    _read_usage(record, usage, "input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details")


def _read_usage(record: GenAICall, usage: Any, input_key: str, output_key: str, input_details: str, output_details: str) -> None:
    """Every number passes `checked_tokens`: a negative, fractional or absurd count is rejected and flagged."""
    if usage is None:
        return
    record.input_tokens = checked_tokens(record, a.USAGE_INPUT_TOKENS, getattr(usage, input_key, None))
    record.output_tokens = checked_tokens(record, a.USAGE_OUTPUT_TOKENS, getattr(usage, output_key, None))
    details = getattr(usage, input_details, None)
    if details is not None:
        record.cache_read_tokens = checked_tokens(record, a.USAGE_CACHE_READ_INPUT_TOKENS, getattr(details, "cached_tokens", None)) or None
        record.cache_write_tokens = (
            checked_tokens(record, a.USAGE_CACHE_CREATION_INPUT_TOKENS, getattr(details, "cache_write_tokens", None)) or None
        )
    out_details = getattr(usage, output_details, None)
    if out_details is not None:
        reasoning = checked_tokens(record, a.USAGE_REASONING_OUTPUT_TOKENS, getattr(out_details, "reasoning_tokens", None))
        if reasoning:
            record.extra["reasoning_tokens"] = reasoning


def common_request_attributes(kwargs: dict[str, Any], stream: bool) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {a.REQUEST_STREAM: stream}
    temperature = kwargs.get("temperature")
    if given(temperature) and isinstance(temperature, (int, float)):
        attrs[a.REQUEST_TEMPERATURE] = float(temperature)
    top_p = kwargs.get("top_p")
    if given(top_p) and isinstance(top_p, (int, float)):
        attrs[a.REQUEST_TOP_P] = float(top_p)
    return attrs
