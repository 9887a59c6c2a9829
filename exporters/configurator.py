"""The ``opentelemetry_configurator`` entry point: what ``opentelemetry-instrument`` runs to set up the SDK.

It runs once, in the ``sitecustomize`` of the instrumented process, after the distro has filled in
defaults and before any instrumentor is loaded — so the instrumentors find our providers installed.
It never raises into the app: a bad ``LLM_TELEMETRY_*`` setting or ``OTEL_*`` value is printed to
stderr, naming the variable, and the app runs with the rest of the telemetry (for a bad
llm-telemetry setting: spans still exported, without our processors). Crashing the app, or exiting,
over a monitoring setting would turn a telemetry typo into an outage.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry.sdk._configuration import _BaseConfigurator

from llm_telemetry.exporters.providers import Providers, configure

logger = logging.getLogger(__name__)


class LLMTelemetryConfigurator(_BaseConfigurator):
    """Tracer, meter (and logger) providers from the ``OTEL_*`` variables, with llm-telemetry's span pipeline."""

    providers: Providers | None = None

    def _configure(self, **kwargs: Any) -> None:
        if os.environ.get("OTEL_CONFIG_FILE"):
            logger.warning("llm-telemetry: OTEL_CONFIG_FILE is not supported by the llm_telemetry configurator; "
                           "using the OTEL_* environment variables instead")
        try:
            self.providers = configure(
                strict=False, set_global=True, auto_instrumentation_version=kwargs.get("auto_instrumentation_version"),
            )
        except Exception:  # never break the app over telemetry
            logger.exception("llm-telemetry: could not set up OpenTelemetry; the app runs without telemetry")
