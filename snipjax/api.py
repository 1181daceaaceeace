"""The functional API for research code: load SNIP weights, embed datasets and formulas.

    config, params = snipjax.load("runs/snip_1d")                     # a training workdir or an export dir
    z_data = snipjax.encode_numeric(params, X, y, config=config)       # [B, latent]
    z_expr = snipjax.encode_symbolic(params, ["sin(x_0) + 1"], config=config)

The encoders are pure functions of the params pytree. The params carry no architecture, so the config is a
required keyword; `functools.partial(snipjax.encode_numeric, config=config)` gives a function of
(params, X, y) alone. Each config's encoders are compiled once, for a few batch shapes (powers of two).
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from snipjax import checkpoint, models
from snipjax.data import floats, tokens
from snipjax.data.points import normalize_outputs, standardize_inputs


def load(path: str) -> tuple[ml_collections.ConfigDict, dict]:
    """(config, params) from an export dir (`config.json` + `params/`) or a training workdir's latest
    checkpoint; the params are placed on the default device."""
    config, params = checkpoint.load_params(path)
    return config, jax.device_put(params)


@functools.cache
def _encoders(config: ml_collections.FrozenConfigDict):
    model = models.make_snip(config)
    numeric = jax.jit(lambda params, points: model.apply({"params": params}, points, method="encode_numeric"))
    symbolic = jax.jit(lambda params, symbols, lengths: model.apply(
        {"params": params}, symbols, lengths, method="encode_symbolic"))
    return numeric, symbolic


def _in_chunks(encode, arrays: Sequence[np.ndarray], batch_size: int) -> jax.Array:
    """Apply `encode` to row chunks of `arrays`, padding each chunk to a power of two (at most `batch_size`)
    by repeating its last row, so that any number of rows compiles only a few shapes."""
    n = len(arrays[0])
    chunk = min(batch_size, 1 << max(n - 1, 0).bit_length())
    outputs = []
    for start in range(0, n, chunk):
        rows = [a[start:start + chunk] for a in arrays]
        pad = chunk - len(rows[0])
        rows = [np.concatenate([r, np.repeat(r[-1:], pad, axis=0)]) for r in rows]
        outputs.append(encode(*rows)[:chunk - pad])
    return jnp.concatenate(outputs)


def encode_numeric(params, X, y, *, config: ml_collections.ConfigDict, normalize: bool = True,
                   batch_size: int = 256) -> jax.Array:
    """Latents [B, latent_dim] of B datasets of N points each.

    X: [N, D] or [N] (one dataset) or [B, N, D] or [B, N] (a batch), any float dtype; y: [N] or [B, N].
    D may be at most `config.data.max_dim`. With `normalize=True` the points get the training data's
    preprocessing: each input dimension standardized over the points and, for models trained with
    `data.normalize_y` (the 1-D model), y min-max scaled to [0, 1]. Pass `normalize=False` if that is done.
    """
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be [N] (one dataset) or [B, N] (a batch), got shape {y.shape}")
    if X.ndim == y.ndim:
        X = X[..., None]  # one input dimension
    if X.ndim != y.ndim + 1 or X.shape[:-1] != y.shape:
        raise ValueError(f"X must be y's shape {y.shape} plus an optional trailing input dimension D, "
                         f"got X {X.shape}")
    max_dim = config.data.max_dim
    if X.shape[-1] > max_dim:
        raise ValueError(f"X has {X.shape[-1]} input dimensions, but this model takes at most {max_dim} "
                         f"(config.data.max_dim); use a model trained with max_dim >= {X.shape[-1]}")
    if X.shape[-2] > config.model.max_positions:
        raise ValueError(f"{X.shape[-2]} points per dataset exceed the model's {config.model.max_positions} "
                         "positions (config.model.max_positions); subsample the points (SNIP trains on 200)")
    floats.check_finite(X, "X")
    floats.check_finite(y, "y")
    if y.ndim == 1:
        X, y = X[None], y[None]
    if normalize:
        X = standardize_inputs(X)
        if config.data.normalize_y:
            y = np.stack([normalize_outputs(row) for row in y])
    points = tokens.encode_point_sets(list(X), list(y), max_dim)
    numeric, _ = _encoders(ml_collections.FrozenConfigDict(config))
    return _in_chunks(functools.partial(numeric, params), [points], batch_size)


def encode_symbolic(params, exprs, *, config: ml_collections.ConfigDict, batch_size: int = 256) -> jax.Array:
    """Latents [B, latent_dim] of B formulas: strings such as "sin(x_0) + 2.5*x_1" or sympy expressions (a
    single one is taken as a batch of one). Variables are x_0 .. x_{max_dim-1}; constants keep 4 significant
    digits, as the model's float tokens do."""
    if "symbolic_encoder" not in params:
        raise ValueError("these parameters have no symbolic encoder: a symbolic-regression release such as "
                         "snip-e2e-sr.pth holds the numeric encoder, mapper and decoder only")
    if isinstance(exprs, str) or not isinstance(exprs, Sequence):
        exprs = [exprs]
    symbols, lengths = tokens.encode_expressions(list(exprs), config.data.max_dim, config.data.max_len)
    _, symbolic = _encoders(ml_collections.FrozenConfigDict(config))
    return _in_chunks(functools.partial(symbolic, params), [symbols, lengths], batch_size)
