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
    assert "chat gpt-4o-mini" in out and "more invoice-dates calls" in out
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


def test_demo_ends_by_reporting_the_date_regression_and_the_model_change(tmp_path: Path) -> None:
    """The README's promise: the demo names the validator, feature, start, affected outputs and the version change."""
    cli = Path(sys.executable).parent / "llm-telemetry"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLM_TELEMETRY_"))}
    done = subprocess.run([str(cli), "demo", "--state-dir", str(tmp_path)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "ALERT date_consistency pass rate dropped on feature 'invoice-dates'" in out
    started = re.search(r"started\s+(\S+)\s+\(first affected request, trace ([0-9a-f]{32})\)", out)
    assert started, out
    detected = re.search(r"at call (\d+) of 330, after (\d+) affected outputs", out)
    assert detected and 240 < int(detected.group(1)) <= 330 and 1 <= int(detected.group(2)) <= 50
    affected = re.search(r"affected\s+(\d+) of 90 outputs since the start failed the validator", out)
    assert affected and 20 <= int(affected.group(1)) <= 90
    assert "MODEL VERSION CHANGED openai 'gpt-4o-mini': system_fingerprint now 'fp_f1c8e2a7b9'" in out
    assert "response_model now 'gpt-4o-mini-2026-11-04'" in out
    assert "only content monitoring saw it" in out
    # the same findings are in the demo's embedded store, for `llm-telemetry report`
    report = subprocess.run([str(cli), "report", "--store", str(tmp_path / "telemetry.db"), "--json"], capture_output=True,
                            text=True, timeout=60, env=env)
    assert report.returncode == 0, report.stderr
    assert '"quality.validator_pass_rate"' in report.stdout and '"invoice-dates"' in report.stdout


def test_demo_state_dir_option(tmp_path: Path) -> None:
    cli = Path(sys.executable).parent / "llm-telemetry"
    env = {**os.environ, "LLM_TELEMETRY_REVIEW_DB_PATH": str(tmp_path / "real" / "review.db")}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    done = subprocess.run([str(cli), "demo", "--state-dir", str(tmp_path / "demo")], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert ReviewQueue(tmp_path / "demo" / "review.db").count() >= 1
    assert not (tmp_path / "real").exists()
