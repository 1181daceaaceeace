"""SR benchmark problems from the formula tables of this folder (README.md: sources and licences): each
problem's formula in the generator's prefix form, its features and sampling ranges; points are generated."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np

from snipjax.data.expressions import Expression

TABLES = Path(__file__).parent


@dataclasses.dataclass(frozen=True)
class Problem:
    """A ground-truth problem: `formula` (sympy syntax) over `features`, sampled uniformly in `ranges`."""

    name: str
    group: str
    formula: str
    features: tuple[str, ...]
    ranges: tuple[tuple[float, float], ...]

    def expression(self) -> Expression:
        """The formula over x_0.. (features in order); raises FormulaError where SNIP's operators cannot
        write it (tanh, for one)."""
        from snipjax.data.formulas import parse

        return parse(self.formula, list(self.features))

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(X [n, D], y [n]): X uniform in the ranges, y from the formula."""
        import sympy

        rng = np.random.default_rng(seed)
        low, high = np.array(self.ranges).T
        X = rng.uniform(low, high, size=(n, len(self.features)))
        symbols = sympy.symbols(self.features)
        function = sympy.lambdify(symbols, sympy.sympify(self.formula, locals=dict(zip(self.features, symbols))),
                                  "numpy")
        y = np.broadcast_to(np.asarray(function(*X.T), dtype=np.float64), (n,)).copy()
        return X, y


def srbench_feynman(max_features: int | None = None) -> list[Problem]:
    """SRBench's 119 Feynman problems (both groups), optionally those with at most `max_features`."""
    problems = []
    with open(TABLES / "srbench_groundtruth.csv", newline="") as file:
        for row in csv.DictReader(file):
            if row["group"] not in ("feynman", "feynman_bonus"):
                continue
            features = tuple(row["features"].split())
            if max_features is not None and len(features) > max_features:
                continue
            ranges = tuple(tuple(r) for r in json.loads(row["ranges"]))
            problems.append(Problem(row["dataset"], row["group"], row["formula"], features, ranges))
    return problems
