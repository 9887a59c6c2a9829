"""Scale-out end to end: the real Collector running otelcol-loadbalancing.yaml in front of two real gateways.

The Collector (committed config, ports moved by an overlay) sends GenAI spans through its ``loadbalancing``
exporter, routed by ``user.id``, to two ``llm-telemetry collector`` processes, each forwarding to its own
OTLP receiver here, so the test sees which gateway every span went through; other spans go to a third
receiver standing in for the backend collector.

* every trace's GenAI spans land whole on one gateway, enriched, even when its spans reach the Collector in
  separate requests; its other spans reach the backend and never a gateway; both gateways get users;
* per-user budget state stays on one gateway: each user crosses their hourly budget's warning and critical
  lines exactly once, which only holds when a single gateway sees the user's whole spend;
* a gateway stopped with SIGTERM mid-run loses nothing beyond what is counted: every GenAI span sent has
  arrived enriched, or is counted by the Collector (``otelcol_exporter_send_failed_spans``: meant for the
  stopped gateway) or by the gateway (its stop report: received / exported / dropped), the stopped gateway
  delivered all it held, and its share waits in the Collector's retry queue until it is back.
"""

from __future__ import annotations

import ast
import re
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _otelcol_helpers import CONFIG_DIR, REAL_BINARY_TIMEOUT, Service, free_port, otelcol, wait_until
from _otlp_receiver import OtlpGrpcReceiver, ReceivedSpan
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from llm_telemetry import attributes as a

pytestmark = REAL_BINARY_TIMEOUT
CLI = Path(sys.executable).parent / "llm-telemetry"
CONFIG = CONFIG_DIR / "otelcol-loadbalancing.yaml"
BALANCER = "loadbalancing/genai_by_user"
USER_HOURLY_BUDGET_USD = 0.001
# gpt-4o-mini, 1000 input + 200 output tokens: $0.00015 + $0.00012. Six calls per user: the 3rd crosses the
# 80 % warning ($0.00081), the 4th the limit ($0.00108). Split over two gateways (3 + 3) neither would reach it.
CALL_USD = 0.00027
GENAI_PER_TRACE = 2


class Gateway:
    """One ``llm-telemetry collector`` forwarding to its own receiver (the test's view of what passed it)."""

    def __init__(self, name: str, tmp_path: Path) -> None:
        self.name, self.grpc, self.http = name, free_port(), free_port()
        self.receiver = OtlpGrpcReceiver().__enter__()
        # The command line collector-config/README.md gives, on loopback ports.
        self.argv = [str(CLI), "collector", "--listen-grpc", f"127.0.0.1:{self.grpc}", "--listen-http", f"127.0.0.1:{self.http}",
                     "--upstream", self.receiver.endpoint]
        env = {"LLM_TELEMETRY_BUDGET_USER_HOURLY_USD": str(USER_HOURLY_BUDGET_USD)}
        self.service = Service(name, self.argv, tmp_path, ports=[self.grpc, self.http], env=env).__enter__()

    def spans(self) -> list[ReceivedSpan]:
        return self.receiver.spans()

    def stop_report(self) -> dict[str, Any]:
        """The counts the gateway logs when it stops (received, exported by signal; dropped by reason)."""
        line = next(line for line in self.service.log().splitlines() if "llm-telemetry gateway stopped:" in line)
        return {key: ast.literal_eval(value) for key, value in re.findall(r"(received|exported|dropped) (\{[^}]*\})", line)}

    def close(self) -> None:
        self.service.stop()
        self.receiver.__exit__(None, None, None)


@dataclass
class Tier:
    gateways: list[Gateway]
    backend: OtlpGrpcReceiver
    collector: Service
    grpc: int
    telemetry: int

    def gateway_spans(self) -> list[tuple[str, ReceivedSpan]]:
        return [(g.name, s) for g in self.gateways for s in g.spans()]

    def collector_counter(self, name: str) -> int:
        """A Collector self-metric summed over the balancer's series (its per-gateway exporters included)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.telemetry}/metrics", timeout=5) as response:
            text = response.read().decode()
        pattern = rf"^{name}(?:_total)?\{{([^}}]*)\}} ([0-9.e+]+)$"
        return int(sum(float(v) for labels, v in re.findall(pattern, text, re.MULTILINE) if BALANCER in labels))


@contextmanager
def start_tier(otelcol_bin: str, tmp_path: Path, retry_s: float | None = None) -> Iterator[Tier]:
    gateways, backend = [], OtlpGrpcReceiver().__enter__()
    try:
        gateways = [Gateway(f"gateway-{n}", tmp_path) for n in (1, 2)]
        grpc, http, telemetry = free_port(), free_port(), free_port()
        retry = {"initial_interval": "200ms", "max_interval": "1s", "max_elapsed_time": f"{retry_s}s"}
        protocol: dict[str, Any] = {"otlp": {"retry_on_failure": retry}} if retry_s else {}
        overlay = {
            "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{grpc}"}, "http": {"endpoint": f"127.0.0.1:{http}"}}}},
            "processors": {"batch": {"timeout": "200ms"}},
            "exporters": {
                BALANCER: {"resolver": {"static": {"hostnames": [f"127.0.0.1:{g.grpc}" for g in gateways]}}, "protocol": protocol},
                "otlp_grpc/backend": {"endpoint": backend.endpoint.removeprefix("http://")},
            },
            # Self-metrics on a free port: otelcol_exporter_send_failed_spans counts what the Collector gave up on.
            "service": {"telemetry": {"metrics": {"level": "detailed", "readers": [
                {"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": telemetry}}}}]}}},
        }
        with otelcol(otelcol_bin, tmp_path, CONFIG, overlay, name="balancer", ports=[grpc, telemetry]) as collector:
            yield Tier(gateways, backend, collector, grpc, telemetry)
    finally:
        for gateway in gateways:
            gateway.close()
        backend.__exit__(None, None, None)


def wait_for_a_whole_hour_window() -> None:
    """Budgets use calendar hours: never let the sends straddle one (waits at most ~90 s, rarely)."""
    left = 3600 - time.time() % 3600
    if left < 90:
        time.sleep(left + 1)


def send_traces(port: int, n: int, users: int, first: int = 0) -> dict[str, str]:
    """``n`` traces of a root span and two GenAI CLIENT spans, each leaving in its own request; trace id -> user."""
    provider = TracerProvider(resource=Resource.create({"service.name": "scaleout-app"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True)))
    tracer = provider.get_tracer("scaleout")
    sent = {}
    for i in range(first, first + n):
        user = f"user-{i % users}"
        with tracer.start_as_current_span("handle request", attributes={a.USER_ID: user}) as root:
            sent[format(root.get_span_context().trace_id, "032x")] = user
            for _ in range(GENAI_PER_TRACE):
                with tracer.start_as_current_span("chat gpt-4o-mini", kind=trace.SpanKind.CLIENT, attributes={
                    a.OPERATION_NAME: "chat", a.PROVIDER_NAME: "openai", a.REQUEST_MODEL: "gpt-4o-mini",
                    a.USAGE_INPUT_TOKENS: 1000, a.USAGE_OUTPUT_TOKENS: 200, a.USER_ID: user,
                }):
                    pass
    provider.shutdown()
    return sent


USERS = 15
ROUTED_TRACES = 45  # three traces (six calls) per user; enough users that both gateways get some


@pytest.fixture(scope="module")
def routed(otelcol_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tier, dict[str, str]]]:
    with start_tier(otelcol_bin, tmp_path_factory.mktemp("scaleout-routed")) as tier:
        wait_for_a_whole_hour_window()
        sent = send_traces(tier.grpc, ROUTED_TRACES, USERS)
        wait_until(lambda: len(tier.gateway_spans()) >= GENAI_PER_TRACE * len(sent) and len(tier.backend.spans()) >= len(sent),
                   timeout=60, what="every span through a gateway or at the backend")
        time.sleep(1)  # anything extra (a duplicate, a stray span) would arrive now
        yield tier, sent


def test_every_trace_lands_whole_on_one_gateway(routed: tuple[Tier, dict[str, str]]) -> None:
    tier, sent = routed
    where: dict[str, set[str]] = {}
    per_trace: Counter[str] = Counter()
    for name, span in tier.gateway_spans():
        assert span.attributes[a.OPERATION_NAME] == "chat", f"a non-GenAI span reached {name}: {span.name}"
        assert a.COST_TOTAL_USD in span.attributes, f"{name} forwarded a GenAI span without enriching it"
        where.setdefault(span.span.trace_id.hex(), set()).add(name)
        per_trace[span.span.trace_id.hex()] += 1
    assert set(where) == set(sent)
    assert all(count == GENAI_PER_TRACE for count in per_trace.values()), per_trace
    assert all(len(names) == 1 for names in where.values()), {t: n for t, n in where.items() if len(n) > 1}
    assert {name for names in where.values() for name in names} == {"gateway-1", "gateway-2"}
    # The rest of each trace goes straight to the backend, exactly once, and no GenAI span bypasses the gateways.
    backend = tier.backend.spans()
    assert sorted(s.span.trace_id.hex() for s in backend) == sorted(sent)
    assert {s.name for s in backend} == {"handle request"}


def test_each_users_budget_is_kept_whole_on_one_gateway(routed: tuple[Tier, dict[str, str]]) -> None:
    tier, sent = routed
    gateways_of: dict[str, set[str]] = {}
    crossings: dict[str, list[tuple[str, float]]] = {}
    for name, span in tier.gateway_spans():
        user = span.attributes[a.USER_ID]
        gateways_of.setdefault(user, set()).add(name)
        for event in span.span.events:
            if event.name == a.EVENT_BUDGET_CROSSED:
                attrs = {kv.key: kv.value for kv in event.attributes}
                assert attrs[a.USER_ID].string_value == user
                crossings.setdefault(user, []).append((attrs[a.BUDGET_LEVEL].string_value, attrs[a.BUDGET_SPENT_USD].double_value))
    assert set(gateways_of) == set(sent.values()) and len(gateways_of) == USERS
    assert all(len(names) == 1 for names in gateways_of.values()), gateways_of
    # Exactly one warning (3rd call) and one critical (4th call) per user: the owning gateway saw all six calls.
    expected = [("critical", round(4 * CALL_USD, 6)), ("warning", round(3 * CALL_USD, 6))]
    got = {user: sorted((level, round(spent, 6)) for level, spent in events) for user, events in crossings.items()}
    assert got == dict.fromkeys(gateways_of, expected), got


def test_a_gateway_stopped_mid_run_loses_nothing_uncounted(otelcol_bin: str, tmp_path: Path) -> None:
    with start_tier(otelcol_bin, tmp_path) as tier:
        sent = send_traces(tier.grpc, 30, USERS)
        stopped = tier.gateways[1]
        wait_until(lambda: stopped.spans(), timeout=30, what="traffic through the gateway about to be stopped")
        assert stopped.service.stop() == 0, stopped.service.log()[-3000:]  # SIGTERM: refuse, deliver what is queued, exit
        first_run = stopped.stop_report()
        first_run_spans = len(stopped.spans())
        sent |= send_traces(tier.grpc, 30, USERS, first=30)  # the stopped gateway's share waits in the Collector's queue
        time.sleep(2)
        stopped.service.__enter__()  # the same command line, the same ports (a restarted pod)
        sent |= send_traces(tier.grpc, 15, USERS, first=60)
        genai_sent = GENAI_PER_TRACE * len(sent)

        def counts() -> tuple[int, int, int]:
            arrived = len({s.span.span_id for _, s in tier.gateway_spans()})
            failed = sum(tier.collector_counter(f"otelcol_exporter_{what}_failed_spans") for what in ("send", "enqueue"))
            dropped = sum(first_run["dropped"].values())
            return arrived, failed, dropped

        wait_until(lambda: sum(counts()) >= genai_sent, timeout=120, what=f"all {genai_sent} GenAI spans arrived or counted as dropped")
        time.sleep(1)
        arrived, failed, dropped = counts()
        report = f"sent {genai_sent}: arrived {arrived}, Collector failed {failed}, gateways dropped {dropped}"
        assert arrived + failed + dropped == genai_sent, report
        assert (failed, dropped) == (0, 0), report  # a restart within the retry window loses nothing at all
        assert {s.span.trace_id.hex() for _, s in tier.gateway_spans()} == set(sent)
        assert all(a.COST_TOTAL_USD in s.attributes for _, s in tier.gateway_spans())
        # Before exiting, the stopped gateway delivered everything it had accepted (its stop report says so).
        assert first_run["received"]["traces"] == first_run["exported"]["traces"] == first_run_spans > 0, first_run
        assert first_run["dropped"] == {}
        wait_until(lambda: len(tier.backend.spans()) >= len(sent), timeout=30, what="every root span at the backend")
