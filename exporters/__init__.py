"""How llm-telemetry's telemetry leaves the process: the ``opentelemetry-instrument`` distro and configurator,
`configure` for apps that set up OpenTelemetry in code, and exporter wrappers that survive a dead backend.

    from llm_telemetry.exporters import configure
    providers = configure(service_name="checkout")   # OTLP/gRPC to OTEL_EXPORTER_OTLP_ENDPOINT
"""

from llm_telemetry.exporters.providers import Providers, active_providers, configure, genai_views
from llm_telemetry.exporters.resilient import DropCounts
from llm_telemetry.exporters.resilient_exporters import ResilientLogExporter, ResilientMetricExporter, ResilientSpanExporter

__all__ = [
    "DropCounts",
    "Providers",
    "ResilientLogExporter",
    "ResilientMetricExporter",
    "ResilientSpanExporter",
    "active_providers",
    "configure",
    "genai_views",
]
