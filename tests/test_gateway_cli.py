"""``llm-telemetry collector`` as a process: READY line, SIGTERM flushes (bounded), spill across restarts, exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from _gateway_helpers import GENAI, emit
from _otlp_receiver import OtlpGrpcReceiver, unused_port
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from llm_telemetry import attributes as a


class Collector:
    def __init__(self, proc: subprocess.Popen[str], addresses: dict[str, str]) -> None:
        self.proc = proc
        self.addresses = addresses

    def health(self) -> dict:
        return requests.get(f"http://{self.addresses['http']}/health", timeout=5).json()

    def terminate(self, timeout: float = 60.0) -> tuple[int, float, str]:
        """SIGTERM; (exit code, seconds to exit, stderr)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        _, stderr = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, time.monotonic() - started, stderr


@contextmanager
def collector(*flags: str) -> Iterator[Collector]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm_telemetry.cli", "collector", "--listen-grpc", "127.0.0.1:0", "--listen-http", "127.0.0.1:0",
         *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("READY "):
            proc.kill()
            raise AssertionError(f"collector did not start: {line!r}\n{proc.communicate(timeout=10)[1]}")
        yield Collector(proc, dict(part.split("=", 1) for part in line.split()[1:]))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def _send(address: str, count: int, name: str = "chat gpt-4o") -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://{address}", insecure=True, timeout=5)))
    tracer = provider.get_tracer("cli-test")
    for index in range(count):
        emit(tracer, f"{name} {index}", GENAI)
    provider.shutdown()


def _wait(predicate, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_sigterm_delivers_what_is_queued_and_the_gateways_own_metrics() -> None:
    port = unused_port()
    with collector("--upstream", f"grpc://127.0.0.1:{port}", "--metrics-interval", "3600", "--shutdown-timeout", "20") as gateway:
        _send(gateway.addresses["grpc"], 10)
        assert _wait(lambda: gateway.health()["upstream"]["consecutive_failures"] >= 1)
        assert gateway.health()["queue"]["pending_requests"] >= 1
        with OtlpGrpcReceiver(port=port) as upstream:
            code, _seconds, stderr = gateway.terminate()
            assert code == 0, stderr
            spans = upstream.spans()
            assert len(spans) == 10, stderr
            assert all(span.attributes[a.COST_TOTAL_USD] > 0 for span in spans)
            assert a.METRIC_GATEWAY_RECEIVED in upstream.metric_names(), "final self-metrics flushed at SIGTERM"
            assert "stopping; delivering what is queued" in stderr
            assert "lost" not in stderr


def test_sigterm_with_the_upstream_down_is_bounded_and_counts_the_loss() -> None:
    with collector("--upstream", f"grpc://127.0.0.1:{unused_port()}", "--shutdown-timeout", "1") as gateway:
        _send(gateway.addresses["grpc"], 5)
        assert _wait(lambda: gateway.health()["counts"]["received"]["traces"] == 5)
        code, seconds, stderr = gateway.terminate()
    assert code == 0
    assert seconds < 8, f"shutdown took {seconds:.1f} s with a 1 s deadline"
    assert "were not delivered to OTLP/gRPC" in stderr and "are lost" in stderr
    assert "'gateway_shutdown_unsent'" in stderr, "the final summary names the count"


def test_spill_directory_survives_a_process_restart(tmp_path: Path) -> None:
    port = unused_port()
    flags = ("--upstream", f"grpc://127.0.0.1:{port}", "--spill-dir", str(tmp_path), "--shutdown-timeout", "1",
             "--metrics-interval", "3600")
    with collector(*flags) as first:
        _send(first.addresses["grpc"], 6)
        assert _wait(lambda: first.health()["counts"]["received"]["traces"] == 6)
        code, _, stderr = first.terminate()
    assert code == 0 and "for the next start" in stderr, stderr
    assert list(tmp_path.glob("*-traces-*.otlp"))
    with OtlpGrpcReceiver(port=port) as upstream, collector(*flags) as second:
        assert len(upstream.wait_for_spans(6, timeout=30)) == 6
        assert _wait(lambda: not list(tmp_path.glob("*-traces-*.otlp")))
        assert second.terminate()[0] == 0


def test_no_upstream_prints_a_summary_and_says_nothing_is_kept() -> None:
    with collector() as gateway:
        _send(gateway.addresses["grpc"], 2)
        assert _wait(lambda: gateway.health()["counts"]["exported"]["traces"] == 2)
        code, _, stderr = gateway.terminate()
    assert code == 0
    assert "no --upstream, so telemetry is only summarized on stderr" in stderr
    assert "traces items" in stderr and "not stored" in stderr


def test_bad_flags_exit_2_naming_the_flag() -> None:
    for flags, message in (
        (["--listen-grpc", "nowhere"], "--listen-grpc 'nowhere': expected HOST:PORT"),
        (["--upstream", "ftp://backend"], "--upstream 'ftp://backend'"),
        (["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.pem"], "--tls-cert/--tls-key '/nonexistent.pem': no such file"),
    ):
        result = subprocess.run([sys.executable, "-m", "llm_telemetry.cli", "collector", *flags],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
