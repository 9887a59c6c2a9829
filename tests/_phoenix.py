"""A real Arize Phoenix server for the end-to-end tests, and the parts of its REST and GraphQL APIs they read.

Phoenix is not a dependency of ours (it pins its own OpenTelemetry versions): it lives in a venv of its
own and is found through ``LLM_TELEMETRY_PHOENIX_BIN`` (the ``phoenix`` executable) or ``phoenix`` on
PATH. `PhoenixServer` runs ``phoenix serve`` on free ports of 127.0.0.1 with a fresh working directory
(its SQLite database), waits for it to answer, and stops it — only the process it started.

Note: Phoenix's OTLP/gRPC server always listens on every interface (``[::]``); the HTTP server (UI,
REST API and OTLP/HTTP ``/v1/traces``) honours ``PHOENIX_HOST``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from _otlp_receiver import unused_port

PHOENIX_BIN_ENV = "LLM_TELEMETRY_PHOENIX_BIN"
REQUIRE_ENV = "LLM_TELEMETRY_REQUIRE_PHOENIX"
START_TIMEOUT_S = 300.0
"""Phoenix starts in ~20 s on an idle machine (migrations, UI assets); a busy 2-core CI box is far slower."""


def find_phoenix() -> tuple[str | None, str]:
    """(the ``phoenix`` executable or None, why none): ``LLM_TELEMETRY_PHOENIX_BIN`` if set, else ``phoenix`` on PATH."""
    configured = os.environ.get(PHOENIX_BIN_ENV, "").strip()
    if configured:
        if os.path.isfile(configured) and os.access(configured, os.X_OK):
            return configured, ""
        return None, f"{PHOENIX_BIN_ENV}={configured!r} is not an executable file"
    found = shutil.which("phoenix")
    if found:
        return found, ""
    return None, (f"Arize Phoenix not found: set {PHOENIX_BIN_ENV} to its `phoenix` executable or put `phoenix` on PATH "
                  "(python3 -m venv .venv-phoenix && .venv-phoenix/bin/pip install arize-phoenix)")


class PhoenixServer:
    """``phoenix serve`` on free local ports; ``grpc_endpoint`` / ``http_endpoint`` are what OTLP exporters take."""

    def __init__(self, executable: str, working_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.executable = executable
        self.working_dir = working_dir
        self.http_port = unused_port()
        self.grpc_port = unused_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.http_endpoint = self.url
        self.grpc_endpoint = f"http://127.0.0.1:{self.grpc_port}"
        self.log_path = working_dir / "phoenix.log"
        # Phoenix is an OpenTelemetry app itself: none of the test process's OTEL_* / PHOENIX_* settings leak in.
        self._env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHOENIX_", "LLM_TELEMETRY_"))}
        self._env.update(env or {})
        self._env.update({
            "PHOENIX_PORT": str(self.http_port),
            "PHOENIX_GRPC_PORT": str(self.grpc_port),
            "PHOENIX_WORKING_DIR": str(working_dir),
            "PHOENIX_TELEMETRY_ENABLED": "false",
            "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
        })
        self._env.setdefault("PHOENIX_HOST", "127.0.0.1")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                [self.executable, "serve"], env=self._env, cwd=self.working_dir, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"phoenix serve exited with {self._process.returncode}:\n{self.log_tail()}")
            if self._answers() and self._grpc_listening():
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"phoenix serve did not answer on {self.url} within {timeout_s:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def __enter__(self) -> PhoenixServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def _grpc_listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.grpc_port), timeout=1):
                return True
        except OSError:
            return False

    # -- its REST API (/v1) and GraphQL --------------------------------------------------------------

    def get(self, path: str, **query: Any) -> Any:
        """GET ``/v1{path}`` with ``query`` (lists repeat the parameter); the decoded JSON body."""
        url = f"{self.url}/v1{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.load(response)

    def projects(self) -> dict[str, str]:
        """Project name → id."""
        return {p["name"]: p["id"] for p in self.get("/projects")["data"]}

    def spans(self, project: str, **query: Any) -> list[dict[str, Any]]:
        """The project's spans (``GET /v1/projects/{project}/spans``), oldest first; [] while the project does not exist."""
        try:
            return list(reversed(self.get(f"/projects/{urllib.parse.quote(project)}/spans", limit=1000, **query)["data"]))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise

    def wait_for_spans(self, project: str, count: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """Phoenix ingests in the background: poll until ``count`` spans are in ``project`` (or the timeout)."""
        deadline = time.monotonic() + timeout_s
        spans = self.spans(project)
        while len(spans) < count and time.monotonic() < deadline:
            time.sleep(0.5)
            spans = self.spans(project)
        return spans

    def graphql(self, query: str, **variables: Any) -> Any:
        request = urllib.request.Request(
            f"{self.url}/graphql", data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
        if body.get("errors"):
            raise AssertionError(f"Phoenix GraphQL errors: {body['errors']}")
        return body["data"]

    def span_costs(self, project: str) -> dict[str, float | None]:
        """Span id → the total cost Phoenix computed from its own price table (None: it has no price for the model)."""
        query = """query($id: ID!) { node(id: $id) { ... on Project {
            spans(first: 1000) { edges { node { spanId costSummary { total { cost } } } } } } } }"""
        data = self.graphql(query, id=self.projects()[project])
        return {
            edge["node"]["spanId"]: ((edge["node"]["costSummary"] or {}).get("total") or {}).get("cost")
            for edge in data["node"]["spans"]["edges"]
        }
