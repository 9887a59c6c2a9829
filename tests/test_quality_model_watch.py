"""Model-version watch: unit behaviour, and the real OpenAI SDK against a fake provider that changes backend."""

from __future__ import annotations

import pytest
from _openai_helpers import MESSAGES
from _records import records

from llm_telemetry import attributes as a
from llm_telemetry.config import load_settings
from llm_telemetry.fake_provider import Behaviour
from llm_telemetry.processors.quality.model_watch import ABSENT, ModelWatch, id_shape
from llm_telemetry.record import GenAICall

T0 = 1_750_000_000_000_000_000
SEC = 1_000_000_000


def call(i: int, *, model: str = "gpt-4o-2024-08-06", fp: str | None = "fp_a", rid: str | None = None, t: int | None = None) -> GenAICall:
    return GenAICall(
        operation="chat", provider="openai", request_model="gpt-4o", response_model=model, system_fingerprint=fp,
        response_id=rid or f"chatcmpl-{i:029d}", trace_id=100 + i, span_id=200 + i,
        end_time_ns=T0 + (t if t is not None else i) * SEC,
    )


@pytest.mark.parametrize(
    ("rid", "shape"),
    [
        ("chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "chatcmpl-{alnum:29}"),
        ("msg_01XFDUDYJgAACzvnptvVoYEL", "msg_{alnum:24}"),
        ("123e4567-e89b-12d3-a456-426614174000", "{alnum:8}-{alnum:4}-{alnum:4}-{alnum:4}-{alnum:12}"),
        ("gen-1712345678-AbCdEfGhIjKlMnOpQrSt", "gen-{alnum:10}-{alnum:20}"),
        ("resp_abc+def", "resp_{other:7}"),
        (None, None),
    ],
)
def test_id_shape(rid, shape):
    assert id_shape(rid) == shape


def test_new_fingerprint_after_the_baseline_is_reported_once_with_its_first_call():
    watch = ModelWatch(baseline_calls=10, baseline_s=0)
    for i in range(10):  # the baseline learns two fingerprints (OpenAI rotates a few per model)
        assert watch.observe(call(i, fp="fp_a" if i % 2 else "fp_b")) == []
    assert watch.observe(call(10, fp="fp_a")) == []
    (change,) = watch.observe(call(11, fp="fp_new"))
    assert change.dimension == "system_fingerprint" and change.new_value == "fp_new"
    assert change.previous == ("fp_b", "fp_a") and change.baseline_calls == 10
    assert change.first_seen_ns == T0 + 11 * SEC and change.trace_id == 111 and change.span_id == 211
    assert watch.observe(call(12, fp="fp_new")) == []  # known from now on
    attrs = change.attributes()
    assert attrs[a.QUALITY_MODEL_VERSION_PREVIOUS] == ["fp_b", "fp_a"]
    assert attrs[a.QUALITY_MODEL_VERSION_TRACE_ID] == f"{111:032x}"
    assert attrs[a.QUALITY_MODEL_VERSION_FIRST_SEEN] == "2025-06-15T15:06:51.000Z"
    assert change.metric_attributes() == {
        a.PROVIDER_NAME: "openai", a.REQUEST_MODEL: "gpt-4o", a.QUALITY_MODEL_VERSION_DIMENSION: "system_fingerprint"
    }
    assert "'fp_new'" in change.message() and "fp_b, fp_a" in change.message()


def test_silent_model_update_reports_every_dimension_that_changed():
    watch = ModelWatch(baseline_calls=3, baseline_s=0)
    for i in range(4):
        watch.observe(call(i))
    changes = watch.observe(call(4, model="gpt-4o-2025-01-31", fp=None, rid="resp_" + "f" * 48))
    assert {c.dimension: c.new_value for c in changes} == {
        "response_model": "gpt-4o-2025-01-31", "system_fingerprint": None, "response_id_shape": "resp_{alnum:48}",
    }
    assert next(c for c in changes if c.dimension == "system_fingerprint").attributes()[a.QUALITY_MODEL_VERSION_NEW] == ABSENT


def test_baseline_ends_by_time_when_traffic_is_slow():
    watch = ModelWatch(baseline_calls=1000, baseline_s=60)
    assert watch.observe(call(0, t=0)) == []
    assert watch.observe(call(1, fp="fp_b", t=30)) == []  # still in the baseline: learned, not reported
    (change,) = watch.observe(call(2, fp="fp_c", t=61))
    assert change.previous == ("fp_a", "fp_b") and change.baseline_calls == 2


def test_failed_calls_are_skipped_and_models_are_kept_apart():
    watch = ModelWatch(baseline_calls=1, baseline_s=0)
    watch.observe(call(0))
    failed = call(1, model="", fp=None)
    failed.error_type = "APIConnectionError"
    assert watch.observe(failed) == []
    other = call(2, fp="fp_z")
    other.request_model = "gpt-4o-mini"
    assert watch.observe(other) == []  # a new requested model starts its own baseline
    assert watch.known("openai", "gpt-4o")["system_fingerprint"] == ("fp_a",)


def test_memory_is_bounded_and_what_is_dropped_is_counted():
    watch = ModelWatch(baseline_calls=1, baseline_s=0, max_values=3, max_models=1)
    for i in range(6):
        watch.observe(call(i, fp=f"fp_{i}"))
    assert len(watch.known("openai", "gpt-4o")["system_fingerprint"]) == 3 and watch.evicted_values == 3
    stranger = call(9)
    stranger.request_model = "o3"
    assert watch.observe(stranger) == [] and watch.dropped_calls == 1


def test_watch_from_settings():
    settings = load_settings({"LLM_TELEMETRY_QUALITY_WATCH_BASELINE_CALLS": "7", "LLM_TELEMETRY_QUALITY_WATCH_BASELINE_S": "0"})
    watch = ModelWatch.from_settings(settings.quality)
    assert watch.baseline_calls == 7 and watch.baseline_ns == 0 and watch.max_values == 32


def test_record_from_attributes_reads_current_and_legacy_fingerprint_names():
    base = {a.OPERATION_NAME: "chat", a.PROVIDER_NAME: "openai"}
    assert GenAICall.from_attributes({**base, a.OPENAI_RESPONSE_SYSTEM_FINGERPRINT: "fp_1"}).system_fingerprint == "fp_1"
    assert GenAICall.from_attributes({**base, a.LEGACY_OPENAI_SYSTEM_FINGERPRINT: "fp_2"}).system_fingerprint == "fp_2"


# --- real SDK, fake provider ---------------------------------------------------------------------


def _record_of(span) -> GenAICall:
    """What the pipeline hands the watch: the side-channel record, with the span's identity and time."""
    record = records.take((span.context.trace_id, span.context.span_id))
    assert record is not None and record.end_time_ns == span.end_time
    return record


@pytest.mark.usefixtures("instrumented")
def test_openai_sdk_fingerprint_and_model_change_mid_run(otel, client, fake_provider):
    watch = ModelWatch(baseline_calls=4, baseline_s=0)
    for _ in range(4):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    for _ in stream:
        pass
    spans = otel.spans()
    assert [s.attributes[a.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] for s in spans] == ["fp_fake"] * 5  # streamed too
    assert all(watch.observe(_record_of(s)) == [] for s in spans)

    # The provider silently moves the model to a new snapshot on a new backend.
    fake_provider.set_default(Behaviour(model="gpt-4o-mini-2025-02-01", system_fingerprint="fp_b1d2e3"))
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = otel.spans()[-1]
    changes = watch.observe(_record_of(span))
    assert {c.dimension: (c.previous, c.new_value) for c in changes} == {
        "response_model": (("gpt-4o-mini",), "gpt-4o-mini-2025-02-01"),
        "system_fingerprint": (("fp_fake",), "fp_b1d2e3"),
    }
    assert all(c.trace_id == span.context.trace_id and c.first_seen_ns == span.end_time for c in changes)
    assert all(c.request_model == "gpt-4o-mini" and c.baseline_calls == 4 for c in changes)
    assert span.attributes[a.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] == "fp_b1d2e3"
