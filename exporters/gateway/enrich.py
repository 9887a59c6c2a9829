"""Enrichment of decoded OTLP requests: the enricher chain over GenAI spans, and the content rule.

Why edit the protobuf in place: a gateway sees tens of thousands of spans per second, most of them not
GenAI spans. Rebuilding SDK span objects (or dicts of every span) would cost more than the enrichment.
Here a span is looked at only through its attribute keys until one of them names a GenAI operation,
provider or model; then its attributes are decoded once into a plain dict, the `GenAICall` record is
rebuilt from them (`GenAICall.from_attributes`, legacy names included), and the chain's attributes and
events are written back into the same protobuf span. Identity and time come from the span itself: the
budget windows use the call's end time, not the time the gateway happened to receive it.

Spans carrying ``llm_telemetry.enriched`` (enriched in-process, or by another gateway) are not measured
again. With content capture off (`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`), content
attributes are removed from GenAI spans, their events and log records before anything is forwarded,
whoever produced them.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llm_telemetry import attributes as a
from llm_telemetry.config import Settings, env_var
from llm_telemetry.exporters.gateway import wire
from llm_telemetry.exporters.gateway.otlp import decode_attributes, remove_keys
from llm_telemetry.processors._span_copy import content_keys
from llm_telemetry.processors.chain import EnricherChain
from llm_telemetry.processors.metrics import DROP_CONTENT_STRIPPED, DROP_PIPELINE_ERROR
from llm_telemetry.record import GenAICall

logger = logging.getLogger(__name__)

GENAI_KEYS = frozenset({a.OPERATION_NAME, a.PROVIDER_NAME, a.LEGACY_PROVIDER, a.REQUEST_MODEL})
"""The keys `llm_telemetry.record.is_genai_span` looks for; one of them makes a span a GenAI span."""
_MAX_LOGGED_SCOPES = 100


class OtlpEnricher:
    """Enriches and cleans ``ExportTraceServiceRequest`` / ``ExportLogsServiceRequest`` messages in place.

    ``chain`` ``None`` is the pass-through mode (``--no-enrich``): content is still stripped.
    Thread-safe: the receivers call it from several threads; the chain's enrichers are thread-safe.
    """

    def __init__(self, chain: EnricherChain | None, settings: Settings) -> None:
        self.chain = chain
        capture = settings.content.capture
        self._strip_span = not capture.on_span
        self._strip_event = not capture.on_event
        self._lock = threading.Lock()
        self.spans_enriched = 0
        self.content_stripped = 0
        self.pipeline_errors = 0
        self._warned_scopes: set[str] = set()

    def dropped_counts(self) -> dict[str, int]:
        """Counts for ``llm_telemetry.dropped``: content attributes removed, spans our code failed on."""
        return {DROP_CONTENT_STRIPPED: self.content_stripped, DROP_PIPELINE_ERROR: self.pipeline_errors}

    # --- traces ----------------------------------------------------------------------------------------

    def process_traces(self, request: ExportTraceServiceRequest) -> bool:
        """Enrich every GenAI span of ``request``; True if anything changed (the request must be re-serialized)."""
        changed = False
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                scope = scope_spans.scope.name
                for span in scope_spans.spans:
                    for kv in span.attributes:
                        if kv.key in GENAI_KEYS:
                            break
                    else:
                        continue  # not a GenAI span: forwarded as it came
                    try:
                        changed = self._span(span, scope) or changed
                    except Exception:
                        changed = self._after_error(span, scope) or changed
        return changed

    def _span(self, span: Any, scope: str) -> bool:
        if self.chain is None:
            return self._strip(span, scope)  # pass-through: the content rule needs the keys, not the values
        attrs = decode_attributes(span.attributes)
        content = content_keys(attrs) if self._strip_span else []
        blob = b""
        added_content: list[str] = []
        if not attrs.get(a.ENRICHED):
            call = GenAICall.from_attributes(attrs)
            if call is not None:
                call.trace_id = int.from_bytes(span.trace_id, "big")
                call.span_id = int.from_bytes(span.span_id, "big")
                call.start_time_ns = span.start_time_unix_nano or None
                call.end_time_ns = span.end_time_unix_nano or None
                enrichment = self.chain.measure(call, attrs)
                added = enrichment.attributes
                replaced = [key for key in added if key in attrs]
                if replaced:  # the enrichment's value wins (not counted as stripped content)
                    remove_keys(span.attributes, replaced)
                    content = [key for key in content if key not in added]
                if self._strip_span:
                    added_content = content_keys(added)  # an enricher's content is content too: never appended
                    if added_content:
                        added = {key: value for key, value in added.items() if key not in added_content}
                blob = wire.attributes(added)
                if enrichment.events:
                    end = span.end_time_unix_nano
                    blob += wire.events((e.name, e.attributes, end if e.timestamp is None else e.timestamp) for e in enrichment.events)
                with self._lock:
                    self.spans_enriched += 1
        changed = bool(blob)
        if content or added_content:
            # Before the merge: the span's own attributes only, a shorter list to walk than with the enrichment appended.
            removed = remove_keys(span.attributes, content) if content else 0
            self._stripped(scope, list(dict.fromkeys([*content, *added_content])), removed + len(added_content))
            changed = True
        if blob:
            span.MergeFromString(blob)  # protobuf merge appends repeated fields: the attributes and events are added
        if self._strip_event and len(span.events):
            changed = self._strip_events(span.events, scope) or changed
        return changed

    def _strip_events(self, events: Any, scope: str) -> bool:
        changed = False
        for event in events:
            keys = content_keys(dict.fromkeys(kv.key for kv in event.attributes))
            if keys:
                self._stripped(scope, keys, remove_keys(event.attributes, keys))
                changed = True
        return changed

    def _after_error(self, span: Any, scope: str) -> bool:
        """Our own bug on one span: forward it unenriched, but never with content that must not leave."""
        with self._lock:
            self.pipeline_errors += 1
            first = self.pipeline_errors == 1
        logger.log(logging.WARNING if first else logging.DEBUG, "llm-telemetry gateway: enrichment failed on span %r; "
                   "forwarded unenriched (counted in %s{reason=%s})", span.name, a.METRIC_DROPPED, DROP_PIPELINE_ERROR, exc_info=True)
        return self._strip(span, scope)

    def _strip(self, span: Any, scope: str) -> bool:
        """Apply the content rule to a span from its attribute keys alone."""
        changed = False
        if self._strip_span:
            keys = content_keys(dict.fromkeys(kv.key for kv in span.attributes))
            if keys:
                self._stripped(scope, keys, remove_keys(span.attributes, keys))
                changed = True
        if self._strip_event:
            changed = self._strip_events(span.events, scope) or changed
        return changed

    # --- logs --------------------------------------------------------------------------------------------

    def process_logs(self, request: ExportLogsServiceRequest) -> bool:
        """Remove content attributes from log records (GenAI events) unless content capture covers events."""
        if not self._strip_event:
            return False
        changed = False
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    keys = content_keys(dict.fromkeys(kv.key for kv in record.attributes))
                    if keys:
                        self._stripped(scope_logs.scope.name, keys, remove_keys(record.attributes, keys))
                        changed = True
        return changed

    def _stripped(self, scope: str, keys: list[str], count: int) -> None:
        with self._lock:
            self.content_stripped += count
            warn = scope not in self._warned_scopes and len(self._warned_scopes) < _MAX_LOGGED_SCOPES
            if warn:
                self._warned_scopes.add(scope)
        if warn:
            logger.warning(
                "llm-telemetry gateway: content capture is off (%s), so content attributes (%s) were removed from "
                "telemetry of instrumentation scope %r before forwarding; logged once per scope, counted in %s{reason=%s}",
                env_var("content", "capture"), ", ".join(sorted(keys)), scope or "(unnamed)", a.METRIC_DROPPED, DROP_CONTENT_STRIPPED,
            )
