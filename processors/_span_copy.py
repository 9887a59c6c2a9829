"""Building the enriched copy of a finished span, and finding content that must not be exported.

A ``ReadableSpan`` is immutable once ended and other processors may hold the same object, so the
pipeline never edits it (no writes to ``span._attributes``); it builds a new `EnrichedSpan` with the
extra attributes and events and every other field of the original — context, parent, resource,
links, status, kind, instrumentation scope, times and the dropped-attribute/event/link counts the
exporter reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a

CONTENT_KEYS: frozenset[str] = a.CONTENT_ATTRIBUTES | {a.SAFETY_MATCHES}
"""Exact attribute names that carry prompt/output text (the safety matches are text too)."""
CONTENT_PREFIXES: tuple[str, ...] = tuple(sorted(name + "." for name in CONTENT_KEYS))
"""Indexed forms, e.g. OpenLLMetry's ``gen_ai.prompt.0.content`` / ``gen_ai.completion.1.role``."""
_INDEXED_PROBES: tuple[str, ...] = (
    "gen_ai.prompt.0.content", "gen_ai.prompt.0.role", "gen_ai.completion.0.content", "gen_ai.completion.0.role",
)
"""Indexed families always start at index 0 with a role or content key; probing those four names is
O(1) where scanning every key for a prefix would cost a few µs per span."""

_PRIMITIVES = (str, bool, int, float)


def content_keys(attrs: Mapping[str, Any]) -> list[str]:
    """The keys of ``attrs`` that carry content; empty (and cheap) in the common case of none."""
    if CONTENT_KEYS.isdisjoint(attrs) and not any(probe in attrs for probe in _INDEXED_PROBES):
        return []
    return [key for key in attrs if key in CONTENT_KEYS or key.startswith(CONTENT_PREFIXES)]


def strip_event_content(events: Sequence[Event]) -> tuple[tuple[Event, ...], int]:
    """``events`` with content attributes removed, and how many were removed (same objects when none)."""
    removed = 0
    out: list[Event] | None = None
    for index, event in enumerate(events):
        attrs = event.attributes
        keys = content_keys(attrs) if attrs else []
        if keys:
            if out is None:
                out = list(events[:index])
            removed += len(keys)
            kept = {k: v for k, v in attrs.items() if k not in keys}  # type: ignore[union-attr]
            out.append(Event(event.name, kept, event.timestamp))
        elif out is not None:
            out.append(event)
    return (tuple(events) if out is None else tuple(out)), removed


def valid_value(value: Any) -> AttributeValue | None:
    """``value`` as an OTel attribute value, or ``None`` if it is not one (an exporter would reject the batch)."""
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, (list, tuple)) and value:
        kind = type(value[0])
        if kind in _PRIMITIVES and all(type(item) is kind for item in value):
            return tuple(value)
    return None


class EnrichedSpan(ReadableSpan):
    """A copy of a finished span with different attributes/events; everything else is the original's."""

    def __init__(self, original: ReadableSpan, attributes: dict[str, AttributeValue], events: Iterable[Event]) -> None:
        super().__init__(
            name=original.name,
            context=original.context,
            parent=original.parent,
            resource=original.resource,
            attributes=attributes,
            events=tuple(events),
            links=original.links,
            kind=original.kind,
            # Deprecated twin of instrumentation_scope; read without the property to avoid its warning.
            instrumentation_info=getattr(original, "_instrumentation_info", None),
            status=original.status,
            start_time=original.start_time,
            end_time=original.end_time,
            instrumentation_scope=original.instrumentation_scope,
        )
        self._dropped_counts = (original.dropped_attributes, original.dropped_events, original.dropped_links)

    @property
    def dropped_attributes(self) -> int:
        return self._dropped_counts[0]

    @property
    def dropped_events(self) -> int:
        return self._dropped_counts[1]

    @property
    def dropped_links(self) -> int:
        return self._dropped_counts[2]
