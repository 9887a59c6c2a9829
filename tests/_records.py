"""A side-channel observer for tests: every finished `GenAICall` our instrumentation publishes, by span."""

from __future__ import annotations

import threading

from llm_telemetry.record import GenAICall


class RecordTap:
    """Keeps the records published during one test, keyed by (trace id, span id)."""

    def __init__(self) -> None:
        self._records: dict[tuple[int, int], GenAICall] = {}
        self._lock = threading.Lock()

    def __call__(self, record: GenAICall) -> None:
        with self._lock:
            self._records[(record.trace_id, record.span_id)] = record

    def take(self, key: tuple[int, int]) -> GenAICall | None:
        with self._lock:
            return self._records.pop(key, None)

    def all(self) -> list[GenAICall]:
        with self._lock:
            return list(self._records.values())

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


records = RecordTap()
