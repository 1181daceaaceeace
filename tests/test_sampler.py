import collections

import numpy as np
import pytest

from snipjax.data.draws import Draws
from snipjax.data.expressions import UNARY_OPERATORS
from snipjax.data.sampler import ExpressionSampler, SamplerSpec
from snipjax.data.samples import DataSpec, generate_sample
from snipjax.data.vocab import OPERATOR_ARITY
from data_helpers import sampled_trees

# The official weights (`--operators_to_downsample`): normalized unary probabilities, binary add/sub/mul at 1/3.
UNARY_PROBABILITY = {"sqrt": 5 / 17.4, "inv": 3 / 17.4, "pow2": 3 / 17.4, "abs": 1 / 17.4, "log": 1 / 17.4,
                     "exp": 1 / 17.4, "sin": 1 / 17.4, "cos": 1 / 17.4, "pow3": 1 / 17.4, "tan": 0.2 / 17.4,
                     "arctan": 0.2 / 17.4, "arcsin": 0.0, "arccos": 0.0}


def within(observed, expected, n):
    """Observed frequency within 5 binomial standard deviations of the expected one."""
    return abs(observed - expected) <= 5 * np.sqrt(max(expected * (1 - expected), 1e-12) / n) + 1e-12


def test_operator_frequencies_follow_the_official_weights():
    counts = collections.Counter()
    for _, _, _, expression in sampled_trees(10, 6000):
        counts.update(t for t in expression.prefix if isinstance(t, str) and t in OPERATOR_ARITY)
    unary_total = sum(counts[op] for op in UNARY_OPERATORS)
    assert unary_total > 5000
    for op, p in UNARY_PROBABILITY.items():
        assert within(counts[op] / unary_total, p, unary_total), (op, counts[op] / unary_total, p)
    assert counts["div"] == counts["pow"] == 0


def test_binary_operator_choice_is_uniform_over_add_sub_mul():
    """Count the tree's own operators: sample with u=0 and strip the constant scaffolding."""
    sampler = ExpressionSampler(SamplerSpec(max_dim=3))
    draws = Draws(np.random.default_rng(5))
    counts = collections.Counter()
    for _ in range(3000):
        tree = sampler._binary_tree(draws, 4, 3)
        stack = [tree]
        while stack:
            node = stack.pop()
            if len(node) > 1:
                counts[node[0]] += 1
                stack.extend(node[1:])
    total = sum(counts.values())
    for op in ("add", "sub", "mul"):
        assert within(counts[op] / total, 1 / 3, total)
    assert counts["div"] == 0


@pytest.mark.parametrize("max_dim", [1, 4])
def test_every_variable_appears_and_unary_budget_holds(max_dim):
    for dim, _, u, expression in sampled_trees(max_dim, 2000, seed=1):
        variables = {t for t in expression.prefix if isinstance(t, str) and t.startswith("x_")}
        assert variables == {f"x_{i}" for i in range(dim)}
        n_unary = sum(1 for t in expression.prefix if t in UNARY_OPERATORS)
        assert n_unary <= u


def test_constants_have_the_official_form():
    values = [c for _, _, _, e in sampled_trees(3, 2000, seed=2) for c in e.constants]
    magnitudes = np.abs(values)
    assert magnitudes.min() >= 0.001 and magnitudes.max() <= 99.9
    assert within(np.mean(np.array(values) < 0), 0.5, len(values))
    for value in values[:2000]:
        scaled = [abs(value) * 10**k for k in (1, 2, 3)]
        assert any(abs(s - round(s)) < 1e-6 and 1 <= round(s) <= 999 for s in scaled)


def subtrees(prefix):
    """(start, end) of the subtree at every position of a prefix."""
    ends = [0] * len(prefix)
    stack = []  # (start, operands still missing)
    for i, token in reversed(list(enumerate(prefix))):
        arity = OPERATOR_ARITY.get(token, 0) if isinstance(token, str) else 0
        end = i + 1
        for _ in range(arity):
            end = ends[stack.pop()]
        ends[i] = end
        stack.append(i)
    return ends


def test_constants_follow_the_prefactor_rules():
    """Root: add(c, ...); children of sums are sums, scaled terms mul(c, ...) or the constant of an affine
    add(c, mul(c, ...)); every unary's argument is a sum."""
    for _, _, _, expression in sampled_trees(3, 800, seed=3):
        p = expression.prefix
        ends = subtrees(p)
        assert p[0] == "add" and isinstance(p[1], float)
        for i, token in enumerate(p[2:], start=2):
            if token in ("add", "sub"):
                left = i + 1
                for child in (left, ends[left]):
                    if p[child] not in ("add", "sub") and not isinstance(p[child], float):
                        assert p[child] == "mul" and isinstance(p[child + 1], float), expression.infix()
            elif token in UNARY_OPERATORS and p[i + 1] not in ("add", "sub"):
                raise AssertionError(f"unary {token} without affine argument in {expression.infix()}")
            elif token in UNARY_OPERATORS:
                assert isinstance(p[i + 2], float) or p[i + 2] in ("add", "sub", "mul")


def test_binary_operator_count_follows_the_official_table():
    """b ~ U{0..D+3}, except that the official tree-count table fails for b >= 4*Dmax (so at Dmax=1,
    b=4 is redrawn and b is effectively U{0..3})."""
    draws = Draws(np.random.default_rng(0))
    one = ExpressionSampler(SamplerSpec(max_dim=1))
    assert one.sample(draws, 1, 4, 0) is None
    assert one.sample(draws, 1, 3, 0) is not None
    ten = ExpressionSampler(SamplerSpec(max_dim=10))
    assert ten.sample(draws, 10, 13, 0) is not None
    assert ten.sample(draws, 10, 8, 0) is None  # 9 leaves cannot hold 10 variables


def test_y_is_normalized_only_for_the_1d_model():
    one = [generate_sample(DataSpec(max_dim=1), 0, i).y for i in range(50)]
    assert all(y.min() == 0.0 and 0.999 < y.max() <= 1.0 for y in one)
    ten = [generate_sample(DataSpec(max_dim=10), 0, i).y for i in range(50)]
    assert any(y.max() > 1.0 or y.min() < 0.0 for y in ten)


def test_input_dimension_is_uniform_and_binary_count_in_range():
    spec = DataSpec(max_dim=10, normalize_y=False)
    dims = collections.Counter(generate_sample(spec, 7, i).dim for i in range(1500))
    for dim in range(1, 11):
        assert within(dims[dim] / 1500, 0.1, 1500)
    sampler = ExpressionSampler(SamplerSpec(max_dim=10))
    assert sampler.binary_ops_range(1) == (0, 4) and sampler.binary_ops_range(10) == (0, 13)


def test_tree_shapes_are_uniform_over_binary_trees():
    """With 3 binary operators there are 5 tree shapes, each sampled with probability 1/5."""
    sampler = ExpressionSampler(SamplerSpec(max_dim=1))
    draws = Draws(np.random.default_rng(4))

    def shape(node):
        return "L" if len(node) == 1 else "(" + shape(node[1]) + shape(node[2]) + ")"

    shapes = collections.Counter(shape(sampler._binary_tree(draws, 3, 1)) for _ in range(5000))
    assert len(shapes) == 5
    for count in shapes.values():
        assert within(count / 5000, 0.2, 5000)
