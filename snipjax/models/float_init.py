"""Float-token embeddings initialised from the values the tokens stand for (`config.model.float_init='value'`).

The official initialisation draws every row at random, so the numeric encoder must learn from scratch that
mantissa N4999 lies next to N5000 and that E-2 is ten times E-3: 10,000 mantissa rows, each seen a few thousand
times in a CPU-sized run. The 'value' initialisation gives each sign, mantissa and exponent row a code of its
value (Fourier features, so near values get near codes) plus a random code of its kind; the other rows keep the
official draw. Training then refines the rows as usual.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from snipjax.data.floats import token_meanings
from snipjax.models.transformer import embedding_init

FLOAT_INITS = ("official", "value")
# Fourier frequencies (cycles over the token range) run geometrically from 0.5 to these maxima: neighbouring
# mantissas (values 1e-4 apart) start almost equal, neighbouring exponents (a factor 10) clearly apart.
_MAX_FREQUENCY = {"mantissa": 500.0, "exponent": 50.0}


def fourier_code(t: np.ndarray, dim: int, max_frequency: float) -> np.ndarray:
    """[len(t), dim] unit-norm rows: sin and cos of 2π·f·t for dim/2 geometric frequencies f (t in [0, 1])."""
    frequencies = np.geomspace(0.5, max_frequency, dim // 2)
    angles = 2 * np.pi * t[:, None] * frequencies[None, :]
    code = np.concatenate([np.sin(angles), np.cos(angles)], axis=1) * np.sqrt(2.0 / (dim // 2 * 2))
    return np.pad(code, ((0, 0), (0, dim - code.shape[1])))


def value_codes(dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float-vocabulary ids, [n, dim] value codes, kinds 0 sign / 1 mantissa / 2 exponent) of every sign,
    mantissa and exponent word."""
    sign_of, mantissa_of, exponent_of = token_meanings()
    sign_ids = np.flatnonzero(~np.isnan(sign_of))
    ids, codes = [sign_ids], [sign_of[sign_ids, None] * np.full((1, dim), dim**-0.5)]
    for name, meaning, low, span in (("mantissa", mantissa_of, 0.0, 10_000.0),
                                     ("exponent", exponent_of, -100.0, 201.0)):
        kind_ids = np.flatnonzero(~np.isnan(meaning))
        ids.append(kind_ids)
        codes.append(fourier_code((meaning[kind_ids] - low) / span, dim, _MAX_FREQUENCY[name]))
    kinds = np.concatenate([np.full(len(i), k) for k, i in enumerate(ids)])
    return np.concatenate(ids), np.concatenate(codes), kinds


def float_embedding_init(kind: str, dim: int, float_offset: int = 0):
    """Embedding initialiser: 'official' (N(0, dim^-0.5) for every row) or 'value' (rows float_offset + id of
    the float words hold (value code + kind code) / sqrt(2), unit norm on average, like the official rows)."""
    if kind not in FLOAT_INITS:
        raise ValueError(f"config.model.float_init must be one of {FLOAT_INITS}, got {kind!r}")
    official = embedding_init(dim)
    if kind == "official":
        return official

    def init(key, shape, dtype=jnp.float32):
        table = official(key, shape, dtype)  # the other rows are exactly the official draw
        kind_key = jax.random.fold_in(key, 1)
        ids, codes, kinds = value_codes(dim)
        # One random unit vector per kind (sign, mantissa, exponent), so a sequence model tells them apart.
        kind_codes = jax.random.normal(kind_key, (3, dim), jnp.float32) * dim**-0.5
        rows = (jnp.asarray(codes, jnp.float32) + kind_codes[kinds]) / np.sqrt(2.0)
        return table.at[ids + float_offset].set(rows.astype(dtype))

    return init

