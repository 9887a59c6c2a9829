"""Proxies for streamed responses that time every chunk and end the call's span exactly once.

The proxy keeps the SDK stream's whole API (``wrapt.ObjectProxy`` forwards every attribute and method
we do not override: ``.response``, helper methods, ``until_done()``…). We override only what marks the
end of a stream — exhaustion, an exception, ``close()``, leaving a ``with`` block, and being garbage
collected unread (``__del__``, handed to a thread: see `_lifecycle`) — so no path leaves a span open (OpenLLMetry #3151, OpenLIT #1454,
OpenInference #3790 lost spans exactly there). We never attach an OTel context across ``yield``s, so
there is no "Failed to detach context" when an async generator is left early (OpenInference #1769).

The per-chunk path is kept minimal: read the clock, let the SDK's `ChunkObserver` pick out content /
usage, return the chunk. Everything else happens once, at the end.
"""

from __future__ import annotations

import logging
from time import perf_counter
from typing import Any

import wrapt

from ._call import CallSpan, is_cancellation
from ._lifecycle import ChunkObserver, abandon, track
from ._lifecycle import end_stream as _end

logger = logging.getLogger(__name__)


class IncompleteStreamError(Exception):
    """The server ended a stream cleanly but before its end event (``error.type`` of that call)."""


def exit_reason(error: BaseException | None) -> str:
    """The end reason of a stream whose ``with`` block the application left (see `STATUS_RULE`)."""
    if error is None:
        return "closed_early"
    return "cancelled" if is_cancellation(error) else "app_exception"


def end_by_app(helper_stream: Any, error: BaseException | None) -> None:
    """A stream helper's ``with`` block was left: end the traced raw stream inside it with the app's reason.

    The SDKs' helpers (Anthropic ``messages.stream()``, OpenAI ``chat.completions.stream()`` /
    ``responses.stream()``) keep our traced raw stream in ``_raw_stream``; they close the HTTP response
    themselves on exit, so without this the span would end only when the collector frees the stream.
    """
    raw = getattr(helper_stream, "_raw_stream", None)
    if isinstance(raw, (TracedStream, TracedAsyncStream)):
        _end(raw._self_call, raw._self_observer, None, exit_reason(error))


class TracedStream(wrapt.ObjectProxy):  # type: ignore[misc]
    """A synchronous SDK stream (iterator + context manager + ``close()``) with timing."""

    def __init__(self, wrapped: Any, call: CallSpan, observer: ChunkObserver) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_observer = observer
        self._self_item = observer.item  # bound once: the per-chunk path does one lookup
        track(call, observer)

    def __iter__(self) -> TracedStream:
        return self

    def __next__(self) -> Any:
        try:
            item = self.__wrapped__.__next__()
        except StopIteration:
            _end(self._self_call, self._self_observer, None, "completed")
            raise
        except BaseException as error:
            _end(self._self_call, self._self_observer, error, "error")
            raise
        try:
            self._self_item(item, perf_counter())
        except Exception:
            logger.debug("llm-telemetry: could not read a stream chunk", exc_info=True)
        return item

    def __enter__(self) -> TracedStream:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        # An exception from the application's own loop body is not a failure of the LLM call.
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            _end(self._self_call, self._self_observer, None, exit_reason(exc))

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            _end(self._self_call, self._self_observer, None, "closed_early")

    def __del__(self) -> None:
        # Inside a GC finalizer: no lock, no span work here (`_lifecycle`); a thread ends the span.
        try:
            abandon(self._self_call, self._self_observer)
        except Exception:
            pass

    def __reduce_ex__(self, protocol: Any) -> Any:  # pragma: no cover - streams are not picklable anyway
        raise TypeError("cannot pickle a stream")


class TracedAsyncStream(wrapt.ObjectProxy):  # type: ignore[misc]
    """An asynchronous SDK stream (async iterator + async context manager + ``close()``) with timing."""

    def __init__(self, wrapped: Any, call: CallSpan, observer: ChunkObserver) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_observer = observer
        self._self_item = observer.item  # bound once: the per-chunk path does one lookup
        track(call, observer)

    def __aiter__(self) -> TracedAsyncStream:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            _end(self._self_call, self._self_observer, None, "completed")
            raise
        except BaseException as error:
            _end(self._self_call, self._self_observer, error, "error")
            raise
        try:
            self._self_item(item, perf_counter())
        except Exception:
            logger.debug("llm-telemetry: could not read a stream chunk", exc_info=True)
        return item

    async def __aenter__(self) -> TracedAsyncStream:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            _end(self._self_call, self._self_observer, None, exit_reason(exc))

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            _end(self._self_call, self._self_observer, None, "closed_early")

    def __del__(self) -> None:
        # Inside a GC finalizer: no lock, no span work here (`_lifecycle`); a thread ends the span.
        try:
            abandon(self._self_call, self._self_observer)
        except Exception:
            pass


class TracedStreamManager(wrapt.ObjectProxy):  # type: ignore[misc]
    """A stream helper's manager (OpenAI ``chat.completions.stream()`` / ``responses.stream()``).

    The helper's ``__enter__`` sends the request through the instrumented ``create`` (so the span and
    the traced raw stream already exist); its ``__exit__`` closes the HTTP response itself, past our
    proxy. Ending the span here, before the SDK's exit, gives it the application's reason at once
    instead of ``abandoned`` whenever the collector frees the stream.
    """

    def __init__(self, wrapped: Any) -> None:
        super().__init__(wrapped)
        self._self_stream: Any = None

    def __enter__(self) -> Any:
        self._self_stream = self.__wrapped__.__enter__()
        return self._self_stream

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            end_by_app(self._self_stream, exc)
        except Exception:
            logger.debug("llm-telemetry: could not end a stream helper's span", exc_info=True)
        return self.__wrapped__.__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> Any:
        self._self_stream = await self.__wrapped__.__aenter__()
        return self._self_stream

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            end_by_app(self._self_stream, exc)
        except Exception:
            logger.debug("llm-telemetry: could not end a stream helper's span", exc_info=True)
        return await self.__wrapped__.__aexit__(exc_type, exc, tb)


def stream_manager_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A wrapt wrapper for a ``stream()`` helper method that returns a manager: the manager is proxied."""
    manager = wrapped(*args, **kwargs)
    try:
        return TracedStreamManager(manager)
    except Exception:
        logger.warning("llm-telemetry: could not trace a stream helper", exc_info=True)
        return manager
