"""The OTLP/HTTP receiver (protobuf and JSON, gzip/deflate) and the ``GET /health`` endpoint.

Statuses follow the OTLP/HTTP spec: 200 with an ``Export*ServiceResponse``; 400 with a
``google.rpc.Status`` for a body that does not parse; 413 for one above ``--max-request-bytes`` (checked
on ``Content-Length`` before reading, and again while decompressing, so a small gzip bomb is refused
without being inflated); 415 for another content type or encoding; 401 without the bearer token; 503
with ``Retry-After`` when the queue is full or the gateway is stopping. A refused request's connection is
closed when its body was not read, so a keep-alive stream never desynchronizes.

``/health`` needs no token (probes) and shows only counts, never telemetry.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from google.rpc import status_pb2

from llm_telemetry.config import ConfigError
from llm_telemetry.exporters.gateway import otlp_json
from llm_telemetry.exporters.gateway.options import parse_address
from llm_telemetry.exporters.gateway.otlp import BY_PATH
from llm_telemetry.exporters.gateway.stats import REFUSED_MALFORMED, REFUSED_MEDIA_TYPE, REFUSED_OVERSIZED, REFUSED_UNAUTHENTICATED

if TYPE_CHECKING:
    from llm_telemetry.exporters.gateway.gateway import Gateway

logger = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_STATUS = {"malformed": 400, "oversized": 413, "queue_full": 503, "shutting_down": 503, "internal_error": 500}
_GRPC_CODE = {400: 3, 401: 16, 413: 8, 415: 3, 500: 13, 503: 14}  # google.rpc.Code for the Status body
_IDLE_TIMEOUT_S = 60.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class HttpReceiver:
    """OTLP/HTTP on ``address`` (``otlp=True``) or the health endpoint alone (``otlp=False``)."""

    def __init__(self, gateway: Gateway, address: str, *, otlp: bool) -> None:
        self.kind = "http" if otlp else "health"
        host, port = parse_address(address, "--listen-http" if otlp else "--listen-health")
        handler = _handler_class(gateway, otlp)
        try:
            self._server = _Server((host, port), handler)
        except OSError as exc:
            flag = "--listen-http" if otlp else "--listen-health"
            raise ConfigError(f"{flag} {address!r}: cannot listen there ({exc.strerror or exc})") from None
        config = gateway.config
        if otlp and config.tls_cert is not None and config.tls_key is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
            # The handshake runs on the connection's own thread (first read), not in the accept loop.
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True, do_handshake_on_connect=False)
        self.address = f"{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"llm-telemetry-gateway-{self.kind}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, grace_s: float) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def _handler_class(gateway: Gateway, otlp: bool) -> type[BaseHTTPRequestHandler]:
    max_bytes = gateway.config.max_request_bytes

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = _IDLE_TIMEOUT_S
        server_version = "llm-telemetry-gateway"

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0].rstrip("/") == "/health":
                status, body = gateway.health()
                self._send(status, json.dumps(body, indent=2).encode(), JSON)
            else:
                self._send(404, b"not found: POST /v1/traces, /v1/metrics, /v1/logs; GET /health\n", "text/plain", close=False)

        def do_POST(self) -> None:
            spec = BY_PATH.get(self.path.split("?", 1)[0].rstrip("/")) if otlp else None
            if spec is None:
                self._error(404, "unknown path: OTLP/HTTP takes POST /v1/traces, /v1/metrics, /v1/logs", close=True)
                return
            if not gateway.authorized(self.headers.get("Authorization")):
                gateway.refuse(REFUSED_UNAUTHENTICATED)
                self._error(401, "missing or wrong bearer token (header Authorization: Bearer ...)", close=True,
                            extra={"WWW-Authenticate": "Bearer"})
                return
            media = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
            if media not in (PROTOBUF, JSON) or encoding not in ("identity", "gzip", "deflate"):
                gateway.refuse(REFUSED_MEDIA_TYPE)
                self._error(415, f"unsupported Content-Type {media!r} / Content-Encoding {encoding!r}: send {PROTOBUF} or {JSON}, "
                            "identity, gzip or deflate", close=True)
                return
            body = self._read_body(encoding, media)
            if body is None:
                return
            result = gateway.ingest(spec.name, body, json=media == JSON)
            if result.verdict.value == "ok":
                response = spec.response()
                self._send(200, otlp_json.dumps(response) if media == JSON else response.SerializeToString(), media)
                return
            extra = {"Retry-After": str(int(result.retry_after_s))} if result.retry_after_s is not None else None
            self._error(_STATUS[result.verdict.value], result.message, media=media, extra=extra)

        def _read_body(self, encoding: str, media: str) -> bytes | None:
            length_text = self.headers.get("Content-Length")
            if length_text is None or not length_text.strip().isdigit():
                gateway.refuse(REFUSED_MALFORMED)
                self._error(411, "a Content-Length header is required", close=True, media=media)
                return None
            length = int(length_text)
            if length > max_bytes:
                gateway.refuse(REFUSED_OVERSIZED)
                self._error(413, f"request of {length} bytes is larger than the gateway's limit of {max_bytes} (--max-request-bytes)",
                            close=True, media=media)
                return None
            body = self.rfile.read(length)
            if len(body) < length:
                self.close_connection = True
                return None
            if encoding == "identity":
                return body
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
            try:
                data = inflater.decompress(body, max_bytes + 1)
            except zlib.error as exc:
                gateway.refuse(REFUSED_MALFORMED)
                self._error(400, f"body is not valid {encoding}: {exc}", media=media)
                return None
            if len(data) > max_bytes or inflater.unconsumed_tail:
                gateway.refuse(REFUSED_OVERSIZED)
                self._error(413, f"decompressed request is larger than the gateway's limit of {max_bytes} bytes (--max-request-bytes)",
                            media=media)
                return None
            return data

        def _error(self, status: int, message: str, *, close: bool = False, media: str = PROTOBUF,
                   extra: dict[str, str] | None = None) -> None:
            detail = status_pb2.Status(code=_GRPC_CODE.get(status, 2), message=message)
            body = otlp_json.dumps(detail) if media == JSON else detail.SerializeToString()
            self._send(status, body, JSON if media == JSON else PROTOBUF, close=close, extra=extra)

        def _send(self, status: int, body: bytes, media: str, *, close: bool = False, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("gateway http %s - %s", self.address_string(), format % args)

    return Handler
