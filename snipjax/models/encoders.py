"""The two SNIP towers: numeric (point sets) and symbolic (prefix token sequences), each → one latent vector."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from snipjax.models.float_init import FLOAT_INPUTS, float_embedding_init, point_value_features, read_constants
from snipjax.models.transformer import Transformer, TransformerSpec, dense, position_mask

Array = jax.Array


class PointEmbedder(nn.Module):
    """One vector per point: embed its 3·(Dmax+1) float tokens, concatenate, then Dense → ReLU → Dense.

    `point_input='values'` replaces the learned token embeddings by fixed features of each value (3·float_emb_dim
    of them, the width the tokens of one value take), so nothing must learn what 10,000 mantissas mean.
    """

    float_size: int
    float_emb_dim: int
    d_model: int
    dtype: Any = jnp.float32
    float_init: str = "official"  # 'value': float-token rows start from codes of their values
    point_input: str = "tokens"

    @nn.compact
    def __call__(self, points: Array) -> Array:  # [B, N, 3*(Dmax+1)] int -> [B, N, d_model]
        if self.point_input not in FLOAT_INPUTS:
            raise ValueError(f"config.model.point_input must be one of {FLOAT_INPUTS}, got {self.point_input!r}")
        if self.point_input == "values":
            x = point_value_features(points, 3 * self.float_emb_dim).astype(self.dtype)
        else:
            tokens = nn.Embed(self.float_size, self.float_emb_dim, dtype=self.dtype,
                              embedding_init=float_embedding_init(self.float_init, self.float_emb_dim),
                              name="embeddings")(points)
            x = tokens.reshape(*points.shape[:-1], -1)
        width = x.shape[-1]
        x = nn.relu(dense(width, width, self.dtype, "hidden")(x))
        return dense(self.d_model, width, self.dtype, "fc")(x)


class AttentionPool(nn.Module):
    """Softmax-weighted sum of the hidden states, then the bottleneck Dense to the latent (float32 out).

    The official softmax runs over all positions, padded (zeroed) ones included; `mask_padding` excludes them.
    Unmasked, `padded_length` is the length the sequences are pooled as: the positions from the input's end to
    it are padding the input leaves out (a zero hidden state scores the score layer's bias), so they enter the
    softmax as one term, exactly, without being computed.
    """

    d_model: int
    latent_dim: int
    mask_padding: bool = False
    dtype: Any = jnp.float32
    padded_length: int | None = None

    @nn.compact
    def __call__(self, hidden: Array, lengths: Array | None) -> Array:
        score = dense(1, self.d_model, self.dtype, "score")
        scores = score(hidden)[..., 0].astype(jnp.float32)
        hidden = hidden.astype(jnp.float32)
        valid = None
        if self.mask_padding and lengths is not None:
            valid = position_mask(lengths, hidden.shape[1])
        left_out = 0 if self.mask_padding or self.padded_length is None else self.padded_length - hidden.shape[1]
        if left_out < 0:
            raise ValueError(f"sequence length {hidden.shape[1]} exceeds the pooled length {self.padded_length}")
        if left_out:
            # `left_out` positions of score s and value 0 weigh as one position of score s + log(left_out).
            padding_score = score(jnp.zeros((1, self.d_model), self.dtype))[0, 0].astype(jnp.float32)
            padding = jnp.broadcast_to(padding_score + jnp.log(float(left_out)), scores.shape[:1])
            weights = jax.nn.softmax(jnp.concatenate([scores, padding[:, None]], axis=-1), axis=-1)[:, :-1]
        else:
            weights = jax.nn.softmax(scores, axis=-1, where=valid)
        pooled = jnp.einsum("bt,btd->bd", weights, hidden)
        # float32 whatever the compute dtype: the latents meet in raw dot products, where bf16 rounding of
        # the latent would reach the logits unscaled.
        return dense(self.latent_dim, self.d_model, jnp.float32, "bottleneck")(pooled)


class NumericEncoder(nn.Module):
    """Point set [B, N, 3·(Dmax+1)] float-token ids → z [B, latent]. Every point is a real position."""

    spec: TransformerSpec
    float_size: int
    float_emb_dim: int
    latent_dim: int
    use_positions: bool = True  # official default; False makes the encoder permutation invariant
    pool_mask: bool = False
    float_init: str = "official"
    point_input: str = "tokens"  # official; 'values': fixed features of the values instead of token embeddings

    @nn.compact
    def __call__(self, points: Array) -> Array:
        spec = self.spec
        x = PointEmbedder(self.float_size, self.float_emb_dim, spec.d_model, spec.dtype, self.float_init,
                          self.point_input, name="embedder")(points)
        hidden = Transformer(spec, self.use_positions, name="transformer")(x)
        return AttentionPool(spec.d_model, self.latent_dim, self.pool_mask, spec.dtype, name="pool")(hidden, None)


class SymbolicEncoder(nn.Module):
    """Prefix token ids [B, T] with lengths [B] → z [B, latent]."""

    spec: TransformerSpec
    vocab_size: int
    latent_dim: int
    pool_mask: bool = False
    float_init: str = "official"
    float_offset: int = 0  # id of the first float word in the equation vocabulary
    # 'tokens' (official): a constant is its three float-token embeddings; 'values': one learned embedding per
    # kind of float word, plus a learned projection of the constant's value features at its sign word.
    constant_input: str = "tokens"
    constant_features: int = 48
    # The length sequences are pooled as (config.data.max_len): shorter inputs, padding cut off, pool the same.
    padded_length: int | None = None

    @nn.compact
    def __call__(self, symbols: Array, symbol_len: Array) -> Array:
        spec = self.spec
        if self.constant_input not in FLOAT_INPUTS:
            raise ValueError(f"config.model.constant_input must be one of {FLOAT_INPUTS}, "
                             f"got {self.constant_input!r}")
        embed = nn.Embed(self.vocab_size, spec.d_model, dtype=spec.dtype,
                         embedding_init=float_embedding_init(self.float_init, spec.d_model, self.float_offset),
                         name="embeddings")
        if self.constant_input == "values":
            symbols_by_kind, values = read_constants(symbols, self.float_offset, self.constant_features)
            x = embed(symbols_by_kind) + dense(spec.d_model, self.constant_features, spec.dtype,
                                               "constant_values")(values.astype(spec.dtype))
        else:
            x = embed(symbols)
        hidden = Transformer(spec, use_positions=True, name="transformer")(x, symbol_len)
        return AttentionPool(spec.d_model, self.latent_dim, self.pool_mask, spec.dtype, self.padded_length,
                             name="pool")(hidden, symbol_len)


def widen_point_embedder(trained: dict, fresh: dict, old_max_dim: int, new_max_dim: int) -> dict:
    """A PointEmbedder's params for `new_max_dim` inputs that computes exactly what `trained` (for
    `old_max_dim`) computed on points that use x_0..x_{old_max_dim-1} only; `fresh` is an initialisation for
    the wider embedder. The old hidden units ignore the new inputs, the new hidden units start from `fresh`
    and write nothing yet, and the float embeddings (if the points come as tokens) carry over."""
    block = trained["hidden"]["kernel"].shape[0] // (old_max_dim + 1)  # the inputs of one value
    old_width, new_width = block * (old_max_dim + 1), block * (new_max_dim + 1)
    rows = jnp.r_[0:old_max_dim * block, new_width - block:new_width]  # x_0..x_{old-1} and y in the new layout
    hidden = jnp.asarray(fresh["hidden"]["kernel"])
    hidden = hidden.at[:, :old_width].set(0.0).at[rows, :old_width].set(trained["hidden"]["kernel"])
    fc = jnp.asarray(fresh["fc"]["kernel"]).at[:old_width].set(trained["fc"]["kernel"]).at[old_width:].set(0.0)
    return {
        **({"embeddings": trained["embeddings"]} if "embeddings" in trained else {}),
        "hidden": {"kernel": hidden, "bias": jnp.asarray(fresh["hidden"]["bias"]).at[:old_width].set(
            trained["hidden"]["bias"])},
        "fc": {"kernel": fc, "bias": trained["fc"]["bias"]},
    }
