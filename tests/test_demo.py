"""The README's main job: ``llm-telemetry demo`` runs end to end on the embedded fake provider."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from llm_telemetry.processors.safety.review_queue import ReviewQueue


def test_demo_prints_enriched_spans_and_metrics(tmp_path: Path) -> None:
    cli = Path(sys.executable).parent / "llm-telemetry"
    env = {**os.environ, "LLM_TELEMETRY_REVIEW_DB_PATH": str(tmp_path / "review.db")}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    done = subprocess.run([str(cli), "demo"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "chat gpt-4o-mini-2024-07-18" in out
    assert "event llm_telemetry.stall" in out  # the scripted 0.8 s stall
    assert "flag:pii" in out  # the leaked e-mail address / phone number
    assert "unknown" in out  # acme-internal-llm has no price
    assert "chat claude-sonnet-4-5" in out
    for metric in ("gen_ai.client.operation.duration", "gen_ai.client.operation.time_to_first_chunk", "llm_telemetry.cost"):
        assert metric in out
    assert not (tmp_path / "review.db").exists()  # the user's own review queue is never the demo's
    demo_db = Path(re.search(r"review queue of this demo: (\S+)", out).group(1))
    assert f"LLM_TELEMETRY_REVIEW_DB_PATH={demo_db} llm-telemetry review list" in out
    try:
        assert ReviewQueue(demo_db).count() >= 1  # the leaked e-mail address, written where the demo said
    finally:
        shutil.rmtree(demo_db.parent)


def test_demo_state_dir_option(tmp_path: Path) -> None:
    cli = Path(sys.executable).parent / "llm-telemetry"
    env = {**os.environ, "LLM_TELEMETRY_REVIEW_DB_PATH": str(tmp_path / "real" / "review.db")}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    done = subprocess.run([str(cli), "demo", "--state-dir", str(tmp_path / "demo")], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert ReviewQueue(tmp_path / "demo" / "review.db").count() >= 1
    assert not (tmp_path / "real").exists()
