"""``responses.create``: the Responses API, JSON and streamed events."""

from __future__ import annotations

from typing import Any

import openai

from llm_telemetry import attributes as a
from llm_telemetry.instrumentation._call import CallSpan, ProviderReportedError
from llm_telemetry.instrumentation._content import messages_from_chat, text_message
from llm_telemetry.instrumentation._stream import IncompleteStreamError
from llm_telemetry.instrumentation._telemetry import Telemetry

from ._common import common_request_attributes, given, new_record, read_responses_usage

_CONTENT_EVENTS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_summary_text.delta",
    }
)
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def failure(response: Any) -> ProviderReportedError | None:
    """A Response whose ``status`` is ``failed``: the provider's error code becomes ``error.type``."""
    if getattr(response, "status", None) != "failed":
        return None
    error = getattr(response, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None)
    return ProviderReportedError(code if isinstance(code, str) and code else "response.failed", message if isinstance(message, str) else "")


def _output_text(response: Any) -> str:
    """The SDK model's ``output_text``; for a raw body (`_body.JsonView`), the same join of its output_text parts."""
    text = getattr(response, "output_text", None)
    if isinstance(text, str):
        return text
    return "".join(
        part.text
        for item in response.output or ()
        if item.type == "message"
        for part in item.content or ()
        if part.type == "output_text" and isinstance(part.text, str)
    )


def _finish_reason(response: Any) -> str | None:
    status = getattr(response, "status", None)
    if status == "incomplete":
        details = getattr(response, "incomplete_details", None)
        return getattr(details, "reason", None) or "incomplete"
    return status if isinstance(status, str) else None


class ResponsesOperation:
    stream_types: tuple[type, ...] = (openai.Stream,)
    async_stream_types: tuple[type, ...] = (openai.AsyncStream,)
    one_shot_args = ("input",)

    def start(self, telemetry: Telemetry, instance: Any, kwargs: dict[str, Any]) -> CallSpan:
        stream = kwargs.get("stream") is True
        record = new_record("chat", instance, kwargs.get("model"), stream)
        attrs = common_request_attributes(kwargs, stream)
        max_tokens = kwargs.get("max_output_tokens")
        if given(max_tokens) and isinstance(max_tokens, int):
            attrs[a.REQUEST_MAX_TOKENS] = max_tokens
        instructions = kwargs.get("instructions")
        user_input = kwargs.get("input")
        if isinstance(user_input, str):
            system, messages = None, [text_message("user", user_input)]
        elif given(user_input):
            system, messages = messages_from_chat(user_input)
        else:
            system, messages = None, []
        if isinstance(instructions, str):
            system = instructions if system is None else f"{instructions}\n{system}"
        record.system_instructions, record.input_messages = system, messages
        return CallSpan(telemetry, record, attrs)

    def read_response(self, call: CallSpan, response: Any) -> None:
        if not hasattr(response, "output"):
            return
        record = call.record
        record.response_id = response.id
        record.response_model = response.model
        record.system_fingerprint = getattr(response, "system_fingerprint", None)  # not (yet) sent by the Responses API
        reason = _finish_reason(response)
        record.finish_reasons = (reason,) if reason else ()
        record.output_text = _output_text(response)
        read_responses_usage(record, response.usage)
        failed = failure(response)
        if failed is not None:  # a 200 answer that reports a failed call: ERROR (STATUS_RULE)
            record.error_type = failed.error_type

    def observer(self, call: CallSpan) -> ResponsesEventObserver:
        return ResponsesEventObserver(call)


class ResponsesEventObserver:
    """Reads Responses stream events: text/refusal/tool-argument deltas are the content chunks."""

    __slots__ = ("call", "final", "texts", "times")

    def __init__(self, call: CallSpan) -> None:
        self.call = call
        self.times: list[float] = []
        self.texts: list[str] = []
        self.final: Any = None

    def item(self, event: Any, now: float) -> None:
        kind = event.type
        if kind in _CONTENT_EVENTS:
            self.times.append(now)
            if kind == "response.output_text.delta":
                self.texts.append(event.delta)
        elif kind in _FINAL_EVENTS:
            self.final = event.response
        elif kind == "response.created" and self.call.record.response_id is None:
            self.call.record.response_id = event.response.id
            self.call.record.response_model = event.response.model

    @property
    def incomplete_error(self) -> BaseException | None:
        """Why a stream read to its end still failed: cut before its final event, or ``response.failed``."""
        if self.final is None:
            return IncompleteStreamError("the Responses stream ended before its final event")
        return failure(self.final)

    def finish(self) -> None:
        record = self.call.record
        record.output_text = "".join(self.texts)
        final = self.final
        if final is not None:
            record.response_id = final.id
            record.response_model = final.model
            record.system_fingerprint = getattr(final, "system_fingerprint", None)
            reason = _finish_reason(final)
            record.finish_reasons = (reason,) if reason else ()
            read_responses_usage(record, final.usage)
            failed = failure(final)
            if failed is not None:  # also when the app closed the stream after the failed event
                record.error_type = failed.error_type
