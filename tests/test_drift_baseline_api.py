"""`llm_telemetry.set_drift_baseline`: an app gives known-good outputs as a feature's drift reference.

Through the process-wide default chain (built from the settings, as under any configurator) and the real
OpenAI SDK against the fake provider: after the baseline is set, outputs like it raise no drift alert,
and a different kind of output does.
"""

from __future__ import annotations

import openai
import pytest

import llm_telemetry
from llm_telemetry.attribution import attribute
from llm_telemetry.config import load_settings, set_settings
from llm_telemetry.fake_provider import Behaviour
from llm_telemetry.instrumentation.openai import OpenAIInstrumentor
from llm_telemetry.processors.chain import default_chain, set_default_chain
from llm_telemetry.side_channel import side_channel

GOOD = [f"Your order {n} has shipped and arrives on Tuesday." for n in range(60)]


@pytest.fixture
def default_quality(tmp_path, otel):
    set_settings(load_settings({
        "LLM_TELEMETRY_REVIEW_DB_PATH": str(tmp_path / "review.db"), "LLM_TELEMETRY_DRIFT_REFERENCE_SIZE": "60",
        "LLM_TELEMETRY_DRIFT_WINDOW_SIZE": "10", "LLM_TELEMETRY_DRIFT_ERT": "200",
    }))
    set_default_chain(None)
    side_channel.connect(None)  # auto: the default chain, as a user without our configurator gets it
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    try:
        yield
    finally:
        instrumentor.uninstrument()
        chain = default_chain()
        if chain is not None:
            chain.shutdown(2)
        set_default_chain(None)
        side_channel.connect(None, auto=False)
        set_settings(None)


def test_a_baseline_given_by_the_app_is_what_drift_compares_with(default_quality, fake_provider) -> None:
    client = openai.OpenAI(api_key="sk-test", base_url=fake_provider.openai_base_url, max_retries=0)
    with attribute(feature="support-chat"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Where is my order?"}],
                                       extra_headers=Behaviour(text=GOOD[0]).header())
    info = llm_telemetry.set_drift_baseline("support-chat", "gpt-4o-mini", GOOD)
    assert info.source == "set_baseline" and info.size == len(GOOD)
    with pytest.raises(ValueError, match="needs at least 21"):
        llm_telemetry.set_drift_baseline("support-chat", "gpt-4o-mini", GOOD[:5])

    with attribute(feature="support-chat"):
        for n in range(30):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Where is my order?"}],
                                           extra_headers=Behaviour(text=GOOD[(7 * n) % len(GOOD)]).header())
        assert default_chain().flush(30)
        assert not [al for al in llm_telemetry.quality_alerts() if al.name == "quality.drift"]
        for n in range(30):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Where is my order?"}],
                                           extra_headers=Behaviour(text=f"I'm sorry, I cannot help with that ({n}).").header())
        assert default_chain().flush(30)
    drift = [al for al in llm_telemetry.quality_alerts() if al.name == "quality.drift"]
    assert drift and drift[0].key == {"feature": "support-chat", "model": "gpt-4o-mini"}
    assert "baseline set_baseline of 60 outputs" in drift[0].summary
