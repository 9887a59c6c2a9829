"""A provider that answers with exactly the bytes a test scripts: for replies the fake provider cannot produce.

The bundled fake provider only sends well-formed answers (its `Behaviour` validates every number). Some
defects only show with what a broken or unusual provider sends: negative or huge usage numbers, ``n > 1``
interleaved choices, a Responses ``response.failed``. This server answers each POST (any path) with the
next scripted reply, over real HTTP, so the real SDKs parse it exactly as they would a real provider's::

    canned.enqueue(json_reply({...}))                     # one JSON body
    canned.enqueue(sse_reply([{...}, {...}, "[DONE]"]))   # one SSE stream (dicts are JSON data lines)
    client = openai.OpenAI(base_url=canned.url + "/v1", ...)
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class CannedReply:
    status: int = 200
    body: Any = None
    """JSON body (when ``events`` is None)."""
    events: list[Any] | None = None
    """SSE events: a dict (JSON data), a str (raw data, e.g. ``[DONE]``) or ``(event_name, dict)``; a float
    in the list is a pause of that many seconds."""
    gap_s: float = 0.0
    """Pause before each SSE event after the first."""
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(body: Any, status: int = 200) -> CannedReply:
    return CannedReply(status=status, body=body)


def sse_reply(events: list[Any], gap_s: float = 0.0) -> CannedReply:
    return CannedReply(events=events, gap_s=gap_s)


def _sse(event: Any) -> bytes:
    name = None
    if isinstance(event, tuple):
        name, event = event
    data = event if isinstance(event, str) else json.dumps(event, separators=(",", ":"))
    prefix = f"event: {name}\n" if name else ""
    return f"{prefix}data: {data}\n\n".encode()


class CannedProvider:
    def __init__(self) -> None:
        self._replies: collections.deque[CannedReply] = collections.deque()
        self._lock = threading.Lock()
        self.requests: list[tuple[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.canned = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def enqueue(self, *replies: CannedReply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._replies.clear()
            self.requests.clear()

    def next_reply(self, path: str, body: Any) -> CannedReply:
        with self._lock:
            self.requests.append((path, body))
            if not self._replies:
                return CannedReply(status=500, body={"error": {"message": "no canned reply queued", "type": "server_error"}})
            return self._replies.popleft()

    def start(self) -> CannedProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        reply = self.server.canned.next_reply(self.path, body)  # type: ignore[attr-defined]
        try:
            if reply.events is None:
                payload = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
                return
            self.send_response(reply.status)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            for index, event in enumerate(reply.events):
                if isinstance(event, float):
                    time.sleep(event)
                    continue
                if index and reply.gap_s:
                    time.sleep(reply.gap_s)
                data = _sse(event)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


@pytest.fixture(scope="session")
def _canned_server() -> Iterator[CannedProvider]:
    provider = CannedProvider().start()
    yield provider
    provider.stop()


@pytest.fixture
def canned(_canned_server: CannedProvider) -> Iterator[CannedProvider]:
    _canned_server.reset()
    yield _canned_server
    _canned_server.reset()


# --- reply builders in the providers' shapes ---------------------------------------------------------


def chat_completion(text: str = "ok", usage: dict[str, Any] | None = None, choices: list[str] | None = None) -> dict[str, Any]:
    texts = choices if choices is not None else [text]
    return {
        "id": "chatcmpl-canned",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": t}, "logprobs": None, "finish_reason": "stop"}
            for i, t in enumerate(texts)
        ],
        "usage": usage if usage is not None else {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    }


def chat_chunk(
    index: int = 0, content: str | None = None, finish: str | None = None, usage: Any = None, choices: bool = True
) -> dict[str, Any]:
    chunk: dict[str, Any] = {"id": "chatcmpl-canned", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    delta = {"content": content} if content is not None else {}
    chunk["choices"] = [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else []
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def anthropic_message(text: str = "ok", usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "msg_canned",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage if usage is not None else {"input_tokens": 10, "output_tokens": 2},
    }


def response_object(status: str = "completed", text: str = "ok", usage: Any = None, error: Any = None) -> dict[str, Any]:
    output = [] if status == "failed" else [{
        "id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }]
    return {
        "id": "resp_canned", "object": "response", "created_at": 1, "status": status, "error": error,
        "incomplete_details": None, "instructions": None, "max_output_tokens": None, "model": "gpt-4o-mini",
        "output": output, "parallel_tool_calls": True, "previous_response_id": None, "temperature": 1.0,
        "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled",
        "usage": usage, "metadata": {},
    }
