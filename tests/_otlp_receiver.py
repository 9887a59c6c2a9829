"""Real OTLP receivers for tests: gRPC and HTTP/protobuf servers that collect what exporters send.

Why real servers: the export path (protocol selection, headers, resource, retries, the backend-down
behaviour) is only tested honestly against a socket. Both receivers store the decoded
``Export*ServiceRequest`` protos and offer the same queries::

    with OtlpGrpcReceiver() as rx:           # or OtlpHttpReceiver()
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = rx.endpoint
        ... run the app ...
        spans = rx.wait_for_spans(3, timeout=10)
        assert spans[0].resource["service.name"] == "demo"
        assert "gen_ai.client.token.usage" in rx.metric_names()

``signals=("traces",)`` makes a traces-only backend like Arize Phoenix: the gRPC receiver does not
serve the other services (gRPC UNIMPLEMENTED), the HTTP one answers their paths with 405. The HTTP
receiver's ``answers`` is a queue of HTTP statuses to answer the next requests with, before accepting
normally (a backend that rejects, then recovers).

`BlackholeServer` accepts TCP connections and never answers (a hung backend); `unused_port()` gives a
port nobody listens on (a backend that is down).
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from collections.abc import Callable, Collection, Iterator
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def any_value(value: AnyValue) -> Any:
    """The Python value of an OTLP ``AnyValue``."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)


def attributes(pairs: Iterator[KeyValue] | Any) -> dict[str, Any]:
    """OTLP ``repeated KeyValue`` as a dict."""
    return {kv.key: any_value(kv.value) for kv in pairs}


@dataclass(frozen=True)
class ReceivedSpan:
    resource: dict[str, Any]
    scope: str
    span: Span

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def attributes(self) -> dict[str, Any]:
        return attributes(self.span.attributes)


@dataclass(frozen=True)
class ReceivedMetric:
    resource: dict[str, Any]
    scope: str
    metric: Metric

    @property
    def name(self) -> str:
        return self.metric.name


class _Store:
    """Thread-safe collection of received requests, shared by both receivers."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self.trace_requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metric_requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.log_requests: list[logs_service_pb2.ExportLogsServiceRequest] = []
        self.headers: list[dict[str, str]] = []

    def add(self, bucket: list[Any], request: Any, headers: dict[str, str]) -> None:
        with self._lock:
            bucket.append(request)
            self.headers.append(headers)
            self._lock.notify_all()

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            requests = list(self.trace_requests)
        out = []
        for request in requests:
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    out.extend(ReceivedSpan(resource, scope_spans.scope.name, span) for span in scope_spans.spans)
        return out

    def metrics(self) -> list[ReceivedMetric]:
        with self._lock:
            requests = list(self.metric_requests)
        out = []
        for request in requests:
            for resource_metrics in request.resource_metrics:
                resource = attributes(resource_metrics.resource.attributes)
                for scope_metrics in resource_metrics.scope_metrics:
                    out.extend(ReceivedMetric(resource, scope_metrics.scope.name, m) for m in scope_metrics.metrics)
        return out

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True


class _ReceiverBase:
    """Queries shared by the gRPC and HTTP receivers."""

    endpoint: str
    port: int

    def __init__(self) -> None:
        self._store = _Store()

    def spans(self) -> list[ReceivedSpan]:
        return self._store.spans()

    def metrics(self) -> list[ReceivedMetric]:
        return self._store.metrics()

    def metric_names(self) -> set[str]:
        return {m.name for m in self.metrics()}

    @property
    def headers(self) -> list[dict[str, str]]:
        """Request headers (gRPC metadata) of every export received, lower-case keys."""
        return list(self._store.headers)

    @property
    def log_requests(self) -> list[logs_service_pb2.ExportLogsServiceRequest]:
        return list(self._store.log_requests)

    def wait_for_spans(self, n: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        """Wait until at least ``n`` spans arrived; return them all (fewer if the timeout passed)."""
        self._store.wait_for(lambda: len(self._store.spans()) >= n, timeout)
        return self.spans()

    def wait_for_metrics(self, names: set[str], timeout: float = 10.0) -> set[str]:
        """Wait until every metric in ``names`` arrived; return the names received."""
        self._store.wait_for(lambda: names <= self.metric_names(), timeout)
        return self.metric_names()


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, store: _Store) -> None:
        self._store = store

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 (generated name)
        self._store.add(self._store.trace_requests, request, {k: v for k, v in context.invocation_metadata()})
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, store: _Store) -> None:
        self._store = store

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._store.add(self._store.metric_requests, request, {k: v for k, v in context.invocation_metadata()})
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, store: _Store) -> None:
        self._store = store

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._store.add(self._store.log_requests, request, {k: v for k, v in context.invocation_metadata()})
        return logs_service_pb2.ExportLogsServiceResponse()


class OtlpGrpcReceiver(_ReceiverBase):
    """An OTLP/gRPC collector (traces, metrics, logs) on 127.0.0.1; ``endpoint`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, port: int = 0, signals: Collection[str] = ("traces", "metrics", "logs")) -> None:
        super().__init__()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        if "traces" in signals:
            trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self._store), self._server)
        if "metrics" in signals:
            metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(self._store), self._server)
        if "logs" in signals:
            logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsService(self._store), self._server)
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> OtlpGrpcReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)


_HTTP_PATHS = {
    "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse, "trace_requests"),
    "/v1/metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest, metrics_service_pb2.ExportMetricsServiceResponse, "metric_requests",
    ),
    "/v1/logs": (logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse, "log_requests"),
}


class OtlpHttpReceiver(_ReceiverBase):
    """An OTLP/HTTP (protobuf) collector on 127.0.0.1 accepting POSTs at /v1/traces, /v1/metrics, /v1/logs."""

    def __init__(self, signals: Collection[str] = ("traces", "metrics", "logs")) -> None:
        super().__init__()
        store = self._store
        self.answers: list[int] = []
        answers = self.answers
        served = {f"/v1/{signal}" for signal in signals}

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                route = _HTTP_PATHS.get(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if route is None:
                    self._reply(404, b"")
                    return
                if self.path not in served:
                    self._reply(405, b"")
                    return
                if answers:
                    self._reply(answers.pop(0), b"")
                    return
                encoding = self.headers.get("Content-Encoding", "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                request_type, response_type, bucket = route
                request = request_type()
                request.ParseFromString(body)
                store.add(getattr(store, bucket), request, {k.lower(): v for k, v in self.headers.items()})
                self._reply(200, response_type().SerializeToString())

            def _reply(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-http-receiver", daemon=True)

    def __enter__(self) -> OtlpHttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class BlackholeServer:
    """Accepts TCP connections and never reads or answers: a hung backend. ``endpoint`` like the receivers'."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self.port = self._socket.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="otlp-blackhole", daemon=True)

    def _accept(self) -> None:
        self._socket.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)

    def __enter__(self) -> BlackholeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(1.0)
        for conn in self._held:
            conn.close()
        self._socket.close()


def unused_port() -> int:
    """A local port nobody listens on (bound and released; good enough for a 'backend down' test)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
