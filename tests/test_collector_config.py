"""Checks for collector-config/: the backend files a team deploys next to llm-telemetry.

Here the collector config is checked structurally; tests/test_otelcol_real.py runs it in the real
Collector built from builder-config.yaml. Prometheus files go through the real ``promtool`` (Debian
package ``prometheus``). Every metric and label name in the rules, their
unit tests and the Grafana dashboard is re-derived from ``llm_telemetry.attributes`` with the collector's
OTel -> Prometheus name translation, so renaming a metric or attribute there breaks this test instead of
silently emptying a dashboard.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from llm_telemetry import attributes
from llm_telemetry.cli import build_parser
from llm_telemetry.config import CONFIG_FILE_ENV, describe
from llm_telemetry.processors.quality import decisions, feedback, output_stats, sessions
from llm_telemetry.processors.quality.alerts import AlertState

CONFIG_DIR = Path(__file__).resolve().parents[1] / "collector-config"
RULES = CONFIG_DIR / "alert-rules.yml"
RULE_TESTS = CONFIG_DIR / "alert-rules.test.yml"
PROMETHEUS = CONFIG_DIR / "prometheus.yml"
OTELCOL = CONFIG_DIR / "otelcol.yaml"
DASHBOARD = CONFIG_DIR / "grafana" / "dashboard.json"
PROVISIONING = CONFIG_DIR / "grafana" / "provisioning"
COMPOSE = CONFIG_DIR / "docker-compose.yaml"
ALLOW_NO_PROMTOOL_ENV = "LLM_TELEMETRY_ALLOW_NO_PROMTOOL"

# Instrument kind and unit each METRIC_* is created with (also listed at the top of alert-rules.yml).
# The unit decides the Prometheus suffix: "s" -> _seconds, "USD" -> _USD, "{...}" and "1" -> nothing.
METRIC_SHAPES: dict[str, tuple[str, str]] = {
    "METRIC_TOKEN_USAGE": ("histogram", "{token}"),
    "METRIC_OPERATION_DURATION": ("histogram", "s"),
    "METRIC_TIME_TO_FIRST_CHUNK": ("histogram", "s"),
    "METRIC_TIME_PER_OUTPUT_CHUNK": ("histogram", "s"),
    "METRIC_COST": ("counter", "USD"),
    "METRIC_TOKENS": ("counter", "{token}"),
    "METRIC_UNKNOWN_MODEL": ("counter", "{call}"),
    "METRIC_BUDGET_CROSSINGS": ("counter", "{crossing}"),
    "METRIC_SAFETY_CHECKS": ("counter", "{output}"),
    "METRIC_SAFETY_FLAGS": ("counter", "{output}"),
    "METRIC_JUDGE_VERDICTS": ("counter", "{verdict}"),
    "METRIC_REVIEW_QUEUE_SIZE": ("gauge", "{item}"),
    "METRIC_DROPPED": ("counter", "{item}"),
    "METRIC_STREAM_STALLS": ("counter", "{stall}"),
    "METRIC_QUALITY_ALERTS": ("counter", "{alert}"),
    "METRIC_QUALITY_ALERTS_ACTIVE": ("gauge", "{alert}"),
    "METRIC_DRIFT_SCORE": ("gauge", "1"),
    "METRIC_DRIFT_THRESHOLD": ("gauge", "1"),
    "METRIC_EVAL_CASES": ("counter", "{case}"),
    "METRIC_EVAL_PASS_RATE": ("gauge", "1"),
    "METRIC_CANARY_ALERTS": ("counter", "{alert}"),
    "METRIC_CANARY_REGRESSED": ("gauge", "1"),
    "METRIC_FEEDBACK": ("counter", "{feedback}"),
    "METRIC_FEEDBACK_CALLS": ("counter", "{call}"),
    "METRIC_FEEDBACK_SATISFACTION": ("gauge", "1"),
    "METRIC_FEEDBACK_RATE": ("gauge", "1"),
    "METRIC_SESSIONS": ("counter", "{session}"),
    "METRIC_SESSION_TURNS": ("histogram", "{turn}"),
    "METRIC_SESSION_COMPLETION_RATE": ("gauge", "1"),
    "METRIC_SESSION_ABANDONMENT_RATE": ("gauge", "1"),
    "METRIC_SESSION_ACTIVE": ("gauge", "{session}"),
    "METRIC_OUTPUT_STAT_VALUE": ("gauge", "1"),
    "METRIC_VALIDATION_CHECKS": ("counter", "{check}"),
    "METRIC_VALIDATION_ERRORS": ("counter", "{error}"),
    "METRIC_GATEWAY_RECEIVED": ("counter", "{item}"),
    "METRIC_GATEWAY_ENRICHED": ("counter", "{span}"),
    "METRIC_GATEWAY_EXPORTED": ("counter", "{item}"),
    "METRIC_GATEWAY_REFUSED": ("counter", "{request}"),
    "METRIC_GATEWAY_QUEUE_SIZE": ("gauge", "By"),
}
UNIT_WORDS = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": "", "%": "percent"}
PROMETHEUS_LABELS = {"le", "job", "instance"}  # added by histograms / the exporter / the scrape
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}
REQUIRED_ALERTS = {
    "LLMTimeToFirstChunkHigh", "LLMTotalLatencyHigh", "LLMTimePerOutputChunkP99High", "LLMTimePerOutputChunkP95High",
    "LLMErrorRateHigh", "LLMOutputTokensPerSecondDropped", "LLMDailyBudgetWarning", "LLMDailyBudgetExceeded",
    "LLMUserHourlySpendHigh", "LLMUnknownModelPricing", "LLMSafetyHardBlockRateHigh", "LLMSafetyJudgeFlagRateHigh",
    "LLMReviewQueueGrowing", "LLMTelemetryDropped",
    # quality layer (issue 6)
    "LLMValidatorPassRateDrop", "LLMValidatorPassRateBelowBaseline", "LLMValidatorErrors", "LLMModelVersionChanged",
    "LLMOutputStatisticShift", "LLMEmbeddingDrift", "LLMCanaryRegressed", "LLMGoldenEvalPassRateDropped",
    "LLMUserSatisfactionDropped", "LLMTaskCompletionDropped",
}
# Alerts in these groups carry a `runbook` annotation: the first steps of the incident runbook.
RUNBOOK_GROUPS = {"llm-telemetry-quality", "llm-telemetry-evaluation", "llm-telemetry-business"}
# Label values the rules, tests and dashboard match on, as the code writes them: a renamed alert name, feedback
# kind or statistic breaks this test instead of silently matching nothing.
LABEL_VALUES: dict[str, set[str]] = {
    "llm_telemetry_alert_name": {decisions.PASS_RATE, decisions.MODEL_VERSION, decisions.OUTPUT_STAT, decisions.DRIFT},
    "llm_telemetry_alert_state": set(get_args(AlertState)),
    "gen_ai_evaluation_score_label": {attributes.EVALUATION_LABEL_PASS, attributes.EVALUATION_LABEL_FAIL},
    "llm_telemetry_feedback_kind": set(feedback.KINDS),
    "llm_telemetry_session_outcome": {sessions.COMPLETED, sessions.ABANDONED},
    "llm_telemetry_quality_output_stat_name": set(output_stats.STATISTICS),
}
COLLECTOR_COMPONENT_TYPES = {
    "receivers": {"otlp"},
    "processors": {"memory_limiter", "batch", "transform", "attributes"},
    "exporters": {"otlp_grpc", "prometheus", "prometheusremotewrite", "debug"},
}


# --- name translation (collector-contrib pkg/translator/prometheus, normalizeName) ----------------------

def prometheus_base_name(otel_name: str, unit: str, kind: str) -> str:
    tokens = re.findall(r"[A-Za-z0-9]+", otel_name)
    main_unit = unit.split("/", 1)[0].strip()
    if main_unit and "{" not in main_unit and "}" not in main_unit:
        word = "_".join(re.findall(r"[A-Za-z0-9]+", UNIT_WORDS.get(main_unit, main_unit)))
        if word and word not in tokens:
            tokens.append(word)
    if kind == "counter":
        tokens = [*(t for t in tokens if t != "total"), "total"]
    if kind == "gauge" and unit == "1":
        tokens = [*(t for t in tokens if t != "ratio"), "ratio"]
    return "_".join(tokens)


def exported_metric_names() -> dict[str, str]:
    """Every series name Prometheus can hold for our metrics -> the OTel name it comes from."""
    names: dict[str, str] = {}
    for constant, (kind, unit) in METRIC_SHAPES.items():
        otel_name = getattr(attributes, constant)
        base = prometheus_base_name(otel_name, unit, kind)
        suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
        names.update({base + suffix: otel_name for suffix in suffixes})
    return names


def attribute_labels() -> set[str]:
    values = {v for k, v in vars(attributes).items() if k.isupper() and isinstance(v, str) and "." in v}
    return {re.sub(r"[^A-Za-z0-9_]", "_", v) for v in values}


# --- PromQL scanning (enough for the expressions in these files) ----------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{([^{}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_LABEL_VALUES = re.compile(r"label_values\(\s*([^,()]+?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)")
_ANNOTATION_QUERY = re.compile(r'printf\s+"((?:[^"\\]|\\.)*)"')
_MATCHER_VALUE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_IDENT = re.compile(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*(?![\w:])(?!\s*\()")


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) used by a PromQL expression or a promtool series selector."""
    labels: set[str] = set()
    labels.update(label for _, label in _LABEL_VALUES.findall(expr))
    expr = _LABEL_VALUES.sub(lambda m: m.group(1), expr)
    expr = _STRING.sub('""', expr)
    for body in _MATCHERS.findall(expr):
        labels.update(_MATCHER_LABEL.findall(body))
    expr = _MATCHERS.sub(" ", expr)
    for body in _GROUPING.findall(expr):
        labels.update(name.strip() for name in body.split(",") if name.strip())
    expr = _GROUPING.sub(" ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    metrics = {name for name in _IDENT.findall(expr) if name.lower() not in PROMQL_WORDS and name not in {"by", "without"}}
    return metrics, labels


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def used_expressions() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every expression or series selector in the rules, rule tests and dashboard."""
    for rule in rules():
        where = f"{RULES.name} {rule.get('record') or rule.get('alert')}"
        yield where, rule["expr"]
        for text in rule.get("annotations", {}).values():  # {{ with printf "<query>" ... | query }}
            for query in _ANNOTATION_QUERY.findall(text):
                yield f"{where} annotation", query.replace("%q", '"x"')
    for test in load_yaml(RULE_TESTS)["tests"]:
        for series in test.get("input_series", []):
            yield f"{RULE_TESTS.name} {test['name']}", series["series"]
        for case in test.get("promql_expr_test", []):
            yield f"{RULE_TESTS.name} {test['name']}", case["expr"]
            for sample in case.get("exp_samples", []):
                yield f"{RULE_TESTS.name} {test['name']}", sample["labels"]
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"{DASHBOARD.name} panel {panel['title']!r}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        yield f"{DASHBOARD.name} variable {variable['name']}", variable["definition"]
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            yield f"{DASHBOARD.name} annotation {annotation['name']!r}", annotation["expr"]


# --- promtool ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = (
            "promtool not found on PATH: install Debian's `prometheus` package (apt-get install -y prometheus), "
            f"or set {ALLOW_NO_PROMTOOL_ENV}=1 to skip the promtool checks"
        )
        if os.environ.get(ALLOW_NO_PROMTOOL_ENV) == "1":
            pytest.skip(message)
        pytest.fail(message)
    return path


def run_promtool(promtool: str, *args: str) -> str:
    result = subprocess.run([promtool, *args], cwd=CONFIG_DIR, capture_output=True, text=True, timeout=90, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def test_promtool_check_rules(promtool: str) -> None:
    output = run_promtool(promtool, "check", "rules", RULES.name)
    assert f"SUCCESS: {len(rules())} rules found" in output


def test_promtool_rule_unit_tests(promtool: str) -> None:
    assert "SUCCESS" in run_promtool(promtool, "test", "rules", RULE_TESTS.name)


def test_promtool_check_config(promtool: str) -> None:
    output = run_promtool(promtool, "check", "config", PROMETHEUS.name)
    assert "is valid prometheus config file syntax" in output
    assert RULES.name in output


# --- names ---------------------------------------------------------------------------------------------

def test_translation_matches_the_collector_examples() -> None:
    assert prometheus_base_name("gen_ai.client.operation.duration", "s", "histogram") == "gen_ai_client_operation_duration_seconds"
    assert prometheus_base_name("gen_ai.client.token.usage", "{token}", "histogram") == "gen_ai_client_token_usage"
    assert prometheus_base_name("llm_telemetry.cost", "USD", "counter") == "llm_telemetry_cost_USD_total"
    assert prometheus_base_name("requests.count", "1", "counter") == "requests_count_total"
    assert prometheus_base_name("disk.utilization", "1", "gauge") == "disk_utilization_ratio"
    assert prometheus_base_name("process.runtime.duration.seconds", "s", "histogram") == "process_runtime_duration_seconds"


def test_every_metric_in_attributes_has_a_kind_and_unit() -> None:
    declared = {k for k, v in vars(attributes).items() if k.startswith("METRIC_") and isinstance(v, str)}
    assert declared == set(METRIC_SHAPES), (
        f"METRIC_* in attributes.py and METRIC_SHAPES here differ: only in attributes.py {sorted(declared - set(METRIC_SHAPES))}, "
        f"only here {sorted(set(METRIC_SHAPES) - declared)}; give new metrics a kind and unit here and in alert-rules.yml"
    )


def test_every_metric_name_used_comes_from_attributes() -> None:
    exported, recorded = exported_metric_names(), recorded_names()
    unknown = []
    for where, expr in used_expressions():
        metrics, _ = promql_names(expr)
        unknown += [f"{where}: {name}" for name in sorted(metrics) if name not in exported and name not in recorded]
    assert not unknown, "metric names not derived from attributes.py METRIC_* nor recorded by a rule:\n" + "\n".join(unknown)


def test_every_label_used_comes_from_attributes() -> None:
    allowed = attribute_labels() | PROMETHEUS_LABELS
    unknown = []
    for where, expr in used_expressions():
        _, labels = promql_names(expr)
        unknown += [f"{where}: {label}" for label in sorted(labels - allowed)]
    templated = set(re.findall(r"\$labels\.(\w+)", RULES.read_text(encoding="utf-8")))
    templated |= set(re.findall(r"\{\{(\w+)\}\}", DASHBOARD.read_text(encoding="utf-8")))
    unknown += [f"annotation or legend template: {label}" for label in sorted(templated - allowed)]
    assert not unknown, "labels that are not an attribute name from attributes.py with dots as underscores:\n" + "\n".join(unknown)


def test_scanner_sees_metrics_and_labels() -> None:
    metrics, labels = promql_names(
        'sum by (le, llm_telemetry_feature) (rate(gen_ai_client_token_usage_bucket{gen_ai_token_type="output"}[5m] offset 1h))'
        " > on () group_left llm_telemetry:daily_budget_usd"
    )
    assert metrics == {"gen_ai_client_token_usage_bucket", "llm_telemetry:daily_budget_usd"}
    assert labels == {"le", "llm_telemetry_feature", "gen_ai_token_type"}


# --- rules ---------------------------------------------------------------------------------------------

def test_every_alert_is_complete_and_tested_both_ways() -> None:
    alerts = [rule for rule in rules() if "alert" in rule]
    cases: dict[str, list[list[Any]]] = {}
    for test in load_yaml(RULE_TESTS)["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], []).append(case.get("exp_alerts") or [])
    problems = []
    for alert in alerts:
        name = alert["alert"]
        if alert.get("labels", {}).get("severity") not in ("warning", "critical"):
            problems.append(f"{name}: severity label must be warning or critical")
        if not {"summary", "description"} <= set(alert.get("annotations", {})):
            problems.append(f"{name}: needs summary and description annotations")
        if not re.fullmatch(r"\d+[smh]", str(alert.get("for", ""))):
            problems.append(f"{name}: needs a for: duration")
        if not any(cases.get(name, [])):
            problems.append(f"{name}: no promtool case where it fires")
        if not any(not expected for expected in cases.get(name, [])):
            problems.append(f"{name}: no promtool case where it stays silent")
    assert {alert["alert"] for alert in alerts} >= REQUIRED_ALERTS
    assert not problems, "\n".join(problems)


def test_recording_rules_follow_naming_and_are_used() -> None:
    recorded = recorded_names()
    assert all(re.fullmatch(r"llm_telemetry:[a-z0-9_]+(:[a-z0-9_]+)?", name) for name in recorded), sorted(recorded)
    used: set[str] = set()
    for _, expr in used_expressions():
        used |= promql_names(expr)[0]
    assert not recorded - used, f"recording rules nothing uses: {sorted(recorded - used)}"


def test_thresholds_match_llm_telemetry_defaults() -> None:
    settings = {(info.section, info.key): info for info in describe()}
    text = RULES.read_text(encoding="utf-8")
    assert f"llm_telemetry:safety_block:ratio_rate1h > {settings['safety', 'block_rate_alert'].default:g}" in text
    assert f"llm_telemetry:daily_budget_used:ratio > {settings['budget', 'warning_ratio'].default:g} <= 1" in text
    min_drop = settings["validators", "min_drop"].default
    assert f"llm_telemetry:validation_pass:ratio_rate1d offset 1h - {min_drop:g}" in text
    assert f"at least LLM_TELEMETRY_VALIDATORS_MIN_DROP ({min_drop:g}) below" in text
    env_names = {info.env for info in describe()} | {CONFIG_FILE_ENV, ALLOW_NO_PROMTOOL_ENV}
    mentioned = set()
    for path in CONFIG_DIR.rglob("*"):
        if path.is_file():
            mentioned |= set(re.findall(r"\bLLM_TELEMETRY_[A-Z0-9_]+", path.read_text(encoding="utf-8")))
    assert mentioned, "expected the rules to name the settings they mirror"
    assert not mentioned - env_names, f"unknown settings named in collector-config/: {sorted(mentioned - env_names)}"


# --- collector -----------------------------------------------------------------------------------------

def test_collector_pipelines_reference_defined_components() -> None:
    config = load_yaml(OTELCOL)
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics", "logs"}
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for name, pipeline in pipelines.items():
        for kind in used:
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"pipeline {name} uses {kind[:-1]} {component!r}, not defined under {kind}"
                used[kind].add(component)
        processors = pipeline["processors"]
        assert processors[0] == "memory_limiter" and processors[-1] == "batch", f"pipeline {name}: {processors}"
    for kind, defined in used.items():
        assert set(config[kind]) == defined, f"{kind} defined but unused: {sorted(set(config[kind]) - defined)}"
        for component in config[kind]:
            assert component.split("/")[0] in COLLECTOR_COMPONENT_TYPES[kind], f"unknown {kind[:-1]} type {component!r}"


def test_collector_endpoints() -> None:
    config = load_yaml(OTELCOL)
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    prometheus = config["exporters"]["prometheus"]
    assert prometheus["endpoint"] == "0.0.0.0:8889"
    assert prometheus["resource_to_telemetry_conversion"]["enabled"] is True
    assert config["service"]["pipelines"]["metrics"]["exporters"] == ["prometheus"]
    traces = config["service"]["pipelines"]["traces"]["exporters"]
    assert [name.split("/")[0] for name in traces] == ["otlp_grpc"]
    # Docker's host name by default; TRACES_BACKEND_ENDPOINT moves it (README, step 3).
    assert config["exporters"][traces[0]]["endpoint"] == "${env:TRACES_BACKEND_ENDPOINT:-jaeger:4317}"


def test_commented_remote_write_alternative_parses() -> None:
    text = OTELCOL.read_text(encoding="utf-8")
    block = re.search(r"^  # prometheusremotewrite:\n(?:^  #   .*\n)+", text, re.MULTILINE)
    assert block, "commented prometheusremotewrite exporter missing"
    alternative = yaml.safe_load("\n".join(line[4:] for line in block.group(0).splitlines()))
    settings = alternative["prometheusremotewrite"]
    assert settings["endpoint"].endswith("/api/v1/write")
    assert settings["resource_to_telemetry_conversion"]["enabled"] is True


def test_collector_drops_content_attributes_everywhere() -> None:
    config = load_yaml(OTELCOL)
    transform = config["processors"]["transform/drop_content"]
    must_drop = set(attributes.CONTENT_ATTRIBUTES) | {attributes.SAFETY_MATCHES}
    contexts = {
        group["context"]: {m for s in group["statements"] for m in re.findall(r'^delete_key\(attributes, "([^"]+)"\)$', s)}
        for group in transform["trace_statements"] + transform["log_statements"]
    }
    assert set(contexts) == {"span", "spanevent", "log"}
    for context, deleted in contexts.items():
        assert must_drop <= deleted, f"{context}: not dropped {sorted(must_drop - deleted)}"
    for signal in ("traces", "logs"):
        assert "transform/drop_content" in config["service"]["pipelines"][signal]["processors"]


# --- Prometheus, Grafana, compose wiring ---------------------------------------------------------------

def test_prometheus_scrapes_the_collector_exporter() -> None:
    config = load_yaml(PROMETHEUS)
    assert config["rule_files"] == [RULES.name]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    collector = jobs["otel-collector"]
    assert collector["honor_labels"] is True
    assert collector["static_configs"][0]["targets"] == ["otel-collector:8889"]
    # The rule unit tests evaluate at the deployed cadence, so their for: timings mean what they say.
    assert load_yaml(RULE_TESTS)["evaluation_interval"] == config["global"]["evaluation_interval"]


def test_local_prometheus_config_differs_only_in_the_targets(promtool: str) -> None:
    compose, local = load_yaml(PROMETHEUS), load_yaml(CONFIG_DIR / "prometheus-local.yml")
    for config in (compose, local):
        for job in config["scrape_configs"]:
            job["static_configs"] = [{"targets": [t.split(":")[-1] for t in sc["targets"]]} for sc in job["static_configs"]]
    assert compose == local
    run_promtool(promtool, "check", "config", "prometheus-local.yml")


def test_dashboard_structure() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    datasource_uids = {ds["uid"] for ds in load_yaml(PROVISIONING / "datasources" / "datasources.yaml")["datasources"]}
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] in datasource_uids and panel["targets"], panel["title"]
    titles = " ".join(panel["title"].lower() for panel in panels)
    rows = [panel["title"] for panel in panels if panel["type"] == "row"]
    assert {"Quality", "Golden datasets and canaries", "Business"} <= set(rows), rows
    annotations = {annotation["name"]: annotation for annotation in dashboard["annotations"]["list"]}
    assert annotations["Model version changes"]["datasource"]["uid"] in datasource_uids
    assert decisions.MODEL_VERSION in annotations["Model version changes"]["expr"]
    for topic in ("first token", "output chunk", "duration", "tokens per second", "error rate", "spend by model",
                  "spend by feature", "top 10 users", "hard-block", "review queue", "dropped",
                  "validator pass rate", "validator errors", "quality alerts active", "drift score vs calibrated threshold",
                  "model version changes", "output length", "output rates", "eval pass rate", "canary", "satisfaction",
                  "feedback per call", "negative feedback", "task completion and abandonment", "turns per session",
                  "open sessions"):
        assert topic in titles, f"dashboard has no {topic!r} panel"


def test_compose_mounts_existing_files_and_names_the_hosts_used() -> None:
    services = load_yaml(COMPOSE)["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            assert (CONFIG_DIR / source).exists(), f"{name} mounts missing {source}"
            if source.endswith("dashboard.json"):
                provider = load_yaml(PROVISIONING / "dashboards" / "dashboards.yaml")["providers"][0]
                assert Path(target).parent == Path(provider["options"]["path"])
    wiring = [OTELCOL, PROMETHEUS, PROVISIONING / "datasources" / "datasources.yaml"]
    live_lines = [line for path in wiring for line in path.read_text(encoding="utf-8").splitlines() if not line.strip().startswith("#")]
    hosts = set(re.findall(r"\b([a-z-]+):(?:4317|8889|9090|16686)\b", "\n".join(live_lines)))
    assert hosts - {"localhost"} <= set(services), f"hosts with no compose service: {sorted(hosts - set(services))}"


def test_compose_images_match_the_versions_built_and_tested() -> None:
    """The stock images in docker-compose.yaml are the releases the tests run (builder-config.yaml, jaeger/go.mod)."""
    services = load_yaml(COMPOSE)["services"]
    manifest = load_yaml(CONFIG_DIR / "builder-config.yaml")
    core = {entry["gomod"].split()[1] for entry in manifest["receivers"] + manifest["processors"] + manifest["exporters"]}
    assert len(core) == 1, f"one release for every component: {sorted(core)}"
    assert services["otel-collector"]["image"] == f"otel/opentelemetry-collector-contrib:{core.pop().removeprefix('v')}"
    go_mod = (CONFIG_DIR / "jaeger" / "go.mod").read_text(encoding="utf-8")
    jaeger_v1 = re.search(r"^\tgithub\.com/jaegertracing/jaeger v1\.(\d+)\.(\d+)", go_mod, re.MULTILINE)
    assert jaeger_v1, "jaeger/go.mod requires no github.com/jaegertracing/jaeger v1.x"
    # Jaeger tags each release twice: v1.N.p (the Go module) is v2.(N-63).p (the v2 binary and image).
    minor, patch = int(jaeger_v1.group(1)), int(jaeger_v1.group(2))
    assert services["jaeger"]["image"] == f"jaegertracing/jaeger:2.{minor - 63}.{patch}"


# --- quality layer: runbooks, commands, label values ---------------------------------------------------

def test_quality_alerts_have_runbooks() -> None:
    groups = {group["name"]: group["rules"] for group in load_yaml(RULES)["groups"]}
    assert set(groups) >= RUNBOOK_GROUPS
    problems = []
    for name in sorted(RUNBOOK_GROUPS):
        for rule in groups[name]:
            if "alert" not in rule:
                continue
            runbook = rule["annotations"].get("runbook", "")
            steps = re.findall(r"^\d\. ", runbook, re.MULTILINE)
            if len(steps) < 3:
                problems.append(f"{rule['alert']}: runbook annotation needs at least 3 numbered steps, has {len(steps)}")
    assert not problems, "\n".join(problems)


def test_commands_named_in_collector_config_exist() -> None:
    """Every `llm-telemetry CMD --flag` a runbook, description or README names is a real subcommand and option."""
    parser = build_parser()
    sub = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    texts = [path.read_text(encoding="utf-8") for path in (RULES, DASHBOARD, CONFIG_DIR / "README.md")]
    mentioned = [m for text in texts for m in re.findall(r"`llm-telemetry ([^`]*)`", text)]
    assert mentioned, "expected runbooks to name llm-telemetry commands"
    problems = []
    for command in mentioned:
        name, *rest = command.split()
        if name not in sub.choices:
            problems.append(f"`llm-telemetry {command}`: no subcommand {name!r}")
            continue
        options = sub.choices[name]._option_string_actions
        problems += [f"`llm-telemetry {command}`: no option {flag}" for flag in rest if flag.startswith("--") and flag not in options]
    assert not problems, "\n".join(problems)


def test_label_values_matched_come_from_the_code() -> None:
    problems = []
    for where, expr in used_expressions():
        for label, op, value in _MATCHER_VALUE.findall(expr):
            known = LABEL_VALUES.get(label)
            if known is None or not value:
                continue
            values = value.split("|") if op in ("=~", "!~") else [value]
            if op in ("=~", "!~") and not all(re.fullmatch(r"[\w.]+", v) for v in values):
                continue  # a real pattern, not a list of values
            problems += [f"{where}: {label}{op}{value!r}: {v!r} is not one of {sorted(known)}" for v in values if v not in known]
    assert not problems, "\n".join(problems)
