"""Scale-out: the real Collector's ``loadbalancing`` exporter (loadbalancing.yaml) in front of two backends.

Backends are either plain OTLP receivers (runs now: it tests the Collector half -- routing, whole traces,
retry across a backend restart) or two ``llm-telemetry collector`` gateways, each forwarding to its own
receiver here, so the test sees which gateway every span went through (skipped until the gateway exists,
issue 7 section 2: ``llm-telemetry collector`` with ``--listen-grpc``, ``--listen-http``, ``--upstream``).

* routing by trace id: every trace lands whole on one backend, even when its spans reach the Collector in
  separate requests, and both backends get traffic;
* routing by ``user.id`` (the variant commented in loadbalancing.yaml): all of a user's calls meet on one
  backend; with gateways, that gateway's per-user budget sees all of the user's spend;
* a backend stopped mid-run and started again on the same port: nothing is lost, the Collector's retry
  queue holds the spans meant for it.
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


class ReceiverBackend:
    """A plain OTLP receiver standing in for a gateway; restartable on the same port."""

    def __init__(self, name: str) -> None:
        self.name, self.grpc = name, free_port()
        self._receivers: list[OtlpGrpcReceiver] = []

    def start(self) -> None:
        self._receivers.append(OtlpGrpcReceiver(port=self.grpc).__enter__())

    def stop(self) -> None:
        if self._receivers:
            self._receivers[-1].__exit__(None, None, None)

    def spans(self) -> list[ReceivedSpan]:
        return [span for receiver in self._receivers for span in receiver.spans()]

    def close(self) -> None:
        self.stop()


class Gateway:
    """One ``llm-telemetry collector`` forwarding to its own receiver; restartable on the same ports."""

    def __init__(self, cli: str, name: str, tmp_path: Path, env: dict[str, str] | None = None) -> None:
        self.name, self.grpc, self.http = name, free_port(), free_port()
        self.receiver = OtlpGrpcReceiver().__enter__()
        self._args = [cli, "collector", "--listen-grpc", f"127.0.0.1:{self.grpc}", "--listen-http", f"127.0.0.1:{self.http}",
                      "--upstream", self.receiver.endpoint]
        self._tmp_path, self._env = tmp_path, env or {}
        self._runs = 0
        self.service: Service | None = None

    def start(self) -> None:
        self._runs += 1
        self.service = Service(f"{self.name}-{self._runs}", self._args, self._tmp_path, ports=[self.grpc], env=self._env)
        self.service.__enter__()

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()

    def spans(self) -> list[ReceivedSpan]:
        return self.receiver.spans()

    def close(self) -> None:
        self.stop()
        self.receiver.__exit__(None, None, None)


Backend = ReceiverBackend | Gateway
USER_HOURLY_BUDGET_USD = 0.001


@pytest.fixture(params=["receivers", "gateways"])
def backends(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Backend]]:
    pair: list[Backend]
    if request.param == "gateways":
        cli = request.getfixturevalue("gateway_cli")
        env = {"LLM_TELEMETRY_BUDGET_USER_HOURLY_USD": str(USER_HOURLY_BUDGET_USD)}
        pair = [Gateway(cli, f"gateway-{n}", tmp_path, env) for n in (1, 2)]
    else:
        pair = [ReceiverBackend(f"receiver-{n}") for n in (1, 2)]
    try:
        for backend in pair:
            backend.start()
        yield pair
    finally:
        for backend in pair:
            backend.close()


def balancer(otelcol_bin: str, tmp_path: Path, backends: list[Backend], by_user: bool = False) -> tuple[Service, int]:
    grpc, http, telemetry = free_port(), free_port(), free_port()
    hostnames = [f"127.0.0.1:{b.grpc}" for b in backends]
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


def landed(backends: list[Backend]) -> dict[str, set[str]]:
    """trace id -> names of the backends its spans went through."""
    where: dict[str, set[str]] = {}
    for backend in backends:
        for span in backend.spans():
            where.setdefault(span.span.trace_id.hex(), set()).add(backend.name)
    return where


def all_spans(backends: list[Backend]) -> list[tuple[str, ReceivedSpan]]:
    return [(b.name, s) for b in backends for s in b.spans()]


def test_traces_land_whole_on_one_backend(backends: list[Backend], otelcol_bin: str, tmp_path: Path) -> None:
    service, port = balancer(otelcol_bin, tmp_path, backends)
    with service:
        sent = send_traces(port, 40)
        wait_until(lambda: len(all_spans(backends)) >= 3 * len(sent), timeout=60, what="every span at a backend")
    where = landed(backends)
    assert set(where) == sent
    assert all(len(names) == 1 for names in where.values()), {t: n for t, n in where.items() if len(n) > 1}
    assert {name for names in where.values() for name in names} == {b.name for b in backends}


def test_routing_by_user_keeps_each_user_on_one_backend(backends: list[Backend], otelcol_bin: str, tmp_path: Path) -> None:
    service, port = balancer(otelcol_bin, tmp_path, backends, by_user=True)
    with service:
        sent = send_traces(port, 45, users=15)  # enough users that both backends get some, whatever their ports
        wait_until(lambda: len(all_spans(backends)) >= 3 * len(sent), timeout=60, what="every span at a backend")
    by_user: dict[str, set[str]] = {}
    crossings: dict[str, int] = {}
    for name, span in all_spans(backends):
        user = span.attributes[a.USER_ID]
        by_user.setdefault(user, set()).add(name)
        crossings[user] = crossings.get(user, 0) + sum(e.name == a.EVENT_BUDGET_CROSSED for e in span.span.events)
    assert len(by_user) == 15
    assert all(len(names) == 1 for names in by_user.values()), by_user
    assert len({name for names in by_user.values() for name in names}) == 2, by_user  # both backends used
    if isinstance(backends[0], Gateway):
        # Each user spends 6 x $0.00027 = $0.0016 against a $0.001 hourly limit: with all of a user's spans
        # on one gateway the budget sees the whole spend and crosses.
        # TODO(gateway): tighten to the exact count once the gateway's crossing report is known (one event
        # per level crossed, or a metric).
        assert all(crossings[user] >= 1 for user in by_user), crossings


def test_a_backend_restarted_mid_run_loses_nothing(backends: list[Backend], otelcol_bin: str, tmp_path: Path) -> None:
    service, port = balancer(otelcol_bin, tmp_path, backends)
    with service:
        sent = send_traces(port, 20)
        backends[1].stop()
        while_down = send_traces(port, 20)  # about half of these wait in the Collector's retry queue
        time.sleep(2)
        backends[1].start()
        sent |= while_down | send_traces(port, 20)
        wait_until(lambda: set(landed(backends)) >= sent, timeout=120, what="every trace at a backend after the restart")
    where = landed(backends)
    assert set(where) == sent
    assert all(len(names) == 1 for names in where.values())
    assert any(where[t] == {backends[1].name} for t in while_down), "no trace waited for the stopped backend"
    # TODO(gateway): a gateway stopped with SIGTERM flushes what it holds (issue 7); if it drops instead,
    # compare against its dropped counter (self-metrics) plus the Collector's otelcol_exporter_send_failed_spans.
