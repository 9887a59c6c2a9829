"""collector-config/otelcol-loadbalancing.yaml: the scale-out tier in front of the gateways, checked structurally.

(tests/test_otelcol_real.py validates it with the real Collector and tests/test_otelcol_scaleout.py runs it in
front of two real gateways; here, without Go: wiring, and that its idea of a GenAI span is the gateway's, so no
GenAI span bypasses the gateways and no other span is sent to them.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from llm_telemetry import attributes as a
from llm_telemetry.exporters.gateway.enrich import GENAI_KEYS
from llm_telemetry.record import is_genai_span

CONFIG = Path(__file__).resolve().parents[1] / "collector-config" / "otelcol-loadbalancing.yaml"


def _config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def test_pipelines_use_defined_components_and_start_with_the_memory_limiter() -> None:
    config = _config()
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for name, pipeline in config["service"]["pipelines"].items():
        for kind in used:
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"{name}: {kind[:-1]} {component!r} is not defined"
                used[kind].add(component)
        assert pipeline["processors"][0] == "memory_limiter" and pipeline["processors"][-1] == "batch", name
    for kind, names in used.items():
        assert set(config[kind]) == names, f"{kind} defined but unused: {sorted(set(config[kind]) - names)}"
    assert {name.split("/")[0] for name in config["service"]["pipelines"]} == {"traces", "metrics", "logs"}


def _drop_condition(config: dict[str, Any], processor: str) -> str:
    [condition] = config["processors"][processor]["traces"]["span"]
    return condition


def _evaluate(condition: str, span_attributes: dict[str, Any]) -> bool:
    """The two shapes used: ``attributes["k"] == nil and ...`` and ``attributes["k"] != nil or ...``."""
    terms = re.findall(r'attributes\["([^"]+)"\] (==|!=) nil', condition)
    results = [(key not in span_attributes) if op == "==" else (key in span_attributes) for key, op in terms]
    return all(results) if " and " in condition else any(results)


def test_genai_spans_go_to_the_gateways_and_nothing_else_does() -> None:
    config = _config()
    genai_only, not_genai = _drop_condition(config, "filter/genai_only"), _drop_condition(config, "filter/not_genai")
    for condition in (genai_only, not_genai):
        assert set(re.findall(r'attributes\["([^"]+)"\]', condition)) == GENAI_KEYS
    samples = [{key: "x"} for key in GENAI_KEYS] + [{"http.request.method": "GET"}, {}, {a.USER_ID: "u1"}, dict.fromkeys(GENAI_KEYS, "x")]
    for span in samples:
        dropped_from_gateways = _evaluate(genai_only, span)
        dropped_from_backend_path = _evaluate(not_genai, span)
        assert dropped_from_gateways != dropped_from_backend_path, f"{span} must take exactly one path"
        assert dropped_from_gateways == (not is_genai_span(span)), span


def test_genai_spans_are_routed_by_user_to_the_gateways() -> None:
    config = _config()
    pipelines = config["service"]["pipelines"]
    assert "filter/genai_only" in pipelines["traces/genai"]["processors"]
    [exporter] = pipelines["traces/genai"]["exporters"]
    balancer = config["exporters"][exporter]
    assert exporter.split("/")[0] == "loadbalancing"
    assert balancer["routing_key"] == "attributes" and balancer["routing_attributes"] == [a.USER_ID]
    assert balancer["protocol"]["otlp"]["retry_on_failure"]["enabled"] is True
    assert all(host.endswith(":4317") for host in balancer["resolver"]["static"]["hostnames"])
    for name in ("traces/other", "metrics", "logs"):
        assert pipelines[name]["exporters"] == ["otlp_grpc/backend"], name
