"""The in-process hand-off of finished `GenAICall` records from instrumentation to span processors.

Why a side channel: content (prompts, outputs) must reach the safety and drift processors whatever the
capture setting, but must never be exported unless the user opted in. Putting it on the span and
stripping it later would be one bug away from a leak; instead the instrumentation publishes the full
record here, keyed by the span's (trace id, span id), right before it ends the span, and the pipeline
processor takes it in ``on_end``. Nothing here is ever exported.

The store is bounded: if no processor takes records (e.g. our pipeline is not installed), the oldest
are evicted and counted in `dropped` rather than growing without limit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from llm_telemetry.record import GenAICall

SpanKey = tuple[int, int]
"""(trace_id, span_id) of the span the record belongs to."""

DEFAULT_CAPACITY = 4096


class SideChannel:
    """A bounded, thread-safe map from span key to the record of that span's call."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._records: OrderedDict[SpanKey, GenAICall] = OrderedDict()
        self._lock = threading.Lock()
        self.dropped = 0
        """Records evicted unread because the store was full."""

    def publish(self, key: SpanKey, record: GenAICall) -> None:
        with self._lock:
            self._records[key] = record
            while len(self._records) > self._capacity:
                self._records.popitem(last=False)
                self.dropped += 1

    def resize(self, capacity: int) -> None:
        """Change the bound (``pipeline.side_channel_capacity``); evicts and counts the oldest if needed."""
        with self._lock:
            self._capacity = capacity
            while len(self._records) > capacity:
                self._records.popitem(last=False)
                self.dropped += 1

    def take(self, key: SpanKey) -> GenAICall | None:
        """Remove and return the record for ``key``, or ``None`` if none was published."""
        with self._lock:
            return self._records.pop(key, None)

    def __len__(self) -> int:
        return len(self._records)


side_channel = SideChannel()
"""The process-wide channel our instrumentation publishes to and `llm_telemetry.processors` reads."""
