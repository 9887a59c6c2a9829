"""The cost enricher: prices each GenAI call's token usage and counts cost and tokens as metrics.

Token semantics (the bugs other tools shipped are in the details here). `GenAICall` follows the GenAI
conventions for both providers: ``input_tokens`` counts *every* input token, including the ones read
from and written to the prompt cache; ``cache_read_tokens`` / ``cache_write_tokens`` are parts of it.
So the bill is::

    uncached    = input - cache_read - cache_write       at the input price
    cache_read                                          at the cache-read price
    cache_write                                         at the cache-write price
    output      (reasoning tokens included)             at the output price

Counting the cached parts on top of ``input`` bills them twice (Langfuse #5568); billing cache reads at
the full input price overstates cached calls ~10x (OpenLIT #1378). When a producer reports ``input``
*without* the cached parts (so ``input < cache_read + cache_write``, impossible under the conventions),
``input`` is taken as the uncached count, and this is logged once per model.

A missing cache price in the table falls back to the input price (the conservative bill), logged once
per model. A model the table does not know gets ``llm_telemetry.cost.unknown_model=true`` and no cost
at all — never a silent zero — and is counted and warned about once per model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from opentelemetry.metrics import Meter
from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a
from llm_telemetry.config import env_var
from llm_telemetry.processors.base import EnricherContext, Enrichment
from llm_telemetry.processors.metrics import UsageKey, UsageMetrics
from llm_telemetry.processors.pricing import ModelPrice, PricingTable, load_pricing, round_usd
from llm_telemetry.record import GenAICall

logger = logging.getLogger(__name__)

_MAX_REMEMBERED_WARNINGS = 1000


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """USD of one call, by component."""

    input_usd: float
    output_usd: float
    cache_read_usd: float
    cache_write_usd: float

    @property
    def total_usd(self) -> float:
        return self.input_usd + self.output_usd + self.cache_read_usd + self.cache_write_usd


def compute_cost(
    price: ModelPrice, input_tokens: int, output_tokens: int, cache_read_tokens: int = 0, cache_write_tokens: int = 0,
) -> CostBreakdown:
    """Price one call; ``input_tokens`` includes the cached parts (see the module docstring)."""
    uncached = input_tokens - cache_read_tokens - cache_write_tokens
    if uncached < 0:  # the producer reported input without its cached parts
        uncached = input_tokens
    return CostBreakdown(
        input_usd=uncached * price.input_per_token,
        output_usd=output_tokens * price.output_per_token,
        cache_read_usd=cache_read_tokens * price.cache_read_per_token,
        cache_write_usd=cache_write_tokens * price.cache_write_per_token,
    )


class CostEnricher:
    """Adds ``llm_telemetry.cost.*`` to each GenAI span and feeds the cost / token / unknown-model metrics."""

    name = "cost"

    def __init__(self, pricing: PricingTable | None = None, meter: Meter | None = None, *, user_dimension: bool = True) -> None:
        self.pricing = load_pricing() if pricing is None else pricing
        self.metrics = UsageMetrics(meter)
        self._user_dimension = user_dimension
        self._warned: set[tuple[str, str]] = set()
        self._warn_lock = threading.Lock()

    @classmethod
    def from_context(cls, context: EnricherContext) -> CostEnricher:
        cost = context.settings.cost
        return cls(load_pricing(cost.pricing_file), context.meter, user_dimension=cost.user_dimension)

    def price_for(self, call: GenAICall) -> ModelPrice | None:
        """The entry for the model that answered, else for the one requested."""
        price = None
        if call.response_model:
            price = self.pricing.resolve(call.response_model)
        if price is None and call.request_model:
            price = self.pricing.resolve(call.request_model)
        return price

    def enrich(self, call: GenAICall, attributes: Mapping[str, AttributeValue], enrichments: Enrichment) -> Enrichment | None:
        input_tokens = call.input_tokens
        output_tokens = call.output_tokens
        if input_tokens is None and output_tokens is None:
            return None  # no usage reported (e.g. a failed call): nothing to price, nothing to count
        input_tokens = input_tokens or 0
        output_tokens = output_tokens or 0
        key: UsageKey = (
            call.request_model, call.response_model, call.provider,
            call.user_id if self._user_dimension else None, call.feature,
        )
        price = self.price_for(call)
        if price is None:
            self.metrics.record_unknown_model((call.request_model, call.response_model, call.provider, None, None))
            self.metrics.record(key, None, input_tokens, output_tokens)
            self._warn_once("unknown", call.model or "", lambda: self._unknown_message(call))
            return Enrichment({a.COST_UNKNOWN_MODEL: True})

        cache_read = call.cache_read_tokens or 0
        cache_write = call.cache_write_tokens or 0
        # Same arithmetic as compute_cost, inlined: this runs on every GenAI span.
        uncached = input_tokens - cache_read - cache_write
        if uncached < 0:
            uncached = input_tokens
        input_usd = round_usd(uncached * price.input_per_token)
        output_usd = round_usd(output_tokens * price.output_per_token)
        attrs = {
            a.COST_INPUT_USD: input_usd,
            a.COST_OUTPUT_USD: output_usd,
            a.COST_PRICING_MODEL: price.model,
            a.COST_PRICING_SOURCE: price.source,
        }
        total = input_usd + output_usd
        if cache_read or cache_write:
            read_usd = round_usd(cache_read * price.cache_read_per_token)
            write_usd = round_usd(cache_write * price.cache_write_per_token)
            attrs[a.COST_CACHE_READ_USD] = read_usd
            attrs[a.COST_CACHE_WRITE_USD] = write_usd
            total += read_usd + write_usd
            self._check_cache_semantics(price, call, input_tokens, cache_read, cache_write)
        total = round_usd(total)
        attrs[a.COST_TOTAL_USD] = total
        if call.input_tokens_estimated or call.output_tokens_estimated:
            attrs[a.COST_ESTIMATED] = True
        self.metrics.record(key, total, input_tokens, output_tokens)
        return Enrichment(attrs)

    def _check_cache_semantics(self, price: ModelPrice, call: GenAICall, input_tokens: int, read: int, write: int) -> None:
        if input_tokens < read + write:
            self._warn_once(
                "input-excludes-cache", price.model,
                lambda: (
                    f"llm-telemetry: spans for model {call.model!r} (provider {call.provider!r}, from {call.source}) report "
                    f"input tokens ({input_tokens}) lower than cache read + write ({read} + {write}); treating input "
                    "as the uncached count. The producer does not follow the GenAI conventions for input tokens."
                ),
            )
        if read and price.cache_read is None:
            self._warn_once(
                "no-cache-read-price", price.model,
                lambda: f"llm-telemetry: pricing entry {price.model!r} has no cache_read price; billing cache reads at its "
                f"input price ({price.input} USD/1M). Add cache_read via {env_var('cost', 'pricing_file')}.",
            )
        if write and price.cache_write is None:
            self._warn_once(
                "no-cache-write-price", price.model,
                lambda: f"llm-telemetry: pricing entry {price.model!r} has no cache_write price; billing cache writes at "
                f"its input price ({price.input} USD/1M). Add cache_write via {env_var('cost', 'pricing_file')}.",
            )

    @staticmethod
    def _unknown_message(call: GenAICall) -> str:
        models = " / ".join(repr(m) for m in dict.fromkeys((call.response_model, call.request_model)) if m) or "(no model name)"
        return (
            f"llm-telemetry: no price for model {models} (provider {call.provider!r}); its spans get "
            f"{a.COST_UNKNOWN_MODEL}=true and no cost. Add it to a pricing file ({env_var('cost', 'pricing_file')})."
        )

    def _warn_once(self, kind: str, model: str, message: Callable[[], str]) -> None:
        """Log ``message()`` the first time (``kind``, ``model``) happens; the message is built only then."""
        key = (kind, model)
        if key in self._warned:
            return
        with self._warn_lock:
            if key in self._warned:
                return
            if len(self._warned) >= _MAX_REMEMBERED_WARNINGS:
                logger.debug("llm-telemetry: %s for model %r (warning suppressed: too many distinct models)", kind, model)
                return
            self._warned.add(key)
        logger.warning(message())
