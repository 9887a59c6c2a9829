"""CostEnricher: hand-computed bills (cache semantics), unknown models, fallbacks, metrics."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan

from llm_telemetry import attributes as a
from llm_telemetry.processors.base import Enrichment
from llm_telemetry.processors.cost import CostEnricher, compute_cost
from llm_telemetry.processors.metrics import OVERFLOW_ATTRIBUTE, UsageMetrics
from llm_telemetry.processors.pricing import load_pricing
from llm_telemetry.record import GenAICall

SPAN = ReadableSpan("chat")
PRICING = load_pricing()


class Metrics:
    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])
        self.meter = self.provider.get_meter("t")

    def points(self, name: str) -> list[tuple[dict, float]]:
        data = self.reader.get_metrics_data()
        return [
            (dict(p.attributes), p.value)
            for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics if m.name == name
            for p in m.data.data_points
        ]


@pytest.fixture
def metrics():
    m = Metrics()
    yield m
    m.provider.shutdown()


def call(**kwargs) -> GenAICall:
    return GenAICall(**{"operation": "chat", "provider": "openai", **kwargs})


def test_openai_cached_input_is_part_of_input_and_billed_once_at_the_cached_price() -> None:
    # gpt-4o: input 2.50, cached 1.25, output 10.00 per 1M. 10 000 input of which 8 000 cached, 1 000 output.
    cost = CostEnricher(PRICING).enrich(call(request_model="gpt-4o", input_tokens=10_000, cache_read_tokens=8_000,
                                             output_tokens=1_000), SPAN, Enrichment())
    attrs = cost.attributes
    assert attrs[a.COST_INPUT_USD] == pytest.approx(2_000 * 2.5e-6)  # 0.005
    assert attrs[a.COST_CACHE_READ_USD] == pytest.approx(8_000 * 1.25e-6)  # 0.010
    assert attrs[a.COST_CACHE_WRITE_USD] == 0
    assert attrs[a.COST_OUTPUT_USD] == pytest.approx(0.010)
    assert attrs[a.COST_TOTAL_USD] == pytest.approx(0.025)
    assert attrs[a.COST_TOTAL_USD] != pytest.approx(0.045)  # Langfuse #5568: cached counted on top of input
    assert attrs[a.COST_TOTAL_USD] != pytest.approx(0.035)  # OpenLIT #1378: cache reads at the full input price
    assert attrs[a.COST_PRICING_SOURCE] == "https://platform.openai.com/docs/pricing"


def test_anthropic_cache_read_and_write_are_priced_apart() -> None:
    # claude-3-5-haiku: 0.80 in, 0.08 read, 1.00 write, 4.00 out. input 50 000 = 1 000 uncached + 45 000 read + 4 000 written.
    cost = compute_cost(PRICING.resolve("claude-3-5-haiku-20241022"), 50_000, 2_000, 45_000, 4_000)
    assert cost.input_usd == pytest.approx(0.0008)
    assert cost.cache_read_usd == pytest.approx(0.0036)
    assert cost.cache_write_usd == pytest.approx(0.004)
    assert cost.output_usd == pytest.approx(0.008)
    assert cost.total_usd == pytest.approx(0.0164)
    assert cost.total_usd != pytest.approx(50_000 * 0.8e-6 + 0.008 + 0.0036 + 0.004)  # double counted
    assert cost.total_usd != pytest.approx(50_000 * 0.8e-6 + 0.008)  # cache at full price


def test_input_reported_without_cached_parts_is_taken_as_uncached(caplog) -> None:
    enricher = CostEnricher(PRICING)
    record = call(provider="anthropic", request_model="claude-sonnet-4-5", input_tokens=100, cache_read_tokens=1_000,
                  output_tokens=0)
    with caplog.at_level(logging.WARNING, logger="llm_telemetry.processors.cost"):
        first = enricher.enrich(record, SPAN, Enrichment())
        enricher.enrich(record, SPAN, Enrichment())
    assert first.attributes[a.COST_INPUT_USD] == pytest.approx(100 * 3e-6)
    assert first.attributes[a.COST_CACHE_READ_USD] == pytest.approx(1_000 * 0.3e-6)
    assert len([r for r in caplog.records if "lower than cache read" in r.getMessage()]) == 1


def test_embeddings_are_priced() -> None:
    cost = CostEnricher(PRICING).enrich(call(operation="embeddings", request_model="text-embedding-3-small", input_tokens=1_000),
                                        SPAN, Enrichment())
    assert cost.attributes[a.COST_TOTAL_USD] == pytest.approx(1_000 * 0.02e-6)
    assert cost.attributes[a.COST_OUTPUT_USD] == 0


def test_response_model_is_priced_first_then_request_model() -> None:
    enricher = CostEnricher(PRICING)
    priced = enricher.enrich(call(request_model="my-azure-deployment", response_model="gpt-4o-mini-2024-07-18",
                                  input_tokens=1_000_000, output_tokens=0), SPAN, Enrichment())
    assert priced.attributes[a.COST_PRICING_MODEL] == "gpt-4o-mini"
    fallback = enricher.enrich(call(request_model="gpt-4o", response_model="totally-unknown",
                                    input_tokens=1_000_000, output_tokens=0), SPAN, Enrichment())
    assert fallback.attributes[a.COST_TOTAL_USD] == pytest.approx(2.5)


def test_unknown_model_is_flagged_counted_by_model_and_warned_once(metrics: Metrics, caplog) -> None:
    enricher = CostEnricher(PRICING, metrics.meter)
    with caplog.at_level(logging.WARNING, logger="llm_telemetry.processors.cost"):
        results = [enricher.enrich(call(request_model="llama-3-70b", input_tokens=10, output_tokens=5), SPAN, Enrichment())
                   for _ in range(3)]
        enricher.enrich(call(request_model="mistral-large", input_tokens=1, output_tokens=1), SPAN, Enrichment())
    for result in results:
        assert result.attributes == {a.COST_UNKNOWN_MODEL: True}  # flagged, no total: never a silent zero
    warnings = [r.getMessage() for r in caplog.records]
    assert len([w for w in warnings if "'llama-3-70b'" in w]) == 1
    assert len([w for w in warnings if "'mistral-large'" in w]) == 1
    assert "LLM_TELEMETRY_COST_PRICING_FILE" in warnings[0]
    unknown = {p[a.REQUEST_MODEL]: v for p, v in metrics.points(a.METRIC_UNKNOWN_MODEL)}
    assert unknown == {"llama-3-70b": 3, "mistral-large": 1}
    assert metrics.points(a.METRIC_COST) == []  # no $0 series for models we cannot price
    tokens = {(p[a.REQUEST_MODEL], p[a.TOKEN_TYPE]): v for p, v in metrics.points(a.METRIC_TOKENS)}
    assert tokens[("llama-3-70b", "input")] == 30 and tokens[("llama-3-70b", "output")] == 15


def test_missing_cache_prices_fall_back_to_input_price_with_one_warning(tmp_path: Path, caplog) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[mine.models]\n"acme" = { input = 2.0, output = 4.0 }\n')
    enricher = CostEnricher(load_pricing(path))
    record = call(request_model="acme", input_tokens=1_000, cache_read_tokens=400, cache_write_tokens=100, output_tokens=0)
    with caplog.at_level(logging.WARNING, logger="llm_telemetry.processors.cost"):
        result = enricher.enrich(record, SPAN, Enrichment())
        enricher.enrich(record, SPAN, Enrichment())
    assert result.attributes[a.COST_CACHE_READ_USD] == pytest.approx(400 * 2e-6)
    assert result.attributes[a.COST_CACHE_WRITE_USD] == pytest.approx(100 * 2e-6)
    assert result.attributes[a.COST_TOTAL_USD] == pytest.approx(1_000 * 2e-6)
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "no cache_read price" in m]) == 1
    assert len([m for m in messages if "no cache_write price" in m]) == 1


def test_no_usage_means_no_cost_attributes() -> None:
    assert CostEnricher(PRICING).enrich(call(request_model="gpt-4o", error_type="timeout"), SPAN, Enrichment()) is None


def test_cost_and_token_metrics_break_down_by_model_provider_user_feature(metrics: Metrics) -> None:
    enricher = CostEnricher(PRICING, metrics.meter)
    for user, feature in (("u1", "chat"), ("u1", "chat"), ("u2", "search")):
        enricher.enrich(call(request_model="gpt-4o", response_model="gpt-4o-2024-08-06", input_tokens=1_000, output_tokens=100,
                             user_id=user, feature=feature), SPAN, Enrichment())
    cost = {(p[a.USER_ID], p[a.FEATURE]): v for p, v in metrics.points(a.METRIC_COST)}
    assert cost == {("u1", "chat"): pytest.approx(2 * 0.0035), ("u2", "search"): pytest.approx(0.0035)}
    [(attrs, _), _] = metrics.points(a.METRIC_COST)
    assert attrs == {a.REQUEST_MODEL: "gpt-4o", a.RESPONSE_MODEL: "gpt-4o-2024-08-06", a.PROVIDER_NAME: "openai",
                     a.USER_ID: "u1", a.FEATURE: "chat"}
    tokens = {(p[a.USER_ID], p[a.TOKEN_TYPE]): v for p, v in metrics.points(a.METRIC_TOKENS)}
    assert tokens == {("u1", "input"): 2_000, ("u1", "output"): 200, ("u2", "input"): 1_000, ("u2", "output"): 100}
    assert enricher.metrics.totals()["cost_usd"] == pytest.approx(3 * 0.0035)


def test_metric_series_are_capped_with_overflow_series_that_keep_model_and_token_type(metrics: Metrics) -> None:
    usage = UsageMetrics(metrics.meter, max_series=30)  # 27 full series, 2 per-model overflow series, 1 catch-all
    for i in range(40):
        usage.record(("gpt-4o", None, "openai", f"user-{i}", None), 1.0, 10, 1)
    usage.record(("gpt-4o-mini", None, "openai", "user-x", None), 1.0, 10, 1)
    usage.record(("o3", None, "openai", "user-y", None), 1.0, 10, 1)
    usage.record(("o3", None, "openai", "user-z", None), 1.0, 10, 1)
    points = metrics.points(a.METRIC_COST)
    assert len(points) == 30
    overflow = {p.get(a.REQUEST_MODEL): v for p, v in points if p.get(OVERFLOW_ATTRIBUTE)}
    assert overflow == {"gpt-4o": 13.0, "gpt-4o-mini": 1.0, None: 2.0}
    assert sum(v for _, v in points) == 43.0
    tokens = metrics.points(a.METRIC_TOKENS)
    assert all(a.TOKEN_TYPE in p for p, _ in tokens)
    catch_all = [p for p, _ in tokens if p.get(OVERFLOW_ATTRIBUTE) and a.REQUEST_MODEL not in p]
    assert catch_all == [{OVERFLOW_ATTRIBUTE: True, a.TOKEN_TYPE: "input"}, {OVERFLOW_ATTRIBUTE: True, a.TOKEN_TYPE: "output"}]


def test_1200_users_keep_every_token_typed_under_the_sdk_cardinality_limit(metrics: Metrics, caplog) -> None:
    # Each user is two token points; the SDK folds everything past 2,000 attribute sets into one untyped point.
    enricher = CostEnricher(PRICING, metrics.meter)
    features = ("chat", "search", "extract")
    with caplog.at_level(logging.WARNING, logger="llm_telemetry.processors.metrics"):
        for i in range(1_200):
            enricher.enrich(call(request_model="gpt-4o-mini", input_tokens=3, output_tokens=2, user_id=f"user-{i}",
                                 feature=features[i % 3]), SPAN, Enrichment())
        tokens = metrics.points(a.METRIC_TOKENS)
        metrics.points(a.METRIC_TOKENS)  # a second collection: still one warning
    assert len(tokens) < 2_000
    untyped = [(p, v) for p, v in tokens if a.TOKEN_TYPE not in p]
    assert untyped == []
    by_type = {"input": 0, "output": 0}
    for p, v in tokens:
        by_type[p[a.TOKEN_TYPE]] += v
    assert by_type == {"input": 3 * 1_200, "output": 2 * 1_200}
    overflow = [p for p, _ in tokens if p.get(OVERFLOW_ATTRIBUTE)]
    assert overflow and all(p[a.REQUEST_MODEL] == "gpt-4o-mini" and p[a.PROVIDER_NAME] == "openai" and a.USER_ID not in p
                            for p in overflow)
    assert {p[a.FEATURE] for p in overflow} == set(features)  # low-cardinality dimensions survive the overflow
    cost = metrics.points(a.METRIC_COST)
    assert sum(v for _, v in cost) == pytest.approx(1_200 * (3 * 0.15 + 2 * 0.60) / 1e6)
    warnings = [r for r in caplog.records if "cap of" in r.getMessage()]
    assert len(warnings) == 1 and "2000" in warnings[0].getMessage()
