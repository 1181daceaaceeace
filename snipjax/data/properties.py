"""Properties of samples: the numeric properties of 1-D functions (official definitions, computed on the
sampled points) and properties of the expression itself.

Points are sorted by x first. NCR (non-convexity ratio): over 1000 random index triplets i<j<k, the share
where y_j lies above the chord from (x_i, y_i) to (x_k, y_k) (by more than 1e-9). Upwardness: (rises - falls)
/ N over consecutive points, a step counting when it exceeds 1e-3. Yavg: the mean of min-max normalized y.
Oscillation: log(1 + number of direction changes), with the same 1e-3 threshold. The official NCR draws its
triplets from the unseeded global numpy stream; here they come from the sample's own generator, so labels
are reproducible.

Expression properties (what the numeric encoder can be asked about its formula): the number of operators, the
depth of the tree, whether a periodic (sin, cos, tan), exponential (exp) or logarithmic (log) operator occurs,
and the input dimension.
"""

from __future__ import annotations

import numpy as np

from snipjax.data.expressions import Expression
from snipjax.data.vocab import OPERATOR_ARITY

PROPERTY_NAMES = ("ncr", "upwardness", "yavg", "oscillation")
EXPRESSION_PROPERTY_NAMES = ("n_ops", "depth", "periodic", "exponential", "logarithmic", "dim")
OPERATOR_FAMILIES = {"periodic": ("sin", "cos", "tan"), "exponential": ("exp",), "logarithmic": ("log",)}
NCR_TRIPLETS = 1000
STEP_EPS = 1e-3
CHORD_EPS = 1e-9
YAVG_EPS = 1e-12


def random_triplets(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
    """`count` sorted triplets of distinct indices below n, each uniform over the n-choose-3 subsets."""
    triplets = rng.integers(0, n, size=(count, 3))
    while True:
        repeated = (triplets[:, 0] == triplets[:, 1]) | (triplets[:, 0] == triplets[:, 2]) | (
            triplets[:, 1] == triplets[:, 2])
        if not repeated.any():
            return np.sort(triplets, axis=1)
        triplets[repeated] = rng.integers(0, n, size=(int(repeated.sum()), 3))


def non_convexity_ratio(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
    i, j, k = random_triplets(rng, len(x), NCR_TRIPLETS).T
    with np.errstate(divide="ignore", invalid="ignore"):
        chord = ((x[j] - x[i]) * y[k] + (x[k] - x[j]) * y[i]) / (x[k] - x[i])
    convex = y[j] <= chord + CHORD_EPS  # a NaN chord (tied x) counts as not convex
    return 1.0 - convex.mean()


def _directions(y: np.ndarray) -> np.ndarray:
    step = np.diff(y)
    return (step > STEP_EPS).astype(np.int8) - (step < -STEP_EPS).astype(np.int8)


def upwardness(y: np.ndarray) -> float:
    return float(_directions(y).sum() / len(y))


def mean_normalized(y: np.ndarray) -> float:
    return float(np.mean((y - y.min()) / (y.max() - y.min() + YAVG_EPS)))


def oscillation(y: np.ndarray) -> float:
    """log(1 + direction changes); the walk starts 'up' only if the first step rises."""
    directions = _directions(y)
    start = 1 if directions[0] > 0 else -1
    moves = directions[1:][directions[1:] != 0]
    walk = np.concatenate([[start], moves])
    return float(np.log1p(np.count_nonzero(walk[1:] != walk[:-1])))


def properties(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    """All four properties of a 1-D sample (x [N, 1] or [N], y [N])."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if len(x) < 3:
        raise ValueError(f"properties need at least 3 points (NCR compares triplets), got {len(x)}")
    order = np.argsort(x, kind="stable")
    x, y = x[order], np.asarray(y, dtype=np.float64)[order]
    return {
        "ncr": float(non_convexity_ratio(x, y, rng)),
        "upwardness": upwardness(y),
        "yavg": mean_normalized(y),
        "oscillation": oscillation(y),
    }


def tree_depth(prefix) -> int:
    """Nodes on the longest root-to-leaf path of a prefix sequence (a single leaf has depth 1)."""
    deepest, open_slots = 0, []  # open_slots: for each unfinished operator, its depth and operands still due
    for token in prefix:
        depth = open_slots[-1][0] + 1 if open_slots else 1
        deepest = max(deepest, depth)
        if open_slots:
            open_slots[-1][1] -= 1
        arity = OPERATOR_ARITY.get(token, 0) if isinstance(token, str) else 0
        if arity:
            open_slots.append([depth, arity])
        while open_slots and open_slots[-1][1] == 0:
            open_slots.pop()
    return deepest


def expression_properties(expression: Expression) -> dict[str, float]:
    """Operator count, tree depth, operator-family indicators (0/1) and input dimension of an expression."""
    operators = [t for t in expression.prefix if isinstance(t, str) and t in OPERATOR_ARITY]
    props = {"n_ops": float(len(operators)), "depth": float(tree_depth(expression.prefix)),
             "dim": float(expression.input_dim)}
    for family, names in OPERATOR_FAMILIES.items():
        props[family] = float(any(op in names for op in operators))
    return props
