"""The embedded telemetry store: spans, events, metric points and alerts in one SQLite file.

Why SQLite and not DuckDB: the report's queries are small aggregations over one day or one hour of
GenAI calls (thousands to a few million rows) that SQLite answers in milliseconds with two indexes;
it is in the standard library (no 50 MB dependency for every user of the instrumentation), handles one
writer and concurrent readers (WAL), and its file is readable with any SQL tool. Percentiles are
computed in Python from the selected rows (numpy), so nothing needs DuckDB's analytics functions.

One row per GenAI span, with the columns the report filters and groups on pulled out of the
attributes (model, feature, user, cost, TTFT/TBT, safety, prompt fingerprint) and every attribute as
JSON besides. Old rows are deleted after ``store.retention_days``. The file is owner-only (0600):
it may hold content when content capture is on.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_telemetry import attributes as a

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT, name TEXT, service TEXT,
    start_ns INTEGER, end_ns INTEGER, status TEXT, error_type TEXT,
    operation TEXT, provider TEXT, request_model TEXT, response_model TEXT, feature TEXT, user_id TEXT, session_id TEXT,
    input_tokens INTEGER, output_tokens INTEGER, cost_usd REAL, duration_s REAL, ttft_s REAL, tbt_p95_s REAL,
    tbt_p99_s REAL, tokens_per_s REAL, safety_action TEXT, judge_flagged INTEGER, prompt_fingerprint TEXT,
    attributes TEXT,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS spans_by_end ON spans (end_ns);
CREATE INDEX IF NOT EXISTS spans_by_feature ON spans (feature, end_ns);
CREATE TABLE IF NOT EXISTS events (trace_id TEXT, span_id TEXT, name TEXT, ts_ns INTEGER, attributes TEXT);
CREATE INDEX IF NOT EXISTS events_by_time ON events (ts_ns);
CREATE TABLE IF NOT EXISTS metric_points (ts_ns INTEGER, name TEXT, attributes TEXT, value REAL, count INTEGER);
CREATE INDEX IF NOT EXISTS metric_points_by_name ON metric_points (name, ts_ns);
CREATE TABLE IF NOT EXISTS alerts (
    ts_ns INTEGER, name TEXT, state TEXT, summary TEXT, started_at TEXT, trace_id TEXT, attributes TEXT
);
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (ts_ns);
"""

_SPAN_COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "name", "service", "start_ns", "end_ns", "status", "error_type",
    "operation", "provider", "request_model", "response_model", "feature", "user_id", "session_id",
    "input_tokens", "output_tokens", "cost_usd", "duration_s", "ttft_s", "tbt_p95_s", "tbt_p99_s", "tokens_per_s",
    "safety_action", "judge_flagged", "prompt_fingerprint", "attributes",
)
_INSERT_SPAN = f"INSERT OR REPLACE INTO spans ({', '.join(_SPAN_COLUMNS)}) VALUES ({', '.join('?' * len(_SPAN_COLUMNS))})"
_DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class SpanRecord:
    """What the store keeps of one span, whoever produced it (SDK span, OTLP protobuf span)."""

    trace_id: int
    span_id: int
    parent_span_id: int | None
    name: str
    service: str | None
    start_ns: int
    end_ns: int
    error: bool
    attributes: Mapping[str, Any]
    events: Sequence[tuple[str, int, Mapping[str, Any]]] = ()


class TelemetryStore:
    """One SQLite file; thread-safe (one connection, one lock); every write is one transaction."""

    def __init__(self, path: str | os.PathLike[str], retention_days: float = 7.0) -> None:
        self.path = Path(path).expanduser()
        self.retention_days = retention_days
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._last_purge = 0.0
        self.write_errors = 0
        for suffix in ("-wal", "-shm"):
            side = Path(f"{self.path}{suffix}")
            if side.exists():
                os.chmod(side, 0o600)

    # --- writes --------------------------------------------------------------------------------------

    def add_spans(self, spans: Iterable[SpanRecord]) -> int:
        span_rows: list[tuple[Any, ...]] = []
        event_rows: list[tuple[Any, ...]] = []
        for span in spans:
            if not _is_genai(span.attributes):
                continue
            span_rows.append(_span_row(span))
            tid, sid = format(span.trace_id, "032x"), format(span.span_id, "016x")
            event_rows.extend((tid, sid, name, ts, _json(attrs)) for name, ts, attrs in span.events)
        if not span_rows:
            return 0
        self._write(lambda db: (db.executemany(_INSERT_SPAN, span_rows),
                                db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", event_rows)))
        return len(span_rows)

    def add_metric_points(self, points: Iterable[tuple[int, str, Mapping[str, Any], float, int | None]]) -> None:
        rows = [(ts, name, _json(attrs), value, count) for ts, name, attrs, value, count in points]
        if rows:
            self._write(lambda db: db.executemany("INSERT INTO metric_points VALUES (?, ?, ?, ?, ?)", rows))

    def add_alert(self, ts_ns: int, attributes: Mapping[str, Any], trace_id: int = 0) -> None:
        row = (
            ts_ns, str(attributes.get(a.ALERT_NAME, "")), str(attributes.get(a.ALERT_STATE, "firing")),
            str(attributes.get(a.ALERT_SUMMARY, "")), attributes.get(a.ALERT_STARTED_AT),
            format(trace_id, "032x") if trace_id else None, _json(attributes),
        )
        self._write(lambda db: db.execute("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?)", row))

    def _write(self, work: Any) -> None:
        with self._lock:
            try:
                with self._db:
                    work(self._db)
                self._purge_old()
            except sqlite3.Error:
                self.write_errors += 1
                logger.warning("llm-telemetry: could not write to the telemetry store %s", self.path, exc_info=True)

    def _purge_old(self) -> None:
        now = time.time()
        if now - self._last_purge < 3600 or self.retention_days <= 0:
            return
        self._last_purge = now
        cutoff = time.time_ns() - int(self.retention_days * _DAY_NS)
        with self._db:
            self._db.execute("DELETE FROM spans WHERE end_ns < ?", (cutoff,))
            self._db.execute("DELETE FROM events WHERE ts_ns < ?", (cutoff,))
            self._db.execute("DELETE FROM metric_points WHERE ts_ns < ?", (cutoff,))

    # --- reads ---------------------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            self._db.row_factory = sqlite3.Row
            try:
                return list(self._db.execute(sql, params))
            finally:
                self._db.row_factory = None

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _is_genai(attrs: Mapping[str, Any]) -> bool:
    return a.OPERATION_NAME in attrs or a.PROVIDER_NAME in attrs or a.LEGACY_PROVIDER in attrs or a.REQUEST_MODEL in attrs


def _span_row(span: SpanRecord) -> tuple[Any, ...]:
    attrs = span.attributes
    get = attrs.get
    return (
        format(span.trace_id, "032x"), format(span.span_id, "016x"),
        format(span.parent_span_id, "016x") if span.parent_span_id else None, span.name, span.service,
        span.start_ns, span.end_ns, "error" if span.error else "ok", get(a.ERROR_TYPE),
        get(a.OPERATION_NAME), get(a.PROVIDER_NAME) or get(a.LEGACY_PROVIDER), get(a.REQUEST_MODEL), get(a.RESPONSE_MODEL),
        get(a.FEATURE), get(a.USER_ID), get(a.SESSION_ID),
        _number(_first(get(a.USAGE_INPUT_TOKENS), get(a.USAGE_INPUT_TOKENS_ESTIMATE))),
        _number(_first(get(a.USAGE_OUTPUT_TOKENS), get(a.USAGE_OUTPUT_TOKENS_ESTIMATE))), _number(get(a.COST_TOTAL_USD)),
        (span.end_ns - span.start_ns) / 1e9, _number(get(a.RESPONSE_TIME_TO_FIRST_CHUNK)), _number(get(a.STREAM_TBT_P95)),
        _number(get(a.STREAM_TBT_P99)), _number(get(a.STREAM_OUTPUT_TOKENS_PER_SECOND)),
        get(a.SAFETY_ACTION), 1 if get(a.SAFETY_JUDGE_FLAGGED) else 0, get(a.PROMPT_FINGERPRINT), _json(attrs),
    )


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _number(value: Any) -> float | int | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _json(attrs: Mapping[str, Any]) -> str:
    return json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items()}, default=str, ensure_ascii=False)
