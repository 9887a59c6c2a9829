"""Online MMD drift detection with thresholds calibrated to an expected run time (ERT) between false alarms.

The method of Cobb, Van Looveren & Klaise, "Sequential multivariate change detection with calibrated
and memoryless false detection rates" (AISTATS 2022), as alibi-detect's ``MMDDriftOnline`` implements
it; this is our own numpy implementation of it.

Why not a fixed threshold or a batch test per point: testing after every output with a fixed level alpha
gives a false alarm every ~1/alpha outputs *per test*, and overlapping windows make the tests dependent,
so nobody can say how often a stationary stream alarms. Here the user sets the ERT (e.g. "one false
alarm per 2,000 outputs per feature/model"), and thresholds are chosen so that at every step the
probability of a first false alarm, given none so far, is 1/ERT: the run length to a false alarm is
then (close to) geometric with mean ERT.

Calibration (once per baseline, by simulation on the reference set only): the reference of N points is
split B times at random into a sub-reference of N - (2W - 1) points and an "extended test window" of
2W - 1 points whose W overlapping windows mimic the first W steps of a live stream. For step w the
threshold is the (1 - 1/ERT) quantile of the MMD²s of the simulated streams that have not alarmed
before w; streams at or above it are dropped. Past step W the window holds only new points and the last
threshold applies. Cost: one B x (2W - 1)² gather — the sub-reference sums come from row sums of the
full reference kernel, never from an N² sub-matrix per simulation.

Live state: the sub-reference X (M = N - 2W + 1 points, the same size the thresholds were simulated
for), and a ring of the W latest points Y with their kernel rows against X and against each other.
Each new point costs one kernel row against X (M·d) and one against Y (W·d); the MMD² sums are
updated incrementally (and recomputed from the stored rows every W steps so rounding cannot build up).
The window starts filled with W held-out reference points, as in the simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llm_telemetry.processors.quality.mmd import median_bandwidth, rbf_kernel

_GATHER_BUDGET = 4_000_000
"""Kernel entries gathered per calibration chunk (bounds the chunk's memory to ~50 MB)."""
_MAX_SPLIT_TRIES = 100


def default_bootstraps(ert: float) -> int:
    """Simulated streams for an ERT: ~10·ERT so the 1 - 1/ERT quantile is estimated from ≥ 10 exceedances,
    clamped to [1,000, 25,000] to bound calibration time."""
    return int(min(max(10 * math.ceil(ert), 1000), 25_000))


def simulated_window_mmds(kernel: np.ndarray, col_sums: np.ndarray, ext: np.ndarray, w: int) -> np.ndarray:
    """MMD² of the W sliding windows of each simulated stream (b x W).

    ``kernel``: the reference kernel with a zero diagonal; ``col_sums``: its column sums (float64);
    ``ext``: b x (2W - 1) reference indices, one extended test window per stream; the sub-reference of a
    stream is every other reference point.
    """
    n, etw = len(kernel), ext.shape[1]
    m = n - etw
    total = float(col_sums.sum())
    k_yy = kernel.ravel().take(ext[:, :, None] * n + ext[:, None, :])  # b x etw x etw, zero diagonal
    # The sub-reference's sums follow from the full kernel's column sums: no N² gather per stream.
    k_xy_cols = col_sums[ext] - k_yy.sum(axis=1, dtype=np.float64)  # b x etw: sum over x of k(x, y_j)
    s_xx = total - k_yy.sum(axis=(1, 2), dtype=np.float64) - 2.0 * k_xy_cols.sum(axis=1)
    # Window sums slide: the leaving point w and the entering point w + W each pair with the points that stay
    # (columns j with w < j < w + W).
    j = np.arange(etw)
    stay = ((j[None, :] > j[:w - 1, None]) & (j[None, :] < j[:w - 1, None] + w)).astype(np.float32)
    s_yy = np.empty((len(ext), w))
    s_yy[:, 0] = k_yy[:, :w, :w].sum(axis=(1, 2), dtype=np.float64)
    step = ((k_yy[:, w:, :] - k_yy[:, :w - 1, :]) * stay).sum(axis=2, dtype=np.float64)
    s_yy[:, 1:] = s_yy[:, :1] + 2.0 * step.cumsum(axis=1)
    col_prefix = np.zeros((len(ext), etw + 1))
    col_prefix[:, 1:] = k_xy_cols.cumsum(axis=1)
    s_xy = col_prefix[:, w:w + w] - col_prefix[:, :w]
    return s_xx[:, None] / (m * (m - 1)) + s_yy / (w * (w - 1)) - 2.0 * s_xy / (m * w)


_SCORE_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class OnlineStep:
    """One update: the window's MMD² against the sub-reference and the threshold it is compared with."""

    t: int
    """Points observed since the detector started (1 for the first)."""
    score: float
    threshold: float

    @property
    def drift(self) -> bool:
        # MMD² of an RBF kernel lies in [0, 2]; the live score is summed incrementally from float32 embeddings
        # and the thresholds by simulation, so identical outputs differ by rounding (~1e-7): a margin far below
        # any real shift (1e-3 and up).
        return self.score > self.threshold + _SCORE_TOLERANCE


class OnlineMMD:
    """ERT-calibrated online MMD² detector over a fixed reference (rows should be L2-normalised).

    Not thread-safe: one owner calls `update`.
    """

    def __init__(
        self, reference: np.ndarray, *, ert: float, window_size: int, n_bootstraps: int | None = None,
        seed: int = 0, sigma: float | None = None,
    ) -> None:
        reference = np.ascontiguousarray(reference, dtype=np.float32)
        if reference.ndim != 2:
            raise ValueError(f"reference must be a 2-D array (points x dims), got shape {reference.shape}")
        if window_size < 2:
            raise ValueError(f"window_size must be ≥ 2, got {window_size}")
        n = len(reference)
        if n < 2 * window_size + 1:
            raise ValueError(
                f"a reference of {n} points is too small for window_size {window_size}: the calibration needs "
                f"at least 2·window + 1 = {2 * window_size + 1} (4·window or more is better)"
            )
        if not ert > 1:
            raise ValueError(f"ert (expected run time between false alarms, in points) must be > 1, got {ert}")
        self.ert = float(ert)
        self.window_size = window_size
        self.n_bootstraps = n_bootstraps if n_bootstraps is not None else default_bootstraps(ert)
        if self.n_bootstraps < 10:
            raise ValueError(f"n_bootstraps must be ≥ 10, got {self.n_bootstraps}")
        self.sigma = float(sigma) if sigma is not None else median_bandwidth(reference, seed=seed)
        self._rng = np.random.default_rng(seed)
        kernel = rbf_kernel(reference, reference, self.sigma)
        np.fill_diagonal(kernel, 0.0)
        self.thresholds, self.min_alive = self._calibrate(kernel)
        self._reference = reference
        self._split(kernel)

    # --- calibration ------------------------------------------------------------------------------

    def _calibrate(self, kernel: np.ndarray) -> tuple[np.ndarray, int]:
        """Thresholds for steps 0..W-1 by simulation on the reference; also the fewest surviving streams."""
        n, w = len(kernel), self.window_size
        etw = 2 * w - 1
        col_sums = kernel.sum(axis=0, dtype=np.float64)
        chunk = max(1, _GATHER_BUDGET // (etw * etw))
        mmds = np.empty((self.n_bootstraps, w), dtype=np.float64)
        for lo in range(0, self.n_bootstraps, chunk):
            b = min(chunk, self.n_bootstraps - lo)
            ext = self._rng.random((b, n)).argpartition(etw - 1, axis=1)[:, :etw]  # random extended windows
            mmds[lo:lo + b] = simulated_window_mmds(kernel, col_sums, ext, w)
        thresholds = np.empty(w, dtype=np.float64)
        alive = np.ones(self.n_bootstraps, dtype=bool)
        min_alive = self.n_bootstraps
        level = 1.0 - 1.0 / self.ert
        for step in range(w):
            column = mmds[alive, step]
            min_alive = min(min_alive, len(column))
            # No stream left (cannot happen with the tie rule below, kept as a guard): reuse the last threshold.
            thresholds[step] = np.quantile(column, level) if len(column) else thresholds[max(0, step - 1)]
            # A stream survives unless it *exceeds* the threshold (an alarm is `score > threshold`). With ties —
            # a reference of identical outputs, e.g. a feature that always answers "yes" — every stream sits at
            # the quantile: `<` would drop them all and leave nothing to calibrate the next step on.
            alive &= mmds[:, step] <= thresholds[step]
        return thresholds, min_alive

    def _split(self, kernel: np.ndarray) -> None:
        """Pick the live sub-reference and the initial window (held-out reference points) — redrawn if that
        initial window already exceeds the step-0 threshold, as the simulation conditions on it."""
        n, w = len(kernel), self.window_size
        m = n - (2 * w - 1)
        for _ in range(_MAX_SPLIT_TRIES):
            perm = self._rng.permutation(n)
            ref_idx, init_idx = np.sort(perm[:m]), perm[-w:]
            sub = kernel[np.ix_(ref_idx, ref_idx)]
            self._s_xx = float(sub.sum(dtype=np.float64)) / (m * (m - 1))
            self._x = self._reference[ref_idx]
            self._y = self._reference[init_idx].copy()
            self._k_yy = kernel[np.ix_(init_idx, init_idx)].astype(np.float64)
            self._k_xy = kernel[np.ix_(ref_idx, init_idx)].sum(axis=0, dtype=np.float64)
            self._resum()
            if self._score() < self.thresholds[0]:
                break
        self._initial = (self._y.copy(), self._k_yy.copy(), self._k_xy.copy())
        self.t = 0
        self._pos = 0
        self._observed = 0

    def reset(self) -> None:
        """Back to the start of a stream (t = 0, the initial held-out window); thresholds and split are kept."""
        y, k_yy, k_xy = self._initial
        self._y, self._k_yy, self._k_xy = y.copy(), k_yy.copy(), k_xy.copy()
        self._resum()
        self.t = 0
        self._pos = 0
        self._observed = 0

    # --- live updates -----------------------------------------------------------------------------

    @property
    def reference(self) -> np.ndarray:
        """The full reference the detector was calibrated on (N x d, float32)."""
        return self._reference

    @property
    def reference_subset(self) -> np.ndarray:
        """The sub-reference the live statistic compares the window with (N - 2W + 1 points)."""
        return self._x

    def threshold(self, t: int) -> float:
        return float(self.thresholds[min(t, self.window_size - 1)])

    def update(self, point: np.ndarray) -> OnlineStep:
        """Slide one new point into the window; O((M + W)·d)."""
        x = np.asarray(point, dtype=np.float32).reshape(1, -1)
        j = self._pos
        row_x = rbf_kernel(self._x, x, self.sigma)[:, 0]
        row_y = rbf_kernel(self._y, x, self.sigma)[:, 0].astype(np.float64)
        row_y[j] = 0.0
        new_xy = float(row_x.sum(dtype=np.float64))
        self._sum_xy += new_xy - self._k_xy[j]
        self._sum_yy += 2.0 * (row_y.sum() - self._k_yy[j].sum())
        self._k_xy[j] = new_xy
        self._k_yy[j, :] = row_y
        self._k_yy[:, j] = row_y
        self._y[j] = x[0]
        self._pos = (j + 1) % self.window_size
        self._observed = min(self._observed + 1, self.window_size)
        self.t += 1
        if self.t % self.window_size == 0:
            self._resum()
        return OnlineStep(self.t, self._score(), self.threshold(self.t))

    def witness(self) -> np.ndarray:
        """Per window slot: mean kernel to the window minus mean kernel to the reference (oldest slot first).

        The MMD witness function evaluated at the window's points: high where the window is denser than
        the reference — the outputs that carry the shift.
        """
        w, m = self.window_size, len(self._x)
        values = self._k_yy.sum(axis=1) / (w - 1) - self._k_xy / m
        return np.roll(values, -self._pos)

    @property
    def observed_in_window(self) -> int:
        """How many window slots hold observed points (the rest still hold held-out reference points)."""
        return self._observed

    @property
    def next_slot(self) -> int:
        """The ring slot the next `update` overwrites (the oldest point's)."""
        return self._pos

    @property
    def slot_order(self) -> np.ndarray:
        """Ring slot indices from oldest to newest."""
        return (np.arange(self.window_size) + self._pos) % self.window_size

    def window_points(self) -> np.ndarray:
        """The observed points currently in the window, oldest first (``observed_in_window`` x d)."""
        order = self.slot_order[self.window_size - self._observed:]
        return self._y[order]

    def _resum(self) -> None:
        self._sum_xy = float(self._k_xy.sum())
        self._sum_yy = float(self._k_yy.sum())

    def _score(self) -> float:
        w, m = self.window_size, len(self._x)
        return self._s_xx + self._sum_yy / (w * (w - 1)) - 2.0 * self._sum_xy / (m * w)
