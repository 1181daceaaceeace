"""The official random expression sampler (E2E / SNIP), drawing from a seeded stream.

For input dimension D: a binary tree with b ~ U{0..D+3} internal nodes (add/sub/mul, div has weight 0) is
sampled uniformly among binary trees (Lample & Charton's empty-node counts); its leaves, in random order,
take x_0..x_{D-1} first, then random variables. A unary operator is inserted above every child subtree of
fewer than 6 nodes, then random unaries are removed until at most u remain. Constants come last: every
non-sum child of a sum is scaled (c * child), every unary gets an affine argument op(a + b * child), the
whole tree is scaled if nothing else changed, and an additive constant is put at the root.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools

import numpy as np

from snipjax.data.draws import Draws
from snipjax.data.expressions import BINARY_OPERATORS, UNARY_OPERATORS, Expression

# The official `--operators_to_downsample` default; unlisted operators weigh 1. `pow` is never sampled.
OFFICIAL_OPERATOR_WEIGHTS = (
    ("div", 0.0), ("arcsin", 0.0), ("arccos", 0.0), ("tan", 0.2), ("arctan", 0.2),
    ("sqrt", 5.0), ("pow2", 3.0), ("inv", 3.0), ("pow", 0.0),
)
_SUMS = ("add", "sub")


@dataclasses.dataclass(frozen=True)
class SamplerSpec:
    """Knobs of the expression sampler, with the official SNIP defaults."""

    max_dim: int = 1
    min_dim: int = 1
    min_binary_ops_per_dim: int = 0
    max_binary_ops_per_dim: int = 1
    max_binary_ops_offset: int = 4
    min_unary_ops: int = 0
    max_unary_ops: int = 4
    max_unary_depth: int = 6
    operator_weights: tuple = OFFICIAL_OPERATOR_WEIGHTS

    def weights(self, operators) -> np.ndarray:
        overrides = dict(self.operator_weights)
        return np.array([overrides.get(op, 1.0) for op in operators])

    def max_binary_ops(self, dim: int) -> int:
        return self.max_binary_ops_offset + self.max_binary_ops_per_dim * dim - 1

    @property
    def max_tree_ops(self) -> int:
        """The largest b the official tree-count table serves. It is sized for 2 * max_binary_ops_per_dim *
        max_dim operators and fails (so b is redrawn) from b = 4 * max_binary_ops_per_dim * max_dim on: at
        Dmax=1 the official b is effectively U{0..3}, not U{0..4}; larger Dmax are unaffected."""
        return 4 * self.max_binary_ops_per_dim * self.max_dim - 1


@functools.cache
def _tree_counts(max_ops: int) -> list[list[int]]:
    """counts[n][e]: binary trees with n operators that can grow from e empty nodes."""
    size = 2 * max_ops + 2
    counts = [[0] + [1] * size]
    for n in range(1, max_ops + 1):
        row = [0]
        for e in range(1, size - n):
            row.append(row[e - 1] + counts[n - 1][e + 1])
        counts.append(row)
    return counts


class ExpressionSampler:
    def __init__(self, spec: SamplerSpec):
        self.spec = spec
        self.unaries = UNARY_OPERATORS
        self.binaries = BINARY_OPERATORS
        self.unary_cumulative = np.cumsum(spec.weights(self.unaries)).tolist()
        self.binary_cumulative = np.cumsum(spec.weights(self.binaries)).tolist()
        self.counts = _tree_counts(spec.max_tree_ops)
        # positions[n_ops][n_empty]: cumulative probabilities of skipping i empty nodes before placing the next
        # operator, for every state the tree-count table serves.
        self.positions = [[self._position_cumulative(n_ops, n_empty) for n_empty in range(len(self.counts[n_ops]))]
                          for n_ops in range(len(self.counts))]
        self.variables = tuple(f"x_{i}" for i in range(spec.max_dim))
        self._kind = {**{op: "binary" for op in self.binaries}, **{op: "sum" for op in _SUMS},
                      **{op: "unary" for op in self.unaries}}

    def _position_cumulative(self, n_ops: int, n_empty: int) -> list[float]:
        """Cumulative probabilities of skipping i empty nodes before placing the next operator."""
        total = self.counts[n_ops][n_empty]
        if n_ops == 0 or total == 0:
            return []
        return list(itertools.accumulate(self.counts[n_ops - 1][n_empty - i + 1] / total for i in range(n_empty)))

    def binary_ops_range(self, dim: int) -> tuple[int, int]:
        """Inclusive range of b for input dimension `dim`."""
        return self.spec.min_binary_ops_per_dim * dim, self.spec.max_binary_ops(dim)

    def sample(self, draws: Draws, dim: int, n_binary: int, n_unary: int) -> Expression | None:
        """One expression, or None where the official sampler rejects the draw: more binary operators than its
        tree-count table serves, or fewer leaves than variables."""
        if n_binary > self.spec.max_tree_ops or n_binary + 1 < dim:
            return None
        tree = self._binary_tree(draws, n_binary, dim)
        prefix = self._with_unaries(draws, tree, n_unary)
        return Expression.trusted(tuple(self._with_constants(draws, prefix)))

    def _binary_tree(self, draws: Draws, n_ops: int, dim: int) -> list:
        """Nested lists [op, left, right] / [variable], grown by filling empty nodes left to right."""
        root = [None]
        empty = [root]
        next_empty, n_empty = 0, 1
        while n_ops > 0:
            cumulative = self.positions[n_ops][n_empty]
            skip = min(bisect.bisect_right(cumulative, draws.uniform() * cumulative[-1]), n_empty - 1)
            next_empty += skip
            node = empty[next_empty]
            node[0] = draws.weighted(self.binaries, self.binary_cumulative)
            children = [[None], [None]]
            node += children
            empty += children
            next_empty += 1
            n_empty += 1 - skip
            n_ops -= 1
        leaves = [node for node in empty if node[0] is None]
        draws.shuffle(leaves)
        variables = self.variables
        for i, leaf in enumerate(leaves):
            leaf[0] = variables[i if i < dim else draws.integer(0, dim)]
        return root

    def _with_unaries(self, draws: Draws, tree: list, n_unary: int) -> list:
        prefix: list = []
        self._insert_unaries(draws, tree, prefix)
        positions = [i for i, token in enumerate(prefix) if self._kind.get(token) == "unary"]
        draws.shuffle(positions)
        for i in positions[: max(0, len(positions) - n_unary)]:
            prefix[i] = None
        return [token for token in prefix if token is not None]

    def _insert_unaries(self, draws: Draws, node: list, prefix: list) -> int:
        """Appends the prefix of `node` with unaries above its small children (None where a child got none);
        returns the node count of the bare subtree."""
        prefix.append(node[0])
        size = 1
        for child in node[1:]:
            slot = len(prefix)
            prefix.append(None)  # the child's unary, drawn after the child's own draws
            child_size = self._insert_unaries(draws, child, prefix)
            if child_size < self.spec.max_unary_depth:
                prefix[slot] = draws.weighted(self.unaries, self.unary_cumulative)
            size += child_size
        return size

    def _with_constants(self, draws: Draws, prefix: list) -> list:
        scaled: list = []
        self._prefactors(draws, prefix, 0, scaled)
        if len(scaled) == len(prefix):
            scaled = ["mul", draws.constant()] + scaled
        return ["add", draws.constant()] + scaled

    def _prefactors(self, draws: Draws, prefix: list, i: int, out: list) -> int:
        """Appends the subtree starting at prefix[i] with its constants to `out`; returns the index after it."""
        token = prefix[i]
        kind = self._kind.get(token)
        if kind == "sum":
            out.append(token)
            j = i + 1
            for _ in range(2):
                if prefix[j] in _SUMS:
                    j = self._prefactors(draws, prefix, j, out)
                else:
                    start = len(out)
                    out += ("mul", None)  # the child's scale, drawn after the child's own constants
                    j = self._prefactors(draws, prefix, j, out)
                    out[start + 1] = draws.constant()
            return j
        if kind == "unary":
            out.append(token)
            if prefix[i + 1] in _SUMS:
                return self._prefactors(draws, prefix, i + 1, out)
            start = len(out)
            out += ("add", None, "mul", None)  # drawn after the child's constants: shift, then scale
            j = self._prefactors(draws, prefix, i + 1, out)
            out[start + 1] = draws.constant()
            out[start + 3] = draws.constant()
            return j
        if kind == "binary":
            out.append(token)
            return self._prefactors(draws, prefix, self._prefactors(draws, prefix, i + 1, out), out)
        out.append(token)
        return i + 1
