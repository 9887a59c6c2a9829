"""``chat.completions.create``: request attributes, response reading and the stream observer."""

from __future__ import annotations

from time import perf_counter
from typing import Any

import openai

from llm_telemetry import attributes as a
from llm_telemetry.instrumentation._call import CallSpan
from llm_telemetry.instrumentation._content import messages_from_chat
from llm_telemetry.instrumentation._stream import IncompleteStreamError
from llm_telemetry.instrumentation._telemetry import Telemetry

from ._common import common_request_attributes, given, new_record, read_chat_usage, stop_sequences


class ChatOperation:
    stream_types: tuple[type, ...] = (openai.Stream,)
    async_stream_types: tuple[type, ...] = (openai.AsyncStream,)
    one_shot_args = ("messages",)

    def start(self, telemetry: Telemetry, instance: Any, kwargs: dict[str, Any]) -> CallSpan:
        stream = kwargs.get("stream") is True
        if stream and telemetry.openai_stream_include_usage and not given(kwargs.get("stream_options")):
            # Opt-in: ``kwargs`` is the wrapper's dict passed on to the SDK; the app's own options are never touched.
            kwargs["stream_options"] = {"include_usage": True}
        record = new_record("chat", instance, kwargs.get("model"), stream)
        attrs = common_request_attributes(kwargs, stream)
        max_tokens = kwargs.get("max_completion_tokens")
        if not given(max_tokens):
            max_tokens = kwargs.get("max_tokens")
        if given(max_tokens) and isinstance(max_tokens, int):
            attrs[a.REQUEST_MAX_TOKENS] = max_tokens
        stops = stop_sequences(kwargs.get("stop"))
        if stops:
            attrs[a.REQUEST_STOP_SEQUENCES] = stops
        seed = kwargs.get("seed")
        if given(seed) and isinstance(seed, int):
            attrs[a.REQUEST_SEED] = seed
        for name, key in ((a.REQUEST_FREQUENCY_PENALTY, "frequency_penalty"), (a.REQUEST_PRESENCE_PENALTY, "presence_penalty")):
            value = kwargs.get(key)
            if given(value) and isinstance(value, (int, float)):
                attrs[name] = float(value)
        n = kwargs.get("n")
        if given(n) and isinstance(n, int) and n != 1:
            attrs[a.REQUEST_CHOICE_COUNT] = n
        record.system_instructions, record.input_messages = messages_from_chat(kwargs.get("messages"))
        return CallSpan(telemetry, record, attrs)

    def read_response(self, call: CallSpan, response: Any) -> None:
        record = call.record
        choices = getattr(response, "choices", None)
        if choices is None:  # e.g. a raw response from ``with_raw_response``
            return
        record.response_id = response.id
        record.response_model = response.model
        record.system_fingerprint = getattr(response, "system_fingerprint", None)
        record.finish_reasons = tuple(c.finish_reason for c in choices if c.finish_reason)
        texts = [c.message.content for c in choices if c.message is not None and c.message.content]
        record.output_text = "\n".join(texts) if texts else ""
        read_chat_usage(record, response.usage)

    def observer(self, call: CallSpan) -> ChatChunkObserver:
        return ChatChunkObserver(call)


class ChatChunkObserver:
    """Reads ``chat.completion.chunk`` items: content deltas are the chunks that count for TTFT/TBT.

    With ``n > 1`` the choices' deltas arrive interleaved: each choice's text is kept apart (joined
    with a newline in choice order at the end, like a non-streamed ``n > 1`` answer), and TTFT, TBT and
    the chunk count are measured on choice 0 alone — the gaps between chunks of *different* choices say
    nothing about generation speed.
    """

    __slots__ = ("call", "finish_reasons", "first", "other_texts", "texts", "times", "usage")

    def __init__(self, call: CallSpan) -> None:
        self.call = call
        self.times: list[float] = []
        self.texts: list[str] = []
        self.other_texts: dict[int, list[str]] = {}
        self.finish_reasons: dict[int, str] = {}
        self.usage: Any = None
        self.first: Any = None

    def item(self, chunk: Any, now: float) -> None:
        # Hot path (runs per chunk): attribute reads and list appends only.
        if self.first is None:
            self.first = chunk
        for choice in chunk.choices:
            delta = choice.delta
            content = delta.content
            index = choice.index or 0
            if index:
                if content:
                    self.other_texts.setdefault(index, []).append(content)
            elif content:
                self.times.append(now)
                self.texts.append(content)
            elif delta.tool_calls or delta.refusal:
                self.times.append(now)
            if choice.finish_reason:
                self.finish_reasons[index] = choice.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage

    @property
    def incomplete_error(self) -> BaseException | None:
        """A stream that ended without any finish_reason was cut short by the server, even if cleanly."""
        return None if self.finish_reasons else IncompleteStreamError("the chat stream ended before a finish_reason")

    def finish(self) -> None:
        record = self.call.record
        if self.first is not None:
            record.response_id = self.first.id
            record.response_model = self.first.model
            record.system_fingerprint = getattr(self.first, "system_fingerprint", None)
        text = "".join(self.texts)
        if self.other_texts:
            text = "\n".join([text, *("".join(self.other_texts[i]) for i in sorted(self.other_texts))])
        record.output_text = text
        record.finish_reasons = tuple(self.finish_reasons[i] for i in sorted(self.finish_reasons))
        read_chat_usage(record, self.usage)


__all__ = ["ChatChunkObserver", "ChatOperation", "perf_counter"]
