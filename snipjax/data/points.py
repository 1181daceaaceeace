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

    dim: int
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
    # weights, cluster assignment (and uniform noise); normals for means (and Gaussian noise), then the
    # rotations' normals, which follow in the same stream.
    uniforms = rng.random(k * dim + k + n_points + (0 if gaussian else n_points * dim))
    n_normals = k * dim + (n_points * dim if gaussian else 0)
    if dim == 1:
        return InputDraws(dim, gaussian, k, uniforms, rng.standard_normal(n_normals), None)
    normals = rng.standard_normal(n_normals + k * dim * dim)
    return InputDraws(dim, gaussian, k, uniforms, normals[:n_normals], normals[n_normals:].reshape(k, dim, dim))


def rotations_from_normals(normals: np.ndarray) -> np.ndarray:
    """Matrices uniform on SO(D) (Haar measure) from [count, D, D] standard normals: QR with the sign fix."""
    q, r = np.linalg.qr(normals)
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    flip = np.linalg.det(q) < 0
    q[flip, :, 0] *= -1  # a reflection becomes a rotation
    return q


def inputs_from_draws(samples: Sequence[InputDraws], n_points: int) -> list[np.ndarray]:
    """Standardized inputs [n_points, D] of each sample, whatever its D.

    Each sample's points are exactly those it would get alone; computing them together spends one numpy call
    per step for all samples of a dimension instead of one per sample (the per-call cost dominates at 200
    points). Dimensions go apart: their rounding differs (a [G, N, 1] reduction sums pairwise, a wider one
    point after point), and padding all to the widest would double the arithmetic at Dmax 10.
    """
    by_dim: dict[int, list[int]] = {}
    for position, sample in enumerate(samples):
        by_dim.setdefault(sample.dim, []).append(position)
    out: list[np.ndarray] = [None] * len(samples)
    for dim, positions in by_dim.items():
        for position, x in zip(positions, _inputs_of_dim([samples[p] for p in positions], dim, n_points)):
            out[position] = x
    return out


def _inputs_of_dim(samples: Sequence[InputDraws], dim: int, n_points: int) -> np.ndarray:
    """Standardized inputs [G, n_points, dim] of G samples of one input dimension."""
    g = len(samples)
    k = np.array([sample.clusters for sample in samples])
    gaussian = np.array([sample.gaussian for sample in samples])
    k_max, kd = int(k.max()), k * dim
    # The samples' uniforms (variances, weights, picks, uniform noise), then their normals (means, Gaussian
    # noise), in one array; each table below is a block of it per sample.
    pool = np.concatenate([sample.uniforms for sample in samples] + [sample.normals for sample in samples])
    sizes = np.array([sample.uniforms.size for sample in samples] + [sample.normals.size for sample in samples])
    starts = np.cumsum(sizes) - sizes
    uniform_at, normal_at = starts[:g], starts[g:]

    def block(start, width, length=None):
        """[G, width]: pool[start[i]:start[i] + width], zero from length[i] on."""
        index = start[:, None] + np.arange(width)
        if length is None:
            return pool[index]
        inside = np.arange(width) < length[:, None]
        return np.where(inside, pool[np.where(inside, index, 0)], 0.0)

    variances = block(uniform_at, k_max * dim, kd).reshape(g, k_max, dim)
    means = block(normal_at, k_max * dim, kd).reshape(g, k_max, dim)
    cumulative = np.cumsum(block(uniform_at + kd, k_max, k), axis=1)
    total = cumulative[np.arange(g), k - 1]
    cumulative[np.arange(k_max) >= k[:, None]] = np.inf  # padding is never below a pick
    picks = block(uniform_at + kd + k, n_points) * total[:, None]
    noise = block(np.where(gaussian, normal_at + kd, uniform_at + kd + k + n_points), n_points * dim)
    noise = np.where(gaussian[:, None], noise, 2.0 * noise - 1.0).reshape(g, n_points, dim)
    # A categorical draw is the number of cumulative weights below the pick (searchsorted); sorted, the
    # cluster sizes are multinomial and points come grouped by cluster.
    cluster = np.sort(np.add.reduce(cumulative[:, :, None] < picks[:, None, :], axis=1), axis=1)
    of_point = (np.arange(g)[:, None] * k_max + cluster).reshape(-1)
    x = (np.take(means.reshape(-1, dim), of_point, axis=0)
         + np.take(np.sqrt(variances).reshape(-1, dim), of_point, axis=0) * noise.reshape(-1, dim))
    if dim == 1:
        return standardize_inputs(x.reshape(g, n_points, 1))  # sums over the points pairwise
    # Point-major [N, G, D]: the sums over the points run over rows of G * D values, in the same order (point
    # after point) as over each sample's [N, D] alone, but in one long inner loop instead of G * N short ones.
    by_point = standardize_inputs(_rotated(x.reshape(g, n_points, dim), samples, cluster), axis=0)
    return np.ascontiguousarray(by_point.transpose(1, 0, 2))


def _rotated(x: np.ndarray, samples: Sequence[InputDraws], cluster: np.ndarray) -> np.ndarray:
    """Points [G, N, D] of samples of one dimension D, each through its own cluster's rotation, point-major:
    [N, G, D]."""
    g, n_points, dim = x.shape
    counts = [sample.clusters for sample in samples]
    rotations = np.zeros((g, max(counts), dim, dim))
    rotations[np.repeat(np.arange(g), counts), np.concatenate([np.arange(k) for k in counts])] = \
        rotations_from_normals(np.concatenate([sample.rotation_normals for sample in samples]))
    # Every point through every cluster's rotation ([G, k, N, D], cheap), then its own cluster's.
    through_all = np.matmul(x[:, None], rotations).reshape(-1, dim)
    own = (np.arange(g)[:, None] * rotations.shape[1] + cluster) * n_points + np.arange(n_points)
    return np.take(through_all, own.T.reshape(-1), axis=0).reshape(n_points, g, dim)


def sample_inputs(draws: Draws, dim: int, n_points: int, max_centroids: int = 10) -> np.ndarray:
    """Standardized inputs [n_points, dim] of one sample."""
    return inputs_from_draws([draw_inputs(draws, dim, n_points, max_centroids)], n_points)[0]


def standardize_inputs(x: np.ndarray, axis: int = -2) -> np.ndarray:
    """Each input dimension to zero mean and unit standard deviation over the points (`axis`)."""
    # ufunc reductions: `.mean` costs more in Python overhead than in arithmetic on 200 points.
    n = x.shape[axis]
    centered = x - np.add.reduce(x, axis=axis, keepdims=True) / n
    std = np.sqrt(np.add.reduce(centered * centered, axis=axis, keepdims=True) / n)
    return centered / np.where(std > 0, std, 1.0)


def valid_outputs(y: np.ndarray) -> bool:
    """Every output finite and below the float-token range (the official rejection with max_trials=1)."""
    return bool(np.maximum.reduce(np.abs(y)) < MAX_ABS_OUTPUT)  # a NaN maximum compares False


def normalize_outputs(y: np.ndarray) -> np.ndarray:
    """Min-max y to [0, 1], as the 1-D model is trained."""
    low = np.minimum.reduce(y)  # the ufunc itself: `y.min()` costs more in dispatch than in 200 comparisons
    return (y - low) / (np.maximum.reduce(y) - low + Y_NORMALIZATION_EPS)
