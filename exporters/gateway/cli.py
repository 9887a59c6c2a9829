"""``llm-telemetry collector``: run the OTLP gateway until SIGTERM/SIGINT, then flush (bounded) and exit.

Prints what it listens on and where it forwards to on stderr, then one ``READY grpc=HOST:PORT
http=HOST:PORT`` line on stdout (scripts and tests wait for it; with port 0 it names the ports chosen).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from llm_telemetry import __version__
from llm_telemetry.exporters.gateway.options import (
    AUTH_TOKEN_ENV,
    GatewayConfig,
    optional_address,
    parse_headers,
    parse_size,
    token_from,
)

DESCRIPTION = """\
Receive OTLP (gRPC and HTTP) from any sender, run llm-telemetry's enrichment (cost, budgets, safety) on
GenAI spans not enriched yet, remove content unless content capture is on, and forward traces, metrics and
logs to an OTLP backend, with retries, a bounded queue and optional spill to disk.
Enrichment settings are the usual LLM_TELEMETRY_* variables (see `llm-telemetry settings`)."""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("collector", help="run the OTLP gateway: receive, enrich GenAI spans, forward",
                            description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    listen = parser.add_argument_group("receiving")
    listen.add_argument("--listen-grpc", default="127.0.0.1:4317", metavar="HOST:PORT",
                        help="OTLP/gRPC address (default %(default)s; 'off' to disable; port 0 picks one)")
    listen.add_argument("--listen-http", default="127.0.0.1:4318", metavar="HOST:PORT",
                        help="OTLP/HTTP address, also serving GET /health (default %(default)s; 'off' to disable)")
    listen.add_argument("--listen-health", default=None, metavar="HOST:PORT", help="separate plain-HTTP address for GET /health")
    listen.add_argument("--auth-token", default=None, metavar="TOKEN",
                        help=f"require 'Authorization: Bearer TOKEN' (or set {AUTH_TOKEN_ENV}; default: no auth)")
    listen.add_argument("--tls-cert", type=Path, default=None, metavar="PEM", help="serve gRPC and HTTP over TLS with this certificate")
    listen.add_argument("--tls-key", type=Path, default=None, metavar="PEM", help="private key for --tls-cert")
    listen.add_argument("--max-request-bytes", type=parse_size, default=GatewayConfig.max_request_bytes, metavar="SIZE",
                        help="largest request accepted, after decompression (default 16MiB)")
    forward = parser.add_argument_group("forwarding")
    forward.add_argument("--upstream", default=None, metavar="URL",
                         help="OTLP endpoint: grpc://HOST:4317, grpcs://, http(s)://HOST:4318 (default: none, a summary on stderr)")
    forward.add_argument("--upstream-protocol", choices=("grpc", "http/protobuf"), default=None,
                         help="override the protocol guessed from --upstream (http(s) URLs on port 4318 or with a path: HTTP)")
    forward.add_argument("--upstream-header", action="append", default=[], metavar="KEY=VALUE", help="header sent upstream (repeatable)")
    forward.add_argument("--upstream-ca", default=None, metavar="PEM", help="CA bundle for a TLS upstream")
    forward.add_argument("--upstream-timeout", type=float, default=GatewayConfig.upstream_timeout_s, metavar="SECONDS",
                         help="deadline of one upstream export (default %(default)s)")
    forward.add_argument("--queue-max-bytes", type=parse_size, default=GatewayConfig.queue_max_bytes, metavar="SIZE",
                         help="memory for data waiting for the upstream (default 128MiB)")
    forward.add_argument("--spill-dir", type=Path, default=None, metavar="DIR",
                         help="when memory is full (and at shutdown), keep data here; sent after a restart too")
    forward.add_argument("--spill-max-bytes", type=parse_size, default=GatewayConfig.spill_max_bytes, metavar="SIZE",
                         help="bound of --spill-dir (default 1GiB)")
    run = parser.add_argument_group("running")
    run.add_argument("--no-enrich", action="store_true", help="pass-through: forward without enriching (content is still removed)")
    run.add_argument("--shutdown-timeout", type=float, default=GatewayConfig.shutdown_timeout_s, metavar="SECONDS",
                     help="on SIGTERM, time to deliver what is queued (default %(default)s); the rest is spilled or counted")
    run.add_argument("--metrics-interval", type=float, default=GatewayConfig.metrics_interval_s, metavar="SECONDS",
                     help="how often the gateway's own metrics are sent upstream (default %(default)s)")
    run.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.set_defaults(func=_run)


def config_from(args: argparse.Namespace) -> GatewayConfig:
    return GatewayConfig(
        listen_grpc=optional_address(args.listen_grpc),
        listen_http=optional_address(args.listen_http),
        listen_health=optional_address(args.listen_health),
        upstream=args.upstream,
        upstream_protocol=args.upstream_protocol,
        upstream_headers=parse_headers(args.upstream_header),
        upstream_ca_file=args.upstream_ca,
        upstream_timeout_s=args.upstream_timeout,
        enrich=not args.no_enrich,
        queue_max_bytes=args.queue_max_bytes,
        spill_dir=args.spill_dir,
        spill_max_bytes=args.spill_max_bytes,
        max_request_bytes=args.max_request_bytes,
        auth_token=token_from(args.auth_token),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        shutdown_timeout_s=args.shutdown_timeout,
        metrics_interval_s=args.metrics_interval,
    )


def _run(args: argparse.Namespace) -> int:
    from llm_telemetry.exporters.gateway.gateway import Gateway

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    gateway = Gateway(config_from(args))
    gateway.start()
    stop = threading.Event()

    def on_signal(number: int, frame: FrameType | None) -> None:
        if stop.is_set():
            print("llm-telemetry collector: second signal, exiting without finishing the flush", file=sys.stderr, flush=True)
            os._exit(1)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    _describe(gateway)
    addresses = gateway.addresses()
    print("READY " + " ".join(f"{kind}={address}" for kind, address in addresses.items()), flush=True)
    while not stop.wait(0.5):
        pass
    print(f"llm-telemetry collector: stopping; delivering what is queued (up to {gateway.config.shutdown_timeout_s:g} s)",
          file=sys.stderr, flush=True)
    gateway.stop()
    return 0


def _describe(gateway: object) -> None:
    from llm_telemetry.exporters.gateway.gateway import Gateway

    assert isinstance(gateway, Gateway)
    config = gateway.config
    addresses = gateway.addresses()
    security = ", ".join(part for part in ("TLS" if config.tls_cert else "", "bearer token" if config.auth_token else "") if part)
    suffix = f" ({security})" if security else ""
    lines = [f"llm-telemetry collector {__version__}"]
    if "grpc" in addresses:
        lines.append(f"  OTLP/gRPC    {addresses['grpc']}{suffix}")
    if "http" in addresses:
        lines.append(f"  OTLP/HTTP    {addresses['http']}{suffix}  POST /v1/traces /v1/metrics /v1/logs, GET /health")
    if "health" in addresses:
        lines.append(f"  health       http://{addresses['health']}/health")
    lines.append(f"  upstream     {gateway.upstream.description}")
    enrichers = ", ".join(e.name for e in gateway.chain.enrichers) if gateway.chain is not None else "off (--no-enrich)"
    capture = gateway.settings.content.capture
    content = "content kept" if capture.enabled else "content attributes removed before forwarding"
    lines.append(f"  enrichment   {enrichers}; content capture {capture.value} ({content})")
    spill = f"spill to {config.spill_dir} up to {config.spill_max_bytes} bytes" if config.spill_dir else "no spill directory"
    lines.append(f"  queue        {config.queue_max_bytes} bytes in memory; {spill}")
    if config.upstream is None:
        lines.append("  note: no --upstream, so telemetry is only summarized on stderr and not kept; "
                     "give --upstream grpc://HOST:4317 to forward it")
    print("\n".join(lines), file=sys.stderr, flush=True)
