"""The issue's acceptance criterion: with the OTLP backend down for the whole run, an app under
``opentelemetry-instrument`` still exits 0 and takes at most 1.3x its time with the backend up.

This is a ratio of two wall times measured here, on the same machine, a moment apart — the one timing
comparison in the unit tests, because it *is* the requirement. Each side is the best of two runs and
0.5 s of slack absorbs a loaded machine; the stock OpenTelemetry setup misses it by seconds (about 13 s
against 1 s up here: ten seconds of retries per signal at exit).
"""

from __future__ import annotations

from pathlib import Path

from _export_helpers import SAMPLE_APP_SPANS, Run, run_instrumented
from _otlp_receiver import BlackholeServer, OtlpGrpcReceiver, unused_port

from llm_telemetry.config import Settings

RATIO = 1.3
SLACK_S = 0.5


def _best(runs: list[Run]) -> Run:
    for run in runs:
        assert run.returncode == 0, run.stderr
    return min(runs, key=lambda r: r.seconds)


def _measure(tmp_path: Path, bad_endpoint: str) -> tuple[Run, Run]:
    """Best (up, bad) runs, interleaved so a change in machine load hits both sides alike."""
    with OtlpGrpcReceiver() as rx:
        run_instrumented(rx.endpoint, cwd=tmp_path)  # warm-up: .pyc files, page cache
        ups, bads = [], []
        for _ in range(2):
            ups.append(run_instrumented(rx.endpoint, cwd=tmp_path))
            bads.append(run_instrumented(bad_endpoint, cwd=tmp_path))
        assert len(rx.wait_for_spans(3 * SAMPLE_APP_SPANS, timeout=5)) == 3 * SAMPLE_APP_SPANS
    up, bad = _best(ups), _best(bads)
    assert "dropped" not in up.stderr
    assert "sample_app: done" in bad.stdout
    return up, bad


def _check_drop_report(run: Run, endpoint: str) -> None:
    assert f"llm-telemetry: OTLP backend unreachable at {endpoint}; dropped {SAMPLE_APP_SPANS} spans, 1 metric batches" in run.stderr
    assert run.stderr.count("OTLP backend unreachable") == 1


def test_backend_down_costs_at_most_30_percent(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{unused_port()}"
    up, down = _measure(tmp_path, endpoint)
    _check_drop_report(down, endpoint)
    assert down.seconds <= RATIO * up.seconds + SLACK_S, f"backend down {down.seconds:.2f} s vs up {up.seconds:.2f} s"


def test_hung_backend_is_bounded_by_the_shutdown_timeout(tmp_path: Path) -> None:
    """A backend that accepts connections and never answers: the exit flush is abandoned at
    ``export.shutdown_timeout_s`` (the delay this test bounds) and the data counted as dropped."""
    shutdown_timeout_s = Settings().export.shutdown_timeout_s
    with BlackholeServer() as blackhole:
        up, hung = _measure(tmp_path, blackhole.endpoint)
    _check_drop_report(hung, blackhole.endpoint)
    assert hung.seconds <= up.seconds + shutdown_timeout_s + SLACK_S, f"backend hung {hung.seconds:.2f} s vs up {up.seconds:.2f} s"


def test_http_backend_down_too(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{unused_port()}"
    run = run_instrumented(endpoint, env={"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"llm-telemetry: OTLP backend unreachable at {endpoint}/v1/metrics, {endpoint}/v1/traces; dropped" in run.stderr
