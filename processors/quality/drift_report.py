"""What the drift monitor hands back: per-output decisions, alerts (with their evidence), recoveries, counts.

Plain frozen dataclasses, no OpenTelemetry: the integrator turns them into metrics, span events and
log records (and the gateway can do the same), so the drift engine has no opinion on attribute names.
Trace ids are the ints of `GenAICall.trace_id` (format with ``format(trace_id, "032x")``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from llm_telemetry.processors.quality.drift_baseline import BaselineInfo, DriftKey
from llm_telemetry.processors.quality.mmd import PermutationTestResult

if TYPE_CHECKING:
    from llm_telemetry.processors.quality.online_mmd import OnlineMMD, OnlineStep

_START_Z = 3.0
"""How clear the step in witness values must be (a two-sample z score) to place the start inside the window."""


@dataclass(frozen=True, slots=True)
class ShiftExample:
    """An output near the shift: high witness value = the kind of output the window has more of than the reference."""

    trace_id: int
    end_time_ns: int
    witness: float
    text: str | None = None
    """Only with ``keep_texts`` (content opt-in)."""


@dataclass(frozen=True, slots=True)
class WindowInfo:
    """The test window at the alert: its size, how many slots hold observed outputs, their time range."""

    size: int
    observed: int
    start_time_ns: int | None
    end_time_ns: int | None


@dataclass(frozen=True, slots=True)
class DriftAlert:
    """Raised once per episode, at the first output whose window score exceeds the calibrated threshold."""

    key: DriftKey
    baseline: BaselineInfo
    window: WindowInfo
    score: float
    """MMD² of the window against the reference."""
    threshold: float
    ert: float
    p_value: float | None
    """Permutation test of the whole reference vs the window's observed outputs (a second, batch view)."""
    t: int
    """Outputs monitored for this key since its baseline was installed."""
    detected_time_ns: int
    detected_trace_id: int
    estimated_start_time_ns: int | None
    estimated_start_trace_id: int | None
    start_before_window: bool
    """True when the window shows no clear step: the change started at or before the window's first output."""
    nearest: tuple[ShiftExample, ...]


@dataclass(frozen=True, slots=True)
class DriftRecovery:
    """The end of an alert episode: the window stayed at or under the threshold for ``recover_after`` outputs."""

    key: DriftKey
    alert_time_ns: int
    recovered_time_ns: int
    recovered_trace_id: int
    points: int
    """Outputs monitored during the episode."""


@dataclass(frozen=True, slots=True)
class DriftDecision:
    """The monitor's verdict after one output (score/threshold are ``None`` while the reference is collected)."""

    key: DriftKey
    trace_id: int
    end_time_ns: int
    state: str
    """``collecting``, ``ok`` or ``alert`` (after this output)."""
    t: int
    score: float | None
    threshold: float | None
    p_value: float | None
    """Set on outputs where a batch permutation test ran (alerts, and every ``batch_check_every`` outputs)."""
    alert: DriftAlert | None
    recovery: DriftRecovery | None


@dataclass(slots=True)
class DriftStats:
    """Counts since start: nothing is dropped without being counted here."""

    observed: int = 0
    skipped_empty: int = 0
    embedded: int = 0
    embed_failures: int = 0
    """Outputs dropped because the embedder raised."""
    evicted_keys: int = 0
    calibrations: int = 0
    calibration_failures: int = 0
    baseline_file_errors: int = 0
    alerts: int = 0
    recoveries: int = 0


def build_alert(
    key: DriftKey, baseline: BaselineInfo, detector: OnlineMMD, trace_ids: list[int], times: list[int],
    texts: list[str | None] | None, step: OnlineStep, end_ns: int, trace_id: int, test: PermutationTestResult | None,
    nearest_k: int,
) -> DriftAlert:
    """The alert for ``step``, with the window's evidence (called once per episode, O(W log W))."""
    w = detector.window_size
    observed = detector.observed_in_window
    slots = detector.slot_order[w - observed:]  # observed outputs, oldest first
    witness = detector.witness()[w - observed:]
    top = np.argsort(-witness, kind="stable")[:nearest_k]
    nearest = tuple(
        ShiftExample(trace_ids[slots[i]], times[slots[i]], float(witness[i]), texts[slots[i]] if texts is not None else None)
        for i in top
    )
    known = [times[s] for s in slots if times[s] > 0]
    start_index, before = change_split(witness)
    start_slot = slots[start_index]
    return DriftAlert(
        key=key, baseline=baseline, window=WindowInfo(w, observed, min(known, default=None), max(known, default=None)),
        score=step.score, threshold=step.threshold, ert=detector.ert, p_value=test.p_value if test else None, t=step.t,
        detected_time_ns=end_ns, detected_trace_id=trace_id,
        estimated_start_time_ns=times[start_slot] or None, estimated_start_trace_id=trace_ids[start_slot] or None,
        start_before_window=before, nearest=nearest,
    )


def change_split(values: np.ndarray) -> tuple[int, bool]:
    """Where a series (oldest first) steps up: the index maximising a two-sample z score of after vs before.

    Returns ``(index, False)`` for a clear step (z ≥ 3), else ``(0, True)``: no step inside the series,
    so the change began at or before its first element.
    """
    n = len(values)
    if n < 4:
        return 0, True
    x = np.asarray(values, dtype=np.float64)
    s = np.arange(1, n)
    c1 = np.concatenate(([0.0], np.cumsum(x)))
    c2 = np.concatenate(([0.0], np.cumsum(x * x)))
    mean_before = c1[s] / s
    mean_after = (c1[n] - c1[s]) / (n - s)
    ss_before = c2[s] - s * mean_before**2
    ss_after = (c2[n] - c2[s]) - (n - s) * mean_after**2
    pooled = np.maximum((ss_before + ss_after) / (n - 2), 1e-18)
    z = (mean_after - mean_before) / np.sqrt(pooled * (1.0 / s + 1.0 / (n - s)))
    best = int(np.argmax(z))
    if z[best] < _START_Z:
        return 0, True
    return int(s[best]), False
