"""``llm-telemetry report``: the source's reports in the terminal, as JSON, or as one self-contained HTML page."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llm_telemetry.config import ConfigError, get_settings
from llm_telemetry.exporters.store.db import TelemetryStore
from llm_telemetry.exporters.store.report import REPORT_STEPS, Window, build_report, parse_time
from llm_telemetry.progress import Progress


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    out = [title, "  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells] or ["  (none)"]
    return [*out, ""]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".") if abs(value) < 1 else f"{value:.3f}"
    return str(value)


def _breaches(row: dict[str, Any], by: str) -> str:
    if by != "feature":
        return ""
    return ", ".join(f"{b['metric']} {b['value']} > {b['threshold']}" for b in row["breaches"]) or "ok"


def render_text(report: dict[str, Any]) -> str:
    w = report["window"]
    lines = [f"llm-telemetry report  {w['since']} → {w['until']}  feature={w['feature'] or 'all'}  "
             f"calls={w['calls']}  store={w['store']}", ""]
    for by in ("model", "feature"):
        rows = report["latency"][f"by_{by}"]
        lines += _table(
            f"Latency by {by}", [by, "calls", "ttft p50", "p95", "p99", "tbt p95", "tbt p99", "tok/s", "errors", "over threshold"],
            [[r[by], r["calls"], r["ttft_p50_s"], r["ttft_p95_s"], r["ttft_p99_s"], r["tbt_p95_s"], r["tbt_p99_s"],
              r["tokens_per_s_p50"], f"{r['error_rate']:.1%}",
              _breaches(r, by)] for r in rows],
        )
    cost = report["cost"]
    budget = (f"  today {cost['today_usd']:.6f} USD of {cost['daily_budget_usd']} ({cost['daily_budget_used_pct']} %)"
              if cost["daily_budget_usd"] else f"  today {cost['today_usd']:.6f} USD (no daily budget set)")
    lines += [f"Cost  total {cost['total_usd']:.6f} USD in the window", budget, ""]
    lines += _table("Cost by model (USD)", ["model", "usd"], list(cost["by_model"].items()))
    lines += _table("Cost by feature (USD)", ["feature", "usd"], list(cost["by_feature"].items()))
    lines += _table("Top users, last hour", ["user", "usd", "calls", "in tok", "out tok"],
                    [[u["user"], u["usd"], u["calls"], u["input_tokens"], u["output_tokens"]] for u in cost["top_users_last_hour"]])
    lines += _table("Most expensive requests, last hour", ["usd", "model", "user", "feature", "in tok", "out tok", "trace"],
                    [[r["usd"], r["model"], r["user"], r["feature"], r["input_tokens"], r["output_tokens"], r["trace_id"]]
                     for r in cost["top_requests_last_hour"]])
    lines += _table("Repeated identical prompts (loop detection)", ["source", "feature", "repeats", "usd", "first", "last", "trace"],
                    [[r["source"], r["feature"], r["repeats"], r["usd"], r["first"], r["last"], r["example_trace_id"]]
                     for r in report["loops"]])
    s = report["safety"]
    lines += [f"Safety  screened {s['screened']}  block rate {_cell(s['block_rate'])}  flag rate {_cell(s['flag_rate'])}  "
              f"judge flag rate {_cell(s['judge_flag_rate'])}  review queue open {_cell(s['review_queue_open'])}", ""]
    lines += _table("Quality and business metrics (latest)", ["metric", "attributes", "value"],
                    [[q["metric"], ", ".join(f"{k}={v}" for k, v in q["attributes"].items()), q["value"]] for q in report["quality"]])
    alerts = report["alerts"]
    lines += _table("Active alerts", ["alert", "where", "started", "summary"],
                    [[al["name"], ", ".join(f"{k}={v}" for k, v in al["key"].items()), al["started_at"], al["summary"]]
                     for al in alerts["active"]])
    lines += _table("Budget crossings", ["at", "scope", "level", "spent", "limit"],
                    [[c["at"], c.get("llm_telemetry.budget.scope"), c.get("llm_telemetry.budget.level"),
                      c.get("llm_telemetry.budget.spent_usd"), c.get("llm_telemetry.budget.limit_usd")]
                     for c in alerts["budget_crossings"]])
    return "\n".join(lines)


def _open_review_items() -> int | None:
    try:
        from llm_telemetry.processors.safety.review_queue import ReviewQueue

        path = get_settings(lenient=True).review.db_path
        if not Path(path).exists():
            return None
        return ReviewQueue(path).count("open")
    except Exception:
        return None


def _main(args: argparse.Namespace) -> int:
    settings = get_settings()
    path = Path(args.store) if args.store else settings.store.path
    if not path.exists():
        print(f"llm-telemetry report: no store at {path} (run `llm-telemetry demo`, or export with "
              "OTEL_TRACES_EXPORTER=llm_telemetry_store; set LLM_TELEMETRY_STORE_PATH or --store)", file=sys.stderr)
        return 1
    now = time.time_ns()
    try:
        until = parse_time(args.until, now)
        since = parse_time(args.since, now)
    except ValueError as exc:
        raise ConfigError(f"--since/--until: {exc}") from None
    store = TelemetryStore(path, settings.store.retention_days)
    progress = Progress(REPORT_STEPS, unit="report sections")
    report = build_report(store, Window(since, until, args.feature), settings, review_open=_open_review_items(), progress=progress)
    progress.close()
    if args.html:
        from llm_telemetry.exporters.store.html_page import render_html

        Path(args.html).write_text(render_html(report), encoding="utf-8")
        print(f"llm-telemetry report: wrote {args.html}", file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    elif not args.html:
        print(render_text(report))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("report", help="latency, cost, loops, safety, quality and alerts from the embedded store")
    parser.add_argument("--since", default="24h", help="start: ISO time, 'today', or relative (30m, 6h, 2d); default 24h")
    parser.add_argument("--until", default="now", help="end: ISO time, 'now' (default) or relative")
    parser.add_argument("--feature", help="only this feature (llm_telemetry.feature)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--html", metavar="PATH", help="write one self-contained HTML page with plots")
    parser.add_argument("--store", metavar="PATH", help="store file (default: LLM_TELEMETRY_STORE_PATH)")
    parser.set_defaults(func=_main)
