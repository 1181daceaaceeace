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


def read_index(path) -> list[Problem]:
    """The problems of a table in the SRBench index layout (`dataset, group, formula, features, ranges`)."""
    problems = []
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            ranges = tuple(tuple(r) for r in json.loads(row["ranges"] or "[]"))
            problems.append(Problem(row["dataset"], row["group"], row["formula"], tuple(row["features"].split()),
                                    ranges))
    return problems


def srbench_feynman(max_features: int | None = None) -> list[Problem]:
    """SRBench's 119 Feynman problems (both groups), optionally those with at most `max_features`."""
    return [p for p in read_index(TABLES / "srbench_groundtruth.csv")
            if p.group in ("feynman", "feynman_bonus") and (max_features is None or len(p.features) <= max_features)]


def classic(prefix: str = "") -> list[Problem]:
    """The classic problems of the DSO table whose names start with `prefix` (e.g. "Nguyen-"), those with
    uniform training ranges (`{"U": [low, high, n]}`); formulas are rewritten in sympy syntax."""
    import sympy

    problems = []
    with open(TABLES / "dso_benchmarks.csv", newline="") as file:
        for row in csv.DictReader(file):
            spec = json.loads(row["train_spec"])
            features = tuple(f"x{i + 1}" for i in range(int(row["variables"])))
            if not row["name"].startswith(prefix) or not all("U" in spec.get(f, spec.get("all", {}))
                                                             for f in features):
                continue
            ranges = tuple(tuple(spec.get(f, spec.get("all"))["U"][:2]) for f in features)
            symbols = {name: sympy.Symbol(name) for name in features}
            formula = sympy.sympify(row["expression"], locals={**symbols, "pow": sympy.Pow,
                                                               "div": lambda a, b: a / b})
            problems.append(Problem(row["name"], row["function_set"], sympy.sstr(formula), features, ranges))
    return problems
