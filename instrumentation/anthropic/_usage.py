"""Anthropic usage → `GenAICall` token fields, the one place the cache-token normalisation happens.

Anthropic's ``input_tokens`` *excludes* the tokens read from and written to the prompt cache, which it
reports beside it (``cache_read_input_tokens``, ``cache_creation_input_tokens``). The conventions and
our `GenAICall` count every input token, so the cached parts are added back here, once, for both the
complete Message and the streamed events; ``cache_read_tokens`` / ``cache_write_tokens`` keep the
parts for pricing. Without this a cached 10k-token prompt would be reported as a few dozen tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_telemetry import attributes as a
from llm_telemetry.record import GenAICall, checked_tokens


def field(obj: Any, key: str) -> Any:
    """``obj[key]`` for a mapping (a decoded body), ``obj.key`` for an SDK model; ``None`` if absent."""
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_usage(record: GenAICall, usage: Any) -> None:
    """Anthropic usage (SDK model or mapping) into ``record``; every number passes `checked_tokens`."""
    if usage is None:
        return
    base = checked_tokens(record, a.USAGE_INPUT_TOKENS, field(usage, "input_tokens"))
    cache_read = checked_tokens(record, a.USAGE_CACHE_READ_INPUT_TOKENS, field(usage, "cache_read_input_tokens"))
    cache_write = checked_tokens(record, a.USAGE_CACHE_CREATION_INPUT_TOKENS, field(usage, "cache_creation_input_tokens"))
    if base is not None:
        record.input_tokens = base + (cache_read or 0) + (cache_write or 0)
    if cache_read is not None:
        record.cache_read_tokens = cache_read
    if cache_write is not None:
        record.cache_write_tokens = cache_write
    output = checked_tokens(record, a.USAGE_OUTPUT_TOKENS, field(usage, "output_tokens"))
    if output is not None:
        record.output_tokens = output
    thinking = checked_tokens(record, a.USAGE_REASONING_OUTPUT_TOKENS, field(field(usage, "output_tokens_details"), "thinking_tokens"))
    if thinking:
        record.extra["reasoning_tokens"] = thinking
