"""collector-config/ against the real OpenTelemetry Collector built from builder-config.yaml.

``otelcol validate`` on every Collector config (the OTTL statements are parsed there too), the manifest
holding exactly the components the configs use, and the data path: an app under
``opentelemetry-instrument`` -> the Collector running otelcol.yaml as committed (ports moved to free
loopback ports by a second ``--config`` merged on top) -> the test's OTLP receiver and the Collector's
``/metrics``. A foreign instrumentation's content attributes, sent straight to the Collector, must not
come out of it.
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from _export_helpers import APPS, run_instrumented
from _otelcol_helpers import (
    CONFIG_DIR,
    REAL_BINARY_TIMEOUT,
    free_port,
    otelcol,
    otelcol_overlay,
    run_binary,
    wait_until,
    write_yaml,
)
from _otlp_receiver import OtlpGrpcReceiver
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from test_collector_config import exported_metric_names

from llm_telemetry import attributes as a

pytestmark = REAL_BINARY_TIMEOUT

OTELCOL = CONFIG_DIR / "otelcol.yaml"
LOADBALANCING = CONFIG_DIR / "otelcol-loadbalancing.yaml"
JAEGER = CONFIG_DIR / "jaeger.yaml"
COLLECTOR_CONFIGS = [OTELCOL, LOADBALANCING]


def commented_block(path: Path, first_line: str) -> str:
    """A commented-out YAML block (``  # key:`` and the ``  #   ...`` lines under it), uncommented."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"# {first_line}")
    indent = lines[start].index("#")
    block = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith(" " * indent + "#   "):
            break
        block.append(line)
    return "\n".join(line[:indent] + line[indent + 2:] for line in block)


def variants(tmp_path: Path) -> list[Path]:
    """The documented alternatives, rendered: remote write instead of `prometheus`, routing by trace id."""
    config = yaml.safe_load(OTELCOL.read_text(encoding="utf-8"))
    remote_write = yaml.safe_load(commented_block(OTELCOL, "prometheusremotewrite:"))
    config["exporters"].update(remote_write)
    del config["exporters"]["prometheus"]
    config["service"]["pipelines"]["metrics"]["exporters"] = ["prometheusremotewrite"]
    # The alternative otelcol-loadbalancing.yaml names: whole traces per gateway (budgets from Prometheus).
    by_trace = yaml.safe_load(LOADBALANCING.read_text(encoding="utf-8"))
    balancer = by_trace["exporters"]["loadbalancing/genai_by_user"]
    assert balancer.pop("routing_attributes") == ["user.id"]
    balancer["routing_key"] = "traceID"
    return [write_yaml(tmp_path / "otelcol-remote-write.yaml", config), write_yaml(tmp_path / "loadbalancing-by-trace.yaml", by_trace)]


def validate(binary: str, config: Path) -> str:
    result = run_binary(binary, "validate", "--config", config)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{Path(binary).name} validate --config {config.name} failed:\n{output}"
    return output


# --- configs ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("config", COLLECTOR_CONFIGS, ids=lambda p: p.name)
def test_real_collector_validates_config(otelcol_bin: str, config: Path) -> None:
    validate(otelcol_bin, config)


def test_real_collector_validates_documented_alternatives(otelcol_bin: str, tmp_path: Path) -> None:
    for config in variants(tmp_path):
        validate(otelcol_bin, config)


def test_validate_parses_the_ottl_statements(otelcol_bin: str, tmp_path: Path) -> None:
    """A broken OTTL statement fails validation: the green runs above really checked the statements."""
    config = yaml.safe_load(OTELCOL.read_text(encoding="utf-8"))
    config["processors"]["transform/drop_content"]["trace_statements"][0]["statements"].append('delete_key(attributes, "x"')
    broken = write_yaml(tmp_path / "broken-ottl.yaml", config)
    result = run_binary(otelcol_bin, "validate", "--config", broken)
    assert result.returncode != 0
    assert "statement" in (result.stdout + result.stderr).lower()


def test_jaeger_validates_its_config(jaeger_bin: str) -> None:
    validate(jaeger_bin, JAEGER)


def used_component_types(tmp_path: Path) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {kind: set() for kind in KIND_SUFFIX}
    for path in [*COLLECTOR_CONFIGS, *variants(tmp_path)]:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        for kind, names in used.items():
            names.update(name.split("/")[0] for name in config.get(kind) or {})
    return used


KIND_SUFFIX = {"receivers": "receiver", "processors": "processor", "exporters": "exporter", "connectors": "connector",
               "extensions": "extension"}
TYPE_NOT_FROM_MODULE_NAME = {"memorylimiterprocessor": "memory_limiter", "otlpexporter": "otlp_grpc"}


def component_type(module: str, kind: str) -> str:
    """The component type a module registers: its last path element without the kind, with two exceptions."""
    base = module.rsplit("/", 1)[-1]
    return TYPE_NOT_FROM_MODULE_NAME.get(base, base.removesuffix(KIND_SUFFIX[kind]))


def test_manifest_has_exactly_the_components_the_configs_use(otelcol_bin: str, tmp_path: Path) -> None:
    manifest = yaml.safe_load((CONFIG_DIR / "builder-config.yaml").read_text(encoding="utf-8"))
    in_manifest = {kind: {component_type(entry["gomod"].split()[0], kind) for entry in manifest.get(kind) or []} for kind in KIND_SUFFIX}
    assert in_manifest == used_component_types(tmp_path), "builder-config.yaml and the configs in collector-config/ differ"
    # The module -> type rule agrees with what the binary reports (`components` omits the renamed OTLP
    # exporters in this release, so not every entry can be checked this way).
    result = run_binary(otelcol_bin, "components")
    assert result.returncode == 0, result.stderr
    built = yaml.safe_load(result.stdout)
    listed = [(kind, entry["name"], entry["module"].split()[0]) for kind in KIND_SUFFIX for entry in built.get(kind) or []]
    assert len(listed) >= 6
    for kind, name, module in listed:
        assert component_type(module, kind) == name, (kind, name, module)


# --- data path ------------------------------------------------------------------------------------------

def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def series_names(exposition: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^([A-Za-z_:][A-Za-z0-9_:]*)[{ ]", exposition, re.MULTILINE)}


def test_app_through_the_real_collector(otelcol_bin: str, fake_provider: Any, tmp_path: Path) -> None:
    grpc, http, prom = free_port(), free_port(), free_port()
    env = {
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "",
        "OTEL_SERVICE_NAME": "invoice-api",
        "FAKE_PROVIDER_URL": fake_provider.base_url,
        "LLM_TELEMETRY_REVIEW_DB_PATH": str(tmp_path / "review.db"),
    }
    with OtlpGrpcReceiver() as rx, otelcol(
        otelcol_bin, tmp_path, OTELCOL, otelcol_overlay(grpc, http, prom),
        env={"TRACES_BACKEND_ENDPOINT": f"127.0.0.1:{rx.port}"}, ports=[grpc, http, prom],
    ):
        run = run_instrumented(f"http://127.0.0.1:{grpc}", script=APPS / "llm_app.py", env=env, timeout=120)
        assert run.returncode == 0, run.stderr
        spans = rx.wait_for_spans(3, timeout=30)
        def genai_metrics() -> str | None:
            text = scrape(prom)
            return text if "gen_ai_client_operation_duration_seconds_count" in text else None

        exposition = wait_until(genai_metrics, timeout=30, what="GenAI metrics on the collector's /metrics")

    genai = [s for s in spans if a.OPERATION_NAME in s.attributes]
    assert sorted(s.name for s in genai) == ["chat claude-haiku-4-5", "chat gpt-4o-mini", "chat gpt-4o-mini"]
    assert len(spans) == 3, [(s.name, s.scope) for s in spans]  # one span per call, nothing duplicated on the way
    for span in genai:
        assert span.resource["service.name"] == "invoice-api"
        assert span.attributes[a.COST_TOTAL_USD] > 0
        assert not set(span.attributes) & a.CONTENT_ATTRIBUTES
    streamed = next(s for s in genai if s.attributes.get(a.REQUEST_STREAM) and "gpt" in s.name)
    assert a.EVENT_FIRST_TOKEN in {event.name for event in streamed.span.events}

    # The names alert-rules.yml and the dashboard are written against, as the real exporter spells them.
    names = series_names(exposition)
    for expected in ("gen_ai_client_operation_duration_seconds_bucket", "gen_ai_client_operation_time_to_first_chunk_seconds_count",
                     "gen_ai_client_token_usage_sum", "llm_telemetry_cost_USD_total", "llm_telemetry_tokens_total",
                     "llm_telemetry_safety_checks_total"):
        assert expected in names, f"{expected} missing from the collector's /metrics: {sorted(names)}"
    unpredicted = {n for n in names if n.startswith(("gen_ai_", "llm_telemetry_"))} - set(exported_metric_names())
    assert not unpredicted, f"series the rules' name translation does not predict: {sorted(unpredicted)}"
    assert 'service_name="invoice-api"' in exposition and 'user_id="user-7"' in exposition


FOREIGN_CONTENT = {
    "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "my card is 4111"}]}]',
    "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "text", "content": "noted"}]}]',
    "gen_ai.system_instructions": "you are a bank",
    "gen_ai.prompt": "legacy prompt",
    "gen_ai.completion": "legacy completion",
    "gen_ai.prompt.0.content": "indexed legacy prompt (OpenLLMetry style)",
    "gen_ai.prompt.0.role": "user",
    "gen_ai.completion.0.content": "indexed legacy completion",
    "llm_telemetry.safety.matches": "4111",
}


def test_collector_strips_foreign_content_attributes(otelcol_bin: str, tmp_path: Path) -> None:
    """Another instrumentation puts prompts on spans, span events and log records; the Collector deletes them."""
    grpc, http = free_port(), free_port()
    overlay = otelcol_overlay(grpc, http, free_port())
    overlay["service"]["pipelines"] = {"logs": {"exporters": ["otlp_grpc/traces"]}}  # logs to the receiver, not debug
    with OtlpGrpcReceiver() as rx, otelcol(
        otelcol_bin, tmp_path, OTELCOL, overlay, env={"TRACES_BACKEND_ENDPOINT": f"127.0.0.1:{rx.port}"}, ports=[grpc, http],
    ):
        endpoint = f"127.0.0.1:{grpc}"
        resource = Resource.create({"service.name": "foreign-app"})
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
        with tracer_provider.get_tracer("other.instrumentation").start_as_current_span("chat gpt-4o") as span:
            span.set_attributes({**FOREIGN_CONTENT, "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 12})
            span.add_event("gen_ai.content.prompt", {**FOREIGN_CONTENT, "gen_ai.event.kept": "yes"})
        tracer_provider.shutdown()
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True)))
        logger_provider.get_logger("other.instrumentation").emit(
            LogRecord(body="gen_ai.user.message", attributes={**FOREIGN_CONTENT, "gen_ai.system": "openai"})
        )
        logger_provider.shutdown()
        spans = rx.wait_for_spans(1, timeout=30)
        wait_until(lambda: rx.log_requests, timeout=30, what="the log record")

    [received] = spans
    assert received.attributes["gen_ai.request.model"] == "gpt-4o"
    assert received.attributes["gen_ai.usage.input_tokens"] == 12
    assert not set(received.attributes) & set(FOREIGN_CONTENT), sorted(received.attributes)
    [event] = received.span.events
    event_attributes = {kv.key for kv in event.attributes}
    assert event_attributes == {"gen_ai.event.kept"}
    log_attributes = {
        kv.key for request in rx.log_requests for rl in request.resource_logs for sl in rl.scope_logs
        for record in sl.log_records for kv in record.attributes
    }
    assert log_attributes == {"gen_ai.system"}
