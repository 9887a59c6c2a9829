"""Folding the Anthropic SDK's own OpenTelemetry tracing into our span: one GenAI span per call, never two.

The SDK (2.x) traces every API call itself (scope ``com.anthropic.sdk.python``), on by default whenever
OpenTelemetry gives it a tracer. Left alone, it would emit a second CLIENT span for every call we trace
(the duplicate-span problem OpenInference #2101 describes). Turning it off would lose what only it
records (``anthropic.request.id``, ``url.full``, ``http.response.status_code``, service tier, beta
flags…); keeping both would double every dashboard.

So while our span is current, the SDK's ``start_api_call_span`` is given a stand-in tracer whose span
is an adapter onto *our* span: everything the native code records lands on our span, and the trace
context it propagates (``traceparent``, HTTP client spans under ``trace.use_span``) is our span's. The
adapter never ends our span (our wrapper ends it, exactly once, after the native code has recorded),
and it keeps our decisions:

* content attributes (prompts, outputs, tool arguments) pass only if *our* content capture puts content
  on spans — the SDK's own content mode cannot leak what our setting withholds;
* attributes we set ourselves win: start attributes are not overwritten, and the ones set at the end
  (``gen_ai.response.time_to_first_chunk`` measured monotonically where the app receives the chunk,
  ``error.type``) are written after the native ones;
* status ``OK`` is dropped: it is final in the OTel SDK and would mask a failure we record later, and
  our spans leave the status unset on success whether or not native tracing is on;
* after our span has ended (a stream garbage-collected before the SDK noticed), native calls are no-ops
  rather than "Setting attribute on ended span" warnings.

When native tracing is off (``ANTHROPIC_OPEN_TELEMETRY=false``, ``open_telemetry={"traces": False}``)
the SDK never calls ``start_api_call_span`` and our span alone records everything.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import Attributes, AttributeValue

from llm_telemetry import attributes as a

logger = logging.getLogger(__name__)

_CONTENT = a.CONTENT_ATTRIBUTES | {"anthropic.content.truncated"}

_offered: weakref.WeakKeyDictionary[Span, frozenset[str]] = weakref.WeakKeyDictionary()
"""Our spans whose API call's native tracing should write into them, with the attribute keys we set at start."""


def offer(span: Span, own_keys: Collection[str]) -> None:
    """Let the native tracing of the call that ``span`` (current while the SDK runs) traces write into it."""
    try:
        _offered[span] = frozenset(own_keys)
    except Exception:  # e.g. a span type that cannot be weakly referenced: native tracing stays separate
        logger.debug("llm-telemetry: cannot fold Anthropic native tracing into %r", span, exc_info=True)


class NativeSpanAdapter(Span):
    """What the SDK's native tracing gets as its span: forwards to our span, never ends it."""

    def __init__(self, span: Span, keep_content: bool) -> None:
        self._span = span
        self._keep_content = keep_content

    def _keep(self, key: str) -> bool:
        return self._keep_content or key not in _CONTENT

    def end(self, end_time: int | None = None) -> None:
        """The native code is done with the call; our wrapper ends the span itself."""

    def get_span_context(self) -> SpanContext:
        return self._span.get_span_context()

    def is_recording(self) -> bool:
        return self._span.is_recording()

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if self._span.is_recording():
            kept = {key: value for key, value in attributes.items() if self._keep(key)}
            if kept:
                self._span.set_attributes(kept)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self._keep(key) and self._span.is_recording():
            self._span.set_attribute(key, value)

    def add_event(self, name: str, attributes: Attributes = None, timestamp: int | None = None) -> None:
        if self._span.is_recording():
            kept = {key: value for key, value in (attributes or {}).items() if self._keep(key)}
            self._span.add_event(name, kept, timestamp)

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        if self._span.is_recording():
            self._span.add_link(context, attributes)

    def update_name(self, name: str) -> None:
        """Our ``{operation} {model}`` name stays."""

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        code = status.status_code if isinstance(status, Status) else status
        if code is StatusCode.ERROR and self._span.is_recording():
            self._span.set_status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        if self._span.is_recording():
            self._span.record_exception(exception, attributes, timestamp, escaped)


class NativeTracer(trace.Tracer):
    """The stand-in tracer: its one span is the adapter onto our span, with the native start attributes on it."""

    def __init__(self, span: Span, own_keys: frozenset[str], keep_content: bool) -> None:
        self._span = span
        self._own_keys = own_keys
        self._keep_content = keep_content

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        adapter = NativeSpanAdapter(self._span, self._keep_content)
        if attributes:
            adapter.set_attributes({k: v for k, v in attributes.items() if k not in self._own_keys})
        return adapter

    @contextmanager
    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace.use_span(span, end_on_exit=end_on_exit, record_exception=False, set_status_on_exception=False):
            yield span


def start_api_call_span_hook(keep_content: bool) -> Callable[..., Any]:
    """A wrapt wrapper for ``anthropic._base_client.start_api_call_span`` (its first argument is the tracer).

    ``keep_content``: whether our content capture puts content on spans.
    """

    def hook(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        span = trace.get_current_span()
        own_keys = _offered.pop(span, None)  # one call, one native span: a nested request keeps its own
        if own_keys is None:
            return wrapped(*args, **kwargs)
        try:
            tracer = NativeTracer(span, own_keys, keep_content)
            if args:
                args = (tracer, *args[1:])
            else:
                kwargs = {**kwargs, "tracer": tracer}
        except Exception:
            logger.warning("llm-telemetry: could not fold Anthropic native tracing into our span", exc_info=True)
        return wrapped(*args, **kwargs)

    return hook
