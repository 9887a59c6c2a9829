"""The pricing table: bundled data, id resolution, and user files (good and bad)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_telemetry.config import ConfigError
from llm_telemetry.processors.pricing import load_pricing, normalise_model_id

BUNDLED = load_pricing()


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-5", "gpt-5-mini", "gpt-5-nano",
        "o1", "o3", "o4-mini", "text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002", "gpt-4-turbo",
        "claude-opus-4-5", "claude-opus-4-1", "claude-opus-4", "claude-sonnet-4-5", "claude-sonnet-4", "claude-haiku-4-5",
        "claude-3-7-sonnet", "claude-3-5-sonnet", "claude-3-5-haiku", "claude-3-opus", "claude-3-haiku",
    ],
)
def test_bundled_table_covers_current_models_with_source_and_date(model: str) -> None:
    price = BUNDLED.resolve(model)
    assert price is not None and price.model == model
    assert price.checked == "2026-11-25"
    assert price.source.startswith("https://")
    assert price.input > 0


@pytest.mark.parametrize(
    ("model", "input_price", "output_price"),
    [  # the seed document's table
        ("claude-3-5-sonnet-20241022", 3.0, 15.0),
        ("claude-3-5-haiku-20241022", 0.8, 4.0),
        ("claude-3-opus-20240229", 15.0, 75.0),
        ("gpt-4o", 2.5, 10.0),
        ("gpt-4o-mini", 0.15, 0.60),
        ("gpt-4-turbo", 10.0, 30.0),
    ],
)
def test_seed_document_prices(model: str, input_price: float, output_price: float) -> None:
    price = BUNDLED.resolve(model)
    assert price is not None and (price.input, price.output) == (input_price, output_price)


def test_anthropic_cache_prices_follow_the_published_multipliers() -> None:
    for model in ("claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-3-5-haiku", "claude-3-opus"):
        price = BUNDLED.resolve(model)
        assert price is not None
        assert price.cache_read == pytest.approx(price.input * 0.1)
        assert price.cache_write == pytest.approx(price.input * 1.25)
    assert BUNDLED.resolve("gpt-4o").cache_read == 1.25
    assert BUNDLED.resolve("gpt-4o-mini").cache_read == 0.075


@pytest.mark.parametrize(
    ("model_id", "entry"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # a dated id priced differently keeps its own entry
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-haiku-4-5@20251001", "claude-haiku-4-5"),  # Vertex
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),  # Bedrock
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),  # Bedrock cross-region
        ("openai/gpt-4.1-mini", "gpt-4.1-mini"),
        ("openrouter/anthropic/claude-3.5-haiku", "claude-3-5-haiku"),
        ("GPT-5-Nano-2025-08-07", "gpt-5-nano"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-4-32k-0613", "gpt-4-32k"),
        ("gpt-4-1106-vision-preview", "gpt-4-1106-vision-preview"),  # a variant: listed, not derived
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("gpt-3.5-turbo-1106", "gpt-3.5-turbo-1106"),  # an older snapshot priced differently keeps its own entry
        ("o1-preview-2024-09-12", "o1-preview"),
        ("claude-sonnet-4-0", "claude-sonnet-4"),
        ("claude-haiku-4-5@2025-10-01", "claude-haiku-4-5"),
        ("claude-opus-4-0", "claude-opus-4"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
        ("gpt-4o-mini-realtime-preview-2024-12-17", "gpt-4o-mini-realtime-preview"),
    ],
)
def test_dated_aliased_and_prefixed_ids_resolve_to_the_base_entry(model_id: str, entry: str) -> None:
    price = BUNDLED.resolve(model_id)
    assert price is not None and price.model == entry


@pytest.mark.parametrize(
    "model_id",
    ["gpt-4.5", "gpt-6", "claude-4", "claude-opus-4-7", "claude-sonnet-4-7-20260101", "claude-3-6-sonnet",
     "ft:gpt-4o-mini:acme::abc123", "llama-3-70b", ""],
)
def test_ids_without_a_boundary_match_are_unknown_not_mispriced(model_id: str) -> None:
    assert BUNDLED.resolve(model_id) is None


@pytest.mark.parametrize(
    "model_id",
    ["o3-deep-research", "o3-deep-research-2025-06-26", "o4-mini-deep-research", "gpt-4o-audio-preview",
     "gpt-4o-audio-preview-2024-12-17", "gpt-4o-search-preview", "gpt-4o-mini-tts", "gpt-4o-mini-transcribe",
     "gpt-5-mini-search", "o3-pro-mini", "claude-3-5-sonnet-vision", "claude-sonnet-4-5-v2", "gpt-4o-2024"],
)
def test_variants_of_a_listed_model_are_unknown_unless_listed(model_id: str) -> None:
    # o3-deep-research costs about five times o3; a base entry is never a price for a variant.
    assert BUNDLED.resolve(model_id) is None


def test_every_bundled_entry_resolves_to_itself() -> None:
    # No bundled entry depends on another one through the snapshot rule (which would hide a missing entry).
    for model in BUNDLED.models:
        assert BUNDLED.resolve(model).model.lower() == model, model


def test_normalisation() -> None:
    assert normalise_model_id(" OpenAI/GPT-4o ") == "gpt-4o"
    assert normalise_model_id("eu.anthropic.claude-3-haiku-20240307-v1:0") == "claude-3-haiku-20240307-v1:0"
    assert normalise_model_id("claude-sonnet-4.5") == "claude-sonnet-4-5"
    assert normalise_model_id("gpt-4.1") == "gpt-4.1"


def test_user_toml_overrides_and_extends(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[openai]\nsource = "https://internal/contract"\nchecked = 2026-01-02\n'
        '[openai.models]\n"gpt-4o" = { input = 2.0, output = 8.0 }\n'
        '[private.models]\n"acme-llm" = { input = 1, output = 2, cache_read = 0.5 }\n'
    )
    table = load_pricing(path)
    gpt = table.resolve("gpt-4o-2024-11-20")
    assert (gpt.input, gpt.output, gpt.cache_read, gpt.source, gpt.checked) == (2.0, 8.0, None, "https://internal/contract", "2026-01-02")
    assert table.resolve("acme-llm-v2") is None  # a variant, not a snapshot
    acme = table.resolve("acme-llm-2026-01-02")
    assert acme is not None and acme.source == str(path) and acme.cache_read == 0.5
    assert table.resolve("gpt-4o-mini").input == 0.15  # untouched bundled entry


def test_user_json_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"azure": {"source": "https://azure", "models": {"my-deployment": {"input": 2.5, "output": 10}}}}))
    assert load_pricing(path).resolve("my-deployment").provider == "azure"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('"m1" = { input = 1 }', ["'m1'", "missing field 'output'"]),
        ('"m1" = { input = -1, output = 1 }', ["'m1'", "'input'", ">= 0"]),
        ('"m1" = { input = "1.5", output = 1 }', ["'m1'", "'input'", "expected a number"]),
        ('"m1" = { input = 1, output = 1, cached = 0.5 }', ["'m1'", "cached"]),
        ('"m1" = { input = 1, output = 1, checked = "yesterday" }', ["'m1'", "'checked'"]),
        ('"m1" = { input = true, output = 1 }', ["'m1'", "'input'"]),
        ('"m1" = 3.0', ["'m1'", "must be a table"]),
    ],
)
def test_bad_entries_name_the_file_model_and_field(tmp_path: Path, body: str, expected: list[str]) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(f"[mine.models]\n{body}\n")
    with pytest.raises(ConfigError) as error:
        load_pricing(path)
    message = str(error.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_bad_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing.toml \(LLM_TELEMETRY_COST_PRICING_FILE\): cannot read pricing file"):
        load_pricing(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[mine.models\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_pricing(broken)
    broken_json = tmp_path / "broken.json"
    broken_json.write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_pricing(broken_json)
    twice = tmp_path / "twice.toml"
    twice.write_text('[a.models]\n"x" = { input = 1, output = 1 }\n[b.models]\n"X" = { input = 2, output = 2 }\n')
    with pytest.raises(ConfigError, match="listed twice"):
        load_pricing(twice)
    no_models = tmp_path / "nomodels.toml"
    no_models.write_text('[a]\nsource = "x"\n')
    with pytest.raises(ConfigError, match=r"\[a\] needs a non-empty `models` table"):
        load_pricing(no_models)
