"""The ``opentelemetry_distro`` entry point: defaults for ``opentelemetry-instrument``.

Only defaults: anything the user set wins (``os.environ.setdefault``). Traces and metrics go over
OTLP/gRPC, logs are off (GenAI content events are opt-in; set ``OTEL_LOGS_EXPORTER=otlp`` to get them),
and our configurator is selected so it runs even when another distro's configurator (e.g.
``opentelemetry-distro``'s) is installed too. Note the reverse case: when several distros are
installed, ``opentelemetry-instrument`` loads the first one it finds unless ``OTEL_PYTHON_DISTRO``
names one — set ``OTEL_PYTHON_DISTRO=llm_telemetry`` there.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro

ENTRY_POINT_NAME = "llm_telemetry"
DEFAULTS = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_LOGS_EXPORTER": "none",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    "OTEL_PYTHON_CONFIGURATOR": ENTRY_POINT_NAME,
}


_LOADER_LOGGER = "opentelemetry.instrumentation.auto_instrumentation._load"


class _SkippedConfiguratorNotice(logging.Filter):
    """Drops the loader's "Configuration of X not loaded, llm_telemetry already loaded" lines.

    With ``opentelemetry-distro`` installed too (as the OpenTelemetry docs tell users), every run printed
    that its configurator was skipped because ours ran: expected, harmless, and alarming to read. Only
    notices about a configurator skipped in favour of ours are dropped; failures still print.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith("Configuration of") and "not loaded" in message:
            return ENTRY_POINT_NAME not in tuple(str(arg) for arg in (record.args or ())[1:])
        return True


class LLMTelemetryDistro(BaseDistro):
    """Sets the defaults above; instrumentors load the standard way (all ``opentelemetry_instrumentor`` entry points)."""

    def _configure(self, **kwargs: Any) -> None:
        for name, value in DEFAULTS.items():
            os.environ.setdefault(name, value)
        if os.environ.get("OTEL_PYTHON_CONFIGURATOR") == ENTRY_POINT_NAME:
            logging.getLogger(_LOADER_LOGGER).addFilter(_SkippedConfiguratorNotice())
