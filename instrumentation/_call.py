"""The life cycle of one GenAI call's span: start before the request, end exactly once.

`CallSpan` is shared by every wrapper of every SDK. The SDK-specific code fills the call's
`GenAICall` record (request fields at start, response fields when they arrive); `CallSpan.end` turns
the record into span attributes, events and metrics, hands the full record (content included) to the
in-process side channel for the processors, and ends the span. It never raises: a failure in here is
logged and the span is still ended.

Why the clock starts here: TTFT is measured from *before* the request is sent (``perf_counter`` at
wrapper entry), not from when response headers arrive — OpenLIT's mistake, which hides queueing time.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Sequence

from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a
from llm_telemetry.attribution import current_attribution
from llm_telemetry.record import GenAICall, StreamTimings
from llm_telemetry.side_channel import attach, side_channel

from ._content import content_attributes
from ._telemetry import Telemetry
from ._timing import estimate_input_tokens, estimate_tokens, gap_stats

logger = logging.getLogger(__name__)

STATUS_RULE = """When a GenAI call's span is ERROR and when it is UNSET: one rule, both SDKs, sync and async.

ERROR, with ``error.type``, when the provider or the connection failed the call:

* the SDK call raised (an HTTP error status, a connection error, a timeout of the SDK's own);
* reading the stream raised (a cut or broken connection, an error event): ``end_reason`` ``error``;
* the stream ended cleanly but before its end event (``IncompleteStreamError``): ``end_reason`` ``error``;
* the provider answered and reported a failure (a Responses ``status: failed``, streamed or not).

UNSET otherwise (never OK: that is the application's to set), with the end reason saying what happened
(``llm_telemetry.stream.end_reason`` on streams, ``llm_telemetry.call.end_reason`` on a non-streamed
call that did not complete):

* ``completed``: the call or the stream finished normally;
* ``closed_early``: the application closed the stream, or left its ``with`` block, before the end;
* ``app_exception``: an exception from the application's own code left a ``with stream:`` block;
* ``cancelled``: the task was cancelled or interrupted (``asyncio.CancelledError``, ``KeyboardInterrupt``,
  ``SystemExit``, ``GeneratorExit``), while the request was sent or while the stream was read, sync or
  async alike. Cancelling is the application's decision (a timeout of its own, a user who left), not a
  provider failure; the span keeps what was received up to then;
* ``abandoned``: the stream was garbage-collected before it was read to the end;
* ``process_exit``: the process exited while the stream was still open (ended by our exit hook).

``error.type`` is set exactly when the status is ERROR, on the span and on the duration metric.
"""

CANCELLATIONS: tuple[type[BaseException], ...] = (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)
"""What ends a call as ``cancelled`` (UNSET) rather than as an error: see `STATUS_RULE`."""


def is_cancellation(error: BaseException | None) -> bool:
    return isinstance(error, CANCELLATIONS)


_ATTRIBUTION_FIELDS = {a.USER_ID: "user_id", a.SESSION_ID: "session_id", a.CONVERSATION_ID: "conversation_id", a.FEATURE: "feature"}


class ProviderReportedError(Exception):
    """The provider answered, and its answer says the call failed (e.g. a Responses ``status: failed``).

    ``error_type`` is the provider's own error code (``server_error`` …), the low-cardinality value the
    conventions ask ``error.type`` to carry.
    """

    def __init__(self, error_type: str, message: str = "") -> None:
        super().__init__(message or error_type)
        self.error_type = error_type


def error_type(error: BaseException) -> str:
    """``error.type``: the provider's code for a `ProviderReportedError`, else the exception's class name
    (fully qualified outside builtins)."""
    if isinstance(error, ProviderReportedError):
        return error.error_type
    cls = type(error)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    # openai._exceptions.RateLimitError -> openai.RateLimitError: the public name users know.
    return f"{module.split('.', 1)[0]}.{cls.__qualname__}"


class CallSpan:
    """One GenAI call: its record, its span, its start clocks, and the guarantee that it ends once."""

    __slots__ = ("_end_lock", "_ended", "record", "request_attributes", "span", "start_ns", "t0", "telemetry")

    def __init__(self, telemetry: Telemetry, record: GenAICall, request_attributes: dict[str, AttributeValue]) -> None:
        self.t0 = time.perf_counter()
        self.start_ns = time.time_ns()
        self.telemetry = telemetry
        self.record = record
        self._ended = False
        self._end_lock = threading.Lock()
        attrs = request_attributes
        _identity(record, attrs)
        for name, value in current_attribution().items():
            attrs[name] = value
            setattr(record, _ATTRIBUTION_FIELDS[name], value)
        name = f"{record.operation} {record.request_model}" if record.request_model else record.operation
        self.request_attributes = attrs
        self.span: Span = telemetry.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs, start_time=self.start_ns)
        ctx = self.span.get_span_context()
        record.trace_id, record.span_id, record.start_time_ns = ctx.trace_id, ctx.span_id, self.start_ns

    def activate(self) -> _Current:
        """Make the span current while the SDK sends the request, so HTTP client spans are its children."""
        return _Current(self.span)

    @property
    def ended(self) -> bool:
        return self._ended

    def disown(self) -> None:
        """This process must never end the span: it is a fork's copy of a call its parent owns and will end."""
        self._ended = True

    def end(
        self,
        error: BaseException | None = None,
        *,
        chunk_times: Sequence[float] | None = None,
        end_reason: str | None = None,
    ) -> None:
        """Finish the call. ``chunk_times``: perf_counter readings of each content chunk (streams only).

        ``error``: what ended the call, if it raised; a cancellation is not an error (`STATUS_RULE`).
        """
        if error is not None and is_cancellation(error):
            error, end_reason = None, "cancelled"
        if self._ended or not self._end_lock.acquire(blocking=False):
            return
        try:
            if self._ended:
                return
            self._ended = True
            self._finish(error, chunk_times, end_reason)
        except Exception:
            logger.warning("llm-telemetry: could not record a GenAI call; ending its span anyway", exc_info=True)
            try:
                self.span.end()
            except Exception:
                logger.debug("span.end failed", exc_info=True)
        finally:
            self._end_lock.release()

    # -- internals ------------------------------------------------------------------------------------

    def _finish(self, error: BaseException | None, chunk_times: Sequence[float] | None, end_reason: str | None) -> None:
        now = time.perf_counter()
        record, span, telemetry = self.record, self.span, self.telemetry
        record.duration_s = now - self.t0
        attrs: dict[str, AttributeValue] = {}
        if error is not None:
            record.error_type = error_type(error)
        if record.streaming:
            if chunk_times is not None and record.input_tokens is None:  # the stream was opened: the prompt was sent
                self._estimate_input(record, attrs)
            self._stream_timing(record, attrs, chunk_times or (), end_reason)
        _response_attributes(record, attrs)
        if record.error_type:
            attrs[a.ERROR_TYPE] = record.error_type
        elif end_reason and end_reason != "completed" and not record.streaming:
            attrs[a.CALL_END_REASON] = end_reason
        capture = telemetry.capture
        if capture.enabled:
            content = content_attributes(record, telemetry.max_content_chars)
            if capture.on_span:
                attrs.update(content)
            if capture.on_event and content:
                span.add_event(a.EVENT_INFERENCE_DETAILS, content)
        span.set_attributes(attrs)
        if record.error_type:  # STATUS_RULE: ERROR exactly when error.type is set
            span.set_status(Status(StatusCode.ERROR, record.error_type))
        self._record_metrics(record, chunk_times)
        end_ns = record.end_time_ns = self.start_ns + int(record.duration_s * 1e9)
        # Every call is measured, sampled or not; the record is not touched again after this hand-off.
        # What comes back is set on the still-open span, so any configurator's exporters carry it.
        attach(side_channel.publish(record, {**self.request_attributes, **attrs}), span, end_ns)
        span.end(end_time=end_ns)

    @staticmethod
    def _estimate_input(record: GenAICall, attrs: dict[str, AttributeValue]) -> None:
        """A stream without usage (OpenAI's default): estimate the prompt, flag it, never leave a silent 0."""
        estimate = estimate_input_tokens(record.system_instructions, record.input_messages)
        if estimate is not None:
            record.input_tokens = estimate
            record.input_tokens_estimated = True
            attrs[a.USAGE_INPUT_TOKENS_ESTIMATED] = True
            attrs[a.USAGE_INPUT_TOKENS_ESTIMATE] = estimate  # never as gen_ai.usage.input_tokens

    def _stream_timing(
        self, record: GenAICall, attrs: dict[str, AttributeValue], times: Sequence[float], end_reason: str | None
    ) -> None:
        telemetry, span, t0 = self.telemetry, self.span, self.t0
        timings = StreamTimings(chunk_count=len(times), end_reason=end_reason)
        record.timings = timings
        if end_reason:
            attrs[a.STREAM_END_REASON] = end_reason
        attrs[a.STREAM_CHUNK_COUNT] = len(times)
        if record.output_tokens is None and record.error_type is None and times:
            record.output_tokens = estimate_tokens(record.output_text or "", len(times))
            record.output_tokens_estimated = True
            attrs[a.USAGE_OUTPUT_TOKENS_ESTIMATED] = True
            attrs[a.USAGE_OUTPUT_TOKENS_ESTIMATE] = record.output_tokens  # never as gen_ai.usage.output_tokens

        def wall(t: float) -> int:
            return self.start_ns + int((t - t0) * 1e9)

        if times:
            timings.ttft_s = times[0] - t0
            attrs[a.RESPONSE_TIME_TO_FIRST_CHUNK] = timings.ttft_s
            span.add_event(a.EVENT_FIRST_TOKEN, {a.RESPONSE_TIME_TO_FIRST_CHUNK: timings.ttft_s}, timestamp=wall(times[0]))
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        stats = gap_stats(gaps)
        if stats is not None:
            timings.tbt_mean_s, timings.tbt_p50_s, timings.tbt_p95_s = stats.mean, stats.p50, stats.p95
            timings.tbt_p99_s, timings.tbt_max_s = stats.p99, stats.max
            attrs[a.STREAM_TBT_MEAN] = stats.mean
            attrs[a.STREAM_TBT_P50] = stats.p50
            attrs[a.STREAM_TBT_P95] = stats.p95
            attrs[a.STREAM_TBT_P99] = stats.p99
            attrs[a.STREAM_TBT_MAX] = stats.max
            threshold = telemetry.stall_threshold_s
            for index, gap in enumerate(gaps):
                if gap > threshold:
                    timings.stall_count += 1
                    span.add_event(
                        a.EVENT_STALL,
                        {
                            a.EVENT_STALL_SECONDS: gap,
                            a.EVENT_STALL_CHUNK_INDEX: index + 1,
                            a.EVENT_STALL_AT_SECONDS: times[index] - t0,
                        },
                        timestamp=wall(times[index + 1]),
                    )
            attrs[a.STREAM_STALL_COUNT] = timings.stall_count
            generation_s = times[-1] - times[0]
            if record.output_tokens and generation_s > 0:
                timings.output_tokens_per_s = record.output_tokens / generation_s
                attrs[a.STREAM_OUTPUT_TOKENS_PER_SECOND] = timings.output_tokens_per_s
        if telemetry.chunk_events:
            previous = t0
            for index, t in enumerate(times):
                span.add_event(a.EVENT_CHUNK, {a.EVENT_CHUNK_INDEX: index, a.EVENT_CHUNK_GAP_SECONDS: t - previous}, timestamp=wall(t))
                previous = t
        span.add_event(
            a.EVENT_STREAM_END,
            {a.STREAM_END_REASON: end_reason or "completed", a.STREAM_CHUNK_COUNT: len(times)},
        )

    def _record_metrics(self, record: GenAICall, chunk_times: Sequence[float] | None) -> None:
        telemetry = self.telemetry
        attrs: dict[str, AttributeValue] = {}
        _identity(record, attrs)
        if record.response_model:
            attrs[a.RESPONSE_MODEL] = record.response_model
        if record.feature:
            # per-endpoint latency thresholds (a chat endpoint is not a batch job) need the feature
            attrs[a.FEATURE] = record.feature
        if record.error_type:
            telemetry.duration.record(record.duration_s or 0.0, {**attrs, a.ERROR_TYPE: record.error_type})
        else:
            telemetry.duration.record(record.duration_s or 0.0, attrs)
        if record.input_tokens is not None and not record.input_tokens_estimated:
            telemetry.token_usage.record(record.input_tokens, {**attrs, a.TOKEN_TYPE: "input"})
        if record.output_tokens is not None and not record.output_tokens_estimated:
            telemetry.token_usage.record(record.output_tokens, {**attrs, a.TOKEN_TYPE: "output"})
        timings = record.timings
        if timings is None:
            return
        if timings.ttft_s is not None:
            telemetry.time_to_first_chunk.record(timings.ttft_s, attrs)
        if timings.stall_count:
            telemetry.stalls.add(timings.stall_count, attrs)
        if chunk_times and len(chunk_times) > 1:
            if telemetry.per_chunk_metric:
                record_gap = telemetry.time_per_output_chunk.record
                for earlier, later in itertools.pairwise(chunk_times):
                    record_gap(later - earlier, attrs)
            elif timings.tbt_mean_s is not None:
                telemetry.time_per_output_chunk.record(timings.tbt_mean_s, attrs)


class _Current:
    """``with``: the span is current inside. A slotted class, cheaper than ``trace.use_span``'s generator."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span

    def __enter__(self) -> Span:
        self._token = context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(self, *exc: object) -> None:
        context.detach(self._token)


def _identity(record: GenAICall, attrs: dict[str, AttributeValue]) -> None:
    """What names the call on its span and on every metric point: operation, provider, model, server."""
    attrs[a.OPERATION_NAME] = record.operation
    attrs[a.PROVIDER_NAME] = record.provider
    if record.request_model:
        attrs[a.REQUEST_MODEL] = record.request_model
    if record.server_address:
        attrs[a.SERVER_ADDRESS] = record.server_address
    if record.server_port:
        attrs[a.SERVER_PORT] = record.server_port


def _response_attributes(record: GenAICall, attrs: dict[str, AttributeValue]) -> None:
    if record.response_id:
        attrs[a.RESPONSE_ID] = record.response_id
    if record.response_model:
        attrs[a.RESPONSE_MODEL] = record.response_model
    if record.system_fingerprint:
        attrs[a.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = record.system_fingerprint
    if record.finish_reasons:
        attrs[a.RESPONSE_FINISH_REASONS] = list(record.finish_reasons)
    if record.input_tokens is not None and not record.input_tokens_estimated:
        attrs[a.USAGE_INPUT_TOKENS] = record.input_tokens
    if record.output_tokens is not None and not record.output_tokens_estimated:
        attrs[a.USAGE_OUTPUT_TOKENS] = record.output_tokens
    if record.cache_read_tokens:
        attrs[a.USAGE_CACHE_READ_INPUT_TOKENS] = record.cache_read_tokens
    if record.cache_write_tokens:
        attrs[a.USAGE_CACHE_CREATION_INPUT_TOKENS] = record.cache_write_tokens
    reasoning = record.extra.get("reasoning_tokens")
    if reasoning:
        attrs[a.USAGE_REASONING_OUTPUT_TOKENS] = reasoning
    if record.usage_invalid:
        attrs[a.USAGE_INVALID] = list(record.usage_invalid)
