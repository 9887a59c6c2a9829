"""``embeddings.create``: no content on the span, tokens and dimension count only."""

from __future__ import annotations

from typing import Any

from llm_telemetry import attributes as a
from llm_telemetry.instrumentation._call import CallSpan
from llm_telemetry.instrumentation._content import text_message
from llm_telemetry.instrumentation._telemetry import Telemetry
from llm_telemetry.record import checked_tokens

from ._common import given, new_record


class EmbeddingsOperation:
    stream_types: tuple[type, ...] = ()
    async_stream_types: tuple[type, ...] = ()
    one_shot_args = ()  # ``input`` is read only when it is a str or a list of str: a generator is left to the SDK

    def start(self, telemetry: Telemetry, instance: Any, kwargs: dict[str, Any]) -> CallSpan:
        record = new_record("embeddings", instance, kwargs.get("model"), False)
        attrs: dict[str, Any] = {}
        encoding = kwargs.get("encoding_format")
        if given(encoding) and isinstance(encoding, str):
            attrs[a.REQUEST_ENCODING_FORMATS] = [encoding]
        dimensions = kwargs.get("dimensions")
        if given(dimensions) and isinstance(dimensions, int):
            attrs[a.EMBEDDINGS_DIMENSION_COUNT] = dimensions
        text = kwargs.get("input")
        if isinstance(text, str):
            record.input_messages = [text_message("user", text)]
        elif isinstance(text, list) and all(isinstance(t, str) for t in text):
            record.input_messages = [text_message("user", t) for t in text]
        return CallSpan(telemetry, record, attrs)

    def read_response(self, call: CallSpan, response: Any) -> None:
        data = getattr(response, "data", None)
        if data is None:
            return
        record = call.record
        record.response_model = getattr(response, "model", None)
        usage = getattr(response, "usage", None)
        if usage is not None:
            record.input_tokens = checked_tokens(record, a.USAGE_INPUT_TOKENS, getattr(usage, "prompt_tokens", None))
        if data and isinstance(getattr(data[0], "embedding", None), list):
            call.span.set_attribute(a.EMBEDDINGS_DIMENSION_COUNT, len(data[0].embedding))

    def observer(self, call: CallSpan) -> Any:  # pragma: no cover - embeddings never stream
        raise TypeError("embeddings do not stream")
