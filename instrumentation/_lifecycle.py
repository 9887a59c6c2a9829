"""Ending a stream's span exactly once — including the streams nobody ends: dropped unread, or open at exit.

`end_stream` is the one way a streamed call ends (the proxies in `_stream` and the raw-body follower in
`_body` call it). Two kinds of streams never reach it from the application's side:

* **Dropped unread** (garbage collected). Their finalizer runs wherever the collector happens to run —
  possibly on a thread that holds one of our non-reentrant locks (the side channel's, a budget's, the
  metrics SDK's), so ending the span there can deadlock the process. A finalizer therefore only calls
  `abandon`, which puts the call on a ``queue.SimpleQueue`` (its ``put`` is documented reentrant: safe in
  ``__del__`` and weakref callbacks) and returns; a daemon thread ends the span with reason ``abandoned``.
* **Still open when the process exits** (a partly read stream held by a global, a daemon thread stuck
  in a read). Every stream is tracked from its start until it ends; an ``atexit`` hook ends what is left
  with reason ``process_exit``. The hook is registered when the first stream starts, i.e. after the
  application's tracer provider registered its own shutdown, and atexit runs handlers in reverse order of
  registration: the spans are ended before the providers flush and shut down.

A forked child inherits copies of its parent's open streams: they are disowned in the child (the
parent ends and exports them), so neither the child's exit hook nor its collector duplicates them.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from typing import Any, Protocol

from ._call import CallSpan

logger = logging.getLogger(__name__)


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


_open: dict[int, tuple[CallSpan, ChunkObserver]] = {}
"""Streams started and not ended yet, by ``id(call)``. Single dict operations are atomic under the GIL."""

_abandoned: queue.SimpleQueue[tuple[CallSpan, ChunkObserver] | threading.Event] = queue.SimpleQueue()
_drainer: threading.Thread | None = None
_drainer_pid = 0
_exit_hook_registered = False


def end_stream(call: CallSpan, observer: ChunkObserver, error: BaseException | None, reason: str) -> None:
    """End a streamed call once: summarise what the observer saw, then end the span with ``reason``."""
    _open.pop(id(call), None)
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


def track(call: CallSpan, observer: ChunkObserver) -> None:
    """A stream started: remember it until it ends; make sure abandoned and exit-time streams get ended."""
    global _exit_hook_registered
    _open[id(call)] = (call, observer)
    if _drainer is None or _drainer_pid != os.getpid() or not _drainer.is_alive():
        _start_drainer()
    if not _exit_hook_registered:
        _exit_hook_registered = True
        atexit.register(end_open_streams)


def abandon(call: CallSpan, observer: ChunkObserver) -> None:
    """Called from a finalizer: hand the end of the span to the drainer thread. Takes no lock of ours."""
    if not call.ended:
        _abandoned.put((call, observer))


def flush_abandoned(timeout: float = 5.0) -> bool:
    """Wait until the spans of streams abandoned so far have been ended; ``False`` on timeout.

    For tests and for applications that want those spans before they flush their own exporters.
    """
    drainer = _drainer
    if drainer is None or _drainer_pid != os.getpid() or not drainer.is_alive():
        _drain_now()
        return True
    done = threading.Event()
    _abandoned.put(done)
    return done.wait(timeout)


def end_open_streams() -> None:
    """The exit hook: end abandoned streams, then every stream still open, as ``process_exit``."""
    _drain_now()
    for call, observer in list(_open.values()):
        try:
            end_stream(call, observer, None, "process_exit")
        except Exception:
            logger.debug("llm-telemetry: could not end a stream at exit", exc_info=True)


def _after_fork_in_child() -> None:
    global _abandoned, _drainer
    for call, _ in list(_open.values()):
        call.disown()
    _open.clear()
    _abandoned = queue.SimpleQueue()
    _drainer = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _start_drainer() -> None:
    global _drainer, _drainer_pid
    thread = threading.Thread(target=_drain_forever, name="llm-telemetry-abandoned-streams", daemon=True)
    thread.start()
    _drainer, _drainer_pid = thread, os.getpid()


def _drain_forever() -> None:
    while True:
        _handle(_abandoned.get())


def _drain_now() -> None:
    while True:
        try:
            item = _abandoned.get_nowait()
        except queue.Empty:
            return
        _handle(item)


def _handle(item: tuple[CallSpan, ChunkObserver] | threading.Event) -> None:
    if isinstance(item, threading.Event):
        item.set()
        return
    call, observer = item
    try:
        end_stream(call, observer, None, "abandoned")
    except Exception:
        logger.debug("llm-telemetry: could not end an abandoned stream", exc_info=True)
