"""`GenAICall`: the one record of a finished GenAI call that instrumentation fills and processors read.

Our own instrumentation hands the full record (content included) to processors through the
in-process side channel (`llm_telemetry.side_channel`). For spans that someone else produced — the
official GenAI instrumentations, OpenLLMetry, the Anthropic SDK's native tracing, a gateway —
`GenAICall.from_attributes` rebuilds the same record from span attributes, accepting legacy names.
Processors therefore have one input type whatever produced the span.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from llm_telemetry import attributes as a

logger = logging.getLogger(__name__)


MAX_TOKEN_COUNT: Final = 10**9
"""The largest token count accepted for one call. The largest context windows hold ~10**6 tokens; a count
above 10**9 is a broken reply, and left in it would overflow int64 metric points (every later OTLP export
of the series fails with "Value out of range") or price one call at millions of dollars."""


class UsageRejections:
    """How many token counts were rejected at the boundary (instrumentation readers, `GenAICall.from_attributes`).

    Exposed for the ``llm_telemetry.dropped`` metric (reason ``invalid_usage``): nothing dropped is silent.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, name: str) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def by_field(self) -> dict[str, int]:
        """Rejections per attribute name (``gen_ai.usage.input_tokens`` …) since start."""
        with self._lock:
            return dict(self._counts)


usage_rejections = UsageRejections()
"""The process-wide count of rejected token counts."""


def _token_count(value: Any) -> int | None:
    """``value`` as a valid token count, or ``None`` if it is not one (negative, bool, fractional, absurd, not a number)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_TOKEN_COUNT:
        return value
    return None


def checked_tokens(record: GenAICall, name: str, value: Any) -> int | None:
    """A token count read from a provider reply or a span, validated: the one gate every usage number passes.

    ``None`` stays ``None`` (not reported). An invalid value is rejected: ``None`` is returned, ``name``
    (the semconv attribute, e.g. ``gen_ai.usage.input_tokens``) is added to ``record.usage_invalid`` and
    `usage_rejections` counts it. Integral floats (``12.0``, as some JSON encoders write them) are accepted.
    """
    rejected: list[str] = []
    count = _checked(name, value, rejected)
    if rejected and name not in record.usage_invalid:
        record.usage_invalid = (*record.usage_invalid, name)
    return count


def _checked(name: str, value: Any, rejected: list[str]) -> int | None:
    if value is None:
        return None
    count = _token_count(value)
    if count is None:
        rejected.append(name)
        usage_rejections.add(name)
    return count


@dataclass(slots=True)
class StreamTimings:
    """Latency of a streamed response, measured where the application receives each chunk."""

    ttft_s: float | None = None
    chunk_count: int = 0
    tbt_mean_s: float | None = None
    tbt_p50_s: float | None = None
    tbt_p95_s: float | None = None
    tbt_p99_s: float | None = None
    tbt_max_s: float | None = None
    stall_count: int = 0
    output_tokens_per_s: float | None = None
    end_reason: str | None = None


@dataclass(slots=True, weakref_slot=True)
class GenAICall:
    """A finished GenAI call: request, response, usage, timings, attribution and (in-process) content.

    Token fields follow the semantic conventions: ``input_tokens`` counts every input token, cache
    reads and writes included; ``cache_read_tokens`` / ``cache_write_tokens`` are the parts of it
    that were read from or written to the provider's prompt cache.
    """

    operation: str
    provider: str
    request_model: str | None = None
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: tuple[str, ...] = ()
    streaming: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    output_tokens_estimated: bool = False
    input_tokens_estimated: bool = False
    """True when ``input_tokens`` is our estimate (a stream that reported no usage), not the provider's count."""
    usage_invalid: tuple[str, ...] = ()
    """Usage attributes whose reported value was rejected (see `checked_tokens`); those fields stay ``None``."""
    system_fingerprint: str | None = None
    """OpenAI's ``system_fingerprint``: the backend configuration that served the call (model-version watch)."""
    duration_s: float | None = None
    timings: StreamTimings | None = None
    error_type: str | None = None
    server_address: str | None = None
    server_port: int | None = None
    user_id: str | None = None
    session_id: str | None = None
    conversation_id: str | None = None
    feature: str | None = None
    # Content: always present in-process when our instrumentation produced the call; only exported
    # when the user opts in to content capture.
    system_instructions: str | None = None
    input_messages: list[dict[str, Any]] | None = None
    output_text: str | None = None
    trace_id: int = 0
    span_id: int = 0
    """The span's identity (0 when unknown). Set for every call, sampled or not: alerts cite example trace ids."""
    start_time_ns: int | None = None
    end_time_ns: int | None = None
    """Wall-clock start/end of the call (ns since the epoch). Windows (budgets, drift) use the call's time,
    not the time the pipeline happened to see it: a gateway may receive spans late or replayed."""
    source: str = "llm_telemetry"
    """Who produced the span: ``llm_telemetry`` (side channel) or ``attributes`` (rebuilt)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> str | None:
        """The model that answered, else the one asked for."""
        return self.response_model or self.request_model

    @property
    def prompt_text(self) -> str | None:
        """All input message text joined, for screens that look at the prompt."""
        if not self.input_messages and not self.system_instructions:
            return None
        parts: list[str] = []
        if self.system_instructions:
            parts.append(self.system_instructions)
        for message in self.input_messages or ():
            for part in message.get("parts", ()):
                content = part.get("content")
                if isinstance(content, str):
                    parts.append(content)
        return "\n".join(parts)

    @classmethod
    def from_attributes(cls, attrs: Mapping[str, Any]) -> GenAICall | None:
        """Rebuild a record from span attributes; ``None`` if the span is not a GenAI span.

        Accepts the current semantic-convention names and the legacy ones (``gen_ai.system``,
        ``gen_ai.usage.prompt_tokens`` …) other instrumentations still emit. Never raises.
        """
        try:
            return _from_attributes(cls, attrs)
        except Exception:  # a malformed foreign span must not break the pipeline
            logger.debug("could not rebuild a GenAI record from span attributes", exc_info=True)
            return None


def is_genai_span(attrs: Mapping[str, Any] | None) -> bool:
    """A span is a GenAI span when it names a GenAI operation, provider or request model."""
    if not attrs:
        return False
    return (
        a.OPERATION_NAME in attrs
        or a.PROVIDER_NAME in attrs
        or a.LEGACY_PROVIDER in attrs
        or a.REQUEST_MODEL in attrs
    )


def _int(value: Any) -> int | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _output_text(attrs: Mapping[str, Any]) -> str | None:
    raw = attrs.get(a.OUTPUT_MESSAGES)
    if not isinstance(raw, str):
        return _str(attrs.get("gen_ai.completion.0.content"))
    try:
        messages = json.loads(raw)
    except ValueError:
        return None
    texts = [
        part.get("content")
        for message in messages if isinstance(message, dict)
        for part in message.get("parts", ()) if isinstance(part, dict) and part.get("type") == "text"
    ]
    return "".join(t for t in texts if isinstance(t, str)) or None


def _input_messages(attrs: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    raw = attrs.get(a.INPUT_MESSAGES)
    if not isinstance(raw, str):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, list) else None


def _usage_invalid(attrs: Mapping[str, Any], rejected_here: list[str]) -> tuple[str, ...]:
    """What was rejected here plus what the producer already flagged (``llm_telemetry.usage.invalid``)."""
    flagged = attrs.get(a.USAGE_INVALID)
    names = [n for n in flagged if isinstance(n, str)] if isinstance(flagged, Sequence) and not isinstance(flagged, str) else []
    return tuple(dict.fromkeys([*names, *rejected_here]))


def _from_attributes(cls: type[GenAICall], attrs: Mapping[str, Any]) -> GenAICall | None:
    # Written for speed (it runs for every foreign span in-process and every span in the gateway): one bound
    # ``get``, legacy names looked up only when the current one is missing, validation only for present values.
    if not is_genai_span(attrs):
        return None
    get = attrs.get
    provider = _str(_either(get, a.PROVIDER_NAME, a.LEGACY_PROVIDER)) or "unknown"
    rejected: list[str] = []
    reported_input = _checked(a.USAGE_INPUT_TOKENS, _either(get, a.USAGE_INPUT_TOKENS, a.LEGACY_PROMPT_TOKENS), rejected)
    estimated_input = _checked(a.USAGE_INPUT_TOKENS_ESTIMATE, get(a.USAGE_INPUT_TOKENS_ESTIMATE), rejected)  # ours
    input_tokens = reported_input if reported_input is not None else estimated_input
    reported_output = _checked(a.USAGE_OUTPUT_TOKENS, _either(get, a.USAGE_OUTPUT_TOKENS, a.LEGACY_COMPLETION_TOKENS), rejected)
    estimated_output = _checked(a.USAGE_OUTPUT_TOKENS_ESTIMATE, get(a.USAGE_OUTPUT_TOKENS_ESTIMATE), rejected)  # ours
    cache_read = _checked(
        a.USAGE_CACHE_READ_INPUT_TOKENS, _either(get, a.USAGE_CACHE_READ_INPUT_TOKENS, a.LEGACY_CACHE_READ_TOKENS), rejected
    )
    cache_write = get(a.USAGE_CACHE_CREATION_INPUT_TOKENS)
    if cache_write is None:
        cache_write = _either(get, a.ANTHROPIC_CACHE_WRITE_TOKENS, a.LEGACY_CACHE_CREATION_TOKENS)
    cache_write = _checked(a.USAGE_CACHE_CREATION_INPUT_TOKENS, cache_write, rejected)
    if input_tokens is not None and provider == "anthropic" and a.USAGE_INPUT_TOKENS not in attrs:
        # Legacy Anthropic spans (OpenLLMetry) report prompt tokens without the cached parts.
        input_tokens += (cache_read or 0) + (cache_write or 0)
    reasons = get(a.RESPONSE_FINISH_REASONS)
    port = get(a.SERVER_PORT)
    timings = None
    if a.RESPONSE_TIME_TO_FIRST_CHUNK in attrs or a.STREAM_CHUNK_COUNT in attrs:
        timings = StreamTimings(
            ttft_s=get(a.RESPONSE_TIME_TO_FIRST_CHUNK),
            chunk_count=_int(get(a.STREAM_CHUNK_COUNT)) or 0,
            tbt_mean_s=get(a.STREAM_TBT_MEAN),
            tbt_p50_s=get(a.STREAM_TBT_P50),
            tbt_p95_s=get(a.STREAM_TBT_P95),
            tbt_p99_s=get(a.STREAM_TBT_P99),
            tbt_max_s=get(a.STREAM_TBT_MAX),
            stall_count=_int(get(a.STREAM_STALL_COUNT)) or 0,
            output_tokens_per_s=get(a.STREAM_OUTPUT_TOKENS_PER_SECOND),
            end_reason=_str(get(a.STREAM_END_REASON)),
        )
    system = get(a.SYSTEM_INSTRUCTIONS)
    flagged = get(a.USAGE_INVALID)
    return cls(
        operation=_str(get(a.OPERATION_NAME)) or "chat",
        provider=provider,
        request_model=_str(get(a.REQUEST_MODEL)),
        response_model=_str(get(a.RESPONSE_MODEL)),
        response_id=_str(get(a.RESPONSE_ID)),
        finish_reasons=tuple(reasons) if isinstance(reasons, Sequence) and not isinstance(reasons, str) else (),
        streaming=bool(get(a.REQUEST_STREAM, False)),
        input_tokens=input_tokens,
        output_tokens=reported_output if reported_output is not None else estimated_output,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        output_tokens_estimated=bool(get(a.USAGE_OUTPUT_TOKENS_ESTIMATED, False))
        or (reported_output is None and estimated_output is not None),
        system_fingerprint=_str(_either(get, a.OPENAI_RESPONSE_SYSTEM_FINGERPRINT, a.LEGACY_OPENAI_SYSTEM_FINGERPRINT)),
        input_tokens_estimated=bool(get(a.USAGE_INPUT_TOKENS_ESTIMATED, False))
        or (reported_input is None and estimated_input is not None),
        usage_invalid=_usage_invalid(attrs, rejected) if flagged is not None or rejected else (),
        timings=timings,
        error_type=_str(get(a.ERROR_TYPE)),
        server_address=_str(get(a.SERVER_ADDRESS)),
        server_port=None if port is None else _int(port),
        user_id=_str(get(a.USER_ID)),
        session_id=_str(get(a.SESSION_ID)),
        conversation_id=_str(get(a.CONVERSATION_ID)),
        feature=_str(get(a.FEATURE)),
        system_instructions=system if isinstance(system, str) else None,
        input_messages=_input_messages(attrs) if a.INPUT_MESSAGES in attrs else None,
        output_text=_output_text(attrs),
        source="attributes",
    )


def _either(get: Any, name: str, legacy: str) -> Any:
    """The value under ``name``, else under ``legacy`` (``None`` counts as missing)."""
    value = get(name)
    return value if value is not None else get(legacy)
