"""``messages.stream(...)``: the helper whose request is sent when its manager is entered.

``messages.stream()`` does not go through ``messages.create``: it returns a ``MessageStreamManager``
holding a prepared request, sent by ``__enter__`` (``__aenter__`` for the async client), which then
builds a ``MessageStream`` over the SDK's raw event ``Stream``. So the call's span and TTFT clock start
at ``__enter__`` — when the request really leaves — and the raw stream inside the ``MessageStream``
(``_raw_stream``) is swapped for our `TracedStream`. Every way the helper consumes or releases it —
``text_stream``, iteration, ``until_done()``, ``get_final_message()`` / ``get_final_text()``,
``close()``, leaving the ``with`` block, being garbage collected — goes through that proxy, which
ends the span exactly once. The application keeps the SDK's own ``MessageStream`` object.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import wrapt
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from .._call import CallSpan
from .._stream import TracedAsyncStream, TracedStream, end_by_app
from .._telemetry import Telemetry
from .._wrap import Operation, materialise, start_call

logger = logging.getLogger(__name__)


def _trace_raw_stream(operation: Operation, call: CallSpan, message_stream: Any, proxy: type[wrapt.ObjectProxy]) -> Any:
    try:
        message_stream._raw_stream = proxy(message_stream._raw_stream, call, operation.observer(call))
    except Exception:
        logger.warning("llm-telemetry: could not trace an Anthropic message stream; its span ends now", exc_info=True)
        call.end()
    return message_stream


class TracedMessageStreamManager(wrapt.ObjectProxy):  # type: ignore[misc]
    """A ``MessageStreamManager`` whose ``__enter__`` starts the call's span."""

    def __init__(self, wrapped: Any, operation: Operation, telemetry: Telemetry, instance: Any, kwargs: dict[str, Any]) -> None:
        super().__init__(wrapped)
        self._self_start = (operation, telemetry, instance, kwargs)
        self._self_stream: Any = None

    def __enter__(self) -> Any:
        operation, telemetry, instance, kwargs = self._self_start
        call = start_call(operation, telemetry, instance, kwargs)
        if call is None:
            return self.__wrapped__.__enter__()
        try:
            with call.activate():
                message_stream = self.__wrapped__.__enter__()
        except BaseException as error:
            call.end(error)
            raise
        self._self_stream = _trace_raw_stream(operation, call, message_stream, TracedStream)
        return self._self_stream

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        end_by_app(self._self_stream, exc)  # before the SDK closes the stream: the reason is the app's exit
        return self.__wrapped__.__exit__(exc_type, exc, tb)


class TracedAsyncMessageStreamManager(wrapt.ObjectProxy):  # type: ignore[misc]
    """An ``AsyncMessageStreamManager`` whose ``__aenter__`` starts the call's span."""

    def __init__(self, wrapped: Any, operation: Operation, telemetry: Telemetry, instance: Any, kwargs: dict[str, Any]) -> None:
        super().__init__(wrapped)
        self._self_start = (operation, telemetry, instance, kwargs)
        self._self_stream: Any = None

    async def __aenter__(self) -> Any:
        operation, telemetry, instance, kwargs = self._self_start
        call = start_call(operation, telemetry, instance, kwargs)
        if call is None:
            return await self.__wrapped__.__aenter__()
        try:
            with call.activate():
                message_stream = await self.__wrapped__.__aenter__()
        except BaseException as error:
            call.end(error)
            raise
        self._self_stream = _trace_raw_stream(operation, call, message_stream, TracedAsyncStream)
        return self._self_stream

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        end_by_app(self._self_stream, exc)
        return await self.__wrapped__.__aexit__(exc_type, exc, tb)


def stream_helper_wrapper(operation: Operation, telemetry: Telemetry, manager_proxy: type[wrapt.ObjectProxy]) -> Callable[..., Any]:
    """A wrapt wrapper for ``Messages.stream`` / ``AsyncMessages.stream`` (both plain methods returning a manager)."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if is_instrumentation_enabled():  # the helper builds its request body now: give it the same list we read
            materialise(kwargs, operation.one_shot_args)
        manager = wrapped(*args, **kwargs)
        try:
            return manager_proxy(manager, operation, telemetry, instance, {**kwargs, "stream": True})
        except Exception:
            logger.warning("llm-telemetry: could not trace an Anthropic messages.stream() call", exc_info=True)
            return manager

    return wrapper
