"""The human review queue: durable SQLite store, and ``llm-telemetry review list|show|resolve``."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest
from _safety_helpers import BLOCKED_OUTPUT, make_call, make_env, settings_for

from llm_telemetry.cli import main
from llm_telemetry.processors.base import BackgroundWorker
from llm_telemetry.processors.safety.review_queue import (
    AlreadyResolvedError,
    NewReviewItem,
    ReviewQueue,
    ReviewWriter,
    UnknownReviewItemError,
)

SCREEN_ITEM = NewReviewItem(
    trace_id="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b7169203331", model="gpt-4o-mini",
    source="screen", action="block", categories=("weapons",), pattern_ids=("weapons.instructions",),
)
JUDGE_ITEM = NewReviewItem(
    trace_id="1af7651916cd43dd8448eb211c80319c", span_id="c7ad6b7169203331", model="gpt-4o", source="judge",
    action="flag", categories=("violence",), score=0.8, explanation="describes a fight", prompt="p?", output="a fight",
)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "review.db"


def test_items_survive_a_restart(db: Path) -> None:
    queue = ReviewQueue(db)
    first = queue.add(SCREEN_ITEM)
    second = queue.add(JUDGE_ITEM)
    queue.close()
    assert db.exists()  # parent directories created

    reopened = ReviewQueue(db)
    items = reopened.list()
    assert [i.id for i in items] == [first, second]
    assert items[0].categories == ("weapons",) and items[0].pattern_ids == ("weapons.instructions",)
    assert items[0].prompt is None and items[0].output is None
    assert items[1].output == "a fight" and items[1].score == 0.8
    assert reopened.count() == 2
    reopened.resolve(first, "true positive, model fine-tune ticket filed")
    reopened.close()

    again = ReviewQueue(db)
    assert again.count("open") == 1 and again.count("resolved") == 1
    resolved = again.get(first)
    assert resolved.status == "resolved" and resolved.resolution == "true positive, model fine-tune ticket filed"
    assert resolved.resolved_at is not None
    again.close()


def test_wal_mode(db: Path) -> None:
    queue = ReviewQueue(db)
    queue.add(SCREEN_ITEM)
    queue.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reading_never_creates_the_file(db: Path) -> None:
    queue = ReviewQueue(db)
    assert queue.list("all") == [] and queue.count() == 0
    with pytest.raises(UnknownReviewItemError):
        queue.get(1)
    assert not db.exists()


def test_resolve_errors(db: Path) -> None:
    queue = ReviewQueue(db)
    item_id = queue.add(SCREEN_ITEM)
    with pytest.raises(UnknownReviewItemError, match="no review item with id 99"):
        queue.resolve(99, "x")
    with pytest.raises(ValueError, match="must say"):
        queue.resolve(item_id, "   ")
    queue.resolve(item_id, "false positive")
    with pytest.raises(AlreadyResolvedError, match="already resolved"):
        queue.resolve(item_id, "changed my mind")
    assert queue.get(item_id).resolution == "false positive"
    queue.close()


def test_cli_list_show_resolve(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    queue = ReviewQueue(db)
    first = queue.add(SCREEN_ITEM)
    second = queue.add(JUDGE_ITEM)
    queue.close()

    assert main(["review", "list", "--db", str(db)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["ID", "CREATED", "STATUS", "SOURCE", "ACTION", "CATEGORIES", "MODEL", "TRACE", "ID"]
    assert table[1].split()[0] == str(first) and "weapons" in table[1] and "block" in table[1]
    assert table[2].split()[0] == str(second) and "violence" in table[2]

    assert main(["review", "show", str(first), "--db", str(db)]) == 0
    shown = capsys.readouterr().out
    assert "weapons.instructions" in shown and "0af7651916cd43dd8448eb211c80319c" in shown
    assert "(not stored: content capture was off)" in shown

    assert main(["review", "resolve", str(first), "--resolution", "confirmed; blocked upstream", "--db", str(db)]) == 0
    assert f"resolved review item {first}" in capsys.readouterr().out

    assert main(["review", "list", "--db", str(db), "--json"]) == 0
    open_items = json.loads(capsys.readouterr().out)
    assert [i["id"] for i in open_items] == [second]
    assert open_items[0]["categories"] == ["violence"] and open_items[0]["output"] == "a fight"

    assert main(["review", "list", "--status", "resolved", "--db", str(db), "--json"]) == 0
    (resolved,) = json.loads(capsys.readouterr().out)
    assert resolved["id"] == first and resolved["resolution"] == "confirmed; blocked upstream"

    assert main(["review", "list", "--status", "all", "--db", str(db), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2

    assert main(["review", "show", str(second), "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["explanation"] == "describes a fight"


def test_cli_unknown_id_is_exit_code_2(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    queue = ReviewQueue(db)
    item_id = queue.add(SCREEN_ITEM)
    queue.close()
    assert main(["review", "show", "42", "--db", str(db)]) == 2
    assert "no review item with id 42" in capsys.readouterr().err
    assert main(["review", "resolve", "42", "--resolution", "x", "--db", str(db)]) == 2
    assert "no review item with id 42" in capsys.readouterr().err
    assert main(["review", "resolve", str(item_id), "--resolution", "done", "--db", str(db)]) == 0
    assert main(["review", "resolve", str(item_id), "--resolution", "again", "--db", str(db)]) == 2
    assert "already resolved" in capsys.readouterr().err


def test_cli_uses_the_configured_db_path(tmp_path: Path, settings_env, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "configured.db"
    settings_env({"LLM_TELEMETRY_REVIEW_DB_PATH": str(db)})
    assert main(["review", "list"]) == 0
    assert f"no open review items in {db}" in capsys.readouterr().out
    assert not db.exists()
    queue = ReviewQueue(db)
    queue.add(SCREEN_ITEM)
    queue.close()
    assert main(["review", "list", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1


def test_cli_not_a_database_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("this is not sqlite " * 100, encoding="utf-8")
    assert main(["review", "list", "--db", str(bogus)]) == 2
    assert str(bogus) in capsys.readouterr().err


def test_writer_batches_items_into_one_background_write(db: Path) -> None:
    worker = BackgroundWorker(10)
    release = threading.Event()
    worker.submit(lambda: release.wait(10))  # keep the worker busy while items arrive
    while len(worker):  # the blocker has been taken off the queue
        time.sleep(0.001)
    queue = ReviewQueue(db)
    writer = ReviewWriter(queue, worker.submit)
    for _ in range(3):
        writer.add(SCREEN_ITEM)
    assert len(worker) == 1  # one write scheduled for the three items
    release.set()
    assert worker.flush(10)
    assert queue.count() == 3 and writer.dropped == 0
    assert worker.completed == 3  # blocker, one write, the flush marker
    writer.add(JUDGE_ITEM)  # after a write, the next item schedules a new one
    assert worker.flush(10)
    assert queue.count() == 4
    queue.close()
    worker.shutdown()


def test_writer_counts_what_it_cannot_queue(db: Path) -> None:
    worker = BackgroundWorker(1)
    release = threading.Event()
    worker.submit(lambda: release.wait(10))
    while len(worker):  # the blocker has been taken off the queue
        time.sleep(0.001)
    worker.submit(lambda: None)  # the worker queue is now full
    queue = ReviewQueue(db)
    writer = ReviewWriter(queue, worker.submit, max_pending=2)
    writer.add(SCREEN_ITEM)  # cannot schedule its write: dropped
    assert writer.dropped == 1
    release.set()
    assert worker.flush(10)
    full = ReviewWriter(queue, lambda task: True, max_pending=2)  # a worker that never runs the write
    for _ in range(5):
        full.add(SCREEN_ITEM)
    assert full.dropped == 3
    assert queue.count() == 0
    queue.close()
    worker.shutdown()


def test_lost_review_items_reach_the_dropped_metric(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the queue's directory should be", encoding="utf-8")
    env = make_env(settings_for(tmp_path))  # review.db_path is under tmp_path/state: cannot be created
    try:
        env.run_call(make_call(BLOCKED_OUTPUT))
        env.flush()
        assert env.enricher.dropped_counts() == {"safety_review_item": 1}
        assert ({"llm_telemetry.dropped.reason": "safety_review_item"}, 1) in env.points("llm_telemetry.dropped")
    finally:
        env.close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_queue_files_are_owner_only_whatever_the_umask(db: Path) -> None:
    old_umask = os.umask(0)  # the most permissive umask: modes come from us, not from it
    try:
        queue = ReviewQueue(db)
        queue.add_many([SCREEN_ITEM, JUDGE_ITEM])
        wal, shm = db.with_name("review.db-wal"), db.with_name("review.db-shm")
        assert wal.exists() and shm.exists()  # WAL mode, connection open
        assert {p.name: oct(_mode(p)) for p in (db, wal, shm)} == {p.name: "0o600" for p in (db, wal, shm)}
        assert oct(_mode(db.parent)) == "0o700" and oct(_mode(db.parent.parent)) == "0o700"  # both created by us
        queue.close()
    finally:
        os.umask(old_umask)


def test_files_left_readable_by_an_older_version_are_tightened(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    db = shared / "review.db"
    old_umask = os.umask(0o022)
    try:
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        os.chmod(db, 0o644)
        shm = db.with_name("review.db-shm")
        assert shm.exists()
        os.chmod(shm, 0o644)
        queue = ReviewQueue(db)
        assert queue.count() == 0  # opening to read is enough
        assert oct(_mode(db)) == "0o600" and oct(_mode(shm)) == "0o600"
        assert oct(_mode(shared)) == "0o755"  # a directory that existed is not ours to change
        queue.close()
        conn.close()
    finally:
        os.umask(old_umask)


def test_a_lone_surrogate_costs_only_its_own_item_and_is_counted(db: Path) -> None:
    items = [SCREEN_ITEM] * 641
    items[10] = dataclasses.replace(JUDGE_ITEM, output="a fight \ud800 here")  # e.g. from a JSON "\ud800" escape
    items[500] = dataclasses.replace(SCREEN_ITEM, model="gpt-4o\udfff")
    queue = ReviewQueue(db)
    ids = queue.add_many(items)
    assert len(ids) == 641 and queue.count() == 641
    assert (queue.replaced, queue.failed) == (2, 0)
    assert queue.get(ids[10]).output == "a fight \ufffd here"
    assert queue.get(ids[500]).model == "gpt-4o\ufffd"
    queue.close()


def test_an_item_sqlite_rejects_is_counted_and_the_batch_is_kept(db: Path) -> None:
    queue = ReviewQueue(db)
    bad = dataclasses.replace(SCREEN_ITEM, score=2**70)  # too large for an SQLite integer: rejected at bind time
    worker = BackgroundWorker(10)
    writer = ReviewWriter(queue, worker.submit)
    for item in (SCREEN_ITEM, bad, JUDGE_ITEM):
        writer.add(item)
    assert worker.flush(10)
    assert queue.count() == 2 and queue.failed == 1 and writer.dropped == 1
    queue.close()
    worker.shutdown()
