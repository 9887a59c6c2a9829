"""alert-rules.yml in a real Prometheus server, scraping the real Collector, fed by a real app.

app (tests/apps/alerting_app.py under opentelemetry-instrument) -> Collector (otelcol.yaml) -> its
``prometheus`` exporter <- Prometheus (Debian's server) evaluating alert-rules.yml. The error-rate,
hard-block and budget alerts must go pending, and every rule must evaluate without error.

What differs from production, and why:
  * scrape and evaluation every 1 s instead of 15 s / 1 m (a rendered copy of prometheus.yml), so the run
    takes seconds. The rules' ``for:`` durations stay as written: an alert is *pending* from the first
    evaluation its condition holds, which is what this test waits for; *firing* would only add minutes.
  * the budget thresholds: the app sets LLM_TELEMETRY_BUDGET_DAILY_USD / _USER_HOURLY_USD to amounts a few
    fake calls exceed, and the rendered rules carry the same numbers, as the README tells users to keep them.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from _export_helpers import APPS, run_instrumented
from _otelcol_helpers import (
    CONFIG_DIR,
    REAL_BINARY_TIMEOUT,
    Service,
    free_port,
    otelcol,
    otelcol_overlay,
    wait_until,
    write_yaml,
)
from _otlp_receiver import OtlpGrpcReceiver

pytestmark = REAL_BINARY_TIMEOUT

DAILY_BUDGET_USD = 0.001
USER_HOURLY_BUDGET_USD = 0.0005
EXPECTED_PENDING = {"LLMErrorRateHigh", "LLMSafetyHardBlockRateHigh", "LLMDailyBudgetExceeded", "LLMUserHourlySpendHigh"}


def render_rules(path: Path) -> Path:
    rules = yaml.safe_load((CONFIG_DIR / "alert-rules.yml").read_text(encoding="utf-8"))
    thresholds = {"llm_telemetry:daily_budget_usd": DAILY_BUDGET_USD, "llm_telemetry:user_hourly_budget_usd": USER_HOURLY_BUDGET_USD}
    found = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("record") in thresholds:
                rule["expr"] = f"vector({thresholds[rule['record']]})"
                found.add(rule["record"])
    assert found == set(thresholds), f"budget threshold rules not found in alert-rules.yml: {set(thresholds) - found}"
    return write_yaml(path, rules)


def render_prometheus(path: Path, rules: Path, target_port: int, own_port: int) -> Path:
    config = yaml.safe_load((CONFIG_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rules)]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    jobs["otel-collector"]["static_configs"] = [{"targets": [f"127.0.0.1:{target_port}"]}]
    jobs["prometheus"]["static_configs"] = [{"targets": [f"127.0.0.1:{own_port}"]}]
    return write_yaml(path, config)


def prometheus(binary: str, tmp_path: Path, config: Path, port: int) -> Service:
    return Service("prometheus", [
        binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
    ], tmp_path, ports=[port])


def api(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def test_alerts_go_pending_on_real_traffic(otelcol_bin: str, prometheus_bin: str, fake_provider: Any, tmp_path: Path) -> None:
    grpc, http, exporter, prom = free_port(), free_port(), free_port(), free_port()
    rules = render_rules(tmp_path / "alert-rules.yml")
    config = render_prometheus(tmp_path / "prometheus.yml", rules, exporter, prom)
    env = {
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "",
        "OTEL_SERVICE_NAME": "invoice-api",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "FAKE_PROVIDER_URL": fake_provider.base_url,
        "LLM_TELEMETRY_REVIEW_DB_PATH": str(tmp_path / "review.db"),
        "LLM_TELEMETRY_BUDGET_DAILY_USD": str(DAILY_BUDGET_USD),
        "LLM_TELEMETRY_BUDGET_USER_HOURLY_USD": str(USER_HOURLY_BUDGET_USD),
        "ROUNDS": "4",
        "ROUND_PAUSE_S": "2.5",
    }
    with OtlpGrpcReceiver() as rx, otelcol(
        otelcol_bin, tmp_path, CONFIG_DIR / "otelcol.yaml", otelcol_overlay(grpc, http, exporter),
        env={"TRACES_BACKEND_ENDPOINT": f"127.0.0.1:{rx.port}"}, ports=[grpc, http, exporter],
    ), prometheus(prometheus_bin, tmp_path, config, prom) as server:
        run = run_instrumented(f"http://127.0.0.1:{grpc}", script=APPS / "alerting_app.py", env=env, timeout=180)
        assert run.returncode == 0, run.stderr
        assert "alerting_app: done" in run.stdout

        def pending() -> dict[str, str] | None:
            alerts = {alert["labels"]["alertname"]: alert["state"] for alert in api(prom, "/api/v1/alerts")["alerts"]}
            return alerts if set(alerts) >= EXPECTED_PENDING else None

        try:
            alerts = wait_until(pending, timeout=60, interval=1.0, what=f"alerts {sorted(EXPECTED_PENDING)}")
        except AssertionError as error:
            raise AssertionError(f"{error}\nprometheus log:\n{server.log()[-3000:]}") from None
        groups = api(prom, "/api/v1/rules")["groups"]

    assert all(alerts[name] in ("pending", "firing") for name in EXPECTED_PENDING), alerts
    # Quiet on this traffic: the app's calls are fast and priced.
    assert not {"LLMTimeToFirstChunkHigh", "LLMUnknownModelPricing"} & set(alerts), alerts
    rules_seen = [rule for group in groups for rule in group["rules"]]
    committed = yaml.safe_load((CONFIG_DIR / "alert-rules.yml").read_text(encoding="utf-8"))
    assert len(rules_seen) == sum(len(group["rules"]) for group in committed["groups"])
    unhealthy = [(rule["name"], rule["health"], rule.get("lastError")) for rule in rules_seen if rule["health"] != "ok"]
    assert not unhealthy, unhealthy
