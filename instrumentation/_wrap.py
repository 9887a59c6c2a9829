"""The generic sync/async wrapper every instrumented SDK method goes through.

An `Operation` knows the SDK-specific parts: how to build the call's record and request attributes
from the method's arguments, how to read a returned response into the record, and which stream
observer reads a streamed response. The wrapper does the rest the same way for every method:

* anything that fails inside *our* code is logged and the user's call proceeds untouched;
* the user's own exceptions (HTTP errors, timeouts, their bugs) are re-raised unchanged, after the
  span records them;
* the span is current while the SDK sends the request, so HTTP-client spans nest under it
  (OpenLLMetry #1543);
* the async wrapper is a coroutine function awaiting the SDK coroutine — nothing blocks the loop
  (OpenLLMetry #4052);
* the application's arguments are never consumed or mutated: an argument we read that can be read only
  once (a generator of messages) is turned into a list once, and that list is what the SDK receives.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from ._body import follow_body, raw_http_response
from ._call import CallSpan
from ._stream import ChunkObserver, TracedAsyncStream, TracedStream
from ._telemetry import Telemetry

logger = logging.getLogger(__name__)


class Operation(Protocol):
    def start(self, telemetry: Telemetry, instance: Any, kwargs: dict[str, Any]) -> CallSpan: ...

    def read_response(self, call: CallSpan, response: Any) -> None: ...

    def observer(self, call: CallSpan) -> ChunkObserver: ...

    stream_types: tuple[type, ...]
    async_stream_types: tuple[type, ...]
    one_shot_args: tuple[str, ...]
    """Keyword arguments ``start`` reads that the SDK types as ``Iterable`` (see `materialise`)."""


def given(value: Any) -> bool:
    """False for None and the SDKs' ``NOT_GIVEN`` / ``omit`` sentinels (both SDKs use these names)."""
    return value is not None and type(value).__name__ not in ("NotGiven", "Omit")


def materialise(kwargs: dict[str, Any], names: tuple[str, ...]) -> None:
    """Replace each one-shot iterator among ``kwargs[names]`` by a list of its items, in ``kwargs``.

    ``kwargs`` is the wrapper's own dict, the one passed on to the SDK: we and the SDK then read the same
    list, and the application's generator is read exactly once, as without us. Lists, tuples and other
    re-iterable values are left as they are (the SDK gets the application's own object). An exception
    raised by the application's generator propagates unchanged, before anything is sent — where the
    SDK would have raised it.
    """
    for name in names:
        value = kwargs.get(name)
        if isinstance(value, Iterator):
            kwargs[name] = list(value)


def start_call(operation: Operation, telemetry: Telemetry, instance: Any, kwargs: dict[str, Any]) -> CallSpan | None:
    """Start the call's span, or ``None`` when instrumentation is suppressed or starting failed."""
    if not is_instrumentation_enabled():
        return None
    materialise(kwargs, getattr(operation, "one_shot_args", ()))  # the app's own exceptions propagate
    try:
        return operation.start(telemetry, instance, kwargs)
    except Exception:
        logger.warning("llm-telemetry: could not start a GenAI span; the call proceeds untraced", exc_info=True)
        return None


def _finish(operation: Operation, call: CallSpan, result: Any, stream_types: tuple[type, ...], proxy: type) -> Any:
    """The SDK returned: wrap a stream in ``proxy`` (the span ends with the stream); follow the body of a raw
    response (the span ends with the body, see `_body`); else read the response and end."""
    try:
        if isinstance(result, stream_types):
            return proxy(result, call, operation.observer(call))
        http = raw_http_response(result)
        if http is not None:
            follow_body(operation, call, http, asynchronous=proxy is TracedAsyncStream)
            return result
        operation.read_response(call, result)
    except Exception:
        logger.warning("llm-telemetry: could not read a GenAI response", exc_info=True)
    call.end()
    return result


def sync_wrapper(operation: Operation, telemetry: Telemetry) -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = start_call(operation, telemetry, instance, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            with call.activate():
                result = wrapped(*args, **kwargs)
        except BaseException as error:
            call.end(error)
            raise
        return _finish(operation, call, result, operation.stream_types, TracedStream)

    return wrapper


def async_wrapper(operation: Operation, telemetry: Telemetry) -> Callable[..., Any]:
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = start_call(operation, telemetry, instance, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            with call.activate():
                result = await wrapped(*args, **kwargs)
        except BaseException as error:
            call.end(error)
            raise
        return _finish(operation, call, result, operation.async_stream_types, TracedAsyncStream)

    return wrapper
