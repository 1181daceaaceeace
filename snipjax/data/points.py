"""Input points: a mixture of 1-9 Gaussian or uniform clusters with random rotations, standardized.

Follows the official generator: cluster means ~ N(0, I), per-dimension variances ~ U(0, 1), one rotation
from SO(D) per cluster (identity in 1-D), mixture weights ~ U(0, 1) normalized, multinomial cluster sizes;
a Gaussian cluster is N(mean, diag(var)) rotated, a uniform one is mean + U(-1, 1) * sqrt(var) rotated; then
every input dimension is standardized over the points. Points stay grouped by cluster, as in the official
code. Outputs with |y| >= 1e103, infinite or NaN reject the whole expression (fewer than N valid points).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from snipjax.data.draws import Draws

MAX_ABS_OUTPUT = 1e103  # 10 ** (max_exponent + float_precision): larger values have no float tokens
Y_NORMALIZATION_EPS = 1e-10


@dataclasses.dataclass(frozen=True)
class InputDraws:
    """The random numbers behind one sample's input points, drawn in the official order."""

    gaussian: bool
    clusters: int
    uniforms: np.ndarray  # variances, mixture weights, cluster picks (and uniform noise)
    normals: np.ndarray  # means (and Gaussian noise)
    rotation_normals: np.ndarray | None  # [clusters, D, D], D > 1


def draw_inputs(draws: Draws, dim: int, n_points: int, max_centroids: int = 10) -> InputDraws:
    rng = draws.rng
    gaussian = draws.uniform() < 0.5
    k = draws.integer(1, max_centroids)
    # Two generator calls per sample (their cost is mostly per call): uniforms for variances, mixture
    # weights, cluster assignment (and uniform noise); normals for means (and Gaussian noise).
    uniforms = rng.random(k * dim + k + n_points + (0 if gaussian else n_points * dim))
    normals = rng.standard_normal(k * dim + (n_points * dim if gaussian else 0))
    rotation_normals = rng.standard_normal((k, dim, dim)) if dim > 1 else None
    return InputDraws(gaussian, k, uniforms, normals, rotation_normals)


def rotations_from_normals(normals: np.ndarray) -> np.ndarray:
    """Matrices uniform on SO(D) (Haar measure) from [count, D, D] standard normals: QR with the sign fix."""
    q, r = np.linalg.qr(normals)
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    flip = np.linalg.det(q) < 0
    q[flip, :, 0] *= -1  # a reflection becomes a rotation
    return q


def inputs_from_draws(samples: Sequence[InputDraws], dim: int, n_points: int) -> np.ndarray:
    """Standardized inputs [G, n_points, dim] of G samples of one input dimension.

    Each sample's points are exactly those it would get alone; computing them together spends one numpy call
    per step for the whole group instead of one per sample (the per-call cost dominates at 200 points).
    """
    g, k_max = len(samples), max(sample.clusters for sample in samples)
    cumulative = np.full((g, k_max), np.inf)  # mixture weights, summed; padding is never below a pick
    picks = np.empty((g, n_points))
    variances = np.zeros((g, k_max, dim))
    means = np.zeros((g, k_max, dim))
    noise = np.empty((g, n_points, dim))
    for row, sample in enumerate(samples):
        k, u = sample.clusters, sample.uniforms
        weights = np.cumsum(u[k * dim: k * dim + k])
        cumulative[row, :k] = weights
        picks[row] = u[k * dim + k: k * dim + k + n_points] * weights[-1]
        variances[row, :k] = u[: k * dim].reshape(k, dim)
        means[row, :k] = sample.normals[: k * dim].reshape(k, dim)
        if sample.gaussian:
            noise[row] = sample.normals[k * dim:].reshape(n_points, dim)
        else:
            noise[row] = 2.0 * u[k * dim + k + n_points:].reshape(n_points, dim) - 1.0
    # A categorical draw is the number of cumulative weights below the pick (searchsorted); sorted, the
    # cluster sizes are multinomial and points come grouped by cluster.
    cluster = np.sort((cumulative[:, None, :] < picks[:, :, None]).sum(axis=-1), axis=1)
    rows = np.arange(g)[:, None]
    x = means[rows, cluster] + np.sqrt(variances)[rows, cluster] * noise
    if dim > 1:
        rotations = np.zeros((g, k_max, dim, dim))
        counts = [sample.clusters for sample in samples]
        rotations[np.repeat(np.arange(g), counts), np.concatenate([np.arange(k) for k in counts])] = \
            rotations_from_normals(np.concatenate([sample.rotation_normals for sample in samples]))
        # Every point through every cluster's rotation ([G, k, N, dim], cheap), then its own cluster's.
        x = np.matmul(x[:, None], rotations)[rows, cluster, np.arange(n_points)]
    return standardize_inputs(x)


def sample_inputs(draws: Draws, dim: int, n_points: int, max_centroids: int = 10) -> np.ndarray:
    """Standardized inputs [n_points, dim] of one sample."""
    return inputs_from_draws([draw_inputs(draws, dim, n_points, max_centroids)], dim, n_points)[0]


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
