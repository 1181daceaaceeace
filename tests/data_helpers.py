"""Draws straight from the expression sampler (no point rejection), shared by the data tests."""

import numpy as np

from snipjax.data.draws import Draws
from snipjax.data.sampler import ExpressionSampler, SamplerSpec


def sampled_trees(max_dim: int, count: int, seed: int = 0) -> list:
    """(dim, b, u, expression) tuples, with D, b and u drawn as generate_sample draws them."""
    sampler = ExpressionSampler(SamplerSpec(max_dim=max_dim))
    draws = Draws(np.random.default_rng(seed))
    out = []
    while len(out) < count:
        dim = draws.integer(1, max_dim + 1)
        low, high = sampler.binary_ops_range(dim)
        b, u = draws.integer(low, high + 1), draws.integer(0, 5)
        expression = sampler.sample(draws, dim, b, u)
        if expression is not None:
            out.append((dim, b, u, expression))
    return out
