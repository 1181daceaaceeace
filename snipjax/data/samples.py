"""One training sample as a pure function of (seed, index), and batches of them.

The generator of sample `index` is seeded with (seed, index), so the same index gives the same expression,
points and tokens on every machine, in every worker process, before and after a resume. Rejected draws are
retried from that same generator. As in the official code, the input dimension D ~ U{1..Dmax} and the unary
budget u ~ U{0..4} are drawn once per sample, and retries redraw the tree and the points.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import numpy as np

from snipjax.data import points as points_lib
from snipjax.data import properties as properties_lib
from snipjax.data import tokens as tokens_lib
from snipjax.data.expressions import Expression
from snipjax.data.draws import Draws
from snipjax.data.sampler import ExpressionSampler, SamplerSpec

MAX_ATTEMPTS = 10_000
PROPERTY_Y = ("raw", "normalized")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Everything that decides the samples (picklable, so worker processes get it whole)."""

    max_dim: int = 1
    normalize_y: bool | None = None  # None: as the official models, min-max y for Dmax=1 only
    n_points: int = 200
    max_len: int = 200
    max_centroids: int = 10
    with_properties: bool = False  # the four numeric properties of 1-D samples
    property_y: str = "raw"  # 'raw': labels from y before normalization (the official export) | 'normalized'
    with_expression_properties: bool = False  # the expression's operator count, depth and operator families
    sampler: SamplerSpec = SamplerSpec()

    def __post_init__(self):
        if self.property_y not in PROPERTY_Y:
            raise ValueError(f"property_y must be one of {PROPERTY_Y}, got {self.property_y!r}")
        if self.normalize_y is None:
            object.__setattr__(self, "normalize_y", self.max_dim == 1)
        if self.sampler.max_dim != self.max_dim:
            object.__setattr__(self, "sampler", dataclasses.replace(self.sampler, max_dim=self.max_dim))
        if self.with_properties and self.max_dim != 1:
            raise ValueError("numeric properties are defined for 1-D functions only (max_dim=1)")

    @classmethod
    def from_config(cls, data_config: Any) -> "DataSpec":
        """From a ConfigDict / mapping with the `config.data` keys, sampler knobs included (e.g.
        `min_binary_ops_per_dim`); other keys (such as `workers`) are ignored."""
        get = data_config.get if hasattr(data_config, "get") else lambda k, d: getattr(data_config, k, d)

        def present(fields):
            return {f.name: get(f.name, None) for f in fields if get(f.name, None) is not None}

        sampler = present(f for f in dataclasses.fields(SamplerSpec) if f.name != "max_dim")
        spec = present(f for f in dataclasses.fields(cls) if f.name != "sampler")
        if "operator_weights" in sampler:
            sampler["operator_weights"] = tuple(tuple(pair) for pair in sampler["operator_weights"])
        return cls(**spec, sampler=SamplerSpec(**sampler))


@dataclasses.dataclass
class Sample:
    index: int
    dim: int
    expression: Expression
    x: np.ndarray  # [n_points, dim]
    y: np.ndarray  # [n_points]
    properties: dict | None = None


@functools.cache
def _sampler(spec: SamplerSpec) -> ExpressionSampler:
    return ExpressionSampler(spec)


def generate_sample(spec: DataSpec, seed: int, index: int) -> Sample:
    rng = np.random.default_rng((seed, index))
    draws = Draws(rng)
    sampler = _sampler(spec.sampler)
    dim = draws.integer(spec.sampler.min_dim, spec.max_dim + 1)
    n_unary = draws.integer(spec.sampler.min_unary_ops, spec.sampler.max_unary_ops + 1)
    low, high = sampler.binary_ops_range(dim)
    for _ in range(MAX_ATTEMPTS):
        expression = sampler.sample(draws, dim, draws.integer(low, high + 1), n_unary)
        if expression is None or tokens_lib.sequence_length(expression) > spec.max_len:
            continue
        x = points_lib.sample_inputs(draws, dim, spec.n_points, spec.max_centroids)
        try:
            y = expression.evaluate(x, strict=True)
        except FloatingPointError:
            continue
        if not points_lib.valid_outputs(y):
            continue
        raw_y = y
        if spec.normalize_y:
            y = points_lib.normalize_outputs(y)
        props = None
        if spec.with_properties:
            props = properties_lib.properties(x, raw_y if spec.property_y == "raw" else y, rng)
        return Sample(index=index, dim=dim, expression=expression, x=x, y=y, properties=props)
    raise RuntimeError(f"no valid expression for sample {index} (seed {seed}) after {MAX_ATTEMPTS} attempts")


def batch_of(samples: Sequence[Sample], spec: DataSpec) -> dict[str, np.ndarray]:
    """The model's input arrays for a list of samples (see the batch layout in the README)."""
    ids, lengths = tokens_lib.encode_expressions([s.expression for s in samples], spec.max_dim, spec.max_len)
    batch = {
        "points": tokens_lib.encode_point_sets([s.x for s in samples], [s.y for s in samples], spec.max_dim),
        "symbols": ids,
        "symbol_len": lengths,
        "dim": np.array([s.dim for s in samples], dtype=np.int32),
        "index": np.array([s.index for s in samples], dtype=np.int64),
    }
    if spec.with_properties:
        for name in properties_lib.PROPERTY_NAMES:
            batch[name] = np.array([s.properties[name] for s in samples], dtype=np.float32)
    if spec.with_expression_properties:
        rows = [properties_lib.expression_properties(s.expression) for s in samples]
        for name in properties_lib.EXPRESSION_PROPERTY_NAMES:
            batch[name] = np.array([row[name] for row in rows], dtype=np.float32)
    return batch


def as_spec(data_config: Any) -> DataSpec:
    """A DataSpec from a DataSpec or a `config.data` ConfigDict / mapping."""
    return data_config if isinstance(data_config, DataSpec) else DataSpec.from_config(data_config)


def make_batch(data_config: Any, seed: int, indices: Sequence[int]) -> dict[str, np.ndarray]:
    """The batch of samples `indices` (a DataSpec or a `config.data` decides the samples)."""
    spec = as_spec(data_config)
    return batch_of([generate_sample(spec, seed, int(i)) for i in indices], spec)
