"""The figures of ``llm-telemetry report``, computed from the embedded store.

The source's reports, one function each, all returning plain data (the terminal table, ``--json`` and
the HTML page render the same dict): latency per model and per feature against per-endpoint
thresholds; cost by model and feature, the top users and the most expensive requests of the last hour
(the cost-spike investigation); repeated identical prompts from one source (loop detection); budget
used; safety rates and the review queue; quality and business metrics; alerts with when they started.

Latency and cost figures come from the stored spans, i.e. what the sampler kept; the header says how
many calls that is. TBT percentiles are percentiles of the per-stream p95/p99 values.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from llm_telemetry import attributes as a
from llm_telemetry.config import Settings
from llm_telemetry.exporters.store.db import TelemetryStore
from llm_telemetry.progress import Progress

HOUR_NS = 3600 * 10**9
LOOP_MIN_REPEATS = 3
QUALITY_METRIC_PREFIXES = ("llm_telemetry.quality.", "llm_telemetry.feedback.", "llm_telemetry.session.", "llm_telemetry.drift.")


@dataclass(frozen=True)
class Window:
    since_ns: int
    until_ns: int
    feature: str | None = None

    def where(self, table: str = "spans", column: str = "end_ns") -> tuple[str, list[Any]]:
        sql = f"{table}.{column} >= ? AND {table}.{column} < ?"
        params: list[Any] = [self.since_ns, self.until_ns]
        if self.feature is not None and table == "spans":
            sql += " AND spans.feature = ?"
            params.append(self.feature)
        return sql, params


def build_report(
    store: TelemetryStore, window: Window, settings: Settings, *, review_open: int | None = None, progress: Progress | None = None,
) -> dict[str, Any]:
    """Everything the report shows, as JSON-ready data (``progress`` advances once per section: large stores)."""
    step = progress.advance if progress is not None else (lambda: None)
    where, params = window.where()
    rows = store.query(
        f"SELECT feature, request_model, response_model, status, ttft_s, tbt_p95_s, tbt_p99_s, tokens_per_s, duration_s,"
        f" cost_usd, end_ns FROM spans WHERE {where}", params,
    )
    step()
    report: dict[str, Any] = {
        "window": {"since": _iso(window.since_ns), "until": _iso(window.until_ns), "feature": window.feature,
                   "calls": len(rows), "store": str(store.path)},
    }
    sections = (
        ("latency", lambda: {"by_model": _latency(rows, "model", settings), "by_feature": _latency(rows, "feature", settings)}),
        ("cost", lambda: _cost(store, window, rows, settings)),
        ("loops", lambda: _loops(store, window)),
        ("safety", lambda: _safety(store, window, review_open)),
        ("quality", lambda: _quality_metrics(store, window)),
        ("alerts", lambda: _alerts(store, window)),
        ("series", lambda: _series(rows, window)),
    )
    for name, compute in sections:
        report[name] = compute()
        step()
    return report


REPORT_STEPS = 8
"""Progress steps of `build_report`: the span read, then one per section."""


def _group_key(row: sqlite3.Row, by: str) -> str:
    if by == "model":
        return row["response_model"] or row["request_model"] or "(unknown)"
    return row["feature"] or "(none)"


def _pct(values: Sequence[float], q: float) -> float | None:
    clean = [v for v in values if v is not None]
    return round(float(np.percentile(clean, q)), 4) if clean else None


def _threshold(thresholds: Mapping[str, float], feature: str, metric: str) -> float | None:
    return thresholds.get(f"{feature}.{metric}", thresholds.get(f"*.{metric}"))


def _latency(rows: Sequence[sqlite3.Row], by: str, settings: Settings) -> list[dict[str, Any]]:
    groups: dict[str, list[sqlite3.Row]] = {}
    for row in rows:
        groups.setdefault(_group_key(row, by), []).append(row)
    out = []
    for name, members in sorted(groups.items()):
        ttft = [r["ttft_s"] for r in members]
        errors = sum(1 for r in members if r["status"] == "error")
        entry: dict[str, Any] = {
            by: name, "calls": len(members),
            "ttft_p50_s": _pct(ttft, 50), "ttft_p95_s": _pct(ttft, 95), "ttft_p99_s": _pct(ttft, 99),
            "tbt_p95_s": _pct([r["tbt_p95_s"] for r in members], 95), "tbt_p99_s": _pct([r["tbt_p99_s"] for r in members], 99),
            "duration_p95_s": _pct([r["duration_s"] for r in members], 95),
            "tokens_per_s_p50": _pct([r["tokens_per_s"] for r in members], 50),
            "error_rate": round(errors / len(members), 4),
        }
        if by == "feature":
            breaches = []
            for metric, field in (("ttft_p95", "ttft_p95_s"), ("ttft_p99", "ttft_p99_s"), ("tbt_p95", "tbt_p95_s"),
                                  ("tbt_p99", "tbt_p99_s"), ("duration_p95", "duration_p95_s"), ("error_rate", "error_rate")):
                limit = _threshold(settings.report.thresholds, name, metric)
                if limit is not None and entry[field] is not None and entry[field] > limit:
                    breaches.append({"metric": metric, "value": entry[field], "threshold": limit})
            entry["breaches"] = breaches
        out.append(entry)
    return out


def _cost(store: TelemetryStore, window: Window, rows: Sequence[sqlite3.Row], settings: Settings) -> dict[str, Any]:
    by_model: dict[str, float] = {}
    by_feature: dict[str, float] = {}
    total = 0.0
    for row in rows:
        cost = row["cost_usd"] or 0.0
        total += cost
        by_model[_group_key(row, "model")] = by_model.get(_group_key(row, "model"), 0.0) + cost
        by_feature[_group_key(row, "feature")] = by_feature.get(_group_key(row, "feature"), 0.0) + cost
    last_hour = Window(max(window.since_ns, window.until_ns - HOUR_NS), window.until_ns, window.feature)
    where, params = last_hour.where()
    top_users = store.query(
        f"SELECT user_id, SUM(cost_usd) AS usd, COUNT(*) AS calls, SUM(input_tokens) AS tin, SUM(output_tokens) AS tout "
        f"FROM spans WHERE {where} AND user_id IS NOT NULL GROUP BY user_id ORDER BY usd DESC LIMIT 10", params,
    )
    top_requests = store.query(
        f"SELECT trace_id, user_id, feature, COALESCE(response_model, request_model) AS model, cost_usd, input_tokens, "
        f"output_tokens, end_ns FROM spans WHERE {where} AND cost_usd IS NOT NULL ORDER BY cost_usd DESC LIMIT 10", params,
    )
    budget = settings.budget.daily_usd
    today_start = _day_start_ns(window.until_ns)
    today = store.query("SELECT COALESCE(SUM(cost_usd), 0) AS usd FROM spans WHERE end_ns >= ? AND end_ns < ?",
                        (today_start, window.until_ns))[0]["usd"]
    return {
        "total_usd": round(total, 6),
        "by_model": {k: round(v, 6) for k, v in sorted(by_model.items(), key=lambda kv: -kv[1])},
        "by_feature": {k: round(v, 6) for k, v in sorted(by_feature.items(), key=lambda kv: -kv[1])},
        "top_users_last_hour": [
            {"user": r["user_id"], "usd": round(r["usd"] or 0.0, 6), "calls": r["calls"], "input_tokens": r["tin"],
             "output_tokens": r["tout"]} for r in top_users
        ],
        "top_requests_last_hour": [
            {"trace_id": r["trace_id"], "user": r["user_id"], "feature": r["feature"], "model": r["model"],
             "usd": round(r["cost_usd"], 6), "input_tokens": r["input_tokens"], "output_tokens": r["output_tokens"],
             "at": _iso(r["end_ns"])} for r in top_requests
        ],
        "today_usd": round(today, 6),
        "daily_budget_usd": budget,
        "daily_budget_used_pct": round(today / budget * 100, 1) if budget else None,
    }


def _loops(store: TelemetryStore, window: Window) -> list[dict[str, Any]]:
    """Identical prompts sent again and again from one source (a user, else a session): the looping-bug pattern."""
    where, params = window.where()
    rows = store.query(
        f"SELECT COALESCE(user_id, session_id, '(anonymous)') AS source, feature, prompt_fingerprint, COUNT(*) AS n, "
        f"SUM(cost_usd) AS usd, MIN(end_ns) AS first_ns, MAX(end_ns) AS last_ns, MIN(trace_id) AS example FROM spans "
        f"WHERE {where} AND prompt_fingerprint IS NOT NULL GROUP BY source, feature, prompt_fingerprint "
        f"HAVING n >= ? ORDER BY n DESC LIMIT 20", [*params, LOOP_MIN_REPEATS],
    )
    return [
        {"source": r["source"], "feature": r["feature"], "prompt_fingerprint": r["prompt_fingerprint"], "repeats": r["n"],
         "usd": round(r["usd"] or 0.0, 6), "first": _iso(r["first_ns"]), "last": _iso(r["last_ns"]), "example_trace_id": r["example"]}
        for r in rows
    ]


def _safety(store: TelemetryStore, window: Window, review_open: int | None) -> dict[str, Any]:
    where, params = window.where()
    row = store.query(
        f"SELECT COUNT(*) AS screened, SUM(safety_action = 'block') AS blocked, SUM(safety_action = 'flag') AS flagged, "
        f"SUM(judge_flagged) AS judged_flagged FROM spans WHERE {where} AND safety_action IS NOT NULL", params,
    )[0]
    screened = row["screened"] or 0
    return {
        "screened": screened,
        "block_rate": round((row["blocked"] or 0) / screened, 4) if screened else None,
        "flag_rate": round((row["flagged"] or 0) / screened, 4) if screened else None,
        "judge_flag_rate": round((row["judged_flagged"] or 0) / screened, 4) if screened else None,
        "review_queue_open": review_open,
    }


def _quality_metrics(store: TelemetryStore, window: Window) -> list[dict[str, Any]]:
    """The latest value of each quality/business metric series in the window."""
    where, params = window.where("metric_points", "ts_ns")
    like = " OR ".join("name LIKE ?" for _ in QUALITY_METRIC_PREFIXES)
    rows = store.query(
        f"SELECT name, attributes, value, count, MAX(ts_ns) AS ts FROM metric_points WHERE {where} AND ({like}) "
        f"GROUP BY name, attributes ORDER BY name", [*params, *(p + "%" for p in QUALITY_METRIC_PREFIXES)],
    )
    return [{"metric": r["name"], "attributes": json.loads(r["attributes"]), "value": r["value"], "count": r["count"]} for r in rows]


def _alerts(store: TelemetryStore, window: Window) -> dict[str, list[dict[str, Any]]]:
    rows = store.query("SELECT ts_ns, name, state, summary, started_at, trace_id, attributes FROM alerts WHERE ts_ns < ? "
                       "ORDER BY ts_ns", (window.until_ns,))
    latest: dict[tuple[str, str], sqlite3.Row] = {}
    in_window: list[dict[str, Any]] = []
    for row in rows:
        attrs = json.loads(row["attributes"])
        key = json.dumps({k: v for k, v in attrs.items() if k.startswith(a.ALERT_KEY_PREFIX)}, sort_keys=True)
        latest[(row["name"], key)] = row
        if row["ts_ns"] >= window.since_ns:
            in_window.append(_alert(row, attrs))
    active = [_alert(row, json.loads(row["attributes"])) for row in latest.values() if row["state"] == "firing"]
    where, params = window.where("events", "ts_ns")
    budget = store.query(f"SELECT ts_ns, attributes FROM events WHERE {where} AND name = ? ORDER BY ts_ns",
                         [*params, a.EVENT_BUDGET_CROSSED])
    crossings = [{"at": _iso(r["ts_ns"]), **json.loads(r["attributes"])} for r in budget]
    return {"active": active, "events": in_window, "budget_crossings": crossings}


def _alert(row: sqlite3.Row, attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"], "state": row["state"], "summary": row["summary"], "started_at": row["started_at"],
        "at": _iso(row["ts_ns"]), "trace_id": row["trace_id"],
        "key": {k[len(a.ALERT_KEY_PREFIX):]: v for k, v in attrs.items() if k.startswith(a.ALERT_KEY_PREFIX)},
        "examples": list(attrs.get(a.ALERT_EXAMPLE_TRACE_IDS) or ()),
    }


def _series(rows: Sequence[sqlite3.Row], window: Window, buckets: int = 24) -> dict[str, Any]:
    """Per-bucket TTFT/TBT percentiles and cost by model and feature: what the HTML page plots.

    The time axis spans the data (the first to the last call in the window), so a short run is not a
    single point at the right edge of a 24 h axis.
    """
    ends = [row["end_ns"] for row in rows]
    start = min(ends) if ends else window.since_ns
    stop = max(ends) + 1 if ends else window.until_ns
    span_ns = max(1, stop - start)
    edges = [start + span_ns * i // buckets for i in range(buckets + 1)]
    idx: list[list[sqlite3.Row]] = [[] for _ in range(buckets)]
    for row in rows:
        position = min(buckets - 1, max(0, (row["end_ns"] - start) * buckets // span_ns))
        idx[position].append(row)
    return {
        "t": [_iso(edge) for edge in edges[:-1]],
        "ttft_p50": [_pct([r["ttft_s"] for r in b], 50) for b in idx],
        "ttft_p95": [_pct([r["ttft_s"] for r in b], 95) for b in idx],
        "tbt_p95": [_pct([r["tbt_p95_s"] for r in b], 95) for b in idx],
        "tbt_p99": [_pct([r["tbt_p99_s"] for r in b], 99) for b in idx],
        "cost_by_model": _stack(idx, lambda r: _group_key(r, "model")),
        "cost_by_feature": _stack(idx, lambda r: _group_key(r, "feature")),
    }


def _stack(buckets: list[list[sqlite3.Row]], key: Any) -> dict[str, list[float]]:
    names = sorted({key(r) for b in buckets for r in b})
    return {name: [round(sum((r["cost_usd"] or 0.0) for r in b if key(r) == name), 6) for b in buckets] for name in names}


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _day_start_ns(ns: int) -> int:
    day = datetime.fromtimestamp(ns / 1e9, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(day.timestamp() * 1e9)


def parse_time(text: str, now_ns: int | None = None) -> int:
    """``2026-11-30T12:00``, ``2026-11-30``, ``now``, ``today``, or a relative ``30m`` / ``6h`` / ``2d`` ago."""
    now = time.time_ns() if now_ns is None else now_ns
    value = text.strip().lower()
    if value == "now":
        return now
    if value == "today":
        return _day_start_ns(now)
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].replace(".", "", 1).isdigit():
        return now - int(float(value[:-1]) * units[value[-1]] * 1e9)
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time (ISO 8601, 'now', 'today', or e.g. 30m, 6h, 2d)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1e9)
