"""Scale-out: the real Collector's ``loadbalancing`` exporter (loadbalancing.yaml) in front of two
``llm-telemetry collector`` gateways, each forwarding to its own OTLP receiver here, so the test sees
which gateway every span went through.

* routing by trace id: every trace lands whole on one gateway, even when its spans reach the Collector in
  separate requests, and both gateways get traffic;
* routing by ``user.id`` (the variant commented in loadbalancing.yaml): all of a user's calls meet on one
  gateway, so that gateway's per-user budget crosses exactly once;
* a gateway stopped mid-run and started again: nothing is lost -- the Collector's retry queue holds the
  spans meant for it -- or what is lost is counted as dropped by the Collector.

Skipped until the gateway exists (issue 7, section 2): ``llm-telemetry collector`` with ``--listen-grpc``,
``--listen-http`` and ``--upstream``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _otelcol_helpers import CONFIG_DIR, REAL_BINARY_TIMEOUT, Service, free_port, otelcol, wait_until
from _otlp_receiver import OtlpGrpcReceiver, ReceivedSpan
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from llm_telemetry import attributes as a
from llm_telemetry.cli import build_parser

pytestmark = REAL_BINARY_TIMEOUT
CLI = Path(sys.executable).parent / "llm-telemetry"
GATEWAY_REASON = "needs the llm-telemetry collector gateway (issue 7, section 2): `llm-telemetry collector` is not available yet"


@pytest.fixture(scope="module")
def gateway_cli() -> str:
    subcommands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    if "collector" not in subcommands.choices:
        pytest.skip(GATEWAY_REASON)
    assert "--upstream" in subcommands.choices["collector"].format_help()
    return str(CLI)


class Gateway:
    """One ``llm-telemetry collector`` forwarding to its own receiver; restartable on the same ports."""

    def __init__(self, cli: str, name: str, tmp_path: Path, env: dict[str, str] | None = None) -> None:
        self.name, self.grpc, self.http = name, free_port(), free_port()
        self.receiver = OtlpGrpcReceiver()
        self._args = [cli, "collector", "--listen-grpc", f"127.0.0.1:{self.grpc}", "--listen-http", f"127.0.0.1:{self.http}"]
        self._tmp_path, self._env = tmp_path, env or {}
        self.service: Service | None = None

    def start(self) -> None:
        self.service = Service(self.name, [*self._args, "--upstream", self.receiver.endpoint], self._tmp_path,
                                ports=[self.grpc], env=self._env).__enter__()

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()


@pytest.fixture
def gateways(gateway_cli: str, tmp_path: Path) -> Iterator[list[Gateway]]:
    pair = [Gateway(gateway_cli, f"gateway-{n}", tmp_path, {"LLM_TELEMETRY_BUDGET_USER_HOURLY_USD": "0.001"}) for n in (1, 2)]
    for gateway in pair:
        gateway.receiver.__enter__()
        gateway.start()
    yield pair
    for gateway in pair:
        gateway.stop()
        gateway.receiver.__exit__(None, None, None)


def balancer(otelcol_bin: str, tmp_path: Path, gateways: list[Gateway], by_user: bool = False) -> tuple[Service, int]:
    grpc, http, telemetry = free_port(), free_port(), free_port()
    hostnames = [f"127.0.0.1:{g.grpc}" for g in gateways]
    traces_exporter: dict[str, object] = {"resolver": {"static": {"hostnames": hostnames}}}
    if by_user:
        traces_exporter.update(routing_key="attributes", routing_attributes=[a.USER_ID])
    overlay = {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{grpc}"}, "http": {"endpoint": f"127.0.0.1:{http}"}}}},
        "exporters": {"loadbalancing/traces": traces_exporter,
                      "loadbalancing/metrics": {"resolver": {"static": {"hostnames": hostnames}}}},
        # Self-metrics on a free port: otelcol_exporter_send_failed_* count what the Collector dropped.
        "service": {"telemetry": {"metrics": {"level": "detailed", "readers": [
            {"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": telemetry}}}}]}}},
    }
    return otelcol(otelcol_bin, tmp_path, CONFIG_DIR / "loadbalancing.yaml", overlay, name="balancer", ports=[grpc]), grpc


def send_traces(endpoint: int, n: int, users: int = 5) -> set[str]:
    """``n`` traces of a root span and two GenAI CLIENT spans; root and children leave in separate requests."""
    provider = TracerProvider(resource=Resource.create({"service.name": "scaleout-app"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{endpoint}", insecure=True)))
    tracer = provider.get_tracer("scaleout")
    trace_ids = set()
    for i in range(n):
        user = f"user-{i % users}"
        with tracer.start_as_current_span("handle request", attributes={a.USER_ID: user}) as root:
            trace_ids.add(format(root.get_span_context().trace_id, "032x"))
            for _ in range(2):
                with tracer.start_as_current_span("chat gpt-4o-mini", kind=trace.SpanKind.CLIENT, attributes={
                    a.OPERATION_NAME: "chat", a.PROVIDER_NAME: "openai", a.REQUEST_MODEL: "gpt-4o-mini",
                    a.USAGE_INPUT_TOKENS: 1000, a.USAGE_OUTPUT_TOKENS: 200, a.USER_ID: user,
                }):
                    pass
    provider.shutdown()
    return trace_ids


def landed(gateways: list[Gateway]) -> dict[str, set[str]]:
    """trace id -> names of the gateways its spans went through."""
    where: dict[str, set[str]] = {}
    for gateway in gateways:
        for span in gateway.receiver.spans():
            where.setdefault(span.span.trace_id.hex(), set()).add(gateway.name)
    return where


def all_spans(gateways: list[Gateway]) -> list[tuple[str, ReceivedSpan]]:
    return [(g.name, s) for g in gateways for s in g.receiver.spans()]


def test_traces_land_whole_on_one_gateway(gateways: list[Gateway], otelcol_bin: str, tmp_path: Path) -> None:
    service, port = balancer(otelcol_bin, tmp_path, gateways)
    with service:
        sent = send_traces(port, 40)
        wait_until(lambda: len(all_spans(gateways)) >= 3 * len(sent), timeout=60, what="every span at a gateway's upstream")
    where = landed(gateways)
    assert set(where) == sent
    assert all(len(names) == 1 for names in where.values()), {t: n for t, n in where.items() if len(n) > 1}
    assert {name for names in where.values() for name in names} == {"gateway-1", "gateway-2"}


def test_routing_by_user_keeps_each_budget_on_one_gateway(gateways: list[Gateway], otelcol_bin: str, tmp_path: Path) -> None:
    service, port = balancer(otelcol_bin, tmp_path, gateways, by_user=True)
    with service:
        sent = send_traces(port, 30, users=5)
        wait_until(lambda: len(all_spans(gateways)) >= 3 * len(sent), timeout=60, what="every span at a gateway's upstream")
    by_user: dict[str, set[str]] = {}
    crossings: dict[str, int] = {}
    for name, span in all_spans(gateways):
        user = span.attributes.get(a.USER_ID)
        by_user.setdefault(user, set()).add(name)
        crossings[user] = crossings.get(user, 0) + sum(e.name == a.EVENT_BUDGET_CROSSED for e in span.span.events)
    assert all(len(names) == 1 for names in by_user.values()), by_user
    # Each user spends 6 x $0.00027 = $0.0016 against a $0.001 hourly limit: the limit is crossed once per
    # user (warning and exceeded levels, if the gateway reports both, on the same gateway).
    # TODO(gateway): adjust to how the gateway reports crossings (event per level, or a metric).
    assert all(crossings[user] >= 1 for user in by_user), crossings


def test_stopping_a_gateway_mid_run_loses_nothing_uncounted(gateways: list[Gateway], otelcol_bin: str, tmp_path: Path) -> None:
    service, port = balancer(otelcol_bin, tmp_path, gateways)
    with service:
        sent = send_traces(port, 20)
        gateways[1].stop()
        sent |= send_traces(port, 20)
        time.sleep(2)
        gateways[1].start()  # the Collector's retry queue delivers what waited for it
        sent |= send_traces(port, 20)
        wait_until(lambda: set(landed(gateways)) >= sent, timeout=120, what="every trace at a gateway's upstream")
    where = landed(gateways)
    assert set(where) >= sent
    # TODO(gateway): if the gateway drops on SIGTERM instead of flushing, compare against its dropped counter
    # (self-metrics) and the Collector's otelcol_exporter_send_failed_spans instead of requiring every trace.
