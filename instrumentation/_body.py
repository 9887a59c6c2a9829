"""Following the HTTP body of a raw response (``with_raw_response`` / ``with_streaming_response``).

Those SDK entry points return the HTTP response as soon as its headers arrive; the application then
reads the body its own way — ``parse()`` into the SDK's stream or model, ``iter_lines()`` / ``iter_bytes()``
to forward it, ``read()`` — or closes it. Ending the span at the headers would record a 10 ms call with no
chunks, TTFT, usage or output, invisible to cost and to the safety screen. So the span follows the body:

* Every way of reading the body goes through the response's ``iter_bytes`` / ``aiter_bytes`` (``read``,
  ``iter_lines``, ``parse``, the SDK's own ``Stream``), and every way of releasing it through ``close`` /
  ``aclose``. Both are shadowed on the one response object (instance attributes, holding only a weak
  reference to it): the decoded bytes are observed as they are handed over, timed when they arrive.
* An SSE body is decoded event by event and each event fed, as the SDK's item would be, to the SDK's own
  `ChunkObserver` (through `JsonView`, attribute access over the JSON): the same TTFT/TBT, usage and text
  rules as ``stream=True`` calls. A JSON body is parsed once complete and read by the operation's own
  ``read_response``.
* The end: the body read to its end → ``completed`` (or ``error`` if the stream lacked its end event or
  carried an error event); an exception while reading → ``error``; closed before the end →
  ``closed_early``; the response garbage-collected → ``abandoned``; the process exiting → ``process_exit``
  (`_lifecycle`). A body that was already read when the SDK returned (``with_raw_response`` without
  ``stream``) is parsed at once and the span ends immediately.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import AsyncIterator, Iterator
from time import perf_counter
from typing import Any

from ._call import CallSpan, ProviderReportedError
from ._lifecycle import abandon, end_stream, track

logger = logging.getLogger(__name__)

MAX_JSON_BODY_BYTES = 64 * 1024 * 1024
"""A non-streamed body larger than this is not buffered for reading (the span still ends with the body)."""


class JsonView:
    """Attribute access over decoded JSON, the way observers read SDK models; a missing key reads as ``None``."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        return view(self._data.get(name))


def view(value: Any) -> Any:
    if isinstance(value, dict):
        return JsonView(value)
    if isinstance(value, list):
        return [view(item) for item in value]
    return value


def raw_http_response(result: Any) -> Any:
    """The HTTP response of an SDK raw-response wrapper (``APIResponse``, ``LegacyAPIResponse``), else ``None``."""
    http = getattr(result, "http_response", None)
    if http is None or not hasattr(http, "iter_bytes") or not hasattr(http, "headers"):
        return None
    return http


def follow_body(operation: Any, call: CallSpan, http: Any, asynchronous: bool) -> None:
    """End ``call`` when ``http``'s body has been read or released (see the module docstring)."""
    content_type = str(http.headers.get("content-type", ""))
    sse = "text/event-stream" in content_type
    body = BodyFollower(call, operation.observer(call) if sse else None, operation)
    if http.is_closed:  # read already (with_raw_response without stream): read it now and end
        try:
            content = http.content
        except Exception:  # closed unread
            end_stream(call, body, None, "closed_early")
            return
        body.feed(content)
        end_stream(call, body, None, "completed")
        return
    body.watch(http)
    if asynchronous:
        _shadow_async(http, body)
    else:
        _shadow_sync(http, body)


class BodyFollower:
    """The `ChunkObserver` of a raw response body: decodes SSE events (or buffers JSON) and tracks its end."""

    __slots__ = ("_buffer", "_done", "_event_data", "_json", "_json_size", "_ref", "_sse_error", "call", "in_next",
                 "observer", "operation", "times")

    def __init__(self, call: CallSpan, observer: Any, operation: Any) -> None:
        self.call = call
        self.observer = observer
        self.operation = operation
        self.times: list[float] = observer.times if observer is not None else []
        self.in_next = False
        """True while the SDK's own byte iterator runs: a ``close`` then is its own end-of-body close."""
        self._buffer = b""
        self._event_data: list[str] = []
        self._json: list[bytes] = []
        self._json_size = 0
        self._sse_error: BaseException | None = None
        self._done = False
        self._ref: weakref.ref[Any] | None = None

    # -- lifecycle --------------------------------------------------------------------------------------

    def watch(self, http: Any) -> None:
        """Track the call until it ends; if ``http`` is collected first, the span ends as ``abandoned``."""
        call = self.call
        self._ref = weakref.ref(http, lambda _: abandon(call, self))  # a finalizer: `abandon` only queues
        track(call, self)

    def end(self, error: BaseException | None, reason: str) -> None:
        end_stream(self.call, self, error, reason)

    def released(self) -> None:
        """The body was closed, or its reader stopped, before its last byte was read.

        The SDK's own ``Stream`` stops at ``[DONE]`` and closes the response without reading the final
        empty chunk: a stream whose content is complete (its end event seen) ended normally.
        """
        if self.observer is not None:
            self._flush()
            if self._sse_error is not None:
                self.end(self._sse_error, "error")
                return
            if self._done or getattr(self.observer, "incomplete_error", None) is None:
                self.end(None, "completed")
                return
        self.end(None, "closed_early")

    # -- ChunkObserver ------------------------------------------------------------------------------------

    def item(self, item: Any, now: float) -> None:  # pragma: no cover - bodies are fed as bytes
        raise NotImplementedError

    def feed(self, data: bytes) -> None:
        if self.call.ended or not data:
            return
        if self.observer is None:
            self._json_size += len(data)
            if self._json_size <= MAX_JSON_BODY_BYTES:
                self._json.append(data)
            return
        now = perf_counter()
        lines = (self._buffer + data).split(b"\n")
        self._buffer = lines.pop()
        for line in lines:
            self._line(line.rstrip(b"\r"), now)

    def _line(self, line: bytes, now: float) -> None:
        if not line:  # a blank line dispatches the event
            if self._event_data:
                self._event("\n".join(self._event_data), now)
                self._event_data = []
            return
        if line.startswith(b"data:"):
            value = line[5:]
            self._event_data.append(value[1:].decode("utf-8", "replace") if value.startswith(b" ") else value.decode("utf-8", "replace"))

    def _flush(self) -> None:
        """Decode what is left of the body: a last line without its newline, a last event without its blank line."""
        now = perf_counter()
        if self._buffer:
            self._line(self._buffer.rstrip(b"\r"), now)
            self._buffer = b""
        self._line(b"", now)

    def _event(self, data: str, now: float) -> None:
        if data.startswith("[DONE]"):
            self._done = True
            return
        try:
            payload = json.loads(data)
        except ValueError:
            return
        if not isinstance(payload, dict):
            return
        error = _error_event(payload)
        if error is not None:
            self._sse_error = error
            return
        try:
            self.observer.item(JsonView(payload), now)
        except Exception:
            logger.debug("llm-telemetry: could not read a streamed event", exc_info=True)

    @property
    def incomplete_error(self) -> BaseException | None:
        if self._sse_error is not None:
            return self._sse_error
        return getattr(self.observer, "incomplete_error", None) if self.observer is not None else None

    def finish(self) -> None:
        self._ref = None  # the call is over: drop the GC watch (and the reference cycle through its callback)
        if self.observer is not None:
            self._flush()
            self.observer.finish()
            return
        if not self._json or self._json_size > MAX_JSON_BODY_BYTES:
            return
        payload = json.loads(b"".join(self._json))
        self._json = []
        if isinstance(payload, dict):
            self.operation.read_response(self.call, JsonView(payload))


def _error_event(payload: dict[str, Any]) -> BaseException | None:
    """An error sent inside the stream: OpenAI ``{"error": {...}}``, Anthropic ``{"type": "error", "error": {...}}``."""
    error = payload.get("error")
    if not isinstance(error, dict) or (payload.get("type") not in (None, "error")):
        return None
    code = error.get("code") or error.get("type")
    message = error.get("message")
    return ProviderReportedError(code if isinstance(code, str) and code else "stream_error", message if isinstance(message, str) else "")


# --- the shadows --------------------------------------------------------------------------------------


def _shadow_sync(http: Any, body: BodyFollower) -> None:
    cls = type(http)
    ref = weakref.ref(http)

    def iter_bytes(chunk_size: int | None = None) -> Iterator[bytes]:
        response = ref()
        if response is None:
            return
        inner = cls.iter_bytes(response, chunk_size)
        del response
        try:
            while True:
                body.in_next = True
                try:
                    chunk = next(inner)
                except StopIteration:
                    body.end(None, "completed")
                    return
                finally:
                    body.in_next = False
                body.feed(chunk)
                yield chunk
        except GeneratorExit:  # the consumer stopped reading
            body.released()
            raise
        except BaseException as error:
            body.end(error, "error")
            raise
        finally:
            inner.close()

    def close() -> None:
        response = ref()
        try:
            if response is not None:
                cls.close(response)
        finally:
            if not body.in_next:  # inside the SDK's own iterator, its end-of-body close: the iterator decides
                body.released()

    http.iter_bytes = iter_bytes
    http.close = close


def _shadow_async(http: Any, body: BodyFollower) -> None:
    cls = type(http)
    ref = weakref.ref(http)

    async def aiter_bytes(chunk_size: int | None = None) -> AsyncIterator[bytes]:
        response = ref()
        if response is None:
            return
        inner = cls.aiter_bytes(response, chunk_size)
        del response
        try:
            while True:
                body.in_next = True
                try:
                    chunk = await inner.__anext__()
                except StopAsyncIteration:
                    body.end(None, "completed")
                    return
                finally:
                    body.in_next = False
                body.feed(chunk)
                yield chunk
        except GeneratorExit:
            body.released()
            raise
        except BaseException as error:
            body.end(error, "error")
            raise
        finally:
            await inner.aclose()

    async def aclose() -> None:
        response = ref()
        try:
            if response is not None:
                await cls.aclose(response)
        finally:
            if not body.in_next:
                body.released()

    http.aiter_bytes = aiter_bytes
    http.aclose = aclose
