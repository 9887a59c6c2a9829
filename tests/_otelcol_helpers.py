"""The real OpenTelemetry Collector, Jaeger v2 and Prometheus as processes a test starts and always stops.

Binaries: ``collector-config/build.sh otelcol|jaeger`` builds them with Go once into
``~/.cache/llm-telemetry/`` (minutes the first time, instant after). ``.ci/run`` builds them before pytest
and passes their paths in ``LLM_TELEMETRY_OTELCOL_BIN`` / ``LLM_TELEMETRY_JAEGER_BIN``. Without Go the tests
skip with the reason -- unless ``LLM_TELEMETRY_REQUIRE_COLLECTOR=1`` (CI), where a missing binary fails.

Every process binds 127.0.0.1 on free ports (other test runs share the machine), is started by a context
manager that waits for its ports with a timeout, and is stopped on exit: SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

CONFIG_DIR = Path(__file__).resolve().parents[1] / "collector-config"
BUILD_SH = CONFIG_DIR / "build.sh"
REQUIRE_ENV = "LLM_TELEMETRY_REQUIRE_COLLECTOR"
BINARY_ENVS = {"otelcol": "LLM_TELEMETRY_OTELCOL_BIN", "jaeger": "LLM_TELEMETRY_JAEGER_BIN"}
BUILD_TIMEOUT_S = 3600.0
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
# A first build inside the test run (no prebuilt binary, Go present) takes minutes; every wait inside
# the tests has its own timeout, so a generous per-test limit loses no protection against hangs.
REAL_BINARY_TIMEOUT = pytest.mark.timeout(BUILD_TIMEOUT_S + 600)


def free_port() -> int:
    """A loopback port nobody listened on a moment ago (bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def find_go() -> str | None:
    for candidate in (os.environ.get("GO"), shutil.which("go"), "/usr/local/go/bin/go"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def unavailable(reason: str) -> None:
    """Skip (a user's machine without Go), or fail where the binaries are required (CI)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)")
    pytest.skip(reason)


def built_binary(kind: str) -> str:
    """Path of the otelcol or jaeger binary: prebuilt (env var), else built now by build.sh."""
    preset = os.environ.get(BINARY_ENVS[kind])
    if preset:
        if not os.access(preset, os.X_OK):
            pytest.fail(f"{BINARY_ENVS[kind]}={preset} is not an executable file")
        return preset
    go = find_go()
    if go is None:
        unavailable(f"no Go toolchain to build the real {kind} (collector-config/build.sh {kind}); install Go to run these tests")
    env = {**os.environ, "GO": str(go)}
    result = subprocess.run(
        ["bash", str(BUILD_SH), kind], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, env=env, check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"collector-config/build.sh {kind} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def otelcol_bin() -> str:
    return built_binary("otelcol")


@pytest.fixture(scope="session")
def jaeger_bin() -> str:
    return built_binary("jaeger")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    path = shutil.which("prometheus") or ("/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None)
    if path is None:
        unavailable("no prometheus server: install Debian's `prometheus` package (apt-get install -y prometheus)")
    return str(path)


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Service:
    """One server process: output to a log file, ready when its ports accept connections, always stopped."""

    def __init__(
        self, name: str, argv: Sequence[str], log_dir: Path, ports: Sequence[int] = (),
        env: Mapping[str, str] | None = None, cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_dir / f"{name}.log"
        self.ports = list(ports)
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd or log_dir
        self.proc: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Service:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(port_open(p) for p in self.ports):
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode} before it was ready:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"{self.name} not listening on {self.ports} after {START_TIMEOUT_S:.0f} s:\n{self.log()[-4000:]}")
            time.sleep(0.1)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop the process (and anything it started); its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(STOP_TIMEOUT_S)
            except ProcessLookupError:
                pass
        return self.proc.wait(STOP_TIMEOUT_S)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def otelcol(binary: str, tmp_path: Path, config: Path, overlay: Mapping[str, Any], *, name: str = "otelcol",
            env: Mapping[str, str] | None = None, ports: Sequence[int] = ()) -> Service:
    """The Collector with ``config`` as committed plus an overlay file merged on top (ports, telemetry)."""
    overlay_path = write_yaml(tmp_path / f"{name}-overlay.yaml", overlay)
    return Service(name, [binary, "--config", f"file:{config}", "--config", f"file:{overlay_path}"], tmp_path, ports, env)


def otelcol_overlay(grpc: int, http: int, prometheus: int | None = None) -> dict[str, Any]:
    """Loopback ports for otelcol.yaml, and no self-metrics server (it would take the shared :8888)."""
    overlay: dict[str, Any] = {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{grpc}"},
                                             "http": {"endpoint": f"127.0.0.1:{http}"}}}},
        "service": {"telemetry": {"metrics": {"level": "none"}}},
    }
    if prometheus is not None:
        overlay["exporters"] = {"prometheus": {"endpoint": f"127.0.0.1:{prometheus}"}}
    return overlay


def run_binary(binary: str, *args: str | Path, timeout: float = 120.0, cwd: Path = CONFIG_DIR,
               env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False,
        env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
    )


def wait_until(predicate: Any, timeout: float, interval: float = 0.5, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; that value, or AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last value: {last!r}")
