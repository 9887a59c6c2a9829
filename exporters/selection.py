"""Which exporters the standard ``OTEL_*`` variables ask for, and how to build them.

This follows the OpenTelemetry SDK's own rules (``OTEL_{TRACES,METRICS,LOGS}_EXPORTER`` with ``otlp``,
``console``, ``none`` or any name registered under ``opentelemetry_{signal}_exporter``; ``otlp``
picks gRPC or HTTP from ``OTEL_EXPORTER_OTLP[_{SIGNAL}]_PROTOCOL``), with two differences that are
the point of doing it here: a bad value is a `ConfigError` naming the variable, the value and what
would be accepted (the SDK raises a bare ``RuntimeError`` and the whole auto-instrumentation stops),
and OTLP exporters get llm-telemetry's export deadline as their ``timeout`` unless the user set an
``OTEL_EXPORTER_OTLP_*TIMEOUT`` of their own.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
from opentelemetry.sdk.trace.export import SpanExporter

from llm_telemetry.config import ConfigError
from llm_telemetry.exporters.resilient import Signal

OTLP = "otlp"
OTLP_GRPC = "otlp_proto_grpc"
OTLP_HTTP = "otlp_proto_http"
EXPORTER_BY_PROTOCOL = {"grpc": OTLP_GRPC, "http/protobuf": OTLP_HTTP}
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"


def exporter_env(signal: Signal) -> str:
    return f"OTEL_{signal.upper()}_EXPORTER"


def _signal_env(signal: Signal, suffix: str) -> str:
    return f"OTEL_EXPORTER_OTLP_{signal.upper()}_{suffix}"


@dataclass(frozen=True)
class ExporterChoice:
    """One exporter to build: its entry-point name and class, where it sends to, and its keyword arguments."""

    signal: Signal
    name: str
    cls: type
    endpoint: str
    """Where the data goes, for log lines (an URL for OTLP, the exporter name otherwise)."""
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def is_reader(self) -> bool:
        """A metrics "exporter" that is really a pull `MetricReader` (e.g. Prometheus)."""
        return issubclass(self.cls, MetricReader)

    def build(self) -> Any:
        return self.cls(**self.kwargs)


def _installed(signal: Signal) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=f"opentelemetry_{signal}_exporter")}


def _protocol(signal: Signal, environ: Mapping[str, str], explicit: str | None) -> str:
    if explicit is not None:
        name, value = "protocol argument", explicit
    else:
        name = _signal_env(signal, "PROTOCOL")
        if not environ.get(name, "").strip():
            name = "OTEL_EXPORTER_OTLP_PROTOCOL"
        value = environ.get(name, "").strip() or "grpc"
    value = value.strip()
    if value not in EXPORTER_BY_PROTOCOL:
        raise ConfigError(f"{name}={value!r}: unsupported OTLP protocol (use one of: {', '.join(EXPORTER_BY_PROTOCOL)})")
    return value


def _endpoint(signal: Signal, grpc: bool, environ: Mapping[str, str], explicit: str | None) -> tuple[str, str | None]:
    """(endpoint for log lines, value to pass as ``endpoint=`` or None to let the exporter read the env)."""
    if explicit:
        base = explicit.rstrip("/")
        url = base if grpc else f"{base}/v1/{signal}"
        return url, url
    specific = environ.get(_signal_env(signal, "ENDPOINT"), "").strip()
    if specific:
        return specific, None
    general = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip().rstrip("/")
    if grpc:
        return general or DEFAULT_GRPC_ENDPOINT, None
    return f"{general or DEFAULT_HTTP_ENDPOINT}/v1/{signal}", None


def _accepts(cls: type, parameter: str) -> bool:
    try:
        return parameter in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def _check_kind(signal: Signal, name: str, cls: Any, where: str) -> None:
    if signal == "traces":
        ok = isinstance(cls, type) and issubclass(cls, SpanExporter)
    elif signal == "metrics":
        ok = isinstance(cls, type) and issubclass(cls, (MetricExporter, MetricReader))
    else:
        ok = isinstance(cls, type) and hasattr(cls, "export") and hasattr(cls, "shutdown")
    if not ok:
        raise ConfigError(f"{where}: {name!r} is not a {signal} exporter ({cls!r})")


def choose_exporters(
    signal: Signal,
    *,
    timeout_s: float,
    environ: Mapping[str, str] | None = None,
    names: str | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> list[ExporterChoice]:
    """The exporters for ``signal``: from ``names`` if given, else ``OTEL_{SIGNAL}_EXPORTER`` (default ``otlp``).

    ``endpoint`` / ``protocol`` / ``headers`` override the ``OTEL_EXPORTER_OTLP_*`` variables for OTLP
    exporters (``endpoint`` is the base URL, e.g. ``http://collector:4318``; the signal path is added for
    HTTP). Raises `ConfigError` naming the variable on a bad value.
    """
    env = os.environ if environ is None else environ
    if names is None:
        where = exporter_env(signal)
        raw = env.get(where)
        names = OTLP if raw is None else raw
    else:
        where = f"{signal} exporter names"
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if not wanted or [n.lower() for n in wanted] == ["none"]:
        return []
    installed = _installed(signal)
    choices: list[ExporterChoice] = []
    for name in wanted:
        if name.lower() == "none":
            raise ConfigError(f"{where}={names!r}: 'none' cannot be combined with other exporters")
        resolved = EXPORTER_BY_PROTOCOL[_protocol(signal, env, protocol)] if name == OTLP else name
        if resolved not in installed:
            known = sorted({*installed, OTLP, "none"})
            raise ConfigError(f"{where}={names!r}: no {signal} exporter named {name!r} is installed (known: {', '.join(known)})")
        try:
            cls = installed[resolved].load()
        except Exception as exc:
            raise ConfigError(f"{where}={names!r}: cannot load exporter {resolved!r}: {exc}") from None
        _check_kind(signal, resolved, cls, f"{where}={names!r}")
        kwargs: dict[str, Any] = {}
        label = resolved
        if resolved in (OTLP_GRPC, OTLP_HTTP):
            label, explicit = _endpoint(signal, resolved == OTLP_GRPC, env, endpoint)
            if explicit is not None:
                kwargs["endpoint"] = explicit
            if headers:
                kwargs["headers"] = dict(headers)
            user_timeout = env.get(_signal_env(signal, "TIMEOUT"), "").strip() or env.get("OTEL_EXPORTER_OTLP_TIMEOUT", "").strip()
            if not user_timeout and _accepts(cls, "timeout"):
                kwargs["timeout"] = timeout_s
        choices.append(ExporterChoice(signal, resolved, cls, label, kwargs))
    return choices
