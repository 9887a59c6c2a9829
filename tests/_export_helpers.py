"""Run a script under ``opentelemetry-instrument`` in a clean environment and time it.

``OTEL_PYTHON_DISTRO=llm_telemetry`` is set because another distro (``opentelemetry-distro``) may be
installed next to ours, and ``opentelemetry-instrument`` then loads whichever it finds first; our
distro selects our configurator itself.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llm_telemetry.config import Settings
from llm_telemetry.exporters import Providers, configure

APPS = Path(__file__).parent / "apps"
SAMPLE_APP = APPS / "sample_app.py"
SAMPLE_APP_SPANS = 5
"""sample_app.main, three sample_app.step, one GenAI-shaped chat span."""
INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def clean_env(**overrides: str | None) -> dict[str, str]:
    """The test process's environment without any OTEL_* / LLM_TELEMETRY_* setting, plus ``overrides``.

    Our OpenAI / Anthropic instrumentors are disabled by default: instrumenting imports both SDKs
    (seconds on a busy machine), which the OpenTelemetry-API-only sample app does not need. An LLM app
    test passes ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=""`` to turn them back on.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLM_TELEMETRY_"))}
    env["OTEL_PYTHON_DISTRO"] = "llm_telemetry"
    env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "llm_telemetry_openai,llm_telemetry_anthropic"
    env["OTEL_SERVICE_NAME"] = "sample-app"
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in overrides.items():  # None removes a variable (e.g. no OTEL_PYTHON_DISTRO at all)
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_instrumented(
    endpoint: str, script: Path = SAMPLE_APP, env: Mapping[str, str | None] | None = None, cwd: Path | None = None,
    timeout: float = 60.0, *, instrument: bool = True,
) -> Run:
    """``opentelemetry-instrument python script`` (or plain ``python script``) exporting to ``endpoint``; wall time."""
    full_env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, **(env or {}))
    started = time.perf_counter()
    command = [str(INSTRUMENT), sys.executable, str(script)] if instrument else [sys.executable, str(script)]
    proc = subprocess.run(
        command,
        env=full_env, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - started)


def clear_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every OTEL_* / LLM_TELEMETRY_* variable for this test: configure() must see only what it is given."""
    for name in list(os.environ):
        if name.startswith(("OTEL_", "LLM_TELEMETRY_")):
            monkeypatch.delenv(name)


@contextlib.contextmanager
def providers_factory(default_settings: Settings) -> Iterator[Callable[..., Providers]]:
    """``configure(set_global=False, ...)`` with ``default_settings`` unless given; every result is shut down after."""
    made: list[Providers] = []

    def build(**kwargs: Any) -> Providers:
        kwargs.setdefault("settings", default_settings)
        providers = configure(set_global=False, **kwargs)
        made.append(providers)
        return providers

    yield build
    for providers in made:
        providers.shutdown(timeout_s=0.2)
