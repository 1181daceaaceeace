"""Layers taken a few batch rows at a time: each step of a scan runs a block on `rows` rows of every device's
share of the batch.

On a CPU, XLA runs each op over the whole batch, so every intermediate of a layer ([B, T, d_ff] hidden units,
[B, H, T, T] attention scores) goes to memory and back, often more than once, and some matmuls over 12,800 rows
run at half the speed of the same matmul over a few hundred. A scan over row blocks (whose autodiff is blockwise
too) keeps them in cache. Results equal the whole-batch computation up to float rounding. Accelerators have the
memory bandwidth and run the whole batch; `snipjax.parallel.kernels_for` makes that choice for the devices a step
is compiled for.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def row_block_steps(batch: int, rows: int, shards: int) -> int:
    """Steps a batch of `batch` rows, split in `shards` equal shares, is taken in with `rows` rows of every share
    per step; 0 where blocking does not apply (rows that do not divide evenly, or a single step)."""
    per_step = rows * shards
    steps = batch // per_step if per_step and batch % per_step == 0 else 0
    return steps if steps > 1 else 0


def split_rows(x: Array, steps: int, shards: int) -> Array:
    """[B, ...] → [steps, B / steps, ...]. Step s takes rows s*r..s*r+r-1 of every shard's contiguous share of a
    batch split over `shards` devices, so that steps run over an axis no device splits."""
    blocks = x.reshape(shards, steps, -1, *x.shape[1:])
    return jnp.swapaxes(blocks, 0, 1).reshape(steps, -1, *x.shape[1:])


def join_rows(y: Array, shards: int) -> Array:
    """The inverse of `split_rows`."""
    steps, rows = y.shape[:2]
    blocks = y.reshape(steps, shards, rows // shards, *y.shape[2:])
    return jnp.swapaxes(blocks, 0, 1).reshape(steps * rows, *y.shape[2:])


def over_row_blocks(block: nn.Module, apply: Callable[..., Array], steps: int, shards: int,
                    *rows: Array | None) -> Array:
    """`apply(block, *rows)` computed in `steps` row blocks, one after the other, where `rows` are [B, ...]
    arguments (None passes through); the block's parameters are its own, shared by every step."""

    def step(module, carry, row_args):
        return carry, apply(module, *row_args)

    def split(a):
        return None if a is None else split_rows(a, steps, shards)

    scan = nn.scan(step, variable_broadcast="params", split_rngs={"params": False})
    _, out = scan(block, None, tuple(split(a) for a in rows))
    return join_rows(out, shards)
