"""Model-version watch: the first time a provider returns a new version for a requested model.

A silent model update often shows in what the provider returns before it shows in quality: a new
``gen_ai.response.model`` (``gpt-4o-2024-08-06`` where ``gpt-4o-2024-05-13`` used to answer), a new
OpenAI ``system_fingerprint`` (backend configuration), or a new response id format (a migration to
another serving stack). Per (provider, requested model) the watch keeps the set of values of each of
these three dimensions; after a baseline period (N calls or T seconds of call time per requested model,
whichever ends first) the first call that returns a value not in the set yields a `ModelVersionChange`
with the call's own end time and trace id — a timestamped fact to put next to the quality alerts.

It runs inline on every call: three dictionary look-ups and an id-shape parse, about 2 µs (see
``benchmarks/bench_quality_stats.py``). Memory is bounded: at most ``max_values`` values per model and
dimension (the least recently seen is evicted, and counted — if it comes back it is reported again) and
``max_models`` requested models (calls for further models are counted in ``dropped_calls``).

Where the state lives: in the process that sees the calls (or one gateway per routing key). A fleet of
replicas each learns its own baseline, so each reports the change once — the first report is the
earliest first-seen time.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

from opentelemetry.util.types import AttributeValue

from llm_telemetry import attributes as a
from llm_telemetry.config import QualitySettings
from llm_telemetry.record import GenAICall

Dimension = Literal["response_model", "system_fingerprint", "response_id_shape"]
DIMENSIONS: tuple[Dimension, ...] = ("response_model", "system_fingerprint", "response_id_shape")
ABSENT = "<absent>"
"""How a value the provider did not return (e.g. no ``system_fingerprint``) is shown."""

# A prefix is a word with at least one letter outside a-f (so the first group of a UUID is not one).
_PREFIX = re.compile(r"([A-Za-z]*[g-zG-Z][A-Za-z]*)([-_:])")
_SEPARATORS = re.compile(r"([-_.:])")


def id_shape(response_id: str | None) -> str | None:
    """The format of a response id, with the random part reduced to its class and length.

    ``chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT`` → ``chatcmpl-{alnum:29}``; a UUID →
    ``{alnum:8}-{alnum:4}-{alnum:4}-{alnum:4}-{alnum:12}``. Digits and letters are one class: a random
    hex or base-62 part is now and then all digits, and must not look like a new shape when it is.
    """
    if not response_id:
        return None
    match = _PREFIX.match(response_id)
    prefix, rest = (match.group(0), response_id[match.end():]) if match else ("", response_id)
    parts: list[str] = [prefix]
    for piece in _SEPARATORS.split(rest):
        if not piece:
            continue
        if len(piece) == 1 and piece in "-_.:":
            parts.append(piece)
        elif piece.isascii() and piece.isalnum():
            parts.append(f"{{alnum:{len(piece)}}}")
        else:
            parts.append(f"{{other:{len(piece)}}}")
    return "".join(parts)


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ModelVersionChange:
    """A value never seen for this requested model during or since its baseline."""

    provider: str
    request_model: str
    dimension: Dimension
    previous: tuple[str | None, ...]
    """Values seen before, oldest first (``None``: the provider returned none)."""
    new_value: str | None
    first_seen_ns: int
    """End time of the call that first returned it (the call's time, not the processing time)."""
    trace_id: int
    span_id: int
    baseline_calls: int
    """Calls in this model's baseline (how much history 'never seen' rests on)."""

    def attributes(self) -> dict[str, AttributeValue]:
        """Attributes for the span event / log record (names from `llm_telemetry.attributes`)."""
        return {
            a.PROVIDER_NAME: self.provider,
            a.REQUEST_MODEL: self.request_model,
            a.QUALITY_MODEL_VERSION_DIMENSION: self.dimension,
            a.QUALITY_MODEL_VERSION_PREVIOUS: [v if v is not None else ABSENT for v in self.previous],
            a.QUALITY_MODEL_VERSION_NEW: self.new_value if self.new_value is not None else ABSENT,
            a.QUALITY_MODEL_VERSION_FIRST_SEEN: _iso(self.first_seen_ns),
            a.QUALITY_MODEL_VERSION_TRACE_ID: f"{self.trace_id:032x}",
            a.QUALITY_MODEL_VERSION_BASELINE_CALLS: self.baseline_calls,
        }

    def metric_attributes(self) -> dict[str, AttributeValue]:
        """Low-cardinality attributes for the ``llm_telemetry.quality.model_version.changes`` counter."""
        return {a.PROVIDER_NAME: self.provider, a.REQUEST_MODEL: self.request_model, a.QUALITY_MODEL_VERSION_DIMENSION: self.dimension}

    def message(self) -> str:
        """One line for the log record."""
        before = ", ".join(v if v is not None else ABSENT for v in self.previous) or "nothing"
        new = self.new_value if self.new_value is not None else ABSENT
        return (
            f"model version changed: {self.provider} {self.request_model!r} returned {self.dimension} {new!r} "
            f"(before: {before}) first at {_iso(self.first_seen_ns)}, trace {self.trace_id:032x}"
        )


@dataclass(slots=True)
class _ModelState:
    calls: int = 0
    first_ns: int = 0
    watching: bool = False
    baseline_calls: int = 0
    values: dict[Dimension, dict[str | None, int]] = field(default_factory=lambda: {d: {} for d in DIMENSIONS})


class ModelWatch:
    """Per (provider, requested model): the returned versions, fingerprints and id shapes.

    Thread-safe; `observe` never raises for a well-formed record. Calls that failed (``error_type``
    set) are skipped: an error response carries no version.
    """

    def __init__(
        self,
        *,
        baseline_calls: int = 50,
        baseline_s: float = 600.0,
        max_values: int = 32,
        max_models: int = 1000,
    ) -> None:
        self.baseline_calls = baseline_calls
        self.baseline_ns = int(baseline_s * 1e9)
        self.max_values = max_values
        self.max_models = max_models
        self._models: dict[tuple[str, str], _ModelState] = {}
        self._lock = threading.Lock()
        self.dropped_calls = 0
        """Calls not watched because ``max_models`` models were already tracked."""
        self.evicted_values = 0
        """Values forgotten because a model/dimension reached ``max_values``."""

    @classmethod
    def from_settings(cls, settings: QualitySettings) -> ModelWatch:
        return cls(
            baseline_calls=settings.watch_baseline_calls,
            baseline_s=settings.watch_baseline_s,
            max_values=settings.watch_max_values,
            max_models=settings.watch_max_models,
        )

    def observe(self, call: GenAICall) -> list[ModelVersionChange]:
        """Record the call's returned versions; the changes it is the first to show (usually none)."""
        if call.error_type is not None:
            return []
        now = call.end_time_ns or time.time_ns()
        observed = (call.response_model, call.system_fingerprint, id_shape(call.response_id))
        key = (call.provider, call.request_model or ABSENT)
        with self._lock:
            state = self._models.get(key)
            if state is None:
                if len(self._models) >= self.max_models:
                    self.dropped_calls += 1
                    return []
                state = self._models[key] = _ModelState(first_ns=now)
            state.calls += 1
            if not state.watching and self._baseline_over(state, now):
                state.watching, state.baseline_calls = True, state.calls - 1
            changes: list[ModelVersionChange] = []
            for dimension, value in zip(DIMENSIONS, observed, strict=True):
                seen = state.values[dimension]
                if value in seen:
                    seen[value] = now
                    continue
                if state.watching:
                    changes.append(
                        ModelVersionChange(
                            call.provider, key[1], dimension, tuple(seen), value, now, call.trace_id, call.span_id,
                            state.baseline_calls,
                        )
                    )
                seen[value] = now
                if len(seen) > self.max_values:
                    del seen[min(seen, key=seen.__getitem__)]
                    self.evicted_values += 1
            return changes

    def _baseline_over(self, state: _ModelState, now: int) -> bool:
        """True from the first call after the baseline: N calls or T seconds, whichever ends first."""
        by_count = self.baseline_calls > 0 and state.calls > self.baseline_calls
        by_time = self.baseline_ns > 0 and now - state.first_ns >= self.baseline_ns
        if self.baseline_calls <= 0 and self.baseline_ns <= 0:
            return state.calls > 1
        return by_count or by_time

    def known(self, provider: str, request_model: str | None) -> dict[Dimension, tuple[str | None, ...]]:
        """The values seen so far for a requested model (for reports and tests)."""
        with self._lock:
            state = self._models.get((provider, request_model or ABSENT))
            return {d: tuple(state.values[d]) for d in DIMENSIONS} if state else {}
