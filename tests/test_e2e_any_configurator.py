"""End to end: enrichment arrives whoever set up the OpenTelemetry SDK.

A new user following the OpenTelemetry docs has ``opentelemetry-distro`` installed next to ours (it is
in this project's dev dependencies for that reason); before, its configurator could win and cost,
budgets and safety vanished silently. Each case runs an untouched app in a subprocess and checks what a
real OTLP/gRPC receiver gets: our distro chosen explicitly, both installed with no variable at all,
``opentelemetry-distro``'s configurator explicitly the winner (with the Anthropic SDK's native tracing
on), and an app that builds its own ``TracerProvider`` in code.
"""

from __future__ import annotations

import pytest
from _export_helpers import APPS, run_instrumented
from _otlp_receiver import OtlpGrpcReceiver, ReceivedSpan

from llm_telemetry import attributes as a


def _llm_app_env(fake_provider, tmp_path, **extra: str | None) -> dict[str, str | None]:
    return {
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "",
        "OTEL_SERVICE_NAME": "invoice-api",
        "FAKE_PROVIDER_URL": fake_provider.base_url,
        "LLM_TELEMETRY_REVIEW_DB_PATH": str(tmp_path / "review.db"),
        **extra,
    }


def _check_enriched(spans: list[ReceivedSpan]) -> None:
    genai = [s for s in spans if a.OPERATION_NAME in s.attributes]
    assert sorted(s.name for s in genai) == ["chat claude-haiku-4-5", "chat gpt-4o-mini", "chat gpt-4o-mini"]
    assert len(spans) == 3, [(s.name, s.scope) for s in spans]  # no second span from Anthropic's native tracing
    for span in genai:
        assert span.attributes[a.ENRICHED] is True
        assert a.COST_TOTAL_USD in span.attributes, span.name
        assert not set(span.attributes) & a.CONTENT_ATTRIBUTES
    claude = next(s for s in genai if "claude" in s.name)
    assert claude.attributes[a.SAFETY_FLAGGED] is True and "pii" in claude.attributes[a.SAFETY_CATEGORIES]


@pytest.mark.parametrize(
    ("case", "extra"),
    [
        ("our distro chosen", {"OTEL_PYTHON_DISTRO": "llm_telemetry"}),
        ("both installed, no variable", {"OTEL_PYTHON_DISTRO": None}),
        ("opentelemetry-distro's configurator wins", {"OTEL_PYTHON_DISTRO": "distro", "OTEL_PYTHON_CONFIGURATOR": "configurator"}),
    ],
)
def test_enrichment_arrives_whichever_configurator_won(fake_provider, tmp_path, case: str, extra: dict[str, str | None]) -> None:
    with OtlpGrpcReceiver() as rx:
        run = run_instrumented(rx.endpoint, script=APPS / "llm_app.py", env=_llm_app_env(fake_provider, tmp_path, **extra),
                               timeout=120)
        assert run.returncode == 0, run.stderr
        assert "llm_app: done" in run.stdout
        spans = rx.wait_for_spans(3, timeout=10)
        names = rx.wait_for_metrics({a.METRIC_COST, a.METRIC_SAFETY_CHECKS, a.METRIC_OPERATION_DURATION}, timeout=10)
    _check_enriched(spans)
    assert {a.METRIC_COST, a.METRIC_SAFETY_CHECKS, a.METRIC_OPERATION_DURATION} <= names, case
    assert "Traceback" not in run.stderr, run.stderr


def test_an_app_that_builds_its_own_tracer_provider_is_enriched(fake_provider, tmp_path) -> None:
    with OtlpGrpcReceiver() as rx:
        run = run_instrumented(rx.endpoint, script=APPS / "own_provider_app.py", instrument=False, timeout=120,
                               env=_llm_app_env(fake_provider, tmp_path))
        assert run.returncode == 0, run.stderr
        assert "own_provider_app: done" in run.stdout
        spans = rx.wait_for_spans(2, timeout=10)
        names = rx.wait_for_metrics({a.METRIC_COST, a.METRIC_SAFETY_FLAGS}, timeout=10)
    plain, leaky = sorted(spans, key=lambda s: s.span.start_time_unix_nano)
    assert plain.attributes[a.COST_TOTAL_USD] == pytest.approx(1000 * 0.15e-6 + 200 * 0.6e-6)
    assert plain.attributes[a.SAFETY_FLAGGED] is False
    assert leaky.attributes[a.SAFETY_FLAGGED] is True and leaky.attributes[a.ENRICHED] is True
    assert {a.METRIC_COST, a.METRIC_SAFETY_FLAGS} <= names


def test_a_bad_setting_or_pricing_file_costs_only_what_it_belongs_to(fake_provider, tmp_path) -> None:
    """The new user's try: LLM_TELEMETRY_JUDGE_SAMPLE_RATE=abc used to cost every span (tracebacks, nothing
    exported), and a bad pricing file turned off the safety screen too."""
    pricing = tmp_path / "pricing.toml"
    pricing.write_text("[models.gpt-4o-mini]\ninput = 'cheap'\n", encoding="utf-8")
    env = _llm_app_env(fake_provider, tmp_path, OTEL_PYTHON_DISTRO=None, LLM_TELEMETRY_JUDGE_SAMPLE_RATE="abc",
                       LLM_TELEMETRY_COST_PRICING_FILE=str(pricing))
    with OtlpGrpcReceiver() as rx:
        run = run_instrumented(rx.endpoint, script=APPS / "llm_app.py", env=env, timeout=120)
        assert run.returncode == 0, run.stderr
        spans = rx.wait_for_spans(3, timeout=10)
    assert "Traceback" not in run.stderr, run.stderr
    assert "LLM_TELEMETRY_JUDGE_SAMPLE_RATE" in run.stderr and "using the default 0.0" in run.stderr
    assert str(pricing) in run.stderr and "'cost' enricher is off" in run.stderr
    genai = [s for s in spans if a.OPERATION_NAME in s.attributes]
    assert len(genai) == 3
    for span in genai:
        assert a.COST_TOTAL_USD not in span.attributes  # the cost enricher is off ...
        assert a.SAFETY_FLAGGED in span.attributes  # ... the safety screen is not
    claude = next(s for s in genai if "claude" in s.name)
    assert claude.attributes[a.SAFETY_FLAGGED] is True
