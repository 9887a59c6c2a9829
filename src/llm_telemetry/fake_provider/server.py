"""`FakeProvider`: a threaded HTTP/1.1 server on loopback that answers like OpenAI and Anthropic.

Streams use chunked transfer-encoding with one chunk per SSE event written straight to the socket
(Nagle off), so the client sees each event when the Behaviour says, and an abrupt cut (connection
closed without the terminating chunk) is a protocol error the SDKs surface mid-iteration — exactly
what a provider dropping a stream looks like. All waits are measured from the moment the request body
was read and are interruptible, so `stop()` never hangs on a long injected delay.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType, TracebackType
from typing import Any

from llm_telemetry.fake_provider import anthropic_wire, openai_wire
from llm_telemetry.fake_provider.behaviour import BEHAVIOUR_HEADER, Behaviour
from llm_telemetry.fake_provider.replies import JSON_CONTENT_TYPE, SSE_CONTENT_TYPE, JsonReply, StreamReply, new_id
from llm_telemetry.fake_provider.responders import respond

logger = logging.getLogger(__name__)

_ROUTES: dict[str, tuple[ModuleType, Any]] = {
    "/v1/chat/completions": (openai_wire, openai_wire.chat_completions),
    "/v1/responses": (openai_wire, openai_wire.responses),
    "/v1/embeddings": (openai_wire, openai_wire.embeddings),
    "/v1/messages": (anthropic_wire, anthropic_wire.messages),
}


@dataclass
class RecordedRequest:
    """One request as the provider saw it (header names lower-case; ``json`` is None if the body was not JSON)."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    request_id: str
    received_at: float
    """``time.monotonic()`` when the body had been read: the origin of every injected delay."""
    behaviour: Behaviour | None = None


class _StoppingError(Exception):
    """The provider is shutting down: abandon the request being served."""


class FakeProvider:
    """Local OpenAI + Anthropic look-alike. Behaviour per request: header > queue (FIFO) > default."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, default: Behaviour | None = None) -> None:
        self.host = host
        self._requested_port = port
        self._default = default or Behaviour()
        self._queue: collections.deque[Behaviour] = collections.deque()
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> FakeProvider:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-provider", daemon=True
        )
        self._thread.start()
        logger.debug("fake provider listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # --- addresses ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeProvider is not started: call start() or use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.base_url

    # --- behaviour and records ---------------------------------------------------------------------

    def set_default(self, b: Behaviour) -> None:
        with self._lock:
            self._default = b

    def enqueue(self, *b: Behaviour) -> None:
        with self._lock:
            self._queue.extend(b)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self._default = Behaviour()

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            if not self.requests:
                raise LookupError("the fake provider has received no request")
            return self.requests[-1]

    def _next_behaviour(self) -> Behaviour:
        with self._lock:
            return self._queue.popleft() if self._queue else self._default

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(record)

    def _wait_until(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining > 0 and self._stopping.wait(remaining):
            raise _StoppingError
        if self._stopping.is_set():
            raise _StoppingError


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 256  # benchmarks open many connections at once; the default backlog of 5 drops SYNs

    def __init__(self, address: tuple[str, int], provider: FakeProvider) -> None:
        self.provider = provider
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN (a DNS lookup); loopback needs none of that.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def register(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._connections[conn] = threading.current_thread()
            stopping = self.provider._stopping.is_set()
        if stopping:
            _shutdown_socket(conn)

    def unregister(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._connections.pop(conn, None)

    def close_connections(self) -> None:
        """Wake handler threads idling on keep-alive connections, then wait for them to finish."""
        with self._conn_lock:
            live = list(self._connections.items())
        for conn, _ in live:
            _shutdown_socket(conn)
        for _, thread in live:
            if thread is not threading.current_thread():
                thread.join(timeout=5)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("fake provider: error serving %s", client_address, exc_info=True)


def _shutdown_socket(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake provider: " + format, *args)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] in ("/health", "/healthz"):
            self._send_json(JsonReply(200, {"status": "ok"}), new_id("req_"))
        else:
            self._send_json(JsonReply(404, openai_wire.error_body(404, f"no route for GET {self.path}")), new_id("req_"))

    def do_POST(self) -> None:
        provider = self.server.provider
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        t0 = time.monotonic()
        path = self.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        request_id = new_id("req_")
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest("POST", path, headers, body, request_id, t0)
        wire, build = _ROUTES.get(path, (anthropic_wire if "messages" in path else openai_wire, None))

        override = headers.get(BEHAVIOUR_HEADER)
        try:
            b = Behaviour.from_json_text(override, source=f"header {BEHAVIOUR_HEADER}") if override else provider._next_behaviour()
        except ValueError as exc:
            provider._record(record)
            self._send_json(JsonReply(400, wire.error_body(400, str(exc))), request_id)
            return
        record.behaviour = b
        provider._record(record)

        try:
            if build is None:
                reply: JsonReply | StreamReply = JsonReply(404, wire.error_body(404, f"no route for POST {path}"))
            elif not isinstance(body, dict):
                reply = JsonReply(400, wire.error_body(400, "request body must be a JSON object"))
            elif b.error_status is not None:
                reply = JsonReply(b.error_status, wire.error_body(b.error_status, b.error_message))
            else:
                if b.responder is not None:
                    b = dataclasses.replace(b, text=respond(b.responder, body), chunks=None)
                reply = build(body, b)
            if isinstance(reply, StreamReply):
                self._serve_stream(reply, b, t0, request_id)
            else:
                self._serve_json(reply, b, t0, request_id, answered=build is not None and reply.status < 400)
        except _StoppingError:
            self._abort()
        except (BrokenPipeError, ConnectionResetError) as exc:
            logger.debug("fake provider: client went away during %s: %s", path, exc)
            self.close_connection = True

    # --- sending -----------------------------------------------------------------------------------

    def _serve_json(self, reply: JsonReply, b: Behaviour, t0: float, request_id: str, *, answered: bool) -> None:
        provider = self.server.provider
        delay = max(b.headers_delay_s, reply.delay_s if answered else 0.0)
        provider._wait_until(t0 + delay)
        if answered and b.cut_after_chunks is not None:
            self._abort()
            return
        self._send_json(reply, request_id)

    def _send_json(self, reply: JsonReply, request_id: str) -> None:
        payload = json.dumps(reply.body, separators=(",", ":")).encode()
        self.send_response(reply.status)
        self._send_common_headers(JSON_CONTENT_TYPE, request_id, reply.headers)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _serve_stream(self, reply: StreamReply, b: Behaviour, t0: float, request_id: str) -> None:
        provider = self.server.provider
        provider._wait_until(t0 + b.headers_delay_s)
        self.send_response(200)
        self._send_common_headers(SSE_CONTENT_TYPE, request_id, reply.headers)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in reply.head:
            self._write_chunk(event)
        cut = b.cut_after_chunks
        for index, event in enumerate(reply.content):
            if cut is not None and index >= cut:
                self._abort()
                return
            if index == 0:
                provider._wait_until(t0 + b.delay_before_chunk(0))
            else:
                provider._wait_until(time.monotonic() + b.delay_before_chunk(index))
            self._write_chunk(event)
        if cut is not None:
            self._abort()
            return
        for event in reply.tail:
            self._write_chunk(event)
        self.wfile.write(b"0\r\n\r\n")

    def _send_common_headers(self, content_type: str, request_id: str, extra: dict[str, str]) -> None:
        self.send_header("Content-Type", content_type)
        self.send_header("x-request-id", request_id)
        self.send_header("request-id", request_id)
        for name, value in extra.items():
            self.send_header(name, value)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _abort(self) -> None:
        """Drop the connection without finishing the response: what a provider crash looks like."""
        self.close_connection = True
        _shutdown_socket(self.connection)
