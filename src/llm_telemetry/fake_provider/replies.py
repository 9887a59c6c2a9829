"""What a wire module hands the server: a JSON reply or a paced SSE stream, plus SSE encoding.

Wire modules (`openai_wire`, `anthropic_wire`) only build provider-shaped payloads; the server owns
time and sockets. Splitting a stream into ``head`` (sent with the headers), ``content`` (one entry per
content chunk, paced by the Behaviour) and ``tail`` lets the server apply delays, stalls and abrupt
cuts identically for every provider.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

JSON_CONTENT_TYPE = "application/json"
SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"


@dataclass
class JsonReply:
    """A complete JSON answer, sent after ``delay_s`` (from reading the request) in one piece."""

    status: int
    body: Any
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamReply:
    """An SSE answer: ``head`` right after the headers, ``content`` paced chunk by chunk, then ``tail``."""

    head: list[bytes]
    content: list[bytes]
    tail: list[bytes]
    headers: dict[str, str] = field(default_factory=dict)


Reply = JsonReply | StreamReply


def sse(data: Any, event: str | None = None) -> bytes:
    """One Server-Sent Event; ``data`` is JSON-encoded unless it is already a string (e.g. ``[DONE]``)."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {payload}\n\n".encode()


def new_id(prefix: str) -> str:
    """Provider-looking identifiers (``chatcmpl-…``, ``msg_…``, ``req_…``)."""
    return prefix + uuid.uuid4().hex[:24]
