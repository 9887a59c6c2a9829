"""Reading a Messages event stream: which events are content chunks, and what the others carry.

Content chunks (the ones TTFT/TBT are measured on) are ``content_block_delta`` events with a text,
tool-input JSON or thinking delta; ``signature_delta`` and ``citations_delta`` carry no generated
tokens. ``message_start`` carries the id, model and input-side usage; ``message_delta`` the stop
reason and the (cumulative) output tokens — and, in newer API versions, final input-side numbers too;
``message_stop`` marks a complete stream. A stream the SDK iterated to its end without a
``message_stop`` was cut short by the server: the application saw no error, but the call failed.
"""

from __future__ import annotations

from typing import Any

from llm_telemetry.record import GenAICall

from .._stream import IncompleteStreamError
from ._usage import read_usage

_CONTENT_DELTAS = frozenset({"input_json_delta", "thinking_delta"})
_INPUT_USAGE = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


class MessageEventObserver:
    """The `ChunkObserver` of a Messages event stream (raw events of ``create(stream=True)`` / ``stream()``)."""

    __slots__ = ("_model", "_record", "_response_id", "_stop_reason", "_stopped", "_texts", "_usage", "times")

    def __init__(self, record: GenAICall) -> None:
        self._record = record
        self.times: list[float] = []
        self._texts: list[str] = []
        self._usage: dict[str, Any] = {}
        self._response_id: str | None = None
        self._model: str | None = None
        self._stop_reason: str | None = None
        self._stopped = False

    def item(self, event: Any, now: float) -> None:
        kind = event.type
        if kind == "content_block_delta":
            delta = event.delta
            delta_type = delta.type
            if delta_type == "text_delta":
                self.times.append(now)
                self._texts.append(delta.text)
            elif delta_type in _CONTENT_DELTAS:
                self.times.append(now)
        elif kind == "message_start":
            message = event.message
            self._response_id = message.id
            self._model = message.model
            usage = message.usage
            # message_start's output_tokens is a placeholder; the real count comes with message_delta.
            for key in _INPUT_USAGE:
                value = getattr(usage, key, None)
                if value is not None:
                    self._usage[key] = value
        elif kind == "message_delta":
            stop_reason = getattr(event.delta, "stop_reason", None)
            if stop_reason:
                self._stop_reason = stop_reason
            usage = getattr(event, "usage", None)
            for key in (*_INPUT_USAGE, "output_tokens", "output_tokens_details"):
                value = getattr(usage, key, None)
                if value is not None:
                    self._usage[key] = value
        elif kind == "message_stop":
            self._stopped = True

    def finish(self) -> None:
        record = self._record
        if self._response_id:
            record.response_id = self._response_id
        if self._model:
            record.response_model = self._model
        if self._stop_reason:
            record.finish_reasons = (self._stop_reason,)
        if self._usage:
            read_usage(record, self._usage)
        if self._texts:
            record.output_text = "".join(self._texts)

    @property
    def incomplete_error(self) -> BaseException | None:
        """Why a stream the SDK iterated to its end still failed: no ``message_stop`` arrived."""
        if self._stopped:
            return None
        return IncompleteStreamError("the Messages stream ended before its message_stop event")
