"""The OTLP/gRPC receiver: the three ``Export`` services, on raw bytes.

Why generic handlers on raw bytes instead of the generated servicers: with the generated ones, gRPC
parses the request before our code runs, so a malformed message ends as an uncounted ``INTERNAL``
error and the gateway cannot tell its size. Here the handler gets the bytes (already decompressed by
gRPC), and `Gateway.ingest` decides: ``INVALID_ARGUMENT`` for a message that does not parse,
``RESOURCE_EXHAUSTED`` (no retry info: retrying cannot help) for one above ``--max-request-bytes``,
``UNAVAILABLE`` with a ``RetryInfo`` delay when the queue is full or the gateway is stopping,
``UNAUTHENTICATED`` without the bearer token. gRPC's own message limit is set well above ours so that
our limit, counted, is the one senders meet; beyond that gRPC refuses by itself (same status, uncounted).
"""

from __future__ import annotations

import logging
from concurrent import futures
from functools import partial
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from llm_telemetry.config import ConfigError
from llm_telemetry.exporters.gateway.otlp import SPECS, Signal
from llm_telemetry.exporters.gateway.stats import REFUSED_UNAUTHENTICATED

if TYPE_CHECKING:
    from llm_telemetry.exporters.gateway.gateway import Gateway, IngestResult

logger = logging.getLogger(__name__)

_CODES = {
    "malformed": grpc.StatusCode.INVALID_ARGUMENT,
    "oversized": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "queue_full": grpc.StatusCode.UNAVAILABLE,
    "shutting_down": grpc.StatusCode.UNAVAILABLE,
    "internal_error": grpc.StatusCode.INTERNAL,
}


class GrpcReceiver:
    kind = "grpc"

    def __init__(self, gateway: Gateway, address: str) -> None:
        config = gateway.config
        self._gateway = gateway
        limit = max(2 * config.max_request_bytes, config.max_request_bytes + 1024 * 1024)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=config.grpc_workers, thread_name_prefix="llm-telemetry-gateway-grpc"),
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.so_reuseport", 0),  # a second gateway on the same port must fail, not share it
            ],
            maximum_concurrent_rpcs=config.grpc_workers * 32,
        )
        for signal, spec in SPECS.items():
            handler = grpc.unary_unary_rpc_method_handler(partial(self._export, signal))  # no (de)serializers: raw bytes
            self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(spec.grpc_service, {"Export": handler}),))
        host = address.rpartition(":")[0]
        try:
            if config.tls_cert is not None and config.tls_key is not None:
                credentials = grpc.ssl_server_credentials([(config.tls_key.read_bytes(), config.tls_cert.read_bytes())])
                port = self._server.add_secure_port(address, credentials)
            else:
                port = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            raise ConfigError(f"--listen-grpc {address!r}: cannot listen there ({exc}); is another process using the port?") from None
        if not port:
            raise ConfigError(f"--listen-grpc {address!r}: cannot listen there; is another process using the port?")
        self.address = f"{host}:{port}"

    def start(self) -> None:
        self._server.start()

    def stop(self, grace_s: float) -> None:
        """Refuse new RPCs; let running ones finish for up to ``grace_s``."""
        self._server.stop(grace=grace_s).wait(grace_s + 1.0)

    def _export(self, signal: Signal, request: bytes, context: grpc.ServicerContext) -> bytes:
        gateway = self._gateway
        if gateway.auth_required:
            header = next((value for key, value in context.invocation_metadata() if key == "authorization"), None)
            if not gateway.authorized(header):
                gateway.refuse(REFUSED_UNAUTHENTICATED)
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token (metadata authorization: Bearer ...)")
        result = gateway.ingest(signal, request)
        if result.verdict.value == "ok":
            return b""  # an empty Export*ServiceResponse: everything accepted
        self._abort(context, result)
        return b""  # not reached: abort raises

    @staticmethod
    def _abort(context: grpc.ServicerContext, result: IngestResult) -> Any:
        code = _CODES[result.verdict.value]
        if result.retry_after_s is not None:
            seconds = int(result.retry_after_s)
            info = error_details_pb2.RetryInfo(
                retry_delay=duration_pb2.Duration(seconds=seconds, nanos=int((result.retry_after_s - seconds) * 1e9))
            )
            detail = any_pb2.Any()
            detail.Pack(info)
            status = status_pb2.Status(code=code.value[0], message=result.message, details=[detail])
            context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
        context.abort(code, result.message)
