"""Where the gateway forwards to: an OTLP/gRPC or OTLP/HTTP endpoint, or (no ``--upstream``) a debug sink.

Each `Upstream.export` sends one serialized request and classifies the answer the way the OTLP spec
asks (`Outcome`): delivered; retryable, with the server's own delay when it gives one (gRPC ``RetryInfo``,
HTTP ``Retry-After``); or refused for good. Authentication failures are treated as retryable: they are an
operator's mistake, and dropping queued telemetry until someone fixes a token would lose what the queue
exists to keep (the health endpoint and the log say what is wrong).
"""

from __future__ import annotations

import email.utils
import logging
import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import grpc
import requests
from google.rpc import error_details_pb2, status_pb2

from llm_telemetry.config import ConfigError
from llm_telemetry.exporters.gateway.otlp import SPECS, Signal

logger = logging.getLogger(__name__)

PROTOCOLS = ("grpc", "http/protobuf")
_RETRYABLE_GRPC = {
    grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED, grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
}
_RETRYABLE_HTTP = {401, 403, 408, 429, 502, 503, 504}
_REJECTED_FIELD = {"traces": "rejected_spans", "metrics": "rejected_data_points", "logs": "rejected_log_records"}


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    retryable: bool = False
    retry_after_s: float | None = None
    rejected_items: int = 0
    message: str = ""


class Upstream(Protocol):
    description: str

    def export(self, signal: Signal, payload: bytes, items: int, timeout_s: float) -> Outcome: ...

    def close(self) -> None: ...


def _rejected(signal: Signal, response_bytes: bytes | None) -> tuple[int, str]:
    """What a successful response's ``partial_success`` says was rejected."""
    if not response_bytes:
        return 0, ""
    response = SPECS[signal].response()
    try:
        response.ParseFromString(response_bytes)
    except Exception:
        return 0, ""
    partial = response.partial_success  # type: ignore[attr-defined]
    return int(getattr(partial, _REJECTED_FIELD[signal])), partial.error_message


class GrpcUpstream:
    """OTLP/gRPC: raw bytes in and out (no re-encoding), one channel for the three services."""

    def __init__(self, target: str, *, secure: bool, headers: dict[str, str], ca_file: str | None = None) -> None:
        options = [
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            # gRPC's own reconnect backoff grows to 120 s: after a long outage the channel would stay down for
            # up to two minutes after the upstream is back. Our sender already backs off; keep the channel eager.
            ("grpc.initial_reconnect_backoff_ms", 250),
            ("grpc.min_reconnect_backoff_ms", 250),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        if secure:
            root = open(ca_file, "rb").read() if ca_file else None  # noqa: SIM115
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=root), options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self.description = f"OTLP/gRPC {'grpcs' if secure else 'grpc'}://{target}"
        self._metadata = tuple((k.lower(), v) for k, v in headers.items())
        self._calls = {
            signal: self._channel.unary_unary(spec.grpc_method, request_serializer=None, response_deserializer=None)
            for signal, spec in SPECS.items()
        }

    def export(self, signal: Signal, payload: bytes, items: int, timeout_s: float) -> Outcome:
        try:
            response = self._calls[signal](payload, timeout=timeout_s, metadata=self._metadata, wait_for_ready=False)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
            details = exc.details() if hasattr(exc, "details") else str(exc)
            delay = _retry_info(exc)
            retryable = code in _RETRYABLE_GRPC or (code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None)
            return Outcome(False, retryable, delay, message=f"{code.name}: {details}")
        rejected, message = _rejected(signal, response)
        return Outcome(True, rejected_items=rejected, message=message)

    def close(self) -> None:
        self._channel.close()


def _retry_info(exc: grpc.RpcError) -> float | None:
    """The delay of a ``google.rpc.RetryInfo`` in the error's status details, if the server sent one."""
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for key, value in trailing or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except Exception:
            return None
        for detail in status.details:
            info = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None


class HttpUpstream:
    """OTLP/HTTP with protobuf bodies: ``<base>/v1/traces`` and so on, on one keep-alive session."""

    def __init__(self, base_url: str, *, headers: dict[str, str], ca_file: str | None = None) -> None:
        self._base = base_url.rstrip("/")
        self._session = requests.Session()
        self._headers = {"Content-Type": "application/x-protobuf", **headers}
        self._verify: bool | str = ca_file or True
        self.description = f"OTLP/HTTP {self._base}"

    def export(self, signal: Signal, payload: bytes, items: int, timeout_s: float) -> Outcome:
        url = self._base + SPECS[signal].http_path
        try:
            response = self._session.post(url, data=payload, headers=self._headers, timeout=timeout_s, verify=self._verify)
        except requests.RequestException as exc:
            return Outcome(False, True, message=f"{type(exc).__name__}: {exc}")
        if 200 <= response.status_code < 300:
            rejected, message = _rejected(signal, response.content)
            return Outcome(True, rejected_items=rejected, message=message)
        message = f"HTTP {response.status_code} from {url}: {response.text[:200]!r}"
        retryable = response.status_code in _RETRYABLE_HTTP
        return Outcome(False, retryable, _retry_after(response.headers.get("Retry-After")), message=message)

    def close(self) -> None:
        self._session.close()


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class DebugUpstream:
    """No upstream configured: one summary line per batch on the log, nothing kept (the embedded store will be the default)."""

    description = "no upstream (debug summary on stderr; nothing is stored)"

    def export(self, signal: Signal, payload: bytes, items: int, timeout_s: float) -> Outcome:
        logger.info("llm-telemetry gateway (no --upstream): %d %s items, %d bytes, not stored", items, signal, len(payload))
        return Outcome(True)

    def close(self) -> None:
        return None


def make_upstream(url: str | None, protocol: str | None, headers: dict[str, str], ca_file: str | None = None) -> Upstream:
    """An `Upstream` for ``--upstream URL`` (and ``--upstream-protocol``); raises `ConfigError` naming the bad flag.

    ``grpc://`` / ``grpcs://`` mean OTLP/gRPC. For ``http://`` / ``https://`` the protocol is OTLP/gRPC too
    (the OpenTelemetry SDKs' default), except on port 4318 or with a path (``https://host/otlp``), which
    mean OTLP/HTTP; ``--upstream-protocol`` overrides the guess.
    """
    if not url or url.lower() == "none":
        return DebugUpstream()
    if protocol is not None and protocol not in PROTOCOLS:
        raise ConfigError(f"--upstream-protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    parts = urlsplit(url)
    if parts.scheme not in ("grpc", "grpcs", "http", "https") or not parts.hostname:
        raise ConfigError(f"--upstream {url!r}: expected grpc://HOST:PORT, grpcs://, http://HOST:PORT or https:// (or none)")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"--upstream {url!r}: the port is not a number") from None
    if protocol is None:
        http_like = parts.scheme in ("http", "https") and (port == 4318 or parts.path.strip("/") != "")
        protocol = "http/protobuf" if http_like else "grpc"
    secure = parts.scheme in ("grpcs", "https")
    if protocol == "grpc":
        if parts.path.strip("/"):
            raise ConfigError(f"--upstream {url!r}: an OTLP/gRPC endpoint has no path")
        default_port = 443 if secure else 4317
        return GrpcUpstream(f"{parts.hostname}:{port or default_port}", secure=secure, headers=headers, ca_file=ca_file)
    scheme = "https" if secure else "http"
    netloc = parts.netloc if port else f"{parts.hostname}:{443 if secure else 4318}"
    return HttpUpstream(f"{scheme}://{netloc}{parts.path}", headers=headers, ca_file=ca_file)
