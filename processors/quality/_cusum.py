"""Design of an integer-valued Bernoulli CUSUM chart whose false-alarm rate is exact, not approximated.

The chart (Reynolds & Stoumbos, "A CUSUM chart for monitoring a proportion when inspecting
continuously", Journal of Quality Technology 31(1), 1999) accumulates the log-likelihood ratio of
"failure rate p1" against "failure rate p0" over a stream of pass/fail checks:
``S = max(0, S + ln(p1/p0))`` on a failure, ``S = max(0, S + ln((1-p1)/(1-p0)))`` on a pass, and alarms
when ``S >= h``. It is the sequential test with the shortest worst-case detection delay for that shift
among tests with the same false-alarm rate (Moustakides 1986, optimality of Page's CUSUM).

As Reynolds & Stoumbos do, the two increments are scaled to small integers (``up`` on a failure,
``-down`` on a pass, their ratio close to the likelihood ratio's), so the statistic lives on the states
``0 .. threshold-1`` and its in-control average run length (ARL: expected checks between false alarms)
is *exactly* the solution of a linear system over that Markov chain (Brook & Evans, Biometrika 59,
1972). The threshold is the smallest one whose ARL at p0 reaches the target. Rounding the increments
only costs a little detection speed; the false-alarm rate of the chart that actually runs is exact.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

TARGET_UP = 6
"""Failure increment the scaling aims for: enough resolution for the likelihood ratio, few states."""
MAX_STATES = 1500


@dataclass(frozen=True, slots=True)
class ChartDesign:
    """An integer Bernoulli CUSUM: +``up`` per failure, -``down`` per pass, alarm at ``threshold``."""

    p0: float
    p1: float
    up: int
    down: int
    threshold: int
    arl0: float
    """Expected checks between false alarms when the failure rate is ``p0`` (exact for this chart)."""


def average_run_length(p: float, up: int, down: int, threshold: int) -> float:
    """Expected checks until the chart (started at 0) reaches ``threshold`` when each check fails with
    probability ``p``: ``L = 1 + Q L`` over the transient states (Brook & Evans)."""
    if threshold <= up:
        return 1.0 / p if p > 0 else math.inf
    states = np.arange(threshold)
    q = np.zeros((threshold, threshold))
    rise = states + up
    inside = rise < threshold
    q[states[inside], rise[inside]] += p
    q[states, np.maximum(0, states - down)] += 1.0 - p
    try:
        run_lengths = np.linalg.solve(np.eye(threshold) - q, np.ones(threshold))
    except np.linalg.LinAlgError:
        return math.inf
    value = float(run_lengths[0])
    return value if value > 0 and math.isfinite(value) else math.inf


def _increments(p0: float, p1: float) -> tuple[int, int]:
    """Integer increments whose ratio approximates ln(p1/p0) : -ln((1-p1)/(1-p0))."""
    rise = math.log(p1 / p0)
    fall = -math.log((1.0 - p1) / (1.0 - p0))
    ratio = rise / fall
    if ratio >= TARGET_UP:
        return round(ratio), 1
    down = max(1, round(TARGET_UP / ratio))
    return max(1, round(ratio * down)), down


def design(p0: float, p1: float, target_arl: float) -> ChartDesign:
    """The chart for a failure-rate shift ``p0 -> p1`` whose in-control ARL is the smallest >= ``target_arl``.

    ARL grows about exponentially with the threshold: the search starts from the classic approximation
    ``h ≈ ln(ARL)``, brackets, then interpolates on log(ARL) (bisecting when that stalls): a handful of
    linear solves of at most `MAX_STATES` states.
    """
    if not 0 < p0 < p1 < 1:
        raise ValueError(f"need 0 < p0 < p1 < 1, got p0={p0}, p1={p1}")
    up, down = _increments(p0, p1)
    unit = -math.log((1.0 - p1) / (1.0 - p0)) / down  # nats per integer step
    known: dict[int, float] = {up: 1.0 / p0}  # at threshold <= up one failure alarms

    def arl(threshold: int) -> float:
        if threshold not in known:
            known[threshold] = average_run_length(p0, up, down, threshold)
        return known[threshold]

    low, high = up, 0  # arl(low) < target <= arl(high); high = 0 while not found
    probe = max(up + 1, min(MAX_STATES, round(math.log(max(target_arl, 2.0)) / unit)))
    while True:
        if arl(probe) >= target_arl:
            high = probe
        else:
            low = probe
        if high and high - low <= 1:
            break
        if not high:
            if probe >= MAX_STATES:
                high = MAX_STATES  # the target is out of reach: the largest chart we solve
                break
            probe = min(MAX_STATES, probe * 2)
            continue
        span = high - low
        y_low, y_high = math.log(arl(low)), math.log(arl(high))
        guess = low + round((math.log(target_arl) - y_low) / (y_high - y_low) * span) if y_high > y_low else low + span // 2
        if span > 8 and not low + span // 4 <= guess <= high - span // 4:
            guess = low + span // 2  # interpolation hugging one end: bisect instead
        probe = min(max(guess, low + 1), high - 1)
    return ChartDesign(p0, p1, up, down, high, arl(high))


_cache: dict[tuple[float, float, float], ChartDesign] = {}
_cache_lock = threading.Lock()


def cached_design(p0: float, p1: float, target_arl: float) -> ChartDesign:
    """`design`, memoised process-wide (keys share designs: callers round p0 up to a grid)."""
    key = (p0, p1, target_arl)
    found = _cache.get(key)
    if found is None:
        found = design(p0, p1, target_arl)
        with _cache_lock:
            if len(_cache) > 1024:
                _cache.clear()
            _cache[key] = found
    return found
