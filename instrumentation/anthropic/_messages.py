"""``messages.create`` / ``messages.parse`` / ``messages.stream``: request attributes and response reading.

Request values are read from the method's keyword arguments merged with ``extra_body`` (in SDK 2.x
``temperature``, ``top_p`` and ``top_k`` are only reachable through it). A generator of messages or of
system blocks is turned into a list by the wrapper first (`_wrap.materialise`): the SDK can read it once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a
from llm_telemetry.record import GenAICall

from .._call import CallSpan
from .._content import messages_from_chat
from .._telemetry import Telemetry
from .._wrap import given
from ._events import MessageEventObserver
from ._native import offer
from ._usage import field, integer, read_usage

PROVIDER = "anthropic"



def number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def read_message(record: GenAICall, message: Any) -> None:
    """A complete Message (SDK model or decoded JSON body) into ``record``."""
    response_id = field(message, "id")
    if isinstance(response_id, str):
        record.response_id = response_id
    model = field(message, "model")
    if isinstance(model, str):
        record.response_model = model
    stop_reason = field(message, "stop_reason")
    if isinstance(stop_reason, str):
        record.finish_reasons = (stop_reason,)
    read_usage(record, field(message, "usage"))
    texts = [field(block, "text") for block in field(message, "content") or () if field(block, "type") == "text"]
    texts = [text for text in texts if isinstance(text, str)]
    if texts:
        record.output_text = "".join(texts)


def _system_text(system: Any) -> str | None:
    if isinstance(system, str):
        return system or None
    if isinstance(system, (list, tuple)):
        texts = [field(block, "text") for block in system]
        joined = "\n".join(text for text in texts if isinstance(text, str))
        return joined or None
    return None


def _provider_and_server(instance: Any) -> tuple[str, str | None, int | None]:
    """(gen_ai.provider.name, host, port) of the client behind a ``Messages`` resource; never raises."""
    try:
        client = instance._client
    except AttributeError:
        return PROVIDER, None, None
    provider = getattr(client, "_gen_ai_provider_name", None)  # "aws.bedrock" for the Bedrock client
    try:
        url = client.base_url
        host = url.host or None
        port = url.port or (443 if url.scheme == "https" else 80)
    except Exception:
        host, port = None, None
    return (provider if isinstance(provider, str) and provider else PROVIDER), host, port


def request_attributes(params: Mapping[str, Any], stream: bool) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {a.REQUEST_STREAM: stream}
    max_tokens = integer(params.get("max_tokens"))
    if max_tokens is not None:
        attrs[a.REQUEST_MAX_TOKENS] = max_tokens
    for name, key in ((a.REQUEST_TEMPERATURE, "temperature"), (a.REQUEST_TOP_P, "top_p")):
        value = number(params.get(key))
        if value is not None:
            attrs[name] = value
    top_k = integer(params.get("top_k"))
    if top_k is not None:
        attrs[a.REQUEST_TOP_K] = top_k
    stops = params.get("stop_sequences")
    if isinstance(stops, (list, tuple)) and stops and all(isinstance(s, str) for s in stops):
        attrs[a.REQUEST_STOP_SEQUENCES] = list(stops)
    return attrs


class MessagesOperation:
    """The `llm_telemetry.instrumentation._wrap.Operation` for Anthropic Messages calls."""

    one_shot_args = ("messages", "system")

    def __init__(self, stream_types: tuple[type, ...], async_stream_types: tuple[type, ...]) -> None:
        self.stream_types = stream_types
        self.async_stream_types = async_stream_types

    def start(self, telemetry: Telemetry, instance: Any, kwargs: dict[str, Any]) -> CallSpan:
        params: Mapping[str, Any] = {k: v for k, v in kwargs.items() if given(v)}
        extra = params.get("extra_body")
        if isinstance(extra, Mapping) and extra:
            params = {**params, **extra}
        stream = params.get("stream") is True
        provider, host, port = _provider_and_server(instance)
        model = params.get("model")
        record = GenAICall(
            operation="chat",
            provider=provider,
            request_model=model if isinstance(model, str) and model else None,
            streaming=stream,
            server_address=host,
            server_port=port,
        )
        messages = params.get("messages")
        if isinstance(messages, (list, tuple)):
            _, record.input_messages = messages_from_chat(messages)
        record.system_instructions = _system_text(params.get("system"))
        attrs = request_attributes(params, stream)
        call = CallSpan(telemetry, record, attrs)
        offer(call.span, attrs.keys())  # CallSpan added its start attributes to ``attrs``
        return call

    def read_response(self, call: CallSpan, response: Any) -> None:
        """A Message: the SDK's model, or the decoded body of a raw response (`_body.JsonView`)."""
        if field(response, "type") == "message":
            read_message(call.record, response)

    def observer(self, call: CallSpan) -> MessageEventObserver:
        return MessageEventObserver(call.record)
