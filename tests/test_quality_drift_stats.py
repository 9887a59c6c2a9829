"""MMD² and its calibration: the permutation test and the ERT-calibrated online detector, on seeded data."""

from __future__ import annotations

import numpy as np
import pytest

from llm_telemetry.processors.quality.mmd import (
    median_bandwidth,
    mmd2,
    mmd2_from_kernels,
    permutation_test,
    rbf_kernel,
)
from llm_telemetry.processors.quality.online_mmd import OnlineMMD, simulated_window_mmds


def unit(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    """n points on the unit sphere in d dims (a Gaussian, optionally shifted along the first axis, normalised)."""
    x = rng.normal(size=(n, d))
    x[:, 0] += shift
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_mmd2_is_near_zero_for_one_distribution_and_positive_after_a_shift():
    rng = np.random.default_rng(1)
    same = mmd2(unit(rng, 300, 16), unit(rng, 300, 16))
    shifted = mmd2(unit(rng, 300, 16), unit(rng, 300, 16, shift=1.0))
    assert abs(same) < 0.005
    assert shifted > 0.01


def test_median_bandwidth_ignores_duplicates_and_survives_identical_points():
    rng = np.random.default_rng(2)
    distinct = unit(rng, 50, 8)
    # 80% of the outputs repeat one text: the median of all distances would be 0.
    repeated = np.concatenate([np.repeat(distinct[:1], 200, axis=0), distinct])
    assert median_bandwidth(repeated) > 0.5
    assert median_bandwidth(np.repeat(distinct[:1], 10, axis=0)) == 1.0


def test_permutation_statistic_is_the_unbiased_mmd2_of_the_observed_split():
    rng = np.random.default_rng(3)
    x, y = unit(rng, 40, 8), unit(rng, 30, 8, shift=0.5)
    result = permutation_test(x, y, n_permutations=50, seed=0)
    sigma = result.sigma
    direct = mmd2_from_kernels(rbf_kernel(x, x, sigma), rbf_kernel(y, y, sigma), rbf_kernel(x, y, sigma))
    assert result.mmd2 == pytest.approx(direct, rel=1e-4, abs=1e-6)
    assert (result.n_reference, result.n_test, result.n_permutations) == (40, 30, 50)


def test_permutation_p_values_are_calibrated_under_no_drift_and_small_under_drift():
    level = 0.05
    null = [permutation_test(unit(rng, 60, 16), unit(rng, 40, 16), n_permutations=100, seed=s).p_value
            for s in range(300) for rng in [np.random.default_rng(100 + s)]]
    rejected = np.mean(np.asarray(null) <= level)
    assert 0.015 <= rejected <= 0.09  # 5% ± ~3 standard errors over 300 seeded checks
    shifted = [permutation_test(unit(rng, 60, 16), unit(rng, 40, 16, shift=2.0), n_permutations=200, seed=s).p_value
               for s in range(20) for rng in [np.random.default_rng(900 + s)]]
    assert max(shifted) <= 0.01


def test_simulated_window_sums_match_a_direct_recompute():
    rng = np.random.default_rng(4)
    ref = unit(rng, 40, 6)
    sigma = median_bandwidth(ref)
    kernel = rbf_kernel(ref, ref, sigma)
    np.fill_diagonal(kernel, 0.0)
    w = 5
    ext = np.stack([rng.permutation(40)[: 2 * w - 1] for _ in range(3)])
    fast = simulated_window_mmds(kernel, kernel.sum(axis=0, dtype=np.float64), ext, w)
    full = rbf_kernel(ref, ref, sigma)
    for b, ext_b in enumerate(ext):
        x = np.setdiff1d(np.arange(40), ext_b)
        for step in range(w):
            y = ext_b[step:step + w]
            direct = mmd2_from_kernels(full[np.ix_(x, x)], full[np.ix_(y, y)], full[np.ix_(x, y)])
            assert fast[b, step] == pytest.approx(direct, abs=1e-6)


def test_incremental_updates_match_a_full_recompute():
    rng = np.random.default_rng(5)
    det = OnlineMMD(unit(rng, 120, 8), ert=50, window_size=10, n_bootstraps=200, seed=0)
    stream = unit(rng, 37, 8, shift=0.3)
    for point in stream:
        step = det.update(point)
    x, y = det.reference_subset, stream[-10:]
    k = det.sigma
    direct = mmd2_from_kernels(rbf_kernel(x, x, k), rbf_kernel(y, y, k), rbf_kernel(x, y, k))
    assert step.t == 37
    assert step.score == pytest.approx(direct, abs=1e-6)
    np.testing.assert_allclose(det.window_points(), y)


def test_online_false_alarm_rate_matches_the_ert_setting():
    """Stationary streams: the mean run length to the first (false) alarm is the configured ERT.

    10 references x 20 streams = 200 seeded runs; the run length is ~geometric, so the mean's standard
    error is ~ERT/14 and the band below is about ±3.5 of them.
    """
    ert, window = 50, 10
    lengths: list[int] = []
    for r in range(10):
        rng = np.random.default_rng(1000 + r)
        det = OnlineMMD(unit(rng, 200, 16), ert=ert, window_size=window, seed=r)
        for _ in range(20):
            det.reset()
            for point in unit(rng, 20 * ert, 16):
                step = det.update(point)
                if step.drift:
                    break
            lengths.append(step.t)
    mean = float(np.mean(lengths))
    assert 0.75 * ert <= mean <= 1.3 * ert, f"mean run length {mean:.1f} for ERT {ert}"
    # Memoryless: about 1/e of the runs outlast the ERT (geometric: P(T > ERT) ≈ 0.36).
    assert 0.25 <= np.mean(np.asarray(lengths) > ert) <= 0.47


def test_online_detector_catches_a_shift_within_the_window():
    rng = np.random.default_rng(6)
    det = OnlineMMD(unit(rng, 300, 16), ert=1000, window_size=20, seed=0)
    for point in unit(rng, 100, 16):  # stationary: with ERT 1000, P(false alarm in 100) ≈ 10%; this seed has none
        assert not det.update(point).drift
    delays = []
    for offset, point in enumerate(unit(rng, 100, 16, shift=1.5), start=1):
        if det.update(point).drift:
            delays.append(offset)
            break
    assert delays and delays[0] <= 20


def test_reference_too_small_for_the_window_is_a_clear_error():
    with pytest.raises(ValueError, match=r"reference of 30 points is too small for window_size 20"):
        OnlineMMD(unit(np.random.default_rng(0), 30, 4), ert=100, window_size=20)
    with pytest.raises(ValueError, match="ert"):
        OnlineMMD(unit(np.random.default_rng(0), 100, 4), ert=1, window_size=10)
