"""``llm-telemetry review list|show|resolve``: work through the human safety review queue.

The queue file defaults to the ``review.db_path`` setting (``LLM_TELEMETRY_REVIEW_DB_PATH``); ``--db``
points at another one, e.g. a copy taken from a production host. Reading never creates the file.
An unknown id, an already-resolved item or an unreadable file is a clear message and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

from llm_telemetry.config import get_settings
from llm_telemetry.processors.safety.review_queue import AlreadyResolvedError, ReviewItem, ReviewQueue, UnknownReviewItemError

EXIT_ERROR = 2


def _queue(args: argparse.Namespace) -> ReviewQueue:
    return ReviewQueue(args.db if args.db is not None else get_settings().review.db_path)


def _fail(message: str) -> int:
    print(f"llm-telemetry review: {message}", file=sys.stderr)
    return EXIT_ERROR


def _list(args: argparse.Namespace) -> int:
    queue = _queue(args)
    try:
        items = queue.list(args.status)
    except sqlite3.Error as exc:
        return _fail(f"cannot read {queue.path}: {exc}")
    finally:
        queue.close()
    if args.json:
        print(json.dumps([item.to_dict() for item in items], indent=2))
        return 0
    if not items:
        print(f"no {'' if args.status == 'all' else args.status + ' '}review items in {queue.path}")
        return 0
    rows = [("ID", "CREATED", "STATUS", "SOURCE", "ACTION", "CATEGORIES", "MODEL", "TRACE ID")]
    rows += [
        (str(i.id), i.created_at, i.status, i.source, i.action, ",".join(i.categories), i.model or "-", i.trace_id or "-")
        for i in items
    ]
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _print_item(item: ReviewItem) -> None:
    for name, value in item.to_dict().items():
        if name in ("prompt", "output", "explanation"):
            continue
        shown = ", ".join(value) if isinstance(value, list) else value
        print(f"{name + ':':<13} {'-' if shown in (None, '') else shown}")
    for name in ("explanation", "prompt", "output"):
        value = getattr(item, name)
        print(f"--- {name} ---\n{value}" if value is not None else f"{name + ':':<13} (not stored: content capture was off)")


def _show(args: argparse.Namespace) -> int:
    queue = _queue(args)
    try:
        item = queue.get(args.id)
    except (UnknownReviewItemError, sqlite3.Error) as exc:
        return _fail(str(exc))
    finally:
        queue.close()
    if args.json:
        print(json.dumps(item.to_dict(), indent=2))
    else:
        _print_item(item)
    return 0


def _resolve(args: argparse.Namespace) -> int:
    queue = _queue(args)
    try:
        item = queue.resolve(args.id, args.resolution)
    except (UnknownReviewItemError, AlreadyResolvedError, ValueError, sqlite3.Error) as exc:
        return _fail(str(exc))
    finally:
        queue.close()
    print(f"resolved review item {item.id} at {item.resolved_at}: {item.resolution}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``review`` with its ``list``, ``show`` and ``resolve`` sub-commands."""
    parser = sub.add_parser("review", help="list, show and resolve items of the human safety review queue")
    commands = parser.add_subparsers(dest="review_command", required=True, metavar="{list,show,resolve}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", type=Path, default=None, help="queue file (default: the review.db_path setting)")

    list_parser = commands.add_parser("list", parents=[common], help="list review items, oldest first")
    list_parser.add_argument("--status", choices=("open", "resolved", "all"), default="open", help="which items (default: open)")
    list_parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    list_parser.set_defaults(func=_list)

    show_parser = commands.add_parser("show", parents=[common], help="show one review item")
    show_parser.add_argument("id", type=int, help="the item's id (from `review list`)")
    show_parser.add_argument("--json", action="store_true", help="print JSON")
    show_parser.set_defaults(func=_show)

    resolve_parser = commands.add_parser("resolve", parents=[common], help="mark an open item resolved")
    resolve_parser.add_argument("id", type=int, help="the item's id (from `review list`)")
    resolve_parser.add_argument("--resolution", required=True, help="what the reviewer decided, e.g. 'false positive'")
    resolve_parser.set_defaults(func=_resolve)
