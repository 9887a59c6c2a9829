"""End to end: ``opentelemetry-instrument python llm_app.py`` → our instrumentors, pipeline and OTLP/gRPC export.

The app has no telemetry code. The fake provider runs in this test process; a real OTLP/gRPC receiver
collects what arrives. Checks: one enriched GenAI span per SDK call (the Anthropic SDK's native
tracing is on and must not add a second span), TTFT and the stall as scripted, cost and safety
verdicts from the processors, no content and no API key exported, and the GenAI metrics.
"""

from __future__ import annotations

from _export_helpers import APPS, run_instrumented
from _otlp_receiver import OtlpGrpcReceiver

from llm_telemetry import attributes as a


def test_llm_app_under_opentelemetry_instrument(fake_provider, tmp_path):
    env = {
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "",
        "OTEL_SERVICE_NAME": "invoice-api",
        "FAKE_PROVIDER_URL": fake_provider.base_url,
        "LLM_TELEMETRY_REVIEW_DB_PATH": str(tmp_path / "review.db"),
    }
    with OtlpGrpcReceiver() as rx:
        run = run_instrumented(rx.endpoint, script=APPS / "llm_app.py", env=env, timeout=120)
        assert run.returncode == 0, run.stderr
        assert "llm_app: done" in run.stdout
        spans = rx.wait_for_spans(3, timeout=10)
        metric_names = rx.wait_for_metrics({a.METRIC_OPERATION_DURATION, a.METRIC_TIME_TO_FIRST_CHUNK}, timeout=10)

    genai = [s for s in spans if a.OPERATION_NAME in s.attributes]
    assert sorted(s.name for s in genai) == ["chat claude-haiku-4-5", "chat gpt-4o-mini", "chat gpt-4o-mini"]
    assert len(spans) == 3, [(s.name, s.scope) for s in spans]  # no duplicate from the Anthropic SDK's native tracing
    plain, streamed = sorted((s for s in genai if "gpt" in s.name), key=lambda s: s.attributes[a.REQUEST_STREAM])
    claude = next(s for s in genai if "claude" in s.name)

    assert plain.resource["service.name"] == "invoice-api"
    assert plain.attributes[a.USER_ID] == "user-7"
    assert plain.attributes[a.FEATURE] == "invoice-dates"
    assert plain.attributes[a.COST_TOTAL_USD] > 0
    assert 0.3 <= streamed.attributes[a.RESPONSE_TIME_TO_FIRST_CHUNK] < 0.6
    assert streamed.attributes[a.STREAM_STALL_COUNT] == 1
    assert claude.attributes[a.PROVIDER_NAME] == "anthropic"
    assert claude.attributes[a.SAFETY_FLAGGED] is True
    assert "pii" in claude.attributes[a.SAFETY_CATEGORIES]
    for span in genai:
        assert not set(span.attributes) & a.CONTENT_ATTRIBUTES
        assert all("secret" not in str(v) and "billing@example.com" not in str(v) for v in span.attributes.values())
    assert {a.METRIC_OPERATION_DURATION, a.METRIC_TIME_TO_FIRST_CHUNK} <= metric_names
