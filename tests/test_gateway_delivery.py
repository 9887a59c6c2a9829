"""Delivery: an upstream outage loses nothing the queue can hold, overflow is refused and counted, spill survives a
restart, the upstream's retry hints and refusals are honoured, large requests are split.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from _gateway_helpers import grpc_export, raw_trace_request, running_gateway
from _otlp_receiver import OtlpGrpcReceiver, unused_port
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

from llm_telemetry.config import ConfigError
from llm_telemetry.exporters.gateway import Gateway, GatewayConfig
from llm_telemetry.exporters.gateway.stats import DROP_QUEUE_FULL, DROP_UPSTREAM_REJECTED

KIB = 1024


def _request(batch: int, spans: int = 10, pad: int = 0) -> bytes:
    """``spans`` spans with trace ids unique to ``batch`` (so duplicates would show)."""
    request = raw_trace_request([{"batch": batch, "index": i, "pad": "p" * pad} for i in range(spans)])
    for index, span in enumerate(request.resource_spans[0].scope_spans[0].spans):
        span.trace_id = (batch * 1000 + index + 1).to_bytes(16, "big")
    return request.SerializeToString()


def _wait(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_an_upstream_outage_loses_nothing_within_the_queue() -> None:
    port = unused_port()
    with running_gateway(f"http://127.0.0.1:{port}", stop_timeout_s=1) as gateway:
        address = gateway.addresses()["grpc"]
        for batch in range(20):
            assert grpc_export(address, "traces", _request(batch))[0] == grpc.StatusCode.OK
        assert _wait(lambda: gateway.sender.consecutive_failures >= 2)
        health = gateway.health()[1]
        assert health["status"] == "degraded" and health["queue"]["memory_bytes"] > 0
        assert "UNAVAILABLE" in health["upstream"]["last_error"]
        time.sleep(1.5)  # down "for a while": several failed attempts with backoff
        with OtlpGrpcReceiver(port=port) as upstream:
            spans = upstream.wait_for_spans(200, timeout=30)
            assert len(spans) == 200
            assert len({span.span.trace_id for span in spans}) == 200, "each span exactly once"
            assert _wait(lambda: gateway.health()[1]["status"] == "ok")
        counts = gateway.health()[1]["counts"]
        assert counts["exported"]["traces"] == 200 and counts["dropped"] == {}


def test_overflow_is_refused_with_a_retry_hint_and_counted_and_the_rest_arrives() -> None:
    port = unused_port()
    payload = _request(0, spans=4, pad=4 * KIB)  # ~16 kB per request
    with running_gateway(f"http://127.0.0.1:{port}", max_request_bytes=64 * KIB, queue_max_bytes=128 * KIB, stop_timeout_s=1) as gateway:
        address = gateway.addresses()["grpc"]
        accepted = refused = 0
        trailing: dict[str, bytes] = {}
        for batch in range(12):
            code, _, trailing_now = grpc_export(address, "traces", _request(batch, spans=4, pad=4 * KIB))
            if code == grpc.StatusCode.OK:
                accepted += 1
            else:
                assert code == grpc.StatusCode.UNAVAILABLE
                refused += 1
                trailing = trailing_now
        assert accepted >= 4 and refused >= 1, (accepted, refused)
        status = status_pb2.Status()
        status.ParseFromString(trailing["grpc-status-details-bin"])
        info = error_details_pb2.RetryInfo()
        assert status.details[0].Unpack(info) and info.retry_delay.seconds == 5
        http = requests.post(f"http://{gateway.addresses()['http']}/v1/traces", data=payload,
                             headers={"Content-Type": "application/x-protobuf"}, timeout=10)
        assert http.status_code == 503 and http.headers["Retry-After"] == "5"
        health_status, health = gateway.health()
        assert health_status == 503 and health["status"] == "full"
        assert health["counts"]["refused"] == {"queue_full": refused + 1}
        assert health["counts"]["dropped"] == {DROP_QUEUE_FULL: 4 * (refused + 1)}
        assert health["queue"]["memory_bytes"] <= 128 * KIB

        with OtlpGrpcReceiver(port=port) as upstream:
            spans = upstream.wait_for_spans(4 * accepted, timeout=30)
            assert len(spans) == 4 * accepted
            assert _wait(lambda: gateway.queue.pending_requests() == 0)


def test_spill_directory_keeps_the_queue_across_a_restart(tmp_path: Path) -> None:
    port = unused_port()
    spill = tmp_path / "spill"
    options: dict[str, Any] = {"max_request_bytes": 64 * KIB, "queue_max_bytes": 128 * KIB, "spill_dir": spill,
                               "spill_max_bytes": 4096 * KIB}
    with running_gateway(f"http://127.0.0.1:{port}", stop_timeout_s=0.5, **options) as first:
        address = first.addresses()["grpc"]
        for batch in range(30):  # ~480 kB: well past the memory bound, all kept on disk
            assert grpc_export(address, "traces", _request(batch, spans=4, pad=4 * KIB))[0] == grpc.StatusCode.OK
        health = first.health()[1]["queue"]
        assert health["disk_bytes"] > 0 and health["memory_bytes"] <= 128 * KIB
        with pytest.raises(ConfigError, match="in use by another llm-telemetry collector"):
            Gateway(GatewayConfig(listen_grpc="127.0.0.1:0", listen_http=None, spill_dir=spill))
    assert len(list(spill.glob("*-traces-4.otlp"))) == 30, "every request of spans is a file (the gateway's metrics too)"
    assert first.health()[1]["counts"]["dropped"] == {}, "at shutdown memory went to disk, nothing was lost"

    with OtlpGrpcReceiver(port=port) as upstream, running_gateway(f"http://127.0.0.1:{port}", **options):
        spans = upstream.wait_for_spans(120, timeout=30)
        assert len(spans) == 120 and len({s.span.trace_id for s in spans}) == 120
        assert _wait(lambda: not list(spill.glob("*.otlp")))
        assert "llm_telemetry.gateway.received" in upstream.metric_names(), "the first run's own metrics, spilled too"


def test_large_requests_are_split_to_fit_the_upstream() -> None:
    with OtlpGrpcReceiver() as upstream, running_gateway(upstream.endpoint, batch_max_bytes=64 * KIB) as gateway:
        big = _request(7, spans=100, pad=2 * KIB)  # ~210 kB
        assert grpc_export(gateway.addresses()["grpc"], "traces", big)[0] == grpc.StatusCode.OK
        spans = upstream.wait_for_spans(100)
        assert len(spans) == 100 and all(span.resource["service.name"] == "other-language" for span in spans)
        sizes = [request.ByteSize() for request in upstream._store.trace_requests]
        assert len(sizes) >= 4 and max(sizes) <= 64 * KIB + 4 * KIB


# --- upstreams that answer what the test tells them ----------------------------------------------------------

@contextmanager
def scripted_grpc_upstream(answers: list[Callable[[grpc.ServicerContext], bytes]]) -> Iterator[list[bytes]]:
    """A gRPC trace upstream answering each call with the next scripted answer (the last one repeats).

    Yields the list of received requests, whose element 0 is the upstream's endpoint (bytes).
    """
    received: list[bytes] = []

    def export(request: bytes, context: grpc.ServicerContext) -> bytes:
        received.append(request)
        return answers[min(len(received) - 1, len(answers)) - 1](context)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.unary_unary_rpc_method_handler(export)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService", {"Export": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        received.append(f"http://127.0.0.1:{port}".encode())  # element 0: the endpoint
        yield received
    finally:
        server.stop(None)


def _ok(context: grpc.ServicerContext) -> bytes:
    return b""


def _exhausted_with_retry_info(context: grpc.ServicerContext) -> bytes:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(nanos=200_000_000)))
    status = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message="slow down", details=[detail])
    context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")
    return b""


def _invalid(context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no thanks")
    return b""


def _partial(context: grpc.ServicerContext) -> bytes:
    response = ExportTraceServiceResponse()
    response.partial_success.rejected_spans = 3
    response.partial_success.error_message = "3 spans too old"
    return response.SerializeToString()


def test_retry_info_is_honoured_and_permanent_refusals_are_counted() -> None:
    answers = [_exhausted_with_retry_info, _exhausted_with_retry_info, _ok]
    with scripted_grpc_upstream(answers) as calls, running_gateway(calls[0].decode()) as gateway:
        assert grpc_export(gateway.addresses()["grpc"], "traces", _request(1))[0] == grpc.StatusCode.OK
        assert _wait(lambda: gateway.stats.exported["traces"] == 10)
        assert len(calls) - 1 == 3 and calls[1] == calls[3], "the same batch, retried after the server's delay"
    with scripted_grpc_upstream([_invalid]) as calls, running_gateway(calls[0].decode()) as gateway:
        assert grpc_export(gateway.addresses()["grpc"], "traces", _request(1))[0] == grpc.StatusCode.OK
        assert _wait(lambda: gateway.stats.dropped_counts().get(DROP_UPSTREAM_REJECTED) == 10)
        assert len(calls) - 1 == 1, "a permanent refusal is not retried"
    with scripted_grpc_upstream([_partial]) as calls, running_gateway(calls[0].decode()) as gateway:
        assert grpc_export(gateway.addresses()["grpc"], "traces", _request(1))[0] == grpc.StatusCode.OK
        assert _wait(lambda: gateway.stats.dropped_counts().get(DROP_UPSTREAM_REJECTED) == 3)
        assert gateway.stats.exported["traces"] == 7


def test_http_upstream_retry_after_is_honoured() -> None:
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path != "/otlp/v1/traces":  # the gateway's own metrics at shutdown
                self.send_response(200 if self.path == "/otlp/v1/metrics" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            assert self.headers["X-Tenant"] == "t1"
            bodies.append(body)
            first = len(bodies) == 1
            self.send_response(503 if first else 200)
            if first:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        upstream = f"http://127.0.0.1:{server.server_address[1]}/otlp"
        with running_gateway(upstream, upstream_protocol=None, upstream_headers={"X-Tenant": "t1"}) as gateway:
            assert gateway.upstream.description.startswith("OTLP/HTTP")
            started = time.monotonic()
            assert grpc_export(gateway.addresses()["grpc"], "traces", _request(2))[0] == grpc.StatusCode.OK
            assert _wait(lambda: gateway.stats.exported["traces"] == 10)
            assert time.monotonic() - started >= 0.9, "waited as the upstream asked"
            assert len(bodies) == 2 and bodies[0] == bodies[1]
            request = ExportTraceServiceRequest()
            request.ParseFromString(bodies[1])
            assert len(request.resource_spans[0].scope_spans[0].spans) == 10
    finally:
        server.shutdown()
        server.server_close()
