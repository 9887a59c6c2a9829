"""The model price table: the bundled ``pricing.toml`` plus an optional user file, and id resolution.

Prices are data, not code, so they can be updated (or overridden per deployment with
``LLM_TELEMETRY_COST_PRICING_FILE``) without a release. Nothing here touches the network.

File layout (TOML or JSON, same shape)::

    [openai]                                  # a provider group
    source = "https://platform.openai.com/docs/pricing"
    checked = "2026-11-25"
    [openai.models]
    "gpt-4o" = { input = 2.50, cache_read = 1.25, output = 10.00 }   # USD per 1M tokens

A user-file entry replaces the bundled entry of the same model id as a whole (mixing fields from two
price lists would produce a price nobody published). Model ids are resolved by `PricingTable.resolve`:
see `normalise_model_id` and the snapshot-suffix rule there.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from llm_telemetry.config import ConfigError, env_var

BUNDLED_FILE = "pricing.toml"
_PER_TOKEN = 1e-6
_RESOLVE_CACHE_MAX = 4096
_MODEL_FIELDS = frozenset({"input", "output", "cache_read", "cache_write", "source", "checked"})
_GROUP_FIELDS = frozenset({"source", "checked", "models"})
_PROVIDER_MARKERS = ("anthropic.", "openai.")
_CLAUDE_DOTTED_VERSION = re.compile(r"(\d)\.(\d)")
_SNAPSHOT_SUFFIX = re.compile(
    r"(?:"
    r"-v\d+:\d+"                                  # Bedrock model version: -v1:0, -v2:0
    r"|(?:-v\d+)?@(?:\d{8}|\d{4}-\d{2}-\d{2})"      # Vertex snapshot: @20250929, -v2@20241022
    r"|-(?:\d{4}-\d{2}-\d{2}|\d{8})"               # dated snapshot: -2024-07-18, -20250929
    r"|-(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"    # OpenAI's older MMDD snapshots: -0613, -1106
    r"|-latest"                                     # the alias of the newest snapshot of that model
    r"|-0"                                          # Anthropic's x-0 alias of version x (claude-opus-4-0)
    r")$"
)
"""Suffixes that name a snapshot (or a deployment of one) of the model before them, never another model."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One priced model. ``*_per_token`` are USD per single token (precomputed for the hot path)."""

    model: str
    provider: str
    input: float
    output: float
    cache_read: float | None
    cache_write: float | None
    source: str
    checked: str | None
    input_per_token: float
    output_per_token: float
    cache_read_per_token: float
    """Falls back to the input price when the table has no cache-read price."""
    cache_write_per_token: float
    """Falls back to the input price when the table has no cache-write price."""


def round_usd(value: float) -> float:
    """``value`` to 12 significant digits: what we put on spans and events.

    Why: per-token prices make float products like ``40 * 0.15e-6 = 5.999999999999999e-06``, which every
    exporter that prints the raw float (the SDK's console exporter, JSON backends) shows as such. 12
    significant digits drop that noise (it sits near the 16th) and keep far more precision than any
    price has. Running totals (metrics, budgets) add the rounded values: the noise never accumulates.
    """
    return float(f"{value:.12g}")


def normalise_model_id(model: str) -> str:
    """Lower-case, drop routing prefixes (``openai/``, ``us.anthropic.``), and write Claude versions with dashes.

    ``openrouter/anthropic/claude-3.5-sonnet`` → ``claude-3-5-sonnet``;
    ``us.anthropic.claude-sonnet-4-5-20250929-v1:0`` → ``claude-sonnet-4-5-20250929-v1:0`` (the suffix is
    then handled by snapshot-suffix resolution).
    """
    name = model.strip().lower()
    if "/" in name:
        name = name.rsplit("/", 1)[1]
    for marker in _PROVIDER_MARKERS:
        index = name.find(marker)
        if index >= 0:
            name = name[index + len(marker):]
            break
    if name.startswith("claude"):
        name = _CLAUDE_DOTTED_VERSION.sub(r"\1-\2", name)
    return name


class PricingTable:
    """Model id → `ModelPrice`, with a bounded cache of resolved ids (resolution runs once per distinct id)."""

    def __init__(self, entries: Mapping[str, ModelPrice]) -> None:
        self._entries = {normalise_model_id(key): price for key, price in entries.items()}
        self._resolved: dict[str, ModelPrice | None] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.resolve(model) is not None

    @property
    def models(self) -> list[str]:
        return sorted(self._entries)

    def resolve(self, model: str) -> ModelPrice | None:
        """The entry pricing ``model``, or ``None`` when no entry matches.

        After `normalise_model_id`, an entry matches the id itself, or the id with its snapshot suffixes
        removed (`_SNAPSHOT_SUFFIX`: a date, an OpenAI ``-MMDD``, ``-latest``, ``-0``, Bedrock's ``-v1:0``,
        Vertex's ``@date``): ``gpt-4o-mini-2024-07-18`` → ``gpt-4o-mini``, ``claude-sonnet-4-5@20250929`` →
        ``claude-sonnet-4-5``, ``gpt-4-0613`` → ``gpt-4``. Nothing else is cut: a variant
        (``o3-deep-research``, ``gpt-4o-audio-preview``) or a newer version (``claude-opus-4-7``,
        ``gpt-4.5``) is priced differently from its base, so it is reported unknown unless listed.
        """
        try:
            return self._resolved[model]
        except KeyError:
            pass
        name = normalise_model_id(model)
        found = self._entries.get(name) if name else None
        while found is None and name:
            suffix = _SNAPSHOT_SUFFIX.search(name)
            if suffix is None or suffix.start() == 0:
                break
            name = name[:suffix.start()]
            found = self._entries.get(name)
        if len(self._resolved) >= _RESOLVE_CACHE_MAX:
            self._resolved.clear()  # distinct ids are few in practice; a flood of them must not grow memory
        self._resolved[model] = found
        return found


def load_pricing(user_file: Path | None = None) -> PricingTable:
    """The bundled table, extended and overridden by ``user_file`` (TOML or JSON); `ConfigError` on bad data."""
    bundled = resources.files("llm_telemetry.processors").joinpath(BUNDLED_FILE)
    entries = parse_pricing(tomllib.loads(bundled.read_text(encoding="utf-8")), origin=f"bundled {BUNDLED_FILE}")
    if user_file is not None:
        data, text = _read_user_file(user_file)
        entries.update(parse_pricing(data, origin=str(user_file), text=text))
    return PricingTable(entries)


def _read_user_file(path: Path) -> tuple[Any, str]:
    where = f"{path} ({env_var('cost', 'pricing_file')})"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read pricing file: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text), text
        return tomllib.loads(text), text
    except ValueError as exc:  # tomllib.TOMLDecodeError and json.JSONDecodeError both subclass it; both name the line
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise ConfigError(f"{where}: not valid {kind}: {exc}") from None


def _line_of_key(text: str, key: str) -> int | None:
    """Best-effort line where ``key`` is defined: ``"key" =`` / ``key =`` (TOML) or ``"key":`` (JSON), or its table."""
    pattern = re.compile(rf"""^\s*(?:\[[^\]]*)?["']?{re.escape(key)}["']?\s*[=:\]]""")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


def parse_pricing(data: Any, origin: str, text: str | None = None) -> dict[str, ModelPrice]:
    """Validate one parsed pricing document; every error names ``origin`` (and its line, given ``text``), the model, the field."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{origin}: top level must be a table of provider groups")
    out: dict[str, ModelPrice] = {}
    for provider, group in data.items():
        if not isinstance(group, Mapping):
            raise ConfigError(f"{origin}: [{provider}] must be a table with `models` (and optional source, checked)")
        unknown = set(group) - _GROUP_FIELDS
        if unknown:
            raise ConfigError(f"{origin}: [{provider}] unknown field(s) {', '.join(sorted(unknown))} (known: source, checked, models)")
        source = _text(group.get("source", origin), origin, f"[{provider}]", "source")
        checked = _date(group.get("checked"), origin, f"[{provider}]", "checked")
        models = group.get("models")
        if not isinstance(models, Mapping) or not models:
            raise ConfigError(f"{origin}: [{provider}] needs a non-empty `models` table")
        for model, entry in models.items():
            key = normalise_model_id(str(model))
            if key in out:
                raise ConfigError(f"{origin}: model {model!r} is listed twice (as {out[key].model!r} in [{out[key].provider}])")
            try:
                out[key] = _entry(str(model), str(provider), entry, source, checked, origin)
            except ConfigError as exc:
                line = _line_of_key(text, str(model)) if text else None
                if line is None:
                    raise
                raise ConfigError(str(exc).replace(f"{origin}: ", f"{origin}, line {line}: ", 1)) from None
    return out


def _entry(model: str, provider: str, entry: Any, source: str, checked: str | None, origin: str) -> ModelPrice:
    where = f"model {model!r}"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{origin}: {where} must be a table like {{ input = 1.0, output = 2.0 }}")
    unknown = set(entry) - _MODEL_FIELDS
    if unknown:
        raise ConfigError(
            f"{origin}: {where}: unknown field(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(_MODEL_FIELDS))})"
        )
    for required in ("input", "output"):
        if required not in entry:
            raise ConfigError(f"{origin}: {where}: missing field {required!r} (USD per 1M tokens)")
    input_price = _price(entry["input"], origin, where, "input")
    output_price = _price(entry["output"], origin, where, "output")
    cache_read = _price(entry["cache_read"], origin, where, "cache_read") if "cache_read" in entry else None
    cache_write = _price(entry["cache_write"], origin, where, "cache_write") if "cache_write" in entry else None
    return ModelPrice(
        model=model,
        provider=provider,
        input=input_price,
        output=output_price,
        cache_read=cache_read,
        cache_write=cache_write,
        source=_text(entry.get("source", source), origin, where, "source"),
        checked=_date(entry.get("checked", checked), origin, where, "checked"),
        input_per_token=input_price * _PER_TOKEN,
        output_per_token=output_price * _PER_TOKEN,
        cache_read_per_token=(input_price if cache_read is None else cache_read) * _PER_TOKEN,
        cache_write_per_token=(input_price if cache_write is None else cache_write) * _PER_TOKEN,
    )


def _price(value: Any, origin: str, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{origin}: {where}: field {name!r} = {value!r}: expected a number (USD per 1M tokens)")
    number = float(value)
    if number != number or number < 0 or number == float("inf"):
        raise ConfigError(f"{origin}: {where}: field {name!r} = {value!r}: expected a finite number >= 0")
    return number


def _text(value: Any, origin: str, where: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{origin}: {where}: field {name!r} = {value!r}: expected a non-empty string")
    return value.strip()


def _date(value: Any, origin: str, where: str, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise ConfigError(f"{origin}: {where}: field {name!r} = {value!r}: expected a date like 2026-11-25")
