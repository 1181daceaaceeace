"""The SNIP model: both encoders plus the contrastive similarity scale, built from a snipjax config."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from snipjax import losses
from snipjax.data.vocab import get_vocab
from snipjax.models.encoders import NumericEncoder, SymbolicEncoder
from snipjax.models.transformer import Kernels, TransformerSpec

Array = jax.Array

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def transformer_spec(model_cfg: ml_collections.ConfigDict, n_layers: int | None = None,
                     n_heads: int | None = None, kernels: Kernels = Kernels()) -> TransformerSpec:
    """The encoder stack described by `config.model` (layer and head counts overridable, for the decoder),
    computed by `kernels`."""
    if model_cfg.dtype not in COMPUTE_DTYPES:
        raise ValueError(f"config.model.dtype must be one of {sorted(COMPUTE_DTYPES)}, got {model_cfg.dtype!r}")
    return TransformerSpec(
        d_model=model_cfg.d_model,
        n_layers=model_cfg.n_layers if n_layers is None else n_layers,
        n_heads=model_cfg.n_heads if n_heads is None else n_heads,
        d_ff=model_cfg.d_ff,
        max_positions=model_cfg.max_positions,
        norm=model_cfg.norm,
        ln_eps=model_cfg.ln_eps,
        dtype=COMPUTE_DTYPES[model_cfg.dtype],
        kernels=kernels,
    )


def make_numeric_encoder(config: ml_collections.ConfigDict, kernels: Kernels = Kernels()) -> NumericEncoder:
    """The numeric tower of `config` (shared by SNIP and the symbolic-regression model)."""
    m = config.model
    return NumericEncoder(transformer_spec(m, kernels=kernels), get_vocab(config.data.max_dim).float_size,
                          m.float_emb_dim, m.latent_dim, m.numeric_positions, m.pool_mask,
                          m.get("float_init", "official"), m.get("point_input", "tokens"))


class SNIP(nn.Module):
    """Numeric and symbolic encoders, and the scale/bias that turn their similarities into logits.

    `similarity_parameters` are the learned ones the loss kind names (`snipjax.losses.KINDS`), with their
    initial values: `log_logit_scale` (the scale is its exp; without it, the constant 1/temperature, as the
    official InfoNCE) and `logit_bias` (else 0).
    """

    numeric_encoder: NumericEncoder
    symbolic_encoder: SymbolicEncoder
    similarity_parameters: tuple[tuple[str, float], ...] = ()
    temperature: float = 1.0

    def setup(self):
        self.similarity = {name: self.param(name, nn.initializers.constant(init), ())
                           for name, init in self.similarity_parameters}

    def encode_numeric(self, points: Array) -> Array:
        return self.numeric_encoder(points)

    def encode_symbolic(self, symbols: Array, symbol_len: Array) -> Array:
        return self.symbolic_encoder(symbols, symbol_len)

    def __call__(self, points: Array, symbols: Array, symbol_len: Array) -> dict[str, Array]:
        if "log_logit_scale" in self.similarity:
            scale = jnp.exp(self.similarity["log_logit_scale"])
        else:
            scale = jnp.asarray(1.0 / self.temperature, jnp.float32)
        bias = self.similarity.get("logit_bias", jnp.zeros((), jnp.float32))
        return {
            "z_numeric": self.encode_numeric(points),
            "z_symbolic": self.encode_symbolic(symbols, symbol_len),
            "logit_scale": scale,
            "logit_bias": bias,
        }


def make_snip(config: ml_collections.ConfigDict, kernels: Kernels = Kernels()) -> SNIP:
    """The SNIP model of `config` (reads config.model, config.loss and config.data.max_dim), its layers
    computed by `kernels` (default: XLA's, whole batch; programs pass `snipjax.parallel.kernels_for`'s)."""
    similarity_parameters = losses.loss_kind(config.loss.kind).parameters
    m = config.model
    vocab = get_vocab(config.data.max_dim)
    symbolic = SymbolicEncoder(transformer_spec(m, kernels=kernels), vocab.equation_size, m.latent_dim, m.pool_mask,
                               m.get("float_init", "official"), vocab.n_symbols, m.get("constant_input", "tokens"),
                               3 * m.float_emb_dim, config.data.get("max_len"))
    return SNIP(make_numeric_encoder(config, kernels), symbolic, similarity_parameters, config.loss.temperature)
