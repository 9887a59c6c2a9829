"""The in-process hand-off of each finished `GenAICall` from instrumentation to the enricher chain.

Why a side channel: content (prompts, outputs) must reach the safety and quality enrichers whatever
the capture setting, but must never be exported unless the user opted in. Putting it on the span and
stripping it later would be one bug away from a leak; instead the instrumentation hands the full record
here right before it ends the span, and gets back the attributes and events to set on it.

Why a hand-off and not a store: measurement must see every call, sampled or not, whoever configured
the SDK. The instrumentation publishes every call (a non-recording span included) and the connected
chain measures it at once; nothing is kept, so nothing is pinned in memory when nobody reads it.
Nothing here is ever exported.

When nothing is connected, the first publish connects the process-wide default chain
(`llm_telemetry.processors.chain.default_chain`), so cost, budgets, safety and quality work whatever
configurator set up the SDK — ours, ``opentelemetry-distro``'s, or the app's own code.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from llm_telemetry.record import GenAICall

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from llm_telemetry.processors.base import Enrichment
    from llm_telemetry.processors.chain import EnricherChain

logger = logging.getLogger(__name__)

Observer = Callable[[GenAICall], None]


class SideChannel:
    """Hands each finished call to the connected chain (and to observers); keeps nothing."""

    def __init__(self) -> None:
        self._chain: EnricherChain | None = None
        self._auto = True
        self._observers: tuple[Observer, ...] = ()
        self._lock = threading.Lock()
        self.observer_errors = 0

    def connect(self, chain: EnricherChain | None, *, auto: bool = True) -> None:
        """Send calls to ``chain``; with ``None``, to the default chain on next use (or nowhere if ``auto=False``)."""
        self._chain = chain
        self._auto = auto

    @property
    def chain(self) -> EnricherChain | None:
        return self._chain

    def add_observer(self, observer: Observer) -> None:
        """Also give every finished record to ``observer`` (tools and tests); it must be fast and not raise."""
        with self._lock:
            self._observers = (*self._observers, observer)

    def remove_observer(self, observer: Observer) -> None:
        with self._lock:
            self._observers = tuple(o for o in self._observers if o is not observer)

    def publish(self, record: GenAICall, attributes: Mapping[str, Any]) -> Enrichment | None:
        """Measure ``record``; returns what to add to its span (None when no chain is connected). Never raises."""
        for observer in self._observers:
            try:
                observer(record)
            except Exception:
                self.observer_errors += 1
                logger.debug("llm-telemetry: a side-channel observer failed", exc_info=True)
        chain = self._chain
        if chain is None:
            if not self._auto:
                return None
            chain = self._connect_default()
            if chain is None:
                return None
        return chain.measure(record, attributes)

    def _connect_default(self) -> EnricherChain | None:
        try:
            from llm_telemetry.processors.chain import default_chain

            chain = default_chain()
        except Exception:
            logger.warning("llm-telemetry: the enricher chain is unavailable", exc_info=True)
            chain = None
        if chain is None:
            self._auto = False
        self._chain = chain
        return chain


def attach(enrichment: Enrichment | None, span: Span, end_time_ns: int | None) -> None:
    """Set ``enrichment`` on a still-open ``span`` (events without a time get ``end_time_ns``). Never raises.

    This is how enrichment reaches the export whatever span processors and exporters were installed: it
    is part of the span before ``end()``. A non-recording (unsampled) span ignores it — the measurements
    behind it were taken anyway.
    """
    if enrichment is None or not span.is_recording():
        return
    try:
        if enrichment.attributes:
            span.set_attributes(enrichment.attributes)
        for event in enrichment.events:
            span.add_event(event.name, dict(event.attributes), event.timestamp if event.timestamp is not None else end_time_ns)
    except Exception:
        logger.debug("llm-telemetry: could not attach enrichment to a span", exc_info=True)


side_channel = SideChannel()
"""The process-wide channel our instrumentation publishes to."""
