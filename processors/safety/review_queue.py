"""The human review queue: flagged and blocked outputs in a local SQLite file that survives restarts.

Why SQLite: it is in the standard library, a single file a reviewer can copy, and with WAL journaling
the instrumented app (writing, from the background worker) and ``llm-telemetry review`` (reading and
resolving, from another process) do not block each other. The file and its parent directories are
created on the first write, so an app that never flags anything leaves nothing behind. The enricher
queues items through `ReviewWriter`, which writes them in batches on the background worker.

Content (prompt and output) is stored only when content capture is on; otherwise those columns are
NULL and a reviewer follows the trace id to whatever the app itself logged. Stored content has its
secrets masked exactly as the span's matches are (``redact``, the screen's `Screen.mask_secrets`).

The file holds prompts and outputs, so it is the owner's only: directories we create are 0700, and the
database and SQLite's ``-wal`` / ``-shm`` files (which SQLite creates with the database's mode) are 0600
whatever the umask. Text SQLite cannot store (a lone surrogate from a JSON ``"\\ud800"`` escape has no
UTF-8 form) is stored with U+FFFD in its place and counted in `ReviewQueue.replaced`; an item that still
cannot be written is counted in `ReviewQueue.failed` — one bad item never costs the rest of its batch.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

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


_SURROGATES = re.compile("[\ud800-\udfff]")
_DIR_MODE = 0o700
_FILE_MODE = 0o600
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and missing parents as 0700 (mkdir's mode is filtered by the umask: chmod after).

    Directories that already exist are left as they are: they may be shared on purpose (the files are 0600).
    """
    missing = []
    for parent in (directory, *directory.parents):
        if parent.exists():
            break
        missing.append(parent)
    for created in reversed(missing):
        try:
            created.mkdir(mode=_DIR_MODE)
        except FileExistsError:  # created concurrently
            continue
        os.chmod(created, _DIR_MODE)


def _make_private_file(path: Path) -> None:
    """Create ``path`` 0600 if missing, and make it and SQLite's side files 0600 if they are ours."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    except FileExistsError:
        pass  # tightened below, if it is ours (a reviewer may read someone else's queue)
    else:
        try:
            os.fchmod(fd, _FILE_MODE)  # the umask may have taken bits off, never added: make it exact
        finally:
            os.close(fd)
    for suffix in ("", *_SQLITE_SIDE_FILES):  # left by an older version or a process with a wider umask
        existing = path.with_name(path.name + suffix)
        try:
            info = existing.stat()
            if info.st_uid == os.geteuid() and info.st_mode & 0o077:
                os.chmod(existing, _FILE_MODE)
        except OSError:
            continue


def storable(text: str | None) -> tuple[str | None, bool]:
    """``text`` as SQLite can store it (valid UTF-8), and whether characters had to be replaced."""
    if text is None:
        return None, False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Replaced, not passed through ("surrogatepass"): a surrogate stored as bytes is invalid UTF-8, and the
        # row could then not be read back.
        return _SURROGATES.sub("\ufffd", text), True
    return text, False


class ReviewQueue:
    """The queue in one SQLite file; thread-safe (one connection behind a lock), opened lazily.

    ``redact`` (e.g. `Screen.mask_secrets`) is applied to stored prompts, outputs and explanations; it runs
    where `add_many` runs (the background worker), never on the application's thread.
    """

    def __init__(self, path: Path, *, redact: Callable[[str], str] | None = None) -> None:
        self.path = Path(path).expanduser()
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._redact = redact
        self._counts_lock = threading.Lock()
        self.replaced = 0
        """Items stored with unencodable characters replaced by U+FFFD."""
        self.failed = 0
        """Items that could not be stored at all (the others of their batch are)."""

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._conn is None:
            if not create and not self.path.exists():
                return None
            _make_private_dirs(self.path.parent)
            _make_private_file(self.path)
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
        """Append an open item; returns its id (`ValueError` if it cannot be stored)."""
        ids = self.add_many([item])
        if not ids:
            raise ValueError(f"review item could not be stored in {self.path} (counted in ReviewQueue.failed)")
        return ids[0]

    def add_many(self, items: Sequence[NewReviewItem]) -> list[int]:
        """Append open items in one transaction; returns the ids of those stored (each item stands alone)."""
        if any(item.source not in SOURCES for item in items):
            bad = next(item.source for item in items if item.source not in SOURCES)
            raise ValueError(f"review item source must be one of {SOURCES}, got {bad!r}")
        rows = []
        for item in items:
            try:
                rows.append(self._row(item))
            except Exception:  # e.g. a failing redact: this item only
                self._failed_item("could not be prepared")
        ids: list[int] = []
        with self._lock:
            conn = self._connect(create=True)
            assert conn is not None
            conn.execute("BEGIN")
            try:
                for row in rows:
                    try:
                        ids.append(int(conn.execute(_INSERT, row).lastrowid or 0))
                    except (sqlite3.DataError, sqlite3.IntegrityError, sqlite3.InterfaceError, ValueError, OverflowError):
                        self._failed_item("was rejected by SQLite")  # a statement error leaves the transaction open
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return ids

    def _row(self, item: NewReviewItem) -> tuple[Any, ...]:
        replaced = False
        texts: list[str | None] = []
        for value in (item.trace_id, item.span_id, item.model, item.explanation, item.prompt, item.output):
            text, changed = storable(value)
            replaced = replaced or changed
            texts.append(text)
        trace_id, span_id, model, explanation, prompt, output = texts
        if self._redact is not None:
            explanation, prompt, output = (None if t is None else self._redact(t) for t in (explanation, prompt, output))
        if replaced:
            with self._counts_lock:
                self.replaced += 1
        return (
            _iso(item.flagged_at), trace_id, span_id, model, item.source, item.action,
            json.dumps(list(item.categories)), json.dumps(list(item.pattern_ids)),
            item.score, explanation, prompt, output,
        )

    def _failed_item(self, why: str) -> None:
        with self._counts_lock:
            self.failed += 1
            first = self.failed == 1
        logger.log(logging.WARNING if first else logging.DEBUG, "llm-telemetry: a review item %s and is not stored in %s "
                   "(the rest of its batch is; counted as dropped)", why, self.path, exc_info=True)

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
            stored = len(self.queue.add_many(items))
        except Exception:
            with self._lock:
                self.dropped += len(items)
            raise  # the worker logs and counts the failed task
        if stored < len(items):  # items the queue could not store (it logged why); the others are in
            with self._lock:
                self.dropped += len(items) - stored
