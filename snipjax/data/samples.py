"""One training sample as a pure function of (seed, index), and batches of them.

The generator of sample `index` is seeded with (seed, index), so the same index gives the same expression,
points and tokens on every machine, in every worker process, before and after a resume, whatever batch it is
made in. Rejected draws are retried from that same generator. As in the official code, the input dimension
D ~ U{1..Dmax} and the unary budget u ~ U{0..4} are drawn once per sample, and retries redraw the tree and the
points.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import numpy as np

from snipjax.data import points as points_lib
from snipjax.data import properties as properties_lib
from snipjax.data import tokens as tokens_lib
from snipjax.data.draws import Draws
from snipjax.data.expressions import Expression
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
        for name, low in (("max_dim", 1), ("n_points", 1), ("max_len", 3), ("max_centroids", 1)):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < low:
                raise ValueError(f"data.{name}={getattr(self, name)!r} must be an integer >= {low}")
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


@dataclasses.dataclass
class _Draft:
    """A sample being generated: its stream, its fixed draws and its current attempt."""

    seed: int
    index: int
    rng: np.random.Generator
    draws: Draws
    dim: int
    n_unary: int
    attempts: int = 0
    expression: Expression | None = None
    inputs: points_lib.InputDraws | None = None


def generate_sample(spec: DataSpec, seed: int, index: int) -> Sample:
    """Sample `index` of the stream `seed`."""
    return generate_samples(spec, seed, [index])[0]


def generate_samples(spec: DataSpec, seed: int, indices: Sequence[int]) -> list[Sample]:
    """Samples `indices`, each exactly as alone. They are drawn in rounds: every unfinished sample draws an
    expression and its points' random numbers from its own stream, the points of all are computed together,
    then each is evaluated; the rejected ones go on to the next round."""
    sampler = _sampler(spec.sampler)
    drafts = [_start(spec, seed, int(index)) for index in indices]
    done: list[Sample | None] = [None] * len(drafts)
    waiting = list(range(len(drafts)))
    while waiting:
        for position in waiting:
            _draw_attempt(spec, sampler, drafts[position])
        inputs = points_lib.inputs_from_draws([drafts[position].inputs for position in waiting], spec.n_points)
        with np.errstate(all="raise"):  # one errstate for the round: setting it costs more than a node
            outputs = [_outputs(drafts[position].expression, x) for position, x in zip(waiting, inputs)]
        waiting_next = []
        for position, x, y in zip(waiting, inputs, outputs):
            done[position] = None if y is None else _finish(spec, drafts[position], x, y)
            if done[position] is None:
                waiting_next.append(position)
        waiting = waiting_next
    return done


def _start(spec: DataSpec, seed: int, index: int) -> _Draft:
    rng = np.random.default_rng(_entropy(seed, index))
    draws = Draws(rng)
    dim = draws.integer(spec.sampler.min_dim, spec.max_dim + 1)
    n_unary = draws.integer(spec.sampler.min_unary_ops, spec.sampler.max_unary_ops + 1)
    return _Draft(seed, index, rng, draws, dim, n_unary)


def _entropy(seed: int, index: int):
    """The seed of sample `index`: (seed, index), given as the 32-bit words SeedSequence makes of it where both
    fit in one word (the same stream, a third cheaper to set up than from the tuple)."""
    if 0 <= seed < 2**32 and 0 <= index < 2**32:
        return np.array([seed, index], dtype=np.uint32)
    return (seed, index)


def _draw_attempt(spec: DataSpec, sampler: ExpressionSampler, draft: _Draft) -> None:
    """The next expression that fits `max_len`, and the random numbers of its points."""
    low, high = sampler.binary_ops_range(draft.dim)
    while True:
        draft.attempts += 1
        if draft.attempts > MAX_ATTEMPTS:
            raise RuntimeError(f"no valid expression of {draft.dim} variables fits max_len={spec.max_len} tokens "
                               f"(sample {draft.index}, seed {draft.seed}, {MAX_ATTEMPTS} attempts): lower the "
                               "maximum input dimension, or raise max_len")
        expression = sampler.sample(draft.draws, draft.dim, draft.draws.integer(low, high + 1), draft.n_unary)
        if expression is not None and tokens_lib.sequence_length(expression) <= spec.max_len:
            break
    draft.expression = expression
    draft.inputs = points_lib.draw_inputs(draft.draws, draft.dim, spec.n_points, spec.max_centroids)


def _outputs(expression: Expression, x: np.ndarray) -> np.ndarray | None:
    """The expression at x, or None where any overflow or invalid operation on the way rejects it (the
    official generator runs under `np.seterr(all="raise")`); called under `np.errstate(all="raise")`."""
    try:
        return expression.values(x, strict=True)
    except FloatingPointError:
        return None


def _finish(spec: DataSpec, draft: _Draft, x: np.ndarray, y: np.ndarray) -> Sample | None:
    """The sample, or None where its outputs reject the attempt."""
    if not points_lib.valid_outputs(y):
        return None
    raw_y = y
    if spec.normalize_y:
        y = points_lib.normalize_outputs(y)
    props = None
    if spec.with_properties:
        props = properties_lib.properties(x, raw_y if spec.property_y == "raw" else y, draft.rng)
    return Sample(index=draft.index, dim=draft.dim, expression=draft.expression, x=x, y=y, properties=props)


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
    return batch_of(generate_samples(spec, seed, indices), spec)
