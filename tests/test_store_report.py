"""The embedded store and ``llm-telemetry report``: real SDK calls → store exporters → report text, JSON and HTML.

The scenario runs the real OpenAI SDK against the fake provider through our instrumentation and chain,
with the store's span/metric/log exporters behind the real OTel SDK: a chat feature with a slow first
token over its threshold, a looping client sending one prompt again and again, a daily budget crossed,
and a quality alert raised through the alert book. The page is rendered by headless Chromium.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from _pipeline_helpers import settings_from
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from llm_telemetry import attributes as a
from llm_telemetry.attribution import attribute
from llm_telemetry.config import set_settings
from llm_telemetry.exporters.store.exporters import StoreLogExporter, StoreMetricExporter, StoreSpanExporter
from llm_telemetry.fake_provider import Behaviour
from llm_telemetry.instrumentation.openai import OpenAIInstrumentor
from llm_telemetry.processors.chain import build_chain
from llm_telemetry.processors.pipeline import build_pipeline
from llm_telemetry.processors.quality.alerts import Alert, AlertBook
from llm_telemetry.side_channel import side_channel


@pytest.fixture
def store_path(tmp_path: Path, fake_provider) -> Path:
    path = tmp_path / "telemetry.db"
    settings = settings_from({
        "LLM_TELEMETRY_STORE_PATH": str(path), "LLM_TELEMETRY_BUDGET_DAILY_USD": "0.002",
        "LLM_TELEMETRY_REVIEW_DB_PATH": str(tmp_path / "review.db"),
        "LLM_TELEMETRY_REPORT_THRESHOLDS": "support-chat.ttft_p95=0.2,*.ttft_p95=3",
    })
    set_settings(settings)
    tracer_provider = TracerProvider()
    reader = PeriodicExportingMetricReader(StoreMetricExporter(str(path)), export_interval_millis=3_600_000)
    meter_provider = MeterProvider(metric_readers=[reader])
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(StoreLogExporter(str(path))))
    chain = build_chain(settings, meter_provider, tracer_provider)
    tracer_provider.add_span_processor(build_pipeline(SimpleSpanProcessor(StoreSpanExporter(str(path))), settings, chain=chain))
    side_channel.connect(chain)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        client = openai.OpenAI(api_key="sk-test", base_url=fake_provider.openai_base_url, max_retries=0)
        with attribute(user_id="u-chat", feature="support-chat"):
            for _ in range(3):
                stream = client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "Where is my order?"}], stream=True,
                    stream_options={"include_usage": True},
                    extra_headers=Behaviour(chunks=["On ", "its ", "way."], first_token_delay_s=0.3).header())
                for _ in stream:
                    pass
        with attribute(user_id="u-loop", feature="batch-summaries"):
            for _ in range(4):  # the looping bug of the source's cost-spike story
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Summarise doc 7"}],
                                               extra_headers=Behaviour(text="A summary.", input_tokens=200, output_tokens=50).header())
        book = AlertBook(meter_provider.get_meter("test"))
        from opentelemetry import _logs

        _logs.set_logger_provider(logger_provider)
        book._otel_logger = logger_provider.get_logger("llm_telemetry.quality")
        book.emit(Alert("quality.validator_pass_rate", "firing", "date_consistency pass rate 0.98 → 0.41 on invoice-dates",
                        {"feature": "invoice-dates", "validator": "date_consistency"}, started_ns=None, examples=("ab" * 16,)))
        meter_provider.force_flush()
    finally:
        instrumentor.uninstrument()
        side_channel.connect(None, auto=False)
        tracer_provider.shutdown()
        meter_provider.shutdown()
        logger_provider.shutdown()
        set_settings(None)
    return path


def _cli(*args: str, env_store: Path) -> subprocess.CompletedProcess[str]:
    env = {"LLM_TELEMETRY_STORE_PATH": str(env_store), "LLM_TELEMETRY_BUDGET_DAILY_USD": "0.002",
           "LLM_TELEMETRY_REPORT_THRESHOLDS": "support-chat.ttft_p95=0.2,*.ttft_p95=3", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "llm_telemetry.cli", *args], capture_output=True, text=True, env=env, timeout=60)


def test_report_json_has_the_sources_figures(store_path: Path) -> None:
    run = _cli("report", "--json", env_store=store_path)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["window"]["calls"] == 7
    chat = next(f for f in report["latency"]["by_feature"] if f["feature"] == "support-chat")
    assert chat["calls"] == 3 and chat["ttft_p95_s"] >= 0.3
    assert chat["breaches"] and chat["breaches"][0]["metric"] == "ttft_p95"
    batch = next(f for f in report["latency"]["by_feature"] if f["feature"] == "batch-summaries")
    assert batch["breaches"] == []
    cost = report["cost"]
    assert cost["top_users_last_hour"][0]["user"] == "u-loop"
    assert cost["top_requests_last_hour"][0]["usd"] == pytest.approx(200 * 2.5e-6 + 50 * 10e-6)
    assert cost["daily_budget_used_pct"] > 100
    loop = report["loops"][0]  # most repeats first
    assert loop["source"] == "u-loop" and loop["repeats"] == 4 and loop["feature"] == "batch-summaries"
    assert {c["llm_telemetry.budget.level"] for c in report["alerts"]["budget_crossings"]} == {"warning", "critical"}
    (alert,) = report["alerts"]["active"]
    assert alert["key"] == {"feature": "invoice-dates", "validator": "date_consistency"}
    assert any(q["metric"] == a.METRIC_QUALITY_ALERTS for q in report["quality"])


def test_report_text_and_filters(store_path: Path) -> None:
    run = _cli("report", "--feature", "support-chat", env_store=store_path)
    assert run.returncode == 0, run.stderr
    assert "calls=3" in run.stdout and "ttft_p95" in run.stdout and "> 0.2" in run.stdout
    assert "Active alerts" in run.stdout and "date_consistency pass rate" in run.stdout
    empty = _cli("report", "--since", "2020-01-01", "--until", "2020-01-02", "--json", env_store=store_path)
    assert json.loads(empty.stdout)["window"]["calls"] == 0
    bad = _cli("report", "--since", "yesterday-ish", env_store=store_path)
    assert bad.returncode == 2 and "'yesterday-ish' is not a time" in bad.stderr


def test_html_page_renders_in_headless_chromium(store_path: Path, tmp_path: Path) -> None:
    if shutil.which("chromium") is None:
        if os.environ.get("LLM_TELEMETRY_REQUIRE_CHROMIUM"):
            pytest.fail("headless Chromium is required here (LLM_TELEMETRY_REQUIRE_CHROMIUM) but not installed")
        pytest.skip("needs headless Chromium (Debian package chromium)")
    page = tmp_path / "report.html"
    run = _cli("report", "--html", str(page), env_store=store_path)
    assert run.returncode == 0, run.stderr
    text = page.read_text(encoding="utf-8")
    assert "<svg" in text and "http://" not in text and "https://" not in text  # self-contained
    shot = tmp_path / "report.png"
    chromium = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
         f"--screenshot={shot}", "--window-size=900,2400", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 10_000, chromium.stderr[-2000:]
    assert "Uncaught" not in chromium.stderr and "CONSOLE(" not in chromium.stderr
