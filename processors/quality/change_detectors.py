"""Sequential change detectors with thresholds calibrated to a false-alarm rate.

Two CUSUM monitors, each with a warm-up that estimates the baseline, a calibrated threshold, an
estimated change point, one alert per episode and a recovery test:

* `MeanMonitor` — two-sided CUSUM on standardized values (after a transform such as ``log1p`` that
  makes output lengths roughly symmetric): ``S⁺ = max(0, S⁺ + z - k)``, ``S⁻ = max(0, S⁻ - z - k)``.
* `RateMonitor` — one-sided Bernoulli CUSUM (log-likelihood ratio of p1 against the baseline p0,
  with p1 set by an odds ratio) for rates whose rise is bad: refusals, ``length`` finish reasons,
  invalid JSON, outputs in another language.

Why not river/ruptures: river's ``PageHinkley`` costs 0.5 µs per update but takes a raw threshold (its
default raised 63 false alarms per 100,000 standard-normal values here), estimates the mean from the
stream itself, and gives neither a calibrated threshold nor a change-point estimate; ``ADWIN``'s
``delta`` bounds false alarms only loosely; ruptures is offline (batch) segmentation. The CUSUM update
is three lines; what matters is the calibration, which is done here:

* Threshold ``h`` is chosen so the in-control average run length (expected calls between false alarms,
  ``ert``) equals the setting, computed exactly with a Markov chain (Brook & Evans, Biometrika 1972):
  the CUSUM state is discretised into cells, ``ARL = (I - R)⁻¹ 1`` from state 0, and ``h`` found by
  bisection. For the Gaussian CUSUM the threshold comes from Siegmund's closed-form ARL (within 1-2 %
  of the Brook-Evans chain, `gaussian_cusum_arl`, which the tests check against the published h=5,
  k=0.5 ARL of 930) so that averaging over the warm-up's estimation error costs microseconds; for the
  Bernoulli CUSUM the increments are put on an integer lattice (down ``d``, up ``u`` with ``u/d`` ≈ the
  LLR ratio, ``u`` ≤ 32, ``d`` ≤ 8 / ratio so the chain stays small), where the chain is exact for the
  lattice statistic actually run (for rare events the lattice caps the ratio, which tunes the detector
  to a somewhat larger rise: a 1 % baseline is tuned to 6.7 %, not 2.9 %). The Gaussian threshold
  accounts for the warm-up's estimation error (see `gaussian_false_alarm_rate`). Two sides
  of `MeanMonitor` are each calibrated to ``2 x ert`` (1/ARL adds up for the union of the two).
* The change point is the CUSUM's maximum-likelihood estimate: the first call after the statistic
  last left zero. "After" values are the mean over the calls since then.
* Recovery is the reverse CUSUM: after an alert, the same design run the other way (the tuned shift
  back to the baseline, same threshold) clears the alert when it crosses. It uses the design shift,
  not the shift estimated at the alert: an estimate from the few calls before a quick alert is noisy,
  and a recovery tuned to it flaps (alert, recover, alert) while the change persists.

The baseline is estimated from the first ``warmup`` values, and both thresholds are set for the
false-alarm rate averaged over that estimation error (Gaussian: sampling error of mean and deviation;
rate: the Jeffreys posterior of the rate given the warm-up's count), so that over many keys the
realised rate matches the setting even though a warm-up that happened to see few rare events tunes
its detector low. The tests and the benchmark measure the realised rate on stationary streams.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

Direction = Literal["up", "down"]
EventKind = Literal["alert", "recovered"]

_GAUSS_CELLS = 150
_LATTICE_MAX_UP = 32
_LATTICE_SCALE = 8
_MAX_LATTICE_STATES = 6000


# --- calibration ----------------------------------------------------------------------------------


def _phi(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.array([math.erf(v / math.sqrt(2.0)) for v in x.tolist()]))


def gaussian_cusum_arl(h: float, k: float, shift: float = 0.0, cells: int = _GAUSS_CELLS) -> float:
    """Average run length of ``S = max(0, S + z - k)`` to ``S > h`` with ``z ~ N(shift, 1)`` (Brook-Evans)."""
    w = 2.0 * h / (2 * cells - 1)
    offsets = np.arange(-(cells - 1), cells, dtype=float)  # j - i
    upper = _phi((offsets + 0.5) * w + k - shift)
    lower = _phi((offsets - 0.5) * w + k - shift)
    idx = np.arange(cells)
    diff = idx[None, :] - idx[:, None] + (cells - 1)
    r = upper[diff] - lower[diff]
    r[:, 0] = _phi((0.5 - idx) * w + k - shift)
    r[r < 1e-14] = 0.0  # far-tail probabilities are denormal floats that slow LAPACK down twentyfold
    lengths = np.linalg.solve(np.eye(cells) - r, np.ones(cells))
    return float(lengths[0])


def siegmund_arl(h: float, k: float, shift: float = 0.0) -> float:
    """Siegmund's approximation of the same ARL: ``(e^(-2Δb) + 2Δb - 1) / 2Δ²``, ``Δ = shift - k``, ``b = h + 1.166``."""
    delta, b = shift - k, h + 1.166
    if abs(delta) < 1e-9:
        return b * b
    return (math.exp(-2.0 * delta * b) + 2.0 * delta * b - 1.0) / (2.0 * delta * delta)


def gaussian_false_alarm_rate(h: float, k: float, warmup: int | None = None) -> float:
    """Expected false alarms per call of the one-sided CUSUM, averaged over the warm-up's estimation error.

    With the baseline mean and deviation estimated from ``warmup`` values, the standardized value is
    ``z = c (u - e)`` with ``u ~ N(0, 1)``, ``e ~ N(0, 1/warmup)`` (mean error) and ``c = s/s_hat`` (``log c``
    ≈ ``N(0, 1/(2(warmup-1)))``). The long-run false-alarm rate over many keys is ``E[1/ARL]`` under
    that error, computed with Gauss-Hermite quadrature (7 x 3 points). ``warmup=None``: known baseline.
    """
    if warmup is None:
        return 1.0 / siegmund_arl(h, k)
    total = 0.0
    mean_sd, scale_sd = 1.0 / math.sqrt(warmup), 1.0 / math.sqrt(2.0 * max(warmup - 1, 1))
    for e, we in zip(*_HERMITE_7, strict=True):
        for g, wg in zip(*_HERMITE_3, strict=True):
            c = math.exp(g * scale_sd)
            total += we * wg / siegmund_arl(h / c, k / c, shift=-e * mean_sd)
    return total


def _hermite(n: int) -> tuple[list[float], list[float]]:
    """Nodes and weights for E[f(X)], X ~ N(0, 1)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(n)
    return nodes.tolist(), (weights / weights.sum()).tolist()


_HERMITE_7 = _hermite(7)
_HERMITE_3 = _hermite(3)


@lru_cache(maxsize=64)
def gaussian_cusum_threshold(k: float, arl: float, warmup: int | None = None) -> float:
    """The ``h`` at which the one-sided Gaussian CUSUM with reference ``k`` raises one false alarm per
    ``arl`` calls on average (over the warm-up's estimation error when ``warmup`` is given)."""
    target = 1.0 / arl

    def too_low(h: float) -> bool:
        return gaussian_false_alarm_rate(h, k, warmup) > target

    lo, hi = 0.05, 1.0
    while too_low(hi):
        lo, hi = hi, hi * 2.0
        if hi > 200:
            raise ValueError(f"no CUSUM threshold reaches an average run length of {arl:g}")
    while hi - lo > 1e-4 * hi:
        mid = 0.5 * (lo + hi)
        if too_low(mid):
            lo = mid
        else:
            hi = mid
    return hi


@dataclass(frozen=True, slots=True)
class RateDesign:
    """A Bernoulli CUSUM on an integer lattice: each miss moves ``S`` down ``down``, each hit up ``up``."""

    p0: float
    p1: float
    """The rate the detector is tuned to (odds ratio x the baseline odds, raised when the lattice caps it)."""
    up: int
    down: int
    threshold: int
    """Alarm when ``S >= threshold`` (lattice units)."""
    arl: float
    """In-control average run length of this exact design (≥ the requested one)."""
    llr_unit: float
    """Log-likelihood ratio per lattice unit (``|log((1-p1)/(1-p0))| / down``)."""


def lattice_arl(p: float, up: int, down: int, threshold: int) -> float:
    """Exact ARL of the lattice CUSUM (hits with probability ``p``) from 0 to ``S >= threshold``."""
    return float(lattice_arls(np.array([p]), up, down, threshold)[0])


def lattice_arls(ps: np.ndarray, up: int, down: int, threshold: int) -> np.ndarray:
    """`lattice_arl` for several hit probabilities at once (same lattice, one elimination).

    ``(I - R) L = 1`` is banded (each state moves ``down`` or ``up``): solved by banded Gaussian
    elimination, without pivoting (``I - R`` is a nonsingular M-matrix) and without LAPACK, whose
    threads make a few hundred small solves take seconds on a busy two-core machine.
    """
    n, lower, upper, m = threshold, down, up, len(ps)
    band = np.zeros((m, n, lower + upper + 1))  # band[:, i, j - i + lower] = A[i, j]
    band[:, :, lower] = 1.0
    for i in range(n):
        j = max(i - down, 0)
        band[:, i, j - i + lower] -= 1.0 - ps
        if i + up < n:
            band[:, i, lower + up] -= ps
    rhs = np.ones((m, n))
    for i in range(n):
        pivot_row = band[:, i, lower:]
        for r in range(i + 1, min(n, i + lower + 1)):
            offset = i - r + lower
            if band[0, r, offset] != 0.0:  # the same pattern for every p
                factor = band[:, r, offset] / pivot_row[:, 0]
                band[:, r, offset:offset + upper + 1] -= factor[:, None] * pivot_row
                rhs[:, r] -= factor * rhs[:, i]
    x = np.zeros((m, n + upper))
    for i in range(n - 1, -1, -1):
        x[:, i] = (rhs[:, i] - (band[:, i, lower + 1:] * x[:, i + 1:i + 1 + upper]).sum(axis=1)) / band[:, i, lower]
    return x[:, 0]


def _lattice_steps(p0: float, p1: float) -> tuple[int, int, float]:
    b = math.log(p1 / p0)
    a = -math.log((1.0 - p1) / (1.0 - p0))
    ratio = b / a
    if ratio >= _LATTICE_SCALE:
        return min(round(ratio), _LATTICE_MAX_UP), 1, ratio
    down = max(1, int(_LATTICE_SCALE // ratio))
    return max(1, round(ratio * down)), down, ratio


@lru_cache(maxsize=512)
def rate_cusum_design(p0: float, odds_ratio: float, arl: float, warmup: tuple[int, int] | None = None) -> RateDesign:
    """Calibrate the Bernoulli CUSUM for baseline rate ``p0`` to in-control ARL ``arl``.

    ``warmup=(hits, n)``: ``p0`` was estimated from ``hits`` in ``n`` calls, so the threshold is set for
    the false-alarm rate averaged over the Jeffreys posterior of the true rate (8 quantile nodes) — the
    long-run rate over many keys whose baselines were each estimated this way. ``arl`` of the result is
    then ``1 / E[1/ARL]``.
    """
    if not 0.0 < p0 < 1.0:
        raise ValueError(f"baseline rate must be in (0, 1), got {p0!r}")
    odds1 = p0 / (1.0 - p0) * odds_ratio
    p1 = odds1 / (1.0 + odds1)
    up, down, ratio = _lattice_steps(p0, p1)
    if ratio >= _LATTICE_MAX_UP:
        # The cap changes the tuned rate: find the p1 whose LLR ratio is exactly the cap.
        lo, hi = p1, 1.0 - 1e-9
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if math.log(mid / p0) / -math.log((1.0 - mid) / (1.0 - p0)) > _LATTICE_MAX_UP:
                lo = mid
            else:
                hi = mid
        p1 = hi
    llr_unit = -math.log((1.0 - p1) / (1.0 - p0)) / down
    rates = np.array(beta_quantiles(*warmup, _POSTERIOR_NODES) if warmup is not None else [p0])

    def run_length(threshold: int) -> float:
        return float(1.0 / np.mean(1.0 / lattice_arls(rates, up, down, threshold)))

    lo_t, hi_t = up, up * 2
    while run_length(hi_t) < arl:
        lo_t, hi_t = hi_t, hi_t * 2
        if hi_t > _MAX_LATTICE_STATES:
            raise ValueError(f"rate CUSUM for p0={p0:g} needs more than {_MAX_LATTICE_STATES} states for ARL {arl:g}")
    while hi_t - lo_t > 1:
        mid = (lo_t + hi_t) // 2
        if run_length(mid) < arl:
            lo_t = mid
        else:
            hi_t = mid
    return RateDesign(p0, p1, up, down, hi_t, run_length(hi_t), llr_unit)


_POSTERIOR_NODES = tuple((i + 0.5) / 8 for i in range(8))


def beta_quantiles(hits: int, n: int, qs: tuple[float, ...]) -> list[float]:
    """Quantiles of the Jeffreys posterior Beta(hits+½, n-hits+½) of a rate seen ``hits`` times in ``n``.

    With 500 warm-up calls a 1 % rate shows anywhere from 1 to 9 events: the spread matters for the
    false-alarm rate of a detector tuned to the estimate.
    """
    alpha, beta = hits + 0.5, n - hits + 0.5
    grid = np.geomspace(1e-7, 1.0 - 1e-7, 40001)
    log_pdf = (alpha - 1) * np.log(grid) + (beta - 1) * np.log1p(-grid)
    mass = np.exp(log_pdf - log_pdf.max()) * np.gradient(grid)
    cdf = np.cumsum(mass)
    cdf /= cdf[-1]
    return [float(grid[min(int(np.searchsorted(cdf, q)), len(grid) - 1)]) for q in qs]


def beta_upper_quantile(hits: int, n: int, q: float = 0.75) -> float:
    """Upper ``q`` quantile of the Jeffreys posterior (see `beta_quantiles`)."""
    return beta_quantiles(hits, n, (q,))[0]


# --- monitors -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DetectorEvent:
    """What a monitor reports: an alert (a change) or a recovery (back to the baseline)."""

    kind: EventKind
    direction: Direction
    before: float
    """Baseline value (mean, or rate) estimated in the warm-up."""
    after: float
    """Value over the calls since the estimated change (for a recovery: since the estimated return)."""
    change_time_ns: int
    """End time of the first call after the estimated change point."""
    change_trace_id: int
    calls_since_change: int
    """Calls from the estimated change point to the detection, both included (the detection delay)."""
    statistic: float
    threshold: float


class _Excursion:
    """One-sided CUSUM plus the bookkeeping that turns an alarm into a change-point estimate."""

    __slots__ = ("n", "s", "start_ns", "start_trace", "total")

    def __init__(self) -> None:
        self.s = 0.0
        self.n = 0
        self.total = 0.0
        self.start_ns = 0
        self.start_trace = 0

    def step(self, increment: float, raw: float, time_ns: int, trace_id: int) -> float:
        s = self.s + increment
        if s <= 0.0:
            self.s = 0.0
            self.n = 0
            return 0.0
        if self.s == 0.0:
            self.n, self.total, self.start_ns, self.start_trace = 0, 0.0, time_ns, trace_id
        self.s = s
        self.n += 1
        self.total += raw
        return s

    def reset(self) -> None:
        self.s, self.n, self.total = 0.0, 0, 0.0

    def event(self, kind: EventKind, direction: Direction, before: float, threshold: float) -> DetectorEvent:
        return DetectorEvent(
            kind, direction, before, self.total / self.n if self.n else before,
            self.start_ns, self.start_trace, self.n, self.s, threshold,
        )


class MeanMonitor:
    """Two-sided CUSUM on ``transform(value)`` standardized by the warm-up mean and deviation."""

    __slots__ = (
        "_alert", "_down", "_m2", "_mean", "_n", "_raw_sum", "_recovery", "_sd", "_up",
        "baseline", "clip", "ert", "k", "min_sd", "threshold", "transform", "warmup",
    )

    def __init__(
        self,
        *,
        warmup: int,
        ert: float,
        k: float = 0.5,
        transform: Callable[[float], float] = math.log1p,
        min_sd: float = 0.05,
        clip: float = 3.0,
    ) -> None:
        """``k``: half the shift (in standard deviations) the detector is tuned to; ``min_sd`` floors the
        deviation so a near-constant baseline (e.g. one-word answers) does not alarm on jitter; ``clip``
        bounds each standardized value (a robust CUSUM): two one-line refusals among long answers are
        6-sd outliers that would otherwise alarm on their own, while a real shift moves every call.
        Clipping only thins the tails, so the calibrated false-alarm rate stays an upper bound."""
        self.warmup, self.ert, self.k, self.transform, self.min_sd = max(2, warmup), ert, k, transform, min_sd
        self.clip = clip
        self.threshold = gaussian_cusum_threshold(k, 2.0 * ert, self.warmup)
        self._n = 0
        self._mean = self._m2 = self._raw_sum = 0.0
        self._sd = 1.0
        self.baseline: float | None = None
        self._up, self._down, self._recovery = _Excursion(), _Excursion(), _Excursion()
        self._alert: Direction | None = None

    @property
    def warming_up(self) -> bool:
        return self.baseline is None

    @property
    def alerting(self) -> Direction | None:
        return self._alert

    def update(self, value: float, time_ns: int, trace_id: int) -> DetectorEvent | None:
        x = self.transform(value)
        if self.baseline is None:
            self._n += 1
            delta = x - self._mean
            self._mean += delta / self._n
            self._m2 += delta * (x - self._mean)
            self._raw_sum += value
            if self._n >= self.warmup:
                self._sd = max(math.sqrt(self._m2 / (self._n - 1)), self.min_sd)
                self.baseline = self._raw_sum / self._n
            return None
        z = min(max((x - self._mean) / self._sd, -self.clip), self.clip)
        if self._alert is None:
            k, h = self.k, self.threshold
            if self._up.step(z - k, value, time_ns, trace_id) > h:
                return self._raise("up")
            if self._down.step(-z - k, value, time_ns, trace_id) > h:
                return self._raise("down")
            return None
        step = self.k - z if self._alert == "up" else z + self.k
        if self._recovery.step(step, value, time_ns, trace_id) > self.threshold:
            event = self._recovery.event("recovered", self._alert, self.baseline, self.threshold)
            self._alert = None
            self._up.reset(), self._down.reset(), self._recovery.reset()
            return event
        return None

    def _raise(self, direction: Direction) -> DetectorEvent:
        side = self._up if direction == "up" else self._down
        assert self.baseline is not None
        event = side.event("alert", direction, self.baseline, self.threshold)
        self._alert = direction
        self._up.reset(), self._down.reset(), self._recovery.reset()
        return event


class RateMonitor:
    """One-sided Bernoulli CUSUM for a rate whose rise is the change worth an alert."""

    __slots__ = (
        "_alert", "_hits", "_n", "_recovery", "_side", "baseline", "design",
        "ert", "label", "max_rate", "odds_ratio", "warmup",
    )

    def __init__(self, *, warmup: int, ert: float, odds_ratio: float = 3.0, max_rate: float = 0.5) -> None:
        """``max_rate``: a baseline rate above this is not watched (a rise would not mean much)."""
        self.warmup, self.ert, self.odds_ratio, self.max_rate = max(1, warmup), ert, odds_ratio, max_rate
        self._n = self._hits = 0
        self.baseline: float | None = None
        self.design: RateDesign | None = None
        self._side, self._recovery = _Excursion(), _Excursion()
        self._alert = False
        self.label: str | None = None
        """What a hit means, when the caller learned it during the warm-up (e.g. the baseline language)."""

    @property
    def warming_up(self) -> bool:
        return self.baseline is None

    def start_from(self, hits: int, n: int, label: str | None = None) -> None:
        """End the warm-up with counts the caller gathered itself (when a hit is only defined at its end)."""
        self._n, self._hits, self.label = n, hits, label
        self._end_warmup()

    def _end_warmup(self) -> None:
        self.baseline = self._hits / self._n
        p0 = (self._hits + 0.5) / (self._n + 1.0)  # Jeffreys posterior mean; the threshold covers its spread
        if beta_upper_quantile(self._hits, self._n, 0.5) <= self.max_rate:
            self.design = rate_cusum_design(round(p0, 6), self.odds_ratio, self.ert, (self._hits, self._n))

    @property
    def watching(self) -> bool:
        """False while warming up, and for good when the baseline rate was above ``max_rate``."""
        return self.design is not None

    @property
    def alerting(self) -> Direction | None:
        return "up" if self._alert else None

    def update(self, hit: bool, time_ns: int, trace_id: int) -> DetectorEvent | None:
        if self.baseline is None:
            self._n += 1
            self._hits += hit
            if self._n >= self.warmup:
                self._end_warmup()
            return None
        design = self.design
        if design is None:
            return None
        raw = 1.0 if hit else 0.0
        if not self._alert:
            if self._side.step(design.up if hit else -design.down, raw, time_ns, trace_id) >= design.threshold:
                event = self._side.event("alert", "up", self.baseline, float(design.threshold))
                self._alert = True
                self._side.reset(), self._recovery.reset()
                return event
            return None
        step = -design.up if hit else design.down
        if self._recovery.step(step, raw, time_ns, trace_id) >= design.threshold:
            event = self._recovery.event("recovered", "up", self.baseline, float(design.threshold))
            self._alert = False
            self._side.reset(), self._recovery.reset()
            return event
        return None
