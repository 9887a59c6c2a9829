"""The OTLP gateway (``llm-telemetry collector``): central enrichment for telemetry from any sender.

Many replicas, and apps in other languages, send plain GenAI spans; budgets, drift and review queues
need one place that sees them all. The gateway receives OTLP over gRPC and HTTP, runs the same enricher
chain as the in-process pipeline on every GenAI span not enriched yet (`enrich`), removes content unless
content capture is on, and forwards traces, metrics and logs upstream (`delivery`), with a bounded queue
(`outbox`), optional spill to disk (`spill`), and its own counts on ``/health`` and as metrics (`stats`).

    from llm_telemetry.exporters.gateway import Gateway, GatewayConfig
    gateway = Gateway(GatewayConfig(listen_grpc="127.0.0.1:0", listen_http="127.0.0.1:0", upstream="grpc://127.0.0.1:4317"))
    gateway.start(); ...; gateway.stop()
"""

from llm_telemetry.exporters.gateway.gateway import Gateway, IngestResult, Verdict
from llm_telemetry.exporters.gateway.options import AUTH_TOKEN_ENV, GatewayConfig

__all__ = ["AUTH_TOKEN_ENV", "Gateway", "GatewayConfig", "IngestResult", "Verdict"]
