"""Transformer pieces shared by the SNIP encoders and the expression decoder.

The layout follows the official (XLM-style) model so released weights map one to one: attention with
`q_lin/k_lin/v_lin/out_lin`, a ReLU FFN `lin1/lin2`, LayerNorms `layer_norm1`/`layer_norm2` (and the
decoder's cross-attention norm), learned positions and `layer_norm_emb` on the embeddings.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from snipjax.models.attention import ATTENTION_KERNELS, dot_product_attention
from snipjax.models.row_blocks import over_row_blocks, row_block_steps

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Kernels:
    """How the layers are computed: a choice for the devices a step is compiled for, made where the step is
    built (`snipjax.parallel.kernels_for`), never from the process the code runs in. It changes no parameter.

    attention:      'xla' (whole batch, XLA's attention: accelerators) | 'row_blocked' (each layer over
                    `rows_per_block` rows of every batch shard per step, attention with a written-out backward
                    pass: CPUs; snipjax.models.row_blocks, snipjax.models.attention)
    rows_per_block: rows of each shard per step of a row-blocked layer
    batch_shards:   devices the batch rows are split over (each takes a contiguous share)
    """

    attention: str = "xla"
    rows_per_block: int = 8
    batch_shards: int = 1

    def __post_init__(self):
        if self.attention not in ATTENTION_KERNELS:
            raise ValueError(f"attention kernel must be one of {ATTENTION_KERNELS}, got {self.attention!r}")
        if self.rows_per_block < 1 or self.batch_shards < 1:
            raise ValueError(f"rows_per_block ({self.rows_per_block}) and batch_shards ({self.batch_shards}) "
                             "must be positive")

    def row_block_steps(self, batch: int) -> int:
        """Row-block steps of a batch of `batch` rows; 0: the whole batch at once."""
        if self.attention != "row_blocked":
            return 0
        return row_block_steps(batch, self.rows_per_block, self.batch_shards)


@dataclasses.dataclass(frozen=True)
class TransformerSpec:
    """Sizes and numerics of one transformer stack (frozen, so modules holding it stay hashable)."""

    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    max_positions: int
    norm: str = "post"  # 'post' (official) | 'pre'
    ln_eps: float = 1e-12
    dtype: Any = jnp.float32  # compute dtype; parameters are always float32
    kernels: Kernels = Kernels()

    def __post_init__(self):
        if self.norm not in ("post", "pre"):
            raise ValueError(f"norm must be 'post' or 'pre', got {self.norm!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")


def embedding_init(dim: int) -> Callable:
    """Official embedding initialisation: N(0, dim^-0.5)."""
    return nn.initializers.normal(stddev=dim**-0.5)


def dense(features: int, fan_in: int, dtype: Any, name: str) -> nn.Dense:
    """A Dense layer initialised like PyTorch's nn.Linear (kernel and bias uniform in ±1/sqrt(fan_in))."""
    bound = fan_in**-0.5

    def bias_init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    # variance_scaling(1/3, fan_in, uniform) draws from ±sqrt(3 * (1/3) / fan_in) = ±1/sqrt(fan_in).
    kernel_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
    return nn.Dense(features, dtype=dtype, kernel_init=kernel_init, bias_init=bias_init, name=name)


def layer_norm(spec: TransformerSpec, name: str) -> nn.LayerNorm:
    # Statistics are computed in float32 whatever the compute dtype; the output is cast back to it.
    return nn.LayerNorm(epsilon=spec.ln_eps, dtype=spec.dtype, name=name)


class DecodeStep(NamedTuple):
    """One step of cached decoding: the position being decoded and the cache's length in positions."""

    position: Array  # int32 scalar
    length: int


def position_mask(lengths: Array, length: int) -> Array:
    """[B, T] True at the first `lengths[b]` positions."""
    return jnp.arange(length) < lengths[:, None]


class MultiHeadAttention(nn.Module):
    """Multi-head attention of `x` over `kv`; q is scaled by 1/sqrt(head_dim), logits and softmax in fp32.

    Decoding one position at a time (`cache` given) keeps projected keys and values in the 'cache'
    collection: self-attention writes the new position's key and value at `cache.position` and attends to
    the positions so far; cross-attention projects its memory on the first step only.
    """

    d_model: int
    n_heads: int
    dtype: Any = jnp.float32
    kernel: str = "xla"  # snipjax.models.attention

    @nn.compact
    def __call__(self, x: Array, kv: Array, kv_lengths: Array | None = None, causal: bool = False,
                 cache: "DecodeStep | None" = None) -> Array:
        head_dim = self.d_model // self.n_heads

        def heads(name: str, inputs: Array) -> Array:
            projected = dense(self.d_model, inputs.shape[-1], self.dtype, name)(inputs)
            return projected.reshape(*inputs.shape[:-1], self.n_heads, head_dim)

        query = heads("q_lin", x)
        if cache is None:
            key, value = heads("k_lin", kv), heads("v_lin", kv)
        elif causal:  # self-attention over the positions decoded so far
            shape = (x.shape[0], cache.length, self.n_heads, head_dim)
            keys = self.variable("cache", "key", jnp.zeros, shape, query.dtype)
            values = self.variable("cache", "value", jnp.zeros, shape, query.dtype)
            at = (0, cache.position, 0, 0)
            keys.value = jax.lax.dynamic_update_slice(keys.value, heads("k_lin", kv).astype(query.dtype), at)
            values.value = jax.lax.dynamic_update_slice(values.value, heads("v_lin", kv).astype(query.dtype), at)
            key, value = keys.value, values.value
            kv_lengths = jnp.full((x.shape[0],), cache.position + 1, jnp.int32)
            causal = False  # the lengths mask the future
        else:  # cross-attention: the memory is the same at every step
            if not self.has_variable("cache", "memory_key"):
                projected = heads("k_lin", kv), heads("v_lin", kv)
                self.variable("cache", "memory_key", lambda: projected[0])
                self.variable("cache", "memory_value", lambda: projected[1])
            key = self.get_variable("cache", "memory_key")
            value = self.get_variable("cache", "memory_value")
        context = dot_product_attention(query, key, value, kv_lengths, causal, self.kernel)
        return dense(self.d_model, self.d_model, self.dtype, "out_lin")(context.reshape(x.shape))


class FeedForward(nn.Module):
    """lin1 → ReLU → lin2."""

    d_model: int
    d_ff: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        hidden = nn.relu(dense(self.d_ff, self.d_model, self.dtype, "lin1")(x))
        return dense(self.d_model, self.d_ff, self.dtype, "lin2")(hidden)


class TransformerBlock(nn.Module):
    """Self-attention, optional cross-attention over `memory`, FFN; each a residual branch with a LayerNorm.

    'post' (official): x = LN(x + f(x)); 'pre': x = x + f(LN(x)).
    """

    spec: TransformerSpec
    cross_attention: bool = False

    @nn.compact
    def __call__(self, x: Array, lengths: Array | None, causal: bool, memory: Array | None,
                 cache: DecodeStep | None = None) -> Array:
        spec = self.spec

        def residual(x: Array, branch: Callable[[Array], Array], norm_name: str) -> Array:
            norm = layer_norm(spec, norm_name)
            if spec.norm == "post":
                return norm(x + branch(x))
            return x + branch(norm(x))

        def attention(name: str) -> MultiHeadAttention:
            return MultiHeadAttention(spec.d_model, spec.n_heads, spec.dtype, spec.kernels.attention, name=name)

        x = residual(x, lambda h: attention("attention")(h, h, lengths, causal, cache), "layer_norm1")
        if self.cross_attention:
            # The decoder's memory has no padding (the official SR decoder passes no source mask).
            x = residual(x, lambda h: attention("cross_attention")(h, memory, cache=cache), "layer_norm_cross")
        return residual(x, FeedForward(spec.d_model, spec.d_ff, spec.dtype, name="ffn"), "layer_norm2")


class Transformer(nn.Module):
    """Embedded inputs [B, T, d] → (+ learned positions) → LayerNorm → blocks → hidden states [B, T, d].

    `lengths` [B] marks the real positions (None: all are real). Padded positions are excluded as attention
    keys and zeroed after the embedding norm and after every block, as in the official model. With `cache`,
    x is the one position `cache.position` of a causal sequence decoded step by step (see MultiHeadAttention).
    """

    spec: TransformerSpec
    use_positions: bool = True
    cross_attention: bool = False

    @nn.compact
    def __call__(self, x: Array, lengths: Array | None = None, causal: bool = False,
                 memory: Array | None = None, cache: DecodeStep | None = None) -> Array:
        spec = self.spec
        length = x.shape[1] if cache is None else cache.length
        if length > spec.max_positions:
            raise ValueError(f"sequence length {length} exceeds max_positions {spec.max_positions}")
        if self.use_positions:
            positions = nn.Embed(spec.max_positions, spec.d_model, dtype=spec.dtype,
                                 embedding_init=embedding_init(spec.d_model), name="position_embeddings")
            x = x + positions(jnp.arange(length) if cache is None else cache.position[None])
        x = layer_norm(spec, "layer_norm_emb")(x)

        keep = None if lengths is None else position_mask(lengths, length)[..., None].astype(x.dtype)

        def zero_padding(h: Array) -> Array:
            return h if keep is None else h * keep

        x = zero_padding(x)
        steps = 0 if cache is not None else spec.kernels.row_block_steps(x.shape[0])
        for i in range(spec.n_layers):
            block = TransformerBlock(spec, self.cross_attention, name=f"block_{i}")
            if steps:
                x = zero_padding(over_row_blocks(block, lambda b, x, n, m: b(x, n, causal, m), steps,
                                                 spec.kernels.batch_shards, x, lengths, memory))
            else:
                x = zero_padding(block(x, lengths, causal, memory, cache))
        if spec.norm == "pre":
            # Pre-LN leaves the residual stream unnormalised; normalise it once before the head.
            x = zero_padding(layer_norm(spec, "layer_norm_final")(x))
        return x

