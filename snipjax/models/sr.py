"""The symbolic-regression model of the SNIP SR release: numeric encoder → mapping network → expression decoder.

The mapper turns the numeric latent into `memory_length` vectors, which the decoder's cross-attention reads
(no source mask); the decoder predicts the next prefix token at every position.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from snipjax.data.vocab import get_vocab
from snipjax.models.encoders import NumericEncoder
from snipjax.models.snip import make_numeric_encoder, transformer_spec
from snipjax.models.transformer import DecodeStep, Kernels, Transformer, TransformerSpec, dense, embedding_init

Array = jax.Array


class Mapper(nn.Module):
    """Latent [B, latent] → Dense to length·d → ReLU → reshape [B, length, d] → Dense → decoder memory."""

    latent_dim: int
    d_model: int
    length: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: Array) -> Array:
        hidden = nn.relu(dense(self.length * self.d_model, self.latent_dim, self.dtype, "linear1")(z))
        hidden = hidden.reshape(z.shape[0], self.length, self.d_model)
        return dense(self.d_model, self.d_model, self.dtype, "linear2")(hidden)


class OutputBias(nn.Module):
    """The bias of a tied output projection (its weight is the input embedding table)."""

    features: int
    fan_in: int

    @nn.compact
    def __call__(self, logits: Array) -> Array:
        bound = self.fan_in**-0.5  # PyTorch's nn.Linear bias initialisation, as `dense`
        bias = self.param("bias", lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -bound, bound),
                          (self.features,))
        return logits + bias.astype(logits.dtype)


class ExpressionDecoder(nn.Module):
    """Causal transformer over prefix token ids, cross-attending to `memory`; → next-token logits (float32).

    `tie_embeddings` (the official `share_inout_emb=True`): the output projection's weight is the input
    embedding table, and only its bias is a parameter of its own; False gives a separate `proj` Dense.
    With `cache`, tokens [B, 1] are the position `cache.position`, decoded with the 'cache' collection mutable.
    """

    spec: TransformerSpec
    vocab_size: int
    tie_embeddings: bool = True

    @nn.compact
    def __call__(self, tokens: Array, token_len: Array | None, memory: Array,
                 cache: DecodeStep | None = None) -> Array:
        spec = self.spec
        embed = nn.Embed(self.vocab_size, spec.d_model, dtype=spec.dtype,
                         embedding_init=embedding_init(spec.d_model), name="embeddings")
        hidden = Transformer(spec, use_positions=True, cross_attention=True, name="transformer")(
            embed(tokens), token_len, causal=True, memory=memory, cache=cache)
        if self.tie_embeddings:
            logits = OutputBias(self.vocab_size, spec.d_model, name="proj")(embed.attend(hidden))
        else:
            logits = dense(self.vocab_size, spec.d_model, spec.dtype, "proj")(hidden)
        return logits.astype(jnp.float32)


class SymbolicRegressionModel(nn.Module):
    """Points → latent → memory → logits [B, T, vocab]; logits[:, t] scores the token at position t + 1."""

    numeric_encoder: NumericEncoder
    mapper: Mapper
    decoder: ExpressionDecoder

    def encode_numeric(self, points: Array) -> Array:
        return self.numeric_encoder(points)

    def decode(self, z: Array, tokens: Array, token_len: Array) -> Array:
        return self.decoder(tokens, token_len, self.mapper(z))

    def memory(self, z: Array) -> Array:
        return self.mapper(z)

    def decode_step(self, memory: Array, tokens: Array, cache: DecodeStep) -> Array:
        """Logits [B, vocab] of the position after `tokens` [B] (at `cache.position`), reading and extending
        the 'cache' collection."""
        return self.decoder(tokens[:, None], None, memory, cache)[:, 0]

    def __call__(self, points: Array, tokens: Array, token_len: Array) -> Array:
        return self.decode(self.encode_numeric(points), tokens, token_len)


def make_sr_model(config: ml_collections.ConfigDict, kernels: Kernels = Kernels()) -> SymbolicRegressionModel:
    """The SR model of `config`: config.model as for SNIP, plus config.model.decoder.{n_layers, n_heads,
    memory_length (the mapper's number of memory vectors), tie_embeddings}; its layers computed by `kernels`."""
    m = config.model
    if "decoder" not in m:
        raise ValueError("config.model.decoder (n_layers, n_heads, memory_length) is missing: this config "
                         "describes a SNIP encoder pair, not a symbolic-regression model")
    spec = transformer_spec(m, n_layers=m.decoder.n_layers, n_heads=m.decoder.n_heads, kernels=kernels)
    return SymbolicRegressionModel(
        numeric_encoder=make_numeric_encoder(config, kernels),
        mapper=Mapper(m.latent_dim, m.d_model, m.decoder.memory_length, spec.dtype),
        decoder=ExpressionDecoder(spec, get_vocab(config.data.max_dim).equation_size,
                                  m.decoder.get("tie_embeddings", True)),
    )


def make_next_token_logits(config: ml_collections.ConfigDict) -> Callable[..., Array]:
    """A jitted `(params, points, tokens, token_len) -> logits [B, T, vocab] float32` for the SR model."""
    model = make_sr_model(config)

    @jax.jit
    def next_token_logits(params, points: Array, tokens: Array, token_len: Array) -> Array:
        return model.apply({"params": params}, points, tokens, token_len)

    return next_token_logits
