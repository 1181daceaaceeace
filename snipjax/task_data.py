"""What every task does with the data layer's batches: the fields the model reads and their shapes, the
padding cut before a step, the held-out seed stream, and each host's share of evaluation arrays.

Pretraining, property prediction and decoder training (`snipjax/tasks/`) are peers that share these; the
converter and the compile tool use the same shapes to build parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from snipjax.data.pipeline import make_batch
from snipjax.data.tokens import bucketed_length, point_width, trim_symbols

EVAL_SEED_OFFSET = 1_000_003  # held-out pairs come from their own seed stream, disjoint from training's
MODEL_INPUTS = ("points", "symbols", "symbol_len")  # the batch fields the model reads, in call order


def model_inputs(batch: dict) -> dict:
    """The fields of a data batch that the model reads."""
    return {k: batch[k] for k in MODEL_INPUTS}


def example_inputs(config, batch_size: int = 1) -> dict[str, jax.ShapeDtypeStruct]:
    """Shapes and dtypes of one batch of model inputs (what `init` traces with), in call order."""
    return {
        "points": jax.ShapeDtypeStruct((batch_size, config.data.n_points, point_width(config.data.max_dim)),
                                       jnp.int32),
        "symbols": jax.ShapeDtypeStruct((batch_size, config.data.max_len), jnp.int32),
        "symbol_len": jax.ShapeDtypeStruct((batch_size,), jnp.int32),
    }


def zero_inputs(config) -> list[jax.Array]:
    """One row of zero model inputs, in call order: what a model's `init` is called with."""
    shapes = example_inputs(config)
    return [jnp.zeros(shapes[k].shape, shapes[k].dtype) for k in MODEL_INPUTS]


def symbol_trim(config, max_len: int | None = None):
    """A Task's `trim`: symbol sequences cut to the bucketed length of the longest in the global batch
    (`config.length_bucket`; `max_len`, default config.data.max_len, is what they come padded to). Batches
    without symbols pass unchanged."""
    max_len = config.data.max_len if max_len is None else max_len

    def trim(batch: dict, agree) -> dict:
        if "symbol_len" not in batch:
            return batch
        return trim_symbols(batch, agree(bucketed_length(batch["symbol_len"], config.length_bucket, max_len)))

    return trim


def host_rows(size: int, start: int = 0) -> slice:
    """This host's rows of the `size` global rows from `start`: an equal contiguous share per process, in
    process order, as the loop lifts host-local batches into global arrays."""
    per_process = size // jax.process_count()
    first = start + jax.process_index() * per_process
    return slice(first, first + per_process)


def held_out_batch(data, seed: int, size: int) -> dict[str, np.ndarray]:
    """This host's share of `size` held-out pairs (the model's fields): indices 0..size-1 of the seed stream
    seed + EVAL_SEED_OFFSET, generated for the config `data`."""
    rows = host_rows(size)
    return model_inputs(make_batch(data, seed + EVAL_SEED_OFFSET, np.arange(rows.start, rows.stop)))
