"""Bad requests get the OTLP status they deserve, are counted, and the gateway keeps serving; auth and TLS.

Raw gRPC calls and plain HTTP requests (so the status codes are visible), plus the SDK's exporters for the
happy paths.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest
import requests
from _gateway_helpers import GENAI, emit, grpc_export, raw_trace_request, running_gateway, sdk_sender
from _otlp_receiver import OtlpGrpcReceiver
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from llm_telemetry.config import ConfigError
from llm_telemetry.exporters.gateway import Gateway, GatewayConfig

MIB = 1024 * 1024
VALID = raw_trace_request([{"http.request.method": "GET"}]).SerializeToString()


def _big_request(size: int) -> bytes:
    return raw_trace_request([{"blob": "x" * size}]).SerializeToString()


def test_grpc_malformed_and_oversized_requests_are_refused_counted_and_serving_goes_on() -> None:
    with OtlpGrpcReceiver() as upstream, running_gateway(upstream.endpoint, max_request_bytes=MIB, queue_max_bytes=4 * MIB) as gateway:
        address = gateway.addresses()["grpc"]
        code, details, _ = grpc_export(address, "traces", b"\x0a\xff\xff\xff")
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "not a valid OTLP traces request" in details
        code, details, trailing = grpc_export(address, "logs", _big_request(MIB + 10))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "--max-request-bytes" in details
        assert "grpc-status-details-bin" not in trailing, "no RetryInfo: retrying an oversized request cannot help"
        assert grpc_export(address, "traces", VALID)[0] == grpc.StatusCode.OK
        assert len(upstream.wait_for_spans(1)) == 1
        counts = gateway.health()[1]["counts"]
        assert counts["refused"] == {"malformed": 1, "oversized": 1}
        assert counts["received"]["traces"] == 1


def test_http_statuses_for_bad_requests_and_serving_goes_on() -> None:
    with OtlpGrpcReceiver() as upstream, running_gateway(upstream.endpoint, max_request_bytes=MIB, queue_max_bytes=4 * MIB) as gateway:
        base = f"http://{gateway.addresses()['http']}"
        proto = {"Content-Type": "application/x-protobuf"}

        def post(path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
            return requests.post(base + path, data=body, headers=headers, timeout=10)

        malformed = post("/v1/traces", b"\x0a\xff\xff\xff", proto)
        assert malformed.status_code == 400
        status = status_pb2.Status()
        status.ParseFromString(malformed.content)
        assert "not a valid OTLP traces request" in status.message
        bad_json = post("/v1/metrics", b"{not json", {"Content-Type": "application/json"})
        assert bad_json.status_code == 400 and "invalid JSON" in bad_json.json()["message"]
        assert post("/v1/traces", _big_request(MIB + 10), proto).status_code == 413
        bomb = gzip.compress(b"\0" * (2 * MIB))
        assert len(bomb) < 10_000
        assert post("/v1/traces", bomb, {**proto, "Content-Encoding": "gzip"}).status_code == 413
        assert post("/v1/traces", VALID, {"Content-Type": "text/plain"}).status_code == 415
        assert post("/v1/traces", VALID, {**proto, "Content-Encoding": "br"}).status_code == 415
        assert post("/v1/spans", VALID, proto).status_code == 404
        chunked = requests.post(base + "/v1/traces", data=iter([VALID]), headers=proto, timeout=10)
        assert chunked.status_code == 411

        ok = post("/v1/traces", gzip.compress(VALID), {**proto, "Content-Encoding": "gzip"})
        assert ok.status_code == 200 and ok.headers["Content-Type"] == "application/x-protobuf"
        assert len(upstream.wait_for_spans(1)) == 1
        health = requests.get(base + "/health", timeout=10)
        assert health.status_code == 200
        assert health.json()["counts"]["refused"] == {"malformed": 3, "oversized": 2, "unsupported_media_type": 2}


def test_bearer_token_required_when_set() -> None:
    with OtlpGrpcReceiver() as upstream, running_gateway(upstream.endpoint, auth_token="s3cret") as gateway:
        address = gateway.addresses()["grpc"]
        assert grpc_export(address, "traces", VALID)[0] == grpc.StatusCode.UNAUTHENTICATED
        assert grpc_export(address, "traces", VALID, (("authorization", "Bearer wrong"),))[0] == grpc.StatusCode.UNAUTHENTICATED
        base = f"http://{gateway.addresses()['http']}"
        refused = requests.post(base + "/v1/traces", data=VALID, headers={"Content-Type": "application/x-protobuf"}, timeout=10)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
        assert requests.get(base + "/health", timeout=10).status_code == 200, "probes need no token"

        for protocol in ("grpc", "http"):
            sender = sdk_sender(gateway, protocol, headers={"authorization": "Bearer s3cret"})
            emit(sender.tracer, f"chat via {protocol}", GENAI)
            sender.close()
        assert {span.name for span in upstream.wait_for_spans(2)} == {"chat via grpc", "chat via http"}
        assert gateway.health()[1]["counts"]["refused"] == {"unauthenticated": 3}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not found: cannot make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def test_tls_on_both_receivers(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    with OtlpGrpcReceiver() as upstream, running_gateway(upstream.endpoint, tls_cert=cert, tls_key=key) as gateway:
        grpc_address, http_address = gateway.addresses()["grpc"], gateway.addresses()["http"]
        provider = TracerProvider()
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        exporter = OTLPSpanExporter(endpoint=f"https://localhost:{grpc_address.rsplit(':', 1)[1]}", credentials=credentials, timeout=5)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        emit(provider.get_tracer("t"), "over grpc+tls", GENAI)
        provider.shutdown()
        ok = requests.post(f"https://{http_address}/v1/traces", data=VALID, verify=str(cert),
                           headers={"Content-Type": "application/x-protobuf"}, timeout=10)
        assert ok.status_code == 200
        assert {span.name for span in upstream.wait_for_spans(2)} == {"over grpc+tls", "span 0"}
        with pytest.raises(requests.ConnectionError):
            requests.post(f"http://{http_address}/v1/traces", data=VALID, headers={"Content-Type": "application/x-protobuf"}, timeout=5)
        assert grpc_export(grpc_address, "traces", VALID)[0] == grpc.StatusCode.UNAVAILABLE, "plaintext to a TLS port"


def test_bad_configuration_is_refused_with_the_flag_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--listen-grpc 'localhost'"):
        GatewayConfig(listen_grpc="localhost")
    with pytest.raises(ConfigError, match="--tls-cert and --tls-key go together"):
        GatewayConfig(tls_cert=tmp_path)
    with pytest.raises(ConfigError, match="--queue-max-bytes"):
        GatewayConfig(queue_max_bytes=MIB, max_request_bytes=MIB)
    with pytest.raises(ConfigError, match="--upstream 'ftp://x'"):
        Gateway(GatewayConfig(upstream="ftp://x"))
    with OtlpGrpcReceiver() as taken:
        gateway = Gateway(GatewayConfig(listen_grpc=f"127.0.0.1:{taken.port}", listen_http="127.0.0.1:0"))
        try:
            with pytest.raises(ConfigError, match=f"--listen-grpc '127.0.0.1:{taken.port}': cannot listen"):
                gateway.start()
        finally:
            gateway.stop(1)
