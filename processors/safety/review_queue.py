"""The human review queue: flagged and blocked outputs in a local SQLite file that survives restarts.

Why SQLite: it is in the standard library, a single file a reviewer can copy, and with WAL journaling
the instrumented app (writing, from the background worker) and ``llm-telemetry review`` (reading and
resolving, from another process) do not block each other. The file and its parent directories are
created on the first write, so an app that never flags anything leaves nothing behind. The enricher
queues items through `ReviewWriter`, which writes them in batches on the background worker.

Content (prompt and output) is stored only when content capture is on; otherwise those columns are
NULL and a reviewer follows the trace id to whatever the app itself logged.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STATUSES = ("open", "resolved")
SOURCES = ("screen", "judge")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS review_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    trace_id TEXT,
    span_id TEXT,
    model TEXT,
    source TEXT NOT NULL,
    action TEXT NOT NULL,
    categories TEXT NOT NULL,
    pattern_ids TEXT NOT NULL,
    score REAL,
    explanation TEXT,
    status TEXT NOT NULL DEFAULT 'open',
    resolution TEXT,
    resolved_at TEXT,
    prompt TEXT,
    output TEXT
);
CREATE INDEX IF NOT EXISTS review_items_status ON review_items (status);
"""
_INSERT = (
    "INSERT INTO review_items (created_at, trace_id, span_id, model, source, action, categories, pattern_ids,"
    " score, explanation, prompt, output) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_COLUMNS = (
    "id", "created_at", "trace_id", "span_id", "model", "source", "action", "categories", "pattern_ids",
    "score", "explanation", "status", "resolution", "resolved_at", "prompt", "output",
)


class UnknownReviewItemError(LookupError):
    """No item with that id (the CLI turns this into exit code 2)."""


class AlreadyResolvedError(ValueError):
    """The item was resolved before; resolutions are not overwritten (they are the audit trail)."""


@dataclass(frozen=True, slots=True)
class NewReviewItem:
    """What the enricher or the judge queues. ``prompt`` / ``output`` only when content capture is on."""

    trace_id: str | None
    span_id: str | None
    model: str | None
    source: str
    action: str
    categories: tuple[str, ...]
    pattern_ids: tuple[str, ...] = ()
    score: float | None = None
    explanation: str | None = None
    prompt: str | None = None
    output: str | None = None
    flagged_at: float = field(default_factory=time.time)
    """When it was flagged (stored as ``created_at``); writes happen later, in batches."""


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """One row of the queue."""

    id: int
    created_at: str
    trace_id: str | None
    span_id: str | None
    model: str | None
    source: str
    action: str
    categories: tuple[str, ...]
    pattern_ids: tuple[str, ...]
    score: float | None
    explanation: str | None
    status: str
    resolution: str | None
    resolved_at: str | None
    prompt: str | None
    output: str | None

    def to_dict(self) -> dict[str, Any]:
        return {name: list(v) if isinstance(v := getattr(self, name), tuple) else v for name in _COLUMNS}


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


class ReviewQueue:
    """The queue in one SQLite file; thread-safe (one connection behind a lock), opened lazily."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser()
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._conn is None:
            if not create and not self.path.exists():
                return None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
            except sqlite3.Error:  # e.g. the file is not a database
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def add(self, item: NewReviewItem) -> int:
        """Append an open item; returns its id."""
        return self.add_many([item])[0]

    def add_many(self, items: Sequence[NewReviewItem]) -> list[int]:
        """Append open items in one transaction; returns their ids."""
        rows = []
        for item in items:
            if item.source not in SOURCES:
                raise ValueError(f"review item source must be one of {SOURCES}, got {item.source!r}")
            rows.append((
                _iso(item.flagged_at), item.trace_id, item.span_id, item.model, item.source, item.action,
                json.dumps(list(item.categories)), json.dumps(list(item.pattern_ids)),
                item.score, item.explanation, item.prompt, item.output,
            ))
        with self._lock:
            conn = self._connect(create=True)
            assert conn is not None
            conn.execute("BEGIN")
            try:
                ids = [int(conn.execute(_INSERT, row).lastrowid or 0) for row in rows]
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return ids

    def list(self, status: str = "open", limit: int | None = None) -> list[ReviewItem]:
        """Items with ``status`` (``open``, ``resolved`` or ``all``), oldest first."""
        if status not in (*STATUSES, "all"):
            raise ValueError(f"status must be open, resolved or all, got {status!r}")
        query = f"SELECT {', '.join(_COLUMNS)} FROM review_items"
        params: list[Any] = []
        if status != "all":
            query += " WHERE status = ?"
            params.append(status)
        query += " ORDER BY id"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        with self._lock:
            conn = self._connect(create=False)
            rows = conn.execute(query, params).fetchall() if conn is not None else []
        return [_item(row) for row in rows]

    def get(self, item_id: int) -> ReviewItem:
        with self._lock:
            conn = self._connect(create=False)
            row = None
            if conn is not None:
                row = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM review_items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise UnknownReviewItemError(f"no review item with id {item_id} in {self.path}")
        return _item(row)

    def resolve(self, item_id: int, resolution: str) -> ReviewItem:
        """Mark an open item resolved with the reviewer's ``resolution`` text."""
        if not resolution.strip():
            raise ValueError("a resolution must say what was decided")
        with self._lock:
            conn = self._connect(create=False)
            updated = 0
            if conn is not None:
                updated = conn.execute(
                    "UPDATE review_items SET status = 'resolved', resolution = ?, resolved_at = ? WHERE id = ? AND status = 'open'",
                    (resolution.strip(), _iso(time.time()), item_id),
                ).rowcount
        item = self.get(item_id)  # raises UnknownReviewItemError
        if not updated:
            raise AlreadyResolvedError(f"review item {item_id} was already resolved at {item.resolved_at}: {item.resolution!r}")
        return item

    def count(self, status: str = "open") -> int:
        """Number of items with ``status`` (0 when the file does not exist yet)."""
        with self._lock:
            conn = self._connect(create=False)
            if conn is None:
                return 0
            return int(conn.execute("SELECT COUNT(*) FROM review_items WHERE status = ?", (status,)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _item(row: Sequence[Any]) -> ReviewItem:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["categories"] = tuple(json.loads(values["categories"] or "[]"))
    values["pattern_ids"] = tuple(json.loads(values["pattern_ids"] or "[]"))
    return ReviewItem(**values)


class ReviewWriter:
    """Hands review items from the application thread to the background worker, in batches.

    Why batch: an app whose outputs often match (say every answer quotes the support e-mail address)
    would otherwise cost one worker wake-up and one SQLite transaction per span. Items wait in a bounded
    list; the first one schedules a write, which takes everything pending. Items that cannot be queued
    (list full, worker queue full) or written are counted in `dropped`, never silently lost.
    """

    def __init__(self, queue: ReviewQueue, submit: Callable[[Callable[[], None]], bool], max_pending: int = 10_000) -> None:
        self.queue = queue
        self._submit = submit
        self._max_pending = max_pending
        self._pending: list[NewReviewItem] = []
        self._lock = threading.Lock()
        self.dropped = 0

    def add(self, item: NewReviewItem) -> None:
        with self._lock:
            if len(self._pending) >= self._max_pending:
                self.dropped += 1
                return
            self._pending.append(item)
            if len(self._pending) > 1:
                return  # a write is already scheduled and will take this item too
        if not self._submit(self._write):
            with self._lock:
                self.dropped += len(self._pending)
                self._pending.clear()

    def _write(self) -> None:
        with self._lock:
            items, self._pending = self._pending, []
        if not items:
            return
        try:
            self.queue.add_many(items)
        except Exception:
            with self._lock:
                self.dropped += len(items)
            raise  # the worker logs and counts the failed task
