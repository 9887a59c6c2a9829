"""`GatewayConfig`: everything ``llm-telemetry collector`` is told on its command line, validated once.

The gateway's flags are its configuration (like ``otelcol --config``); the enrichment itself (pricing,
budgets, safety, content capture) reads the same ``LLM_TELEMETRY_*`` settings as the in-process pipeline,
so one settings file serves both. The bearer token may come from ``LLM_TELEMETRY_GATEWAY_AUTH_TOKEN``
instead of the command line, where other users of the machine could read it in the process list.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from llm_telemetry.config import ConfigError

AUTH_TOKEN_ENV = "LLM_TELEMETRY_GATEWAY_AUTH_TOKEN"
MIB = 1024 * 1024
OFF = ("", "none", "off")


@dataclass(frozen=True)
class GatewayConfig:
    listen_grpc: str | None = "127.0.0.1:4317"
    """``HOST:PORT`` of the OTLP/gRPC receiver (port 0: any free port); ``None`` turns it off."""
    listen_http: str | None = "127.0.0.1:4318"
    """``HOST:PORT`` of the OTLP/HTTP receiver, which also serves ``GET /health``; ``None`` turns it off."""
    listen_health: str | None = None
    """A separate plain-HTTP ``HOST:PORT`` for ``GET /health`` only (no auth, no TLS), e.g. for probes."""
    upstream: str | None = None
    """OTLP endpoint to forward to (``grpc://``, ``grpcs://``, ``http://``, ``https://``); ``None``: debug summary only."""
    upstream_protocol: str | None = None
    upstream_headers: Mapping[str, str] = field(default_factory=dict)
    upstream_ca_file: str | None = None
    upstream_timeout_s: float = 10.0
    enrich: bool = True
    """``False``: pass-through (content rule still applied), for comparison and for gateways behind one that enriches."""
    queue_max_bytes: int = 128 * MIB
    spill_dir: Path | None = None
    spill_max_bytes: int = 1024 * MIB
    max_request_bytes: int = 16 * MIB
    """Largest request accepted (after decompression); larger ones get RESOURCE_EXHAUSTED / HTTP 413."""
    batch_max_bytes: int = 3 * MIB
    """Largest request forwarded; bigger enriched requests are split (the Collector accepts 4 MiB by default)."""
    auth_token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    shutdown_timeout_s: float = 10.0
    metrics_interval_s: float = 60.0
    grpc_workers: int = 4

    def __post_init__(self) -> None:
        for name in ("listen_grpc", "listen_http", "listen_health"):
            value = getattr(self, name)
            if value is not None:
                parse_address(value, "--" + name.replace("_", "-"))
        if self.listen_grpc is None and self.listen_http is None:
            raise ConfigError("--listen-grpc and --listen-http are both off: the gateway would receive nothing")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together (give both, or neither)")
        for path in (self.tls_cert, self.tls_key):
            if path is not None and not path.is_file():
                raise ConfigError(f"--tls-cert/--tls-key {str(path)!r}: no such file")
        if self.queue_max_bytes < 2 * self.max_request_bytes:
            raise ConfigError(
                f"--queue-max-bytes {self.queue_max_bytes} must be at least twice --max-request-bytes {self.max_request_bytes} "
                "(room is reserved for a request's enriched size before it is accepted)"
            )
        if self.spill_dir is not None and self.spill_max_bytes < 2 * self.max_request_bytes:
            raise ConfigError(f"--spill-max-bytes {self.spill_max_bytes} must be at least twice --max-request-bytes")
        for name in ("upstream_timeout_s", "shutdown_timeout_s", "metrics_interval_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.removesuffix('_s').replace('_', '-')} must be > 0 seconds")
        if self.auth_token is not None and not self.auth_token.strip():
            raise ConfigError(f"the bearer token (--auth-token or {AUTH_TOKEN_ENV}) is empty")


def parse_address(value: str, flag: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:4317`` for IPv6) → (host, port); raises `ConfigError` naming ``flag``."""
    host, sep, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{flag} {value!r}: expected HOST:PORT, e.g. 127.0.0.1:4317 (port 0 picks a free port)")
    return host, int(port_text)


def optional_address(value: str | None) -> str | None:
    """``none``/``off``/empty → ``None`` (that receiver is off)."""
    return None if value is None or value.strip().lower() in OFF else value.strip()


def parse_size(value: str) -> int:
    """``64MiB``, ``1GiB``, ``500kB``, ``1048576`` → bytes (argparse ``type``)."""
    text = value.strip().lower().replace(" ", "")
    units = {"gib": 1024**3, "mib": MIB, "kib": 1024, "gb": 10**9, "mb": 10**6, "kb": 10**3, "b": 1}
    number, factor = text, 1
    for suffix, multiplier in units.items():
        if text.endswith(suffix):
            number, factor = text[: -len(suffix)], multiplier
            break
    try:
        size = int(float(number) * factor)
    except ValueError:
        raise ValueError(f"{value!r} is not a size (e.g. 64MiB, 1GiB, 1048576)") from None
    if size <= 0:
        raise ValueError(f"{value!r}: a size must be > 0")
    return size


def parse_headers(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` flags → a dict; raises `ConfigError` on a pair without ``=``."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--upstream-header {pair!r}: expected KEY=VALUE, e.g. authorization=Bearer abc")
        out[key.strip()] = value.strip()
    return out


def token_from(flag_value: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The bearer token: the flag, else ``LLM_TELEMETRY_GATEWAY_AUTH_TOKEN``, else none (auth off)."""
    env = os.environ if environ is None else environ
    if flag_value is not None:
        return flag_value
    value = env.get(AUTH_TOKEN_ENV)
    return value if value else None
