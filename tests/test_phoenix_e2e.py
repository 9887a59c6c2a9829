"""End to end against a real Arize Phoenix: the README's "See your traces in Phoenix" commands, as written.

A real ``phoenix serve`` (free ports, fresh working directory, stopped at the end) gets the demo's
telemetry and an untouched app's (under ``opentelemetry-instrument``, no extra variable), and
everything is read back through Phoenix's own REST API (``/v1/projects``, ``/v1/projects/{name}/spans``,
``/v1/projects/{name}/sessions``) and, for its cost and its UI filter language, its GraphQL API.

Phoenix is an optional extra (a venv of its own, see .ci/run): without it these tests are skipped with
the reason, unless ``LLM_TELEMETRY_REQUIRE_PHOENIX=1`` (CI), which makes that a failure.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _export_helpers import APPS, INSTRUMENT, clean_env
from _phoenix import REQUIRE_ENV, PhoenixServer, find_phoenix

from llm_telemetry import attributes as a
from llm_telemetry.demo import STORY_GOOD_CALLS, STORY_UPDATED_CALLS

README = Path(__file__).resolve().parent.parent / "README.md"
CI_SCRIPT = README.parent / ".ci" / "run"
DEMO_PROJECT = "llm-telemetry-demo"
STORY_CALLS = STORY_GOOD_CALLS + STORY_UPDATED_CALLS
DEMO_SPANS = STORY_CALLS + 5  # the story, then: stream with a stall, Claude, the 429, acme-internal-llm, embeddings

pytestmark = pytest.mark.timeout(900)  # Phoenix's start-up alone can take minutes on a busy 2-core machine


@dataclass(frozen=True)
class Command:
    env: dict[str, str]
    argv: list[str]


def readme_commands() -> list[Command]:
    """The command lines of the README's Phoenix section (its first bash block), comments dropped."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## See your traces in Phoenix", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        env: dict[str, str] = {}
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            key, value = words.pop(0).split("=", 1)
            env[key] = value
        commands.append(Command(env, words))
    return commands


def _command(*words: str) -> Command:
    found = [c for c in readme_commands() if all(w in c.argv for w in words)]
    assert len(found) == 1, f"README Phoenix section: expected one command with {words}, found {found}"
    return found[0]


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixServer]:
    executable, reason = find_phoenix()
    if executable is None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
        pytest.skip(reason)
    serve = _command("serve")
    assert Path(serve.argv[0]).name == "phoenix" and serve.argv[1:] == ["serve"]
    with PhoenixServer(executable, tmp_path_factory.mktemp("phoenix"), env=serve.env) as server:
        yield server


def _endpoint(value: str, phoenix: PhoenixServer) -> str:
    """The README's default ports, moved to the test server's free ones."""
    return value.replace("127.0.0.1:4317", f"127.0.0.1:{phoenix.grpc_port}").replace("127.0.0.1:6006", f"127.0.0.1:{phoenix.http_port}")


def test_readme_install_line_is_what_ci_runs() -> None:
    install = _command("install", "arize-phoenix")
    line = " ".join(install.argv)
    assert line == "python3 -m venv .venv-phoenix && .venv-phoenix/bin/pip install arize-phoenix"
    assert line in CI_SCRIPT.read_text(encoding="utf-8")
    assert ".venv-phoenix/" in (README.parent / ".gitignore").read_text(encoding="utf-8").splitlines()


def test_demo_in_phoenix_kinds_models_tokens_content_attribution_and_cost(phoenix: PhoenixServer, tmp_path: Path) -> None:
    demo = _command("demo")
    assert demo.argv == [".venv/bin/llm-telemetry", "demo"]
    env = clean_env(**{k: _endpoint(v, phoenix) for k, v in demo.env.items()})
    run = subprocess.run([str(Path(sys.executable).parent / "llm-telemetry"), "demo", "--state-dir", str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    spans = phoenix.wait_for_spans(DEMO_PROJECT, DEMO_SPANS)
    by_name: dict[str, list[dict]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)

    # Its own project, named after service.name, with no extra variable; nothing in "default".
    assert DEMO_PROJECT in phoenix.projects()
    assert phoenix.spans("default") == []
    assert len(spans) == DEMO_SPANS
    assert {(s["name"], s["span_kind"]) for s in spans} == {
        ("chat acme-internal-llm", "LLM"), ("chat claude-sonnet-4-5", "LLM"), ("chat gpt-4o", "LLM"),
        ("chat gpt-4o-mini", "LLM"), ("embeddings text-embedding-3-small", "EMBEDDING"),
    }

    # The invoice-date feature (the story): model, the provider's token counts, prompt and answer (capture is on).
    invoices = by_name["chat gpt-4o-mini"]
    assert len(invoices) == STORY_CALLS
    answers = set()
    for span in invoices:
        attrs = span["attributes"]
        assert attrs["llm.provider"] == "openai"
        assert (attrs["llm.token_count.prompt"], attrs["llm.token_count.completion"], attrs["llm.token_count.total"]) == (58, 6, 64)
        assert "ACME GmbH, issued " in attrs["input.value"] and attrs["input.mime_type"] == "application/json"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", attrs["output.value"])
        answers.add(attrs["output.value"])
    assert len(answers) > 100
    # the silent model update of the story, visible as two model versions side by side
    assert {s["attributes"]["llm.model_name"] for s in invoices} == {"gpt-4o-mini", "gpt-4o-mini-2026-11-04"}
    claude = by_name["chat claude-sonnet-4-5"][0]["attributes"]
    assert claude["output.value"].startswith("You can reach our billing team")
    assert claude["llm.token_count.prompt_details.cache_read"] == 800

    embedding = by_name["embeddings text-embedding-3-small"][0]["attributes"]
    assert embedding["embedding.model_name"] == "text-embedding-3-small" and embedding["llm.token_count.total"] == 12
    assert [embedding[f"embedding.embeddings.{i}.embedding.text"] for i in range(2)] == ["invoice 2291", "invoice 2292"]

    # Feature attribution, filterable: the REST attribute filter, the UI's filter language, tags; sessions.
    filtered = phoenix.spans(DEMO_PROJECT, attribute="metadata.feature:invoice-dates")
    assert sorted(s["context"]["span_id"] for s in filtered) == sorted(s["context"]["span_id"] for s in invoices)
    assert len(phoenix.spans(DEMO_PROJECT, span_kind="EMBEDDING")) == 1
    assert all(s["attributes"]["tag.tags"] == [s["attributes"]["metadata.feature"]] for s in spans)
    ui_filter = phoenix.graphql(
        """query($id: ID!, $filter: String!) { node(id: $id) { ... on Project {
            spans(first: 100, filterCondition: $filter) { edges { node { spanId } } } } } }""",
        id=phoenix.projects()[DEMO_PROJECT], filter="metadata['feature'] == 'support-chat'",
    )
    assert len(ui_filter["node"]["spans"]["edges"]) == 2
    sessions = {s["session_id"]: len(s["traces"]) for s in phoenix.get(f"/projects/{DEMO_PROJECT}/sessions")["data"]}
    assert sessions == {"sess-2": 2}

    # Phoenix's own cost matches ours wherever both have a price.
    costs = phoenix.span_costs(DEMO_PROJECT)
    compared = 0
    for span in spans:
        ours = span["attributes"].get(a.COST_TOTAL_USD)
        theirs = costs[span["context"]["span_id"]]
        if span["span_kind"] == "LLM" and ours is not None:
            assert theirs == pytest.approx(ours, rel=1e-9), span["name"]
            compared += 1
    assert compared == STORY_CALLS + 2  # the invoice calls, the gpt-4o stream, the Claude call (no price: acme, the 429)


def test_app_from_the_readme_lands_in_its_service_project_quietly(phoenix: PhoenixServer, fake_provider, tmp_path: Path) -> None:
    """``OTEL_SERVICE_NAME=invoice-api … OTEL_METRICS_EXPORTER=none opentelemetry-instrument python app.py``, as a user
    runs it (both our distro and opentelemetry-distro installed, no OTEL_PYTHON_DISTRO), content capture off."""
    app = _command("opentelemetry-instrument")
    assert app.argv == ["opentelemetry-instrument", "python", "app.py"]
    env = clean_env(OTEL_PYTHON_DISTRO=None, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="", FAKE_PROVIDER_URL=fake_provider.base_url,
                    LLM_TELEMETRY_REVIEW_DB_PATH=str(tmp_path / "review.db"), **{k: _endpoint(v, phoenix) for k, v in app.env.items()})
    run = subprocess.run([str(INSTRUMENT), sys.executable, str(APPS / "llm_app.py")], env=env, capture_output=True, text=True,
                         timeout=300, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    assert "llm_app: done" in run.stdout
    assert "llm-telemetry:" not in run.stderr and "Traceback" not in run.stderr, run.stderr  # nothing to report
    project = app.env["OTEL_SERVICE_NAME"]
    spans = phoenix.wait_for_spans(project, 3)
    assert sorted((s["name"], s["span_kind"]) for s in spans) == [
        ("chat claude-haiku-4-5", "LLM"), ("chat gpt-4o-mini", "LLM"), ("chat gpt-4o-mini", "LLM"),
    ]
    for span in spans:
        attrs = span["attributes"]
        assert attrs["metadata.feature"] == "invoice-dates" and attrs["metadata.user_id"] == "user-7"
        assert "input.value" not in attrs and not any(k.startswith("llm.input_messages") for k in attrs)  # capture is off
        assert attrs[a.ENRICHED] is True and a.COST_TOTAL_USD in attrs
    first = next(s for s in spans if s["name"] == "chat gpt-4o-mini")["attributes"]
    assert (first["llm.token_count.prompt"], first["llm.token_count.completion"]) == (1000, 200)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_metrics_left_on_are_reported_as_rejected_not_unreachable(phoenix: PhoenixServer, fake_provider, tmp_path: Path,
                                                                   protocol: str) -> None:
    """The user who forgot ``OTEL_METRICS_EXPORTER=none``: the exit report says Phoenix answered and what to set."""
    endpoint = phoenix.grpc_endpoint if protocol == "grpc" else phoenix.http_endpoint
    project = f"invoice-api-{protocol.split('/')[0]}"
    env = clean_env(OTEL_PYTHON_DISTRO=None, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="", FAKE_PROVIDER_URL=fake_provider.base_url,
                    LLM_TELEMETRY_REVIEW_DB_PATH=str(tmp_path / "review.db"), OTEL_SERVICE_NAME=project,
                    OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=protocol)
    run = subprocess.run([str(INSTRUMENT), sys.executable, str(APPS / "llm_app.py")], env=env, capture_output=True, text=True,
                         timeout=300, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    metrics_url = f"{endpoint}/v1/metrics" if protocol == "http/protobuf" else endpoint
    answer = "gRPC UNIMPLEMENTED" if protocol == "grpc" else "HTTP 405 Method Not Allowed"
    assert f"llm-telemetry: the OTLP backend at {metrics_url} is reachable but rejected our metrics ({answer}" in run.stderr
    assert "set OTEL_METRICS_EXPORTER=none" in run.stderr
    assert "unreachable" not in run.stderr and "collector is running" not in run.stderr, run.stderr
    assert len(phoenix.wait_for_spans(project, 3)) == 3  # traces arrive all the same
