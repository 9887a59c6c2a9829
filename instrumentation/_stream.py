"""Proxies for streamed responses that time every chunk and end the call's span exactly once.

The proxy keeps the SDK stream's whole API (``wrapt.ObjectProxy`` forwards every attribute and method
we do not override: ``.response``, helper methods, ``until_done()``…). We override only what marks the
end of a stream — exhaustion, an exception, ``close()``, leaving a ``with`` block, and being garbage
collected unread (``__del__``) — so no path leaves a span open (OpenLLMetry #3151, OpenLIT #1454,
OpenInference #3790 lost spans exactly there). We never attach an OTel context across ``yield``s, so
there is no "Failed to detach context" when an async generator is left early (OpenInference #1769).

The per-chunk path is kept minimal: read the clock, let the SDK's `ChunkObserver` pick out content /
usage, return the chunk. Everything else happens once, at the end.
"""

from __future__ import annotations

import logging
from time import perf_counter
from typing import Any, Protocol

import wrapt

from ._call import CallSpan

logger = logging.getLogger(__name__)


class IncompleteStreamError(Exception):
    """The server ended a stream cleanly but before its end event (``error.type`` of that call)."""


class ChunkObserver(Protocol):
    """SDK-specific reading of stream items. ``times`` holds the perf_counter of each content chunk.

    Optional: an ``incomplete_error`` attribute (an exception or ``None``), read when the SDK iterated the
    stream to its end, says the stream still failed (e.g. the server ended it before its end event).
    """

    times: list[float]

    def item(self, item: Any, now: float) -> None: ...

    def finish(self) -> None:
        """Write what was accumulated (text, usage, ids, finish reasons) into the call's record."""
        ...


def _end(call: CallSpan, observer: ChunkObserver, error: BaseException | None, reason: str) -> None:
    if call.ended:
        return
    try:
        observer.finish()
        if error is None and reason == "completed":
            incomplete = getattr(observer, "incomplete_error", None)
            if incomplete is not None:  # the app saw a normal end, but the call was cut short
                error, reason = incomplete, "error"
    except Exception:
        logger.debug("llm-telemetry: could not summarise a stream", exc_info=True)
    call.end(error, chunk_times=observer.times, end_reason=reason)


class TracedStream(wrapt.ObjectProxy):  # type: ignore[misc]
    """A synchronous SDK stream (iterator + context manager + ``close()``) with timing."""

    def __init__(self, wrapped: Any, call: CallSpan, observer: ChunkObserver) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_observer = observer
        self._self_item = observer.item  # bound once: the per-chunk path does one lookup

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
            _end(self._self_call, self._self_observer, None, "closed_early")

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            _end(self._self_call, self._self_observer, None, "closed_early")

    def __del__(self) -> None:
        try:
            _end(self._self_call, self._self_observer, None, "abandoned")
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
            _end(self._self_call, self._self_observer, None, "closed_early")

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            _end(self._self_call, self._self_observer, None, "closed_early")

    def __del__(self) -> None:
        try:
            _end(self._self_call, self._self_observer, None, "abandoned")
        except Exception:
            pass
