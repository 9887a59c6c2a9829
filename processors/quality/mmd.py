"""Maximum mean discrepancy (MMD²) with an RBF kernel, and its permutation test — vectorised numpy.

MMD² between a reference sample X and a test sample Y is the squared distance between their mean
embeddings in the kernel's feature space: zero when both come from the same distribution, larger the
more they differ. It replaces the source's "cosine distance of centroids > 0.1" with a statistic whose
null distribution we can simulate, so the decision has a known false-alarm rate instead of a guessed
threshold.

Kernel: ``k(x, y) = exp(-‖x - y‖² / (2sigma²))``. Bandwidth sigma: the median heuristic — the median pairwise
distance of the sample the kernel is fitted on (zero distances, i.e. duplicate outputs, are ignored:
template-heavy traffic repeats outputs, and a zero median would make every new output look infinitely
far). Rows of our embeddings are L2-normalised, so ``‖x - y‖² = 2 - 2·x·y`` and every kernel matrix is
one matrix product.

Batch test (`permutation_test`): the p-value of the observed MMD² among MMD²s of random re-splits of
the pooled sample. The bandwidth is fitted on the pooled sample, which every re-split shares, so the
test stays exact. Each re-split's statistic is a quadratic form ``aᵀKa`` of its membership vector ``a``;
all of them come out of one ``K @ A`` product instead of one sub-matrix gather per permutation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MEDIAN_SUBSAMPLE = 1000
"""The median heuristic looks at most at this many points (a seeded subsample): O(n²) past it buys nothing."""


def squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances (len(x) x len(y)), clipped at 0 against rounding."""
    xx = np.einsum("ij,ij->i", x, x)
    yy = np.einsum("ij,ij->i", y, y)
    d2 = xx[:, None] + yy[None, :] - 2.0 * (x @ y.T)
    np.maximum(d2, 0.0, out=d2)
    return d2


def median_bandwidth(x: np.ndarray, *, seed: int = 0) -> float:
    """sigma by the median heuristic: median non-zero pairwise distance of ``x`` (1.0 if all points coincide)."""
    if len(x) > _MEDIAN_SUBSAMPLE:
        x = x[np.random.default_rng(seed).choice(len(x), _MEDIAN_SUBSAMPLE, replace=False)]
    d2 = squared_distances(x, x)[np.triu_indices(len(x), k=1)]
    d2 = d2[d2 > 1e-12]
    if d2.size == 0:
        return 1.0
    return float(np.sqrt(np.median(d2)))


def rbf_kernel(x: np.ndarray, y: np.ndarray, sigma: float) -> np.ndarray:
    """``exp(-‖x - y‖² / (2sigma²))`` for every pair (len(x) x len(y)), in the inputs' float type."""
    d2 = squared_distances(x, y)
    d2 *= -0.5 / (sigma * sigma)
    return np.exp(d2, out=d2)


def mmd2_from_kernels(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Unbiased MMD² from the three kernel blocks (diagonals of k_xx and k_yy excluded)."""
    n, m = len(k_xx), len(k_yy)
    sxx = float(k_xx.sum(dtype=np.float64) - np.trace(k_xx, dtype=np.float64))
    syy = float(k_yy.sum(dtype=np.float64) - np.trace(k_yy, dtype=np.float64))
    sxy = float(k_xy.sum(dtype=np.float64))
    return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m)


def mmd2(x: np.ndarray, y: np.ndarray, sigma: float | None = None) -> float:
    """Unbiased MMD² between samples ``x`` and ``y`` (sigma from the pooled sample when not given)."""
    _check_samples(x, y)
    if sigma is None:
        sigma = median_bandwidth(np.concatenate([x, y]))
    return mmd2_from_kernels(rbf_kernel(x, x, sigma), rbf_kernel(y, y, sigma), rbf_kernel(x, y, sigma))


@dataclass(frozen=True, slots=True)
class PermutationTestResult:
    """A batch drift check: the statistic, its calibrated p-value, and what it was computed on."""

    mmd2: float
    p_value: float
    """``(1 + #{re-splits with MMD² ≥ observed}) / (1 + n_permutations)``: never 0, exact under no drift."""
    sigma: float
    n_permutations: int
    n_reference: int
    n_test: int


def permutation_test(
    x: np.ndarray, y: np.ndarray, *, n_permutations: int = 500, seed: int = 0, sigma: float | None = None,
) -> PermutationTestResult:
    """MMD² of ``x`` (reference) vs ``y`` (test window) and its permutation p-value.

    Cost: one (n+m)² kernel and one (n+m)² x n_permutations matrix product (float32 BLAS).
    """
    _check_samples(x, y)
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be ≥ 1, got {n_permutations}")
    n, m = len(x), len(y)
    z = np.concatenate([x, y]).astype(np.float32, copy=False)
    if sigma is None:
        sigma = median_bandwidth(z, seed=seed)
    k = rbf_kernel(z, z, sigma)
    diag = np.diagonal(k).astype(np.float64)
    row_sums = k.sum(axis=1, dtype=np.float64)
    total = float(row_sums.sum())
    # Column 0 is the observed split; the others are re-splits (random n-subsets of the pooled sample).
    rng = np.random.default_rng(seed)
    members = np.zeros((n + m, n_permutations + 1), dtype=np.float32)
    members[:n, 0] = 1.0
    chosen = rng.random((n_permutations, n + m)).argpartition(n - 1, axis=1)[:, :n]
    members[chosen, np.arange(1, n_permutations + 1)[:, None]] = 1.0
    quad = np.einsum("ij,ij->j", members, k @ members, dtype=np.float64)  # aᵀKa: sum over pairs inside the subset
    in_x = members.T.astype(np.float64) @ row_sums  # aᵀK1
    diag_x = members.T.astype(np.float64) @ diag
    sxx = quad - diag_x
    sxy = in_x - quad
    syy = total - 2.0 * in_x + quad - (diag.sum() - diag_x)
    stats = sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m)
    observed = float(stats[0])
    exceed = int(np.count_nonzero(stats[1:] >= observed - 1e-12))
    return PermutationTestResult(
        mmd2=observed, p_value=(1 + exceed) / (1 + n_permutations), sigma=float(sigma),
        n_permutations=n_permutations, n_reference=n, n_test=m,
    )


def _check_samples(x: np.ndarray, y: np.ndarray) -> None:
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"expected two 2-D samples of the same width, got shapes {x.shape} and {y.shape}")
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"MMD² needs at least 2 points on each side, got {len(x)} and {len(y)}")
