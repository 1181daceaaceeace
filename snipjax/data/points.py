"""Input points: a mixture of 1-9 Gaussian or uniform clusters with random rotations, standardized.

Follows the official generator: cluster means ~ N(0, I), per-dimension variances ~ U(0, 1), one rotation
from SO(D) per cluster (identity in 1-D), mixture weights ~ U(0, 1) normalized, multinomial cluster sizes;
a Gaussian cluster is N(mean, diag(var)) rotated, a uniform one is mean + U(-1, 1) * sqrt(var) rotated; then
every input dimension is standardized over the points. Points stay grouped by cluster, as in the official
code. Outputs with |y| >= 1e103, infinite or NaN reject the whole expression (fewer than N valid points).
"""

from __future__ import annotations

import numpy as np

from snipjax.data.draws import Draws

MAX_ABS_OUTPUT = 1e103  # 10 ** (max_exponent + float_precision): larger values have no float tokens
Y_NORMALIZATION_EPS = 1e-10


def random_rotations(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    """`count` matrices uniform on SO(dim) (Haar measure, via QR with the sign fix)."""
    if dim == 1:
        return np.ones((count, 1, 1))
    q, r = np.linalg.qr(rng.standard_normal((count, dim, dim)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    flip = np.linalg.det(q) < 0
    q[flip, :, 0] *= -1  # a reflection becomes a rotation
    return q


def sample_inputs(draws: Draws, dim: int, n_points: int, max_centroids: int = 10):
    """Standardized inputs [n_points, dim]."""
    rng = draws.rng
    gaussian = draws.uniform() < 0.5
    k = draws.integer(1, max_centroids)
    # Two generator calls per sample (their cost is mostly per call): uniforms for variances, mixture
    # weights, cluster assignment (and uniform noise); normals for means (and Gaussian noise).
    uniforms = rng.random(k * dim + k + n_points + (0 if gaussian else n_points * dim))
    normals = rng.standard_normal(k * dim + (n_points * dim if gaussian else 0))
    stds = np.sqrt(uniforms[: k * dim]).reshape(k, dim)
    cumulative = np.cumsum(uniforms[k * dim: k * dim + k])
    # Sorted categorical draws: cluster sizes are multinomial and points come grouped by cluster.
    cluster = np.sort(np.searchsorted(cumulative, uniforms[k * dim + k: k * dim + k + n_points] * cumulative[-1]))
    means = normals[: k * dim].reshape(k, dim)
    if gaussian:
        noise = normals[k * dim:].reshape(n_points, dim)
    else:
        noise = 2.0 * uniforms[k * dim + k + n_points:].reshape(n_points, dim) - 1.0
    x = means[cluster] + stds[cluster] * noise
    if dim > 1:
        # Every point through every cluster's rotation ([k, N, dim], cheap), then its own cluster's row.
        x = np.matmul(x, random_rotations(rng, k, dim))[cluster, np.arange(n_points)]
    return standardize_inputs(x)


def standardize_inputs(x: np.ndarray) -> np.ndarray:
    """Each input dimension to zero mean and unit standard deviation over the points (axis -2)."""
    # ufunc reductions: `.mean` costs more in Python overhead than in arithmetic on 200 points.
    n = x.shape[-2]
    centered = x - np.add.reduce(x, axis=-2, keepdims=True) / n
    std = np.sqrt(np.add.reduce(centered * centered, axis=-2, keepdims=True) / n)
    return centered / np.where(std > 0, std, 1.0)


def valid_outputs(y: np.ndarray) -> bool:
    """Every output finite and below the float-token range (the official rejection with max_trials=1)."""
    return bool(np.abs(y).max() < MAX_ABS_OUTPUT)  # a NaN maximum compares False


def normalize_outputs(y: np.ndarray) -> np.ndarray:
    """Min-max y to [0, 1], as the 1-D model is trained."""
    low = y.min()
    return (y - low) / (y.max() - low + Y_NORMALIZATION_EPS)
