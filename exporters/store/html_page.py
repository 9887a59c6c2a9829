"""``llm-telemetry report --html``: one self-contained page (inline CSS and SVG, no script, no network).

Plots: TTFT and TBT percentiles over time, cost over time by model and by feature, top users, safety
figures, quality metrics and alerts, with markers where alerts started. Everything is drawn as inline
SVG from the report dict, so the file opens anywhere, offline, and prints.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

_W, _H, _PAD = 760, 220, 40
_COLORS = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4b5563")


def _x(i: int, n: int) -> float:
    return _PAD + (_W - 2 * _PAD) * (i / max(1, n - 1))


def _line_chart(title: str, t: Sequence[str], series: Mapping[str, Sequence[float | None]], unit: str,
                markers: Sequence[tuple[str, str]] = ()) -> str:
    values = [v for s in series.values() for v in s if v is not None]
    top = max(values) * 1.1 if values else 1.0
    n = len(t)
    parts = [f'<svg viewBox="0 0 {_W} {_H}" role="img" aria-label="{html.escape(title)}">',
             f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" class="axis"/>',
             f'<text x="4" y="{_PAD - 8}" class="tick">{top:.3g} {html.escape(unit)}</text>',
             f'<text x="4" y="{_H - _PAD}" class="tick">0</text>']
    if n:
        parts.append(f'<text x="{_PAD}" y="{_H - 12}" class="tick">{html.escape(_short(t[0]))}</text>')
        parts.append(f'<text x="{_W - _PAD}" y="{_H - 12}" class="tick" text-anchor="end">{html.escape(_short(t[-1]))}</text>')
    for (name, points), color in zip(series.items(), _COLORS * 4, strict=False):
        coords = [(_x(i, n), _H - _PAD - (_H - 2 * _PAD) * (v / top)) for i, v in enumerate(points) if v is not None]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2">'
                         f'<title>{html.escape(name)}</title></polyline>')
        for x, y in coords:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>')
    for label, when in markers:
        position = _position(t, when)
        if position is not None:
            x = _x(position, n)
            parts.append(f'<line x1="{x:.1f}" y1="{_PAD}" x2="{x:.1f}" y2="{_H - _PAD}" class="alert"/>'
                         f'<text x="{x + 3:.1f}" y="{_PAD + 10}" class="alertlabel">{html.escape(label)}</text>')
    parts.append("</svg>")
    legend = " ".join(f'<span style="color:{c}">&#9632; {html.escape(name)}</span>' for name, c in zip(series, _COLORS * 4, strict=False))
    return f"<figure><figcaption>{html.escape(title)}</figcaption>{''.join(parts)}<div class='legend'>{legend}</div></figure>"


def _position(t: Sequence[str], when: str | None) -> float | None:
    if not when or not t:
        return None
    try:
        target = datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp()
        stamps = [datetime.fromisoformat(x.replace("Z", "+00:00")).timestamp() for x in t]
    except ValueError:
        return None
    if target < stamps[0]:
        return None
    step = (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1) or 1.0
    return min(len(stamps) - 1, (target - stamps[0]) / step)


def _short(iso: str) -> str:
    return iso.replace("T", " ").replace("Z", "")[5:16]


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body or '<tr><td colspan=99>(none)</td></tr>'}</tbody></table>"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".")
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def render_html(report: Mapping[str, Any]) -> str:
    w, series, cost, alerts = report["window"], report["series"], report["cost"], report["alerts"]
    markers = [(al["name"], al["started_at"] or al["at"]) for al in alerts["events"] if al["state"] == "firing"]
    features = report["latency"]["by_feature"]
    sections = [
        f"<h1>llm-telemetry report</h1><p class='meta'>{html.escape(str(w['since']))} → {html.escape(str(w['until']))} · "
        f"feature {html.escape(str(w['feature'] or 'all'))} · {w['calls']} calls · store {html.escape(str(w['store']))}</p>",
        "<h2>Alerts</h2>" + _table(["alert", "where", "started", "summary"],
                                   [[al["name"], ", ".join(f"{k}={v}" for k, v in al["key"].items()), al["started_at"], al["summary"]]
                                    for al in alerts["active"]]),
        "<h2>Latency</h2>",
        _line_chart("Time to first token", series["t"], {"p50": series["ttft_p50"], "p95": series["ttft_p95"]}, "s", markers),
        _line_chart("Time between tokens", series["t"], {"p95": series["tbt_p95"], "p99": series["tbt_p99"]}, "s", markers),
        _table(["feature", "calls", "ttft p95", "ttft p99", "tbt p99", "errors", "over threshold"],
               [[f["feature"], f["calls"], f["ttft_p95_s"], f["ttft_p99_s"], f["tbt_p99_s"], f"{f['error_rate']:.1%}",
                 ", ".join(f"{b['metric']} {b['value']} > {b['threshold']}" for b in f["breaches"]) or "ok"] for f in features]),
        f"<h2>Cost</h2><p>Window total {cost['total_usd']:.6f} USD · today {cost['today_usd']:.6f} USD"
        + (f" of {cost['daily_budget_usd']} ({cost['daily_budget_used_pct']} %)" if cost["daily_budget_usd"] else "") + "</p>",
        _line_chart("Cost by model", series["t"], series["cost_by_model"], "USD", markers),
        _line_chart("Cost by feature", series["t"], series["cost_by_feature"], "USD", markers),
        "<h3>Top users, last hour</h3>" + _table(
            ["user", "usd", "calls"], [[u["user"], u["usd"], u["calls"]] for u in cost["top_users_last_hour"]]),
        "<h3>Most expensive requests, last hour</h3>" + _table(
            ["usd", "model", "user", "feature", "trace"],
            [[r["usd"], r["model"], r["user"], r["feature"], r["trace_id"]] for r in cost["top_requests_last_hour"]]),
        "<h3>Repeated identical prompts</h3>" + _table(
            ["source", "feature", "repeats", "usd", "trace"],
            [[r["source"], r["feature"], r["repeats"], r["usd"], r["example_trace_id"]] for r in report["loops"]]),
        "<h2>Safety</h2>" + _table(
            ["screened", "block rate", "flag rate", "judge flag rate", "review queue open"],
            [[report["safety"][k] for k in ("screened", "block_rate", "flag_rate", "judge_flag_rate", "review_queue_open")]]),
        "<h2>Quality and business</h2>" + _table(
            ["metric", "attributes", "value"],
            [[q["metric"], ", ".join(f"{k}={v}" for k, v in q["attributes"].items()), q["value"]] for q in report["quality"]]),
        "<h3>Alert history</h3>" + _table(["at", "alert", "state", "started", "summary", "examples"],
                                          [[al["at"], al["name"], al["state"], al["started_at"], al["summary"], al["examples"][:3]]
                                           for al in alerts["events"]]),
    ]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>llm-telemetry report</title>
<style>
body{{font:14px system-ui,sans-serif;margin:24px auto;max-width:840px;color:#111}}
h1{{font-size:22px}} h2{{margin-top:28px;border-bottom:1px solid #ddd}} .meta{{color:#555}}
table{{border-collapse:collapse;width:100%;margin:8px 0}} th,td{{border:1px solid #ddd;padding:3px 6px;text-align:left;font-size:12px}}
th{{background:#f3f4f6}} figure{{margin:12px 0}} figcaption{{font-weight:600}} svg{{width:100%;height:auto;background:#fafafa}}
.axis{{stroke:#999}} .tick{{font-size:10px;fill:#555}} .alert{{stroke:#dc2626;stroke-dasharray:4 3}}
.alertlabel{{font-size:10px;fill:#dc2626}} .legend{{font-size:12px}}
</style></head><body>
{''.join(sections)}
</body></html>
"""
