"""Why an export failed: the backend was unreachable, answered with a rejection, or did not answer in time.

Why this matters: "backend unreachable … check that the collector is running" is the wrong advice for a
backend that is up and answered. Arize Phoenix, for one, takes traces only: it answers our metrics and
logs with HTTP 405 (OTLP/HTTP) or gRPC ``UNIMPLEMENTED``, and the right fix is
``OTEL_METRICS_EXPORTER=none``, not a hunt for a dead collector. The stock OTLP exporters return only
SUCCESS or FAILURE; the reason is in their log lines (the HTTP status and reason, the gRPC status code)
or in the exception they raise. `note_log_record` reads those log records on our export threads — their
*arguments*, not their wording, so a reworded message in another exporter version still classifies —
and hands the verdict to the export that is running (`watching`), which `ExportGuard` keeps as its
``last_failure`` for the mid-run warning and the exit report.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

FailureKind = Literal["unreachable", "rejected", "timeout"]

_RETRYABLE_HTTP = frozenset({408, 429, 502, 503, 504})
"""HTTP answers the OTLP specification calls transient: sending the same data later may work."""
_RETRYABLE_GRPC = frozenset({"CANCELLED", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE",
                             "DATA_LOSS"})
_NOT_TAKEN_HTTP = frozenset({404, 405, 501})
_NOT_TAKEN_GRPC = frozenset({"UNIMPLEMENTED", "NOT_FOUND"})
_AUTH_HTTP = frozenset({401, 403})
_AUTH_GRPC = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})
_UNREADABLE_HTTP = frozenset({400, 415, 422})
_UNREADABLE_GRPC = frozenset({"INVALID_ARGUMENT"})
_LIMIT_HTTP = frozenset({413, 429})
_LIMIT_GRPC = frozenset({"RESOURCE_EXHAUSTED"})
_MAX_DETAIL_CHARS = 120


@dataclass(frozen=True, slots=True)
class ExportFailure:
    """One failed export, as the exporter told it.

    ``code`` is the HTTP status (int) or the gRPC status code name (``"UNIMPLEMENTED"``) when the backend
    answered; ``detail`` is a short human-readable form (``"HTTP 405 Method Not Allowed"``).
    """

    kind: FailureKind
    detail: str
    code: int | str | None = None

    @property
    def permanent(self) -> bool:
        """The backend refused the data itself: sending the same batch again cannot succeed."""
        if self.kind != "rejected":
            return False
        if isinstance(self.code, int):
            return self.code not in _RETRYABLE_HTTP
        return self.code not in _RETRYABLE_GRPC

    def advice(self, signal: str) -> str:
        """What the user should do about a rejection of ``signal`` (``traces``, ``metrics``, ``logs``)."""
        variable = signal.upper()
        code = self.code
        if code in _NOT_TAKEN_HTTP or code in _NOT_TAKEN_GRPC:
            return (f"It does not take {signal} at this address (Arize Phoenix, for one, accepts traces only): set "
                    f"OTEL_{variable}_EXPORTER=none, or send {signal} to a backend that takes them "
                    f"(OTEL_EXPORTER_OTLP_{variable}_ENDPOINT).")
        if code in _AUTH_HTTP or code in _AUTH_GRPC:
            return f"Check the credentials in OTEL_EXPORTER_OTLP_HEADERS (or OTEL_EXPORTER_OTLP_{variable}_HEADERS)."
        if code in _UNREADABLE_HTTP or code in _UNREADABLE_GRPC:
            return ("It could not read what we sent: check that OTEL_EXPORTER_OTLP_PROTOCOL (grpc or http/protobuf) "
                    "matches the port it listens on.")
        if code in _LIMIT_HTTP or code in _LIMIT_GRPC:
            return "It refused the size or rate of our exports: check its limits, or lower OTEL_BSP_MAX_EXPORT_BATCH_SIZE."
        return "Its logs say why."


def http_failure(status: int, reason: str = "") -> ExportFailure:
    """A failure from an HTTP answer (a status below 400 is no failure; the caller only passes errors)."""
    reason = " ".join(str(reason).split())[:_MAX_DETAIL_CHARS]
    return ExportFailure("rejected", f"HTTP {status}{' ' + reason if reason else ''}", status)


def grpc_failure(code: str, details: str = "") -> ExportFailure:
    """A failure from a gRPC status code name (``UNAVAILABLE`` means no connection: unreachable)."""
    details = " ".join(str(details or "").split())[:_MAX_DETAIL_CHARS]
    detail = f"gRPC {code}{': ' + details if details else ''}"
    if code == "UNAVAILABLE":
        return ExportFailure("unreachable", detail, code)
    if code == "DEADLINE_EXCEEDED":
        return ExportFailure("timeout", detail, code)
    return ExportFailure("rejected", detail, code)


def from_exception(error: BaseException) -> ExportFailure | None:
    """A failure from an exception an exporter raised or logged (connection refused, timeout), if it says one."""
    name = type(error).__name__
    detail = f"{name}: {' '.join(str(error).split())}"[:_MAX_DETAIL_CHARS]
    if isinstance(error, TimeoutError) or "Timeout" in name:
        return ExportFailure("timeout", detail)
    if isinstance(error, OSError) or "ConnectionError" in name:  # requests' ConnectionError is an OSError too
        return ExportFailure("unreachable", detail)
    return None


def _grpc_code_name(value: object) -> str | None:
    """The name of a ``grpc.StatusCode`` (without importing grpc, which may not be installed)."""
    if type(value).__module__.split(".")[0] == "grpc" and isinstance(name := getattr(value, "name", None), str):
        return name
    return None


def from_log_record(record: logging.LogRecord) -> ExportFailure | None:
    """What a stock OTLP exporter's warning or error line says about the failure, from its arguments."""
    if record.levelno < logging.WARNING or not isinstance(record.args, tuple):
        return None
    args = record.args
    for index, arg in enumerate(args):
        if (code := _grpc_code_name(arg)) is not None:
            details = next((a for a in args[index + 1:] if isinstance(a, str) and a and "://" not in a), "")
            return grpc_failure(code, details if code not in _RETRYABLE_GRPC else "")
        if isinstance(arg, int) and not isinstance(arg, bool) and 400 <= arg <= 599:
            following = args[index + 1] if index + 1 < len(args) else ""
            return http_failure(arg, following if isinstance(following, str) else "")
        if isinstance(arg, BaseException) and (found := from_exception(arg)) is not None:
            return found
    return None


_sink: contextvars.ContextVar[Callable[[ExportFailure], None] | None] = contextvars.ContextVar("llm_telemetry_export_failure",
                                                                                               default=None)


@contextmanager
def watching(note: Callable[[ExportFailure], None]) -> Iterator[None]:
    """Within this block (on this thread and context), exporter log lines that name a failure go to ``note``."""
    token = _sink.set(note)
    try:
        yield
    finally:
        _sink.reset(token)


def note_log_record(record: logging.LogRecord) -> None:
    """Hand what ``record`` says about a failure to the export being watched, if any (never raises)."""
    note = _sink.get()
    if note is None:
        return
    try:
        failure = from_log_record(record)
    except Exception:  # a log filter must never break logging
        return
    if failure is not None:
        note(failure)
