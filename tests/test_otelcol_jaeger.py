"""collector-config/README.md, "See your traces in Jaeger, the alerts in Prometheus", run step by step.

The test reads the section's commands, checks they are the ones below, and runs each one: the same
binaries (built by build.sh), config files, environment variables and order, with one change -- every
port is a free loopback port (other test runs share this machine), moved by a second ``--config`` merged
on top of jaeger.yaml / otelcol.yaml and by a copy of prometheus-local.yml with the Collector's port.
Then, as in step 6, the trace is found through Jaeger's query API with the GenAI span, its cost and
safety attributes and its TTFT event, and Prometheus has scraped the Collector.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from _export_helpers import APPS, run_instrumented
from _otelcol_helpers import CONFIG_DIR, REAL_BINARY_TIMEOUT, Service, free_port, otelcol, otelcol_overlay, wait_until, write_yaml

from llm_telemetry import attributes as a

pytestmark = REAL_BINARY_TIMEOUT

README = CONFIG_DIR / "README.md"
STEPS = [
    "OTELCOL=$(collector-config/build.sh otelcol)",
    "JAEGER=$(collector-config/build.sh jaeger)",
    "JAEGER_OTLP_ENDPOINT=127.0.0.1:14317 $JAEGER --config collector-config/jaeger.yaml &",
    "TRACES_BACKEND_ENDPOINT=127.0.0.1:14317 $OTELCOL --config collector-config/otelcol.yaml &",
    "prometheus --config.file=collector-config/prometheus-local.yml --storage.tsdb.path=/tmp/llm-telemetry-prometheus &",
    "OTEL_SERVICE_NAME=my-app OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 opentelemetry-instrument python app.py",
]
QUERIES = ["curl -s 'http://127.0.0.1:16686/api/traces?service=my-app'", "curl -s http://127.0.0.1:9090/api/v1/rules"]


def readme_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## See your traces in Jaeger, the alerts in Prometheus")
    return text[start:text.index("\n## ", start + 1)]


def test_readme_steps_are_the_ones_tested() -> None:
    section = readme_section()
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    commands = [line.strip() for block in blocks for line in block.splitlines() if line.strip()]
    assert commands == STEPS
    for query in QUERIES:
        assert f"`{query}`" in section


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def tags(item: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in item.get("tags", [])}


def test_readme_steps_jaeger_and_prometheus(
    otelcol_bin: str, jaeger_bin: str, prometheus_bin: str, fake_provider: Any, tmp_path: Path,
) -> None:
    # Steps 1-2: the built binaries (fixtures); Jaeger with jaeger.yaml, its OTLP port from JAEGER_OTLP_ENDPOINT.
    jaeger_otlp, jaeger_ui, jaeger_grpc = free_port(), free_port(), free_port()
    jaeger_overlay = write_yaml(tmp_path / "jaeger-ports.yaml", {"extensions": {"jaeger_query": {
        "http": {"endpoint": f"127.0.0.1:{jaeger_ui}"}, "grpc": {"endpoint": f"127.0.0.1:{jaeger_grpc}"}}}})
    jaeger = Service("jaeger", [jaeger_bin, "--config", CONFIG_DIR / "jaeger.yaml", "--config", jaeger_overlay], tmp_path,
                     ports=[jaeger_otlp, jaeger_ui], env={"JAEGER_OTLP_ENDPOINT": f"127.0.0.1:{jaeger_otlp}"})
    # Step 3: the Collector with otelcol.yaml, traces to Jaeger through TRACES_BACKEND_ENDPOINT.
    grpc, http, exporter = free_port(), free_port(), free_port()
    collector = otelcol(otelcol_bin, tmp_path, CONFIG_DIR / "otelcol.yaml", otelcol_overlay(grpc, http, exporter),
                        env={"TRACES_BACKEND_ENDPOINT": f"127.0.0.1:{jaeger_otlp}"}, ports=[grpc, http, exporter])
    # Step 4: Prometheus with prometheus-local.yml (rule_files made absolute, since the copy lives elsewhere).
    prom = free_port()
    config = yaml.safe_load((CONFIG_DIR / "prometheus-local.yml").read_text(encoding="utf-8"))
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == ["127.0.0.1:8889"]
    config["scrape_configs"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{exporter}"]
    config["scrape_configs"][1]["static_configs"][0]["targets"] = [f"127.0.0.1:{prom}"]
    config["global"]["scrape_interval"] = "1s"
    config["rule_files"] = [str(CONFIG_DIR / name) for name in config["rule_files"]]
    prometheus = Service("prometheus", [
        prometheus_bin, f"--config.file={write_yaml(tmp_path / 'prometheus-local.yml', config)}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom}",
    ], tmp_path, ports=[prom])

    with jaeger, collector, prometheus:
        # Step 5: the app under opentelemetry-instrument, service my-app.
        run = run_instrumented(f"http://127.0.0.1:{grpc}", script=APPS / "llm_app.py", timeout=120, env={
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "", "OTEL_SERVICE_NAME": "my-app",
            "FAKE_PROVIDER_URL": fake_provider.base_url, "LLM_TELEMETRY_REVIEW_DB_PATH": str(tmp_path / "review.db"),
        })
        assert run.returncode == 0, run.stderr

        # Step 6: the traces through Jaeger's query API ...
        url = f"http://127.0.0.1:{jaeger_ui}/api/traces?" + urllib.parse.urlencode({"service": "my-app"})
        def three_traces() -> list[Any] | None:
            data = get_json(url)["data"]
            return data if len(data) >= 3 else None

        traces = wait_until(three_traces, timeout=60, what="three traces of my-app in Jaeger")
        # ... and the rules in Prometheus, after it scraped the Collector's GenAI metrics.
        query = f"http://127.0.0.1:{prom}/api/v1/query?" + urllib.parse.urlencode({"query": "llm_telemetry_cost_USD_total"})
        cost_series = wait_until(lambda: get_json(query)["data"]["result"], timeout=60, what="the cost series in Prometheus")
        rules = get_json(f"http://127.0.0.1:{prom}/api/v1/rules")["data"]["groups"]

    spans = [span for trace in traces for span in trace["spans"]]
    genai = {span["operationName"]: span for span in spans if a.OPERATION_NAME in tags(span)}
    assert len(spans) == 3 and set(genai) == {"chat gpt-4o-mini", "chat claude-haiku-4-5"}, [s["operationName"] for s in spans]
    streamed = next(s for s in spans if s["operationName"] == "chat gpt-4o-mini" and tags(s).get(a.REQUEST_STREAM) is True)
    assert tags(streamed)["span.kind"] == "client"
    assert tags(streamed)[a.COST_TOTAL_USD] > 0
    assert tags(streamed)[a.USER_ID] == "user-7"
    assert 0.3 <= tags(streamed)[a.RESPONSE_TIME_TO_FIRST_CHUNK] < 2.0  # scripted 0.3 s; wide margin on a busy machine
    events = {field["value"] for log in streamed["logs"] for field in log["fields"] if field["key"] == "event"}
    assert a.EVENT_FIRST_TOKEN in events, streamed["logs"]
    claude = genai["chat claude-haiku-4-5"]
    assert tags(claude)[a.SAFETY_FLAGGED] is True
    assert "pii" in tags(claude)[a.SAFETY_CATEGORIES]
    for span in spans:
        assert not set(tags(span)) & a.CONTENT_ATTRIBUTES
    assert cost_series[0]["metric"]["job"] == "my-app"
    assert all(rule["health"] in ("ok", "unknown") for group in rules for rule in group["rules"])
