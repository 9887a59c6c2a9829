"""`Behaviour`: what the fake provider does for one request (text, pacing, failures, usage numbers).

One plain dataclass is shared by tests (in-process), by the demo and benchmarks (subprocess, JSON on the
command line) and by apps that ask per request (JSON in the ``x-fake-behaviour`` header), so it must
round-trip through JSON and reject anything it does not know: a typo in a test's behaviour would
otherwise silently test the default instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

BEHAVIOUR_HEADER = "x-fake-behaviour"
"""Request header whose JSON value (Behaviour fields) overrides the queue and the default for that request."""

_WORD_CHUNK = re.compile(r"\s*\S+|\s+")


@dataclass
class Behaviour:
    """How to answer one request. Token numbers follow the provider's own semantics.

    OpenAI: ``input_tokens`` is the prompt size *including* ``cache_read_tokens``.
    Anthropic: ``input_tokens`` *excludes* cache reads and writes (they are reported beside it).
    """

    text: str = "Hello! This is the fake provider answering."
    chunks: list[str] | None = None
    """Explicit stream chunks; default: ``text`` split into word-ish chunks (leading whitespace kept)."""
    first_token_delay_s: float = 0.0
    """Time from reading the request body to the first content chunk (stream headers go out earlier)."""
    inter_token_delay_s: float = 0.0
    """Delay before every content chunk after the first."""
    stalls: dict[int, float] = field(default_factory=dict)
    """Extra delay before content chunk index i (0-based)."""
    error_status: int | None = None
    """Answer with this HTTP status and a provider-shaped error body instead."""
    error_message: str = "fake provider error"
    cut_after_chunks: int | None = None
    """Stream: close the connection abruptly after this many content chunks. Non-stream: close without answering."""
    headers_delay_s: float = 0.0
    """Delay (from reading the request body) before response headers go out, to trigger client timeouts."""
    include_usage: bool = True
    """Stream usage. OpenAI chat: only sent if the request also asked via ``stream_options.include_usage``."""
    input_tokens: int = 12
    output_tokens: int | None = None
    """Default: the number of content chunks."""
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    """Anthropic's ``cache_creation_input_tokens``; OpenAI wire reports it only in its optional cache-write fields."""
    reasoning_tokens: int = 0
    """Reported in OpenAI ``*_tokens_details.reasoning_tokens`` (part of output_tokens, as OpenAI counts)."""
    model: str | None = None
    """Response model; default: the request model (plus a dated suffix when ``dated_model``)."""
    dated_model: bool = False
    system_fingerprint: str | None = "fp_fake"
    """OpenAI ``system_fingerprint`` (Chat Completions); change it mid-run to simulate a silent backend update."""
    finish_reason: str | None = None
    """Default ``stop`` (OpenAI) / ``end_turn`` (Anthropic). OpenAI Responses maps ``length`` to status incomplete."""
    responder: str | None = None
    """Compute the text from the request instead of ``text`` (see `responders`): ``iso_dates``, ``iso_dates_transposed``."""

    def __post_init__(self) -> None:
        # Stall keys may arrive as strings (JSON object keys); the schedule looks them up by int.
        self.stalls = {int(k): float(v) for k, v in self.stalls.items()}

    # --- JSON round trip -------------------------------------------------------------------------

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Behaviour:
        """Build from a JSON object, validating every key and value (errors name the bad key)."""
        if not isinstance(data, dict):
            raise ValueError(f"fake provider behaviour must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"unknown fake provider behaviour key {key!r} (known: {', '.join(sorted(known))})")
            kwargs[key] = _coerce(key, value)
        return cls(**kwargs)

    @classmethod
    def from_json_text(cls, text: str, *, source: str = "JSON") -> Behaviour:
        """Parse JSON text (a header, a CLI flag); ``source`` says where it came from in the error."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"fake provider behaviour from {source} is not valid JSON: {exc}") from exc
        try:
            return cls.from_json(data)
        except ValueError as exc:
            raise ValueError(f"fake provider behaviour from {source}: {exc}") from exc

    def to_json(self) -> str:
        """Compact ASCII JSON, suitable for the ``x-fake-behaviour`` header (only non-default fields)."""
        default = Behaviour()
        data = {k: v for k, v in asdict(self).items() if v != getattr(default, k)}
        return json.dumps(data, separators=(",", ":"))

    def header(self) -> dict[str, str]:
        """``{"x-fake-behaviour": ...}``, ready for an SDK's ``extra_headers``."""
        return {BEHAVIOUR_HEADER: self.to_json()}

    # --- Derived values the wire modules share ---------------------------------------------------

    def content_chunks(self) -> list[str]:
        """The content pieces a stream sends, in order; their concatenation is the full output text."""
        if self.chunks is not None:
            return list(self.chunks)
        return _WORD_CHUNK.findall(self.text)

    def full_text(self) -> str:
        return "".join(self.chunks) if self.chunks is not None else self.text

    def completion_tokens(self) -> int:
        return self.output_tokens if self.output_tokens is not None else len(self.content_chunks())

    def response_model(self, request_model: object, *, dated_suffix: str, fallback: str) -> str:
        if self.model is not None:
            return self.model
        name = request_model if isinstance(request_model, str) and request_model else fallback
        return name + dated_suffix if self.dated_model else name

    def delay_before_chunk(self, index: int) -> float:
        """Relative delay before content chunk ``index`` > 0 (chunk 0 is scheduled from the request time)."""
        base = self.first_token_delay_s if index == 0 else self.inter_token_delay_s
        return base + self.stalls.get(index, 0.0)

    def generation_time_s(self, n_chunks: int | None = None) -> float:
        """Time a non-streamed answer takes: what streaming all its chunks would take."""
        n = len(self.content_chunks()) if n_chunks is None else n_chunks
        return sum(self.delay_before_chunk(i) for i in range(max(n, 1)))


# --- validation --------------------------------------------------------------------------------


def _coerce(key: str, value: Any) -> Any:
    kind = _KINDS[key]
    if value is None and kind.endswith("?"):
        return None
    kind = kind.rstrip("?")
    bad = ValueError(f"fake provider behaviour key {key!r}: expected {kind}, got {value!r}")
    if kind == "str":
        if not isinstance(value, str):
            raise bad
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"fake provider behaviour key {key!r}: expected non-negative int, got {value!r}")
        return value
    if kind == "seconds":
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"fake provider behaviour key {key!r}: expected non-negative seconds, got {value!r}")
        return float(value)
    if kind == "status":
        if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
            raise ValueError(f"fake provider behaviour key {key!r}: expected an HTTP error status 400-599, got {value!r}")
        return value
    if kind == "responder":
        from llm_telemetry.fake_provider.responders import RESPONDERS

        if value not in RESPONDERS:
            raise ValueError(f"fake provider behaviour key {key!r}: unknown responder {value!r} (known: {', '.join(RESPONDERS)})")
        return value
    if kind == "list[str]":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad
        return list(value)
    if kind == "stalls":
        if not isinstance(value, dict):
            raise bad
        stalls: dict[int, float] = {}
        for k, v in value.items():
            try:
                index = int(k)
            except (TypeError, ValueError):
                raise ValueError(f"fake provider behaviour key 'stalls': chunk index {k!r} is not an integer") from None
            if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                raise ValueError(f"fake provider behaviour key 'stalls': chunk {k!r} needs non-negative seconds, got {v!r}")
            stalls[index] = float(v)
        return stalls
    raise AssertionError(f"no validator for {key}")  # pragma: no cover - table below covers every field


_KINDS: dict[str, str] = {
    "text": "str",
    "chunks": "list[str]?",
    "first_token_delay_s": "seconds",
    "inter_token_delay_s": "seconds",
    "stalls": "stalls",
    "error_status": "status?",
    "error_message": "str",
    "cut_after_chunks": "int?",
    "headers_delay_s": "seconds",
    "include_usage": "bool",
    "input_tokens": "int",
    "output_tokens": "int?",
    "cache_read_tokens": "int",
    "cache_write_tokens": "int",
    "reasoning_tokens": "int",
    "model": "str?",
    "dated_model": "bool",
    "system_fingerprint": "str?",
    "finish_reason": "str?",
    "responder": "responder?",
}
