"""Float tokens read by the values they stand for: embeddings initialised from codes of the values
(`config.model.float_init='value'`), points fed to the numeric encoder as features of their values
(`config.model.point_input='values'`), or an expression's constants fed to the symbolic encoder that way
(`config.model.constant_input='values'`).

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
FLOAT_INPUTS = ("tokens", "values")  # choices of point_input and constant_input
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


# Frequencies of the point-value features, over symlog(v) = sign(v)·ln(1 + |v|): from a cycle per ~13 units
# (the spread of the sampled inputs) to 64 radians per unit (min-max outputs 0.01 apart differ by 0.6 rad).
_VALUE_FREQUENCIES = (0.5, 64.0)


def point_value_features(points: jax.Array, width: int) -> jax.Array:
    """[..., 3·k] float-token ids (k values of sign, mantissa, exponent) → [..., k·width] features per value:
    a presence flag (0 for <INPUT_PAD>), symlog(v), and sines and cosines of symlog(v) at geometric
    frequencies. Computed from the digits without forming v, so exponents up to E100 cannot overflow."""
    sign_of, mantissa_of, exponent_of = token_meanings()
    triples = points.reshape(*points.shape[:-1], -1, 3)
    present = jnp.asarray(~np.isnan(sign_of))[triples[..., 0]]
    sign, mantissa, exponent = (jnp.asarray(np.nan_to_num(t), jnp.float32)[triples[..., i]]
                                for i, t in enumerate((sign_of, mantissa_of, exponent_of)))
    symlog = sign * jnp.logaddexp(0.0, jnp.log(mantissa) + exponent * np.log(10.0))  # log(0) → -inf → 0
    frequencies = jnp.asarray(np.geomspace(*_VALUE_FREQUENCIES, (width - 2) // 2), jnp.float32)
    angles = symlog[..., None] * frequencies
    features = jnp.concatenate([jnp.ones_like(symlog)[..., None], symlog[..., None], jnp.sin(angles),
                                jnp.cos(angles)], axis=-1) * present[..., None]
    features = jnp.pad(features, [(0, 0)] * (features.ndim - 1) + [(0, width - features.shape[-1])])
    return features.reshape(*points.shape[:-1], -1)


def read_constants(symbols: jax.Array, float_offset: int, width: int) -> tuple[jax.Array, jax.Array]:
    """Equation ids [B, T] → (the ids with every sign, mantissa and exponent word replaced by one word of its
    kind, [B, T, width] value features of each constant at its sign position, zero elsewhere). A constant is
    three consecutive words: sign, mantissa, exponent."""
    sign_of, mantissa_of, exponent_of = token_meanings()
    kind = np.select([~np.isnan(sign_of), ~np.isnan(mantissa_of), ~np.isnan(exponent_of)], [0, 1, 2], -1)
    first_of_kind = np.array([np.flatnonzero(kind == k)[0] for k in range(3)])
    float_ids = jnp.maximum(symbols - float_offset, 0)
    symbol_kind = jnp.where(symbols >= float_offset, jnp.asarray(kind)[float_ids], -1)
    merged = jnp.where(symbol_kind >= 0, jnp.asarray(first_of_kind)[jnp.maximum(symbol_kind, 0)] + float_offset,
                       symbols)
    following = [jnp.pad(float_ids[:, shift:], ((0, 0), (0, shift))) for shift in (1, 2)]
    triples = jnp.stack([float_ids, *following], axis=-1)
    features = point_value_features(triples, width) * (symbol_kind == 0)[..., None]
    return merged, features
