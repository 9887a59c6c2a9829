"""Output statistics: measurement (refusals, JSON, language, finish reasons) and the engine on both sides."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from llm_telemetry import attributes as a
from llm_telemetry.config import ConfigError, load_settings
from llm_telemetry.processors.quality.language import StopwordDetector, make_detector
from llm_telemetry.processors.quality.output_measure import CallStats, OutputMeasurer
from llm_telemetry.processors.quality.output_stats import OutputStats
from llm_telemetry.processors.quality.refusals import RefusalMatcher, load_phrases
from llm_telemetry.record import GenAICall

T0 = 1_750_000_000_000_000_000
EN = "the invoice is dated and the payment is due within thirty days of that date for this order we have".split(" ")  # noqa: SIM905
FR = "la facture est datée du trois avril et le paiement est dû dans les trente jours pour cette commande".split(" ")  # noqa: SIM905
SENTENCES = {
    "en": "The invoice is dated the third of April and the payment is due within thirty days of that date.",
    "fr": "La facture est datée du trois avril et le paiement est dû dans les trente jours suivant cette date.",
    "de": "Die Rechnung ist auf den dritten April datiert und die Zahlung ist innerhalb von dreißig Tagen fällig.",
    "es": "La factura tiene fecha del tres de abril y el pago vence dentro de los treinta días siguientes a esa fecha.",
    "it": "La fattura è datata tre aprile e il pagamento è dovuto entro trenta giorni da quella data.",
    "pt": "A fatura está datada de três de abril e o pagamento vence dentro de trinta dias a partir dessa data.",
    "nl": "De factuur is gedateerd op drie april en de betaling moet binnen dertig dagen na die datum worden voldaan.",
    "ja": "請求書の日付は4月3日で、支払いはその日から30日以内です。",
    "zh": "发票日期为四月三日\uff0c付款期限为该日期后三十天内。",
    "und-Cyrl": "Счёт датирован третьим апреля, оплата должна быть произведена в течение тридцати дней.",
}


def make_call(i: int, text: str, *, finish: str = "stop", tokens: int | None = None, feature: str = "extract") -> GenAICall:
    return GenAICall(
        operation="chat", provider="openai", request_model="gpt-4o", response_model="gpt-4o-2024-08-06",
        finish_reasons=(finish,), output_tokens=tokens if tokens is not None else len(text.split()), output_text=text,
        feature=feature, trace_id=10_000 + i, span_id=i + 1, end_time_ns=T0 + i * 1_000_000_000,
    )


def prose(rng: random.Random, words: list[str], low: int = 40, high: int = 80) -> str:
    return " ".join(rng.choice(words) for _ in range(rng.randint(low, high))) + "."


# --- measurement -------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", list(SENTENCES))
def test_stopword_detector_names_the_language(language):
    assert StopwordDetector().detect(SENTENCES[language]) == language


@pytest.mark.parametrize("text", ['{"date": "2025-04-03", "amount": 12.5}', "ok", "x = f(y) + 2; return x;", ""])
def test_stopword_detector_leaves_code_json_and_short_text_undetermined(text):
    assert StopwordDetector().detect(text) is None


def test_py3langid_backend_when_installed():
    pytest.importorskip("py3langid")
    detector = make_detector("py3langid")
    assert detector is not None
    assert detector.detect(SENTENCES["de"]) == "de" and detector.detect(SENTENCES["fr"]) == "fr"


def test_refusal_phrases_match_case_and_apostrophe_insensitively_at_the_start_only():
    matcher = RefusalMatcher.from_pack(load_phrases(), sample_chars=200)
    assert matcher.matches("I\u2019m sorry, but I can\u2019t help with that.")  # curly apostrophes
    assert matcher.matches("Lo siento, pero no puedo ayudarte con eso.")
    assert not matcher.matches("The payment is due on 3 April 2025.")
    assert not matcher.matches("x" * 300 + " I'm sorry, but I can't")  # past the sample


def test_user_refusal_file_extends_the_pack(tmp_path):
    extra = tmp_path / "refusals.toml"
    extra.write_text('[phrases]\nen = ["that is outside my remit"]\nsv = ["jag kan inte hjälpa till"]\n', encoding="utf-8")
    pack = load_phrases(extra)
    assert "that is outside my remit" in pack["en"] and "i can't help with" in pack["en"] and pack["sv"]
    assert RefusalMatcher.from_pack(pack).matches("Sorry — that is outside my remit.")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[phrases]\nen = ["ok"]\n[extra]\nx = 1\n', "line 3: unknown key 'extra'"),
        ('[phrases]\nen = "not a list"\n', "line 2: phrases.en must be a list"),
        ("[phrases\n", "not valid TOML"),
    ],
)
def test_bad_refusal_file_names_the_file_key_and_line(tmp_path, content, expected):
    bad = tmp_path / "bad.toml"
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=expected) as info:
        load_phrases(bad)
    assert str(bad) in str(info.value)


def test_measure_reads_finish_reasons_json_and_tokens():
    measurer = OutputMeasurer.create()
    fenced = make_call(0, '```json\n{"date": "2025-04-03"}\n```', finish="stop")
    assert measurer.measure(fenced) == CallStats(len(fenced.output_text), fenced.output_tokens, False, False, True, True, None)
    cut = make_call(1, '{"date": "2025-04', finish="length")
    stats = measurer.measure(cut)
    assert stats is not None and stats.finish_length and stats.json_like and stats.json_valid is False
    anthropic_cut = make_call(2, SENTENCES["en"], finish="max_tokens")
    assert measurer.measure(anthropic_cut).finish_length and measurer.measure(anthropic_cut).language == "en"
    filtered = make_call(3, "", finish="content_filter")
    assert measurer.measure(filtered).refusal is True
    estimated = make_call(4, SENTENCES["en"])
    estimated.output_tokens_estimated = True
    assert measurer.measure(estimated).output_tokens is None  # our estimate would mix with provider counts
    failed = make_call(5, "")
    failed.error_type = "RateLimitError"
    assert measurer.measure(failed) is None


def test_record_without_content_still_gives_tokens_and_finish_reasons():
    call = GenAICall.from_attributes(
        {a.OPERATION_NAME: "chat", a.PROVIDER_NAME: "openai", a.REQUEST_MODEL: "gpt-4o", a.USAGE_OUTPUT_TOKENS: 17,
         a.RESPONSE_FINISH_REASONS: ("length",)}
    )
    assert call is not None
    assert OutputMeasurer.create().measure(call) == CallStats(None, 17, None, True)


# --- the engine: stationary side ---------------------------------------------------------------------


def _baseline_call(rng: random.Random, i: int) -> GenAICall:
    if rng.random() < 0.01:
        return make_call(i, "I'm sorry, but I can't help with that request about " + prose(rng, EN, 5, 10))
    return make_call(i, prose(rng, EN), finish="length" if rng.random() < 0.02 else "stop")


def test_stationary_traffic_stays_within_the_false_alarm_rate():
    rng = random.Random(41)
    ert = 2000.0
    stats = OutputStats(warmup_calls=300, ert_calls=ert)
    alerts: Counter[str] = Counter()
    calls = 8300
    for i in range(calls):
        for decision in stats.observe_call(_baseline_call(rng, i)):
            alerts[decision.statistic] += decision.kind == "alert"
    watched = calls - 300
    # Five statistics watched (no JSON here); each may raise about watched/ert false alarms.
    expected_per_statistic = watched / ert
    assert sum(alerts.values()) <= 5 * expected_per_statistic * 1.5 + 2, alerts
    assert all(n <= expected_per_statistic * 2.5 + 2 for n in alerts.values()), alerts


# --- the engine: injected shifts --------------------------------------------------------------------


def _run(stats: OutputStats, calls: list[GenAICall]) -> list:
    return [d for call in calls for d in stats.observe_call(call)]


def _warm(rng: random.Random, n: int = 600) -> list[GenAICall]:
    return [_baseline_call(rng, i) for i in range(n)]


def test_output_length_halving_is_caught_with_its_start_and_before_after_values():
    rng = random.Random(42)
    stats = OutputStats(warmup_calls=500, ert_calls=10_000)
    assert _run(stats, _warm(rng)) == []
    halved = [make_call(600 + i, prose(rng, EN, 20, 40)) for i in range(200)]
    decisions = [d for d in _run(stats, halved) if d.kind == "alert"]
    by_stat = {d.statistic: d for d in decisions}
    chars = by_stat["output_chars"]
    assert chars.direction == "down" and "output_tokens" in by_stat
    assert chars.after < 0.65 * chars.before
    assert 600 <= chars.change_trace_id - 10_000 <= 605 and chars.calls_since_change <= 10
    assert chars.change_start_ns == T0 + (chars.change_trace_id - 10_000) * 1_000_000_000
    attrs = chars.attributes()
    assert attrs[a.QUALITY_OUTPUT_STAT_NAME] == "output_chars" and attrs[a.FEATURE] == "extract"
    assert attrs[a.REQUEST_MODEL] == "gpt-4o" and len(attrs[a.QUALITY_OUTPUT_STAT_CHANGE_TRACE_ID]) == 32
    assert attrs[a.QUALITY_OUTPUT_STAT_CHANGE_START].endswith("Z")
    assert "output_chars went down" in chars.message()


def test_refusal_rate_rising_to_15_percent_is_caught():
    rng = random.Random(43)
    stats = OutputStats(warmup_calls=500, ert_calls=10_000)
    _run(stats, _warm(rng))
    shifted = [
        make_call(600 + i, "I'm sorry, but I can't help with that." if rng.random() < 0.15 else prose(rng, EN))
        for i in range(300)
    ]
    refusal = [d for d in _run(stats, shifted) if d.statistic == "refusal" and d.kind == "alert"]
    assert len(refusal) == 1
    assert refusal[0].before < 0.03 and refusal[0].after > 0.05 and refusal[0].calls_since_change < 150


def test_length_finish_reason_rising_to_30_percent_is_caught_and_recovers():
    rng = random.Random(44)
    stats = OutputStats(warmup_calls=500, ert_calls=10_000)
    _run(stats, _warm(rng))
    cut = [make_call(600 + i, prose(rng, EN), finish="length" if rng.random() < 0.3 else "stop") for i in range(200)]
    back = [make_call(800 + i, prose(rng, EN)) for i in range(300)]
    decisions = [(d.kind, d.statistic) for d in _run(stats, cut + back) if d.statistic == "finish_length"]
    assert decisions == [("alert", "finish_length"), ("recovered", "finish_length")]


def test_language_flip_is_caught_with_the_baseline_language():
    rng = random.Random(45)
    stats = OutputStats(warmup_calls=500, ert_calls=10_000)
    _run(stats, _warm(rng))
    flipped = [make_call(600 + i, prose(rng, FR)) for i in range(50)]
    language = [d for d in _run(stats, flipped) if d.statistic == "language_other"]
    assert len(language) == 1 and language[0].baseline_language == "en"
    assert language[0].change_trace_id == 10_600 and language[0].calls_since_change <= 5
    assert "baseline language en" in language[0].message()


def test_json_feature_breaking_is_caught_when_configured_and_when_inferred():
    rng = random.Random(46)

    def record(i: int, feature: str, broken: bool) -> GenAICall:
        body = json.dumps({"date": f"2025-04-{rng.randint(1, 28):02d}", "total": rng.randint(1, 999)})
        return make_call(i, body[:-3] if broken else body, feature=feature)

    for feature, settings_features in (("invoice_json", ("invoice_json",)), ("inferred", ())):
        stats = OutputStats(warmup_calls=200, ert_calls=10_000, json_features=settings_features)
        # Inferred: the key's first 200 outputs decide that it expects JSON; then its own warm-up runs.
        assert _run(stats, [record(i, feature, rng.random() < 0.01) for i in range(450)]) == []
        broken = [record(450 + i, feature, rng.random() < 0.3) for i in range(100)]
        alerts = [d for d in _run(stats, broken) if d.statistic == "json_invalid"]
        assert len(alerts) == 1 and alerts[0].feature == feature, feature


def test_prose_where_json_is_expected_counts_as_invalid():
    stats = OutputStats(warmup_calls=50, ert_calls=10_000, json_features=("strict",))
    rng = random.Random(47)
    _run(stats, [make_call(i, json.dumps({"n": i}), feature="strict") for i in range(100)])
    alerts = _run(stats, [make_call(100 + i, prose(rng, EN), feature="strict") for i in range(10)])
    assert [d.statistic for d in alerts if d.kind == "alert"].count("json_invalid") == 1


def test_keys_are_capped_and_drops_counted():
    stats = OutputStats(warmup_calls=50, max_keys=2)
    for i, feature in enumerate(["a", "b", "c", "c", "a"]):
        stats.observe_call(make_call(i, SENTENCES["en"], feature=feature))
    assert stats.dropped_calls == 2
    assert {v.feature for v in stats.snapshot()} == {"a", "b"}


def test_snapshot_reports_baseline_and_recent_values():
    rng = random.Random(48)
    stats = OutputStats(warmup_calls=100, ert_calls=10_000)
    _run(stats, _warm(rng, 200))
    values = {v.statistic: v for v in stats.snapshot()}
    assert values["output_chars"].baseline == pytest.approx(values["output_chars"].recent, rel=0.3)
    assert values["language_other"].baseline == 0.0 and not values["refusal"].alerting


def test_engine_from_settings(tmp_path):
    extra = tmp_path / "r.toml"
    extra.write_text('[phrases]\nen = ["computer says no"]\n', encoding="utf-8")
    settings = load_settings({
        "LLM_TELEMETRY_QUALITY_STATS_WARMUP_CALLS": "40",
        "LLM_TELEMETRY_QUALITY_STATS_ERT_CALLS": "500",
        "LLM_TELEMETRY_QUALITY_STATS_JSON_FEATURES": "a,b",
        "LLM_TELEMETRY_QUALITY_STATS_REFUSALS_FILE": str(extra),
        "LLM_TELEMETRY_QUALITY_STATS_LANGUAGE_DETECTOR": "off",
    }).quality
    stats = OutputStats.from_settings(settings)
    assert stats.warmup_calls == 40 and stats.ert_calls == 500 and stats.json_features == {"a", "b"}
    assert stats.measurer.language is None and stats.measurer.refusals.matches("Computer says no.")
    with pytest.raises(ConfigError, match="LLM_TELEMETRY_QUALITY_STATS_LANGUAGE_DETECTOR"):
        load_settings({"LLM_TELEMETRY_QUALITY_STATS_LANGUAGE_DETECTOR": "fasttext"})
