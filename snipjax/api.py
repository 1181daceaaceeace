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
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from snipjax import checkpoint, models, parallel
from snipjax.data import floats, tokens
from snipjax.data.points import normalize_outputs, standardize_inputs
from snipjax.data.vocab import get_vocab


def load(path: str) -> tuple[ml_collections.ConfigDict, dict]:
    """(config, params) from an export dir (`config.json` + `params/`) or a training workdir's latest
    checkpoint; the params are placed on the default device."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load takes the path of a training workdir or an export dir, got {type(path).__name__}")
    config, params = checkpoint.load_params(path)
    return config, jax.device_put(params)


@functools.cache
def _encoders(config: ml_collections.FrozenConfigDict):
    model = models.make_snip(config, parallel.kernels_for(config))
    numeric = jax.jit(lambda params, points: model.apply({"params": params}, points, method="encode_numeric"))
    symbolic = jax.jit(lambda params, symbols, lengths: model.apply(
        {"params": params}, symbols, lengths, method="encode_symbolic"))
    return numeric, symbolic


def _check_pair(params, config) -> None:
    """Raise if params and config are swapped or are not what `snipjax.load` returns."""
    if not isinstance(config, ml_collections.ConfigDict) or "data" not in config or "model" not in config:
        hint = " (params and config swapped?)" if isinstance(params, ml_collections.ConfigDict) else ""
        raise TypeError(f"config= must be the model's ConfigDict, the first of `config, params = snipjax.load(path)`;"
                        f" got a {type(config).__name__}{hint}")
    if not isinstance(params, dict):
        raise TypeError(f"params must be the parameter dict, the second of `config, params = snipjax.load(path)`; "
                        f"got a {type(params).__name__}")


def _check_count(name: str, value, low: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_ids(name: str, ids: np.ndarray, size: int) -> None:
    """Raise naming the first id outside the vocabulary [0, size): the embedding lookup would clamp it."""
    bad = (ids < 0) | (ids >= size)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} holds ids outside the vocabulary 0..{size - 1} (first: {ids[where]} at index "
                         f"{where}): build them with snipjax.data.tokens")


def _in_chunks(encode, arrays: Sequence[np.ndarray], batch_size: int, width: int) -> jax.Array:
    """Apply `encode` to row chunks of `arrays`, padding each chunk to a power of two (at most `batch_size`)
    by repeating its last row, so that any number of rows compiles only a few shapes; no rows give [0, width]."""
    _check_count("batch_size", batch_size, 1)
    n = len(arrays[0])
    if n == 0:
        return jnp.zeros((0, width), jnp.float32)
    chunk = min(batch_size, tokens.power_of_two(n))
    outputs = []
    for start in range(0, n, chunk):
        rows = [a[start:start + chunk] for a in arrays]
        pad = chunk - len(rows[0])
        rows = [np.concatenate([r, np.repeat(r[-1:], pad, axis=0)]) for r in rows]
        outputs.append(encode(*rows)[:chunk - pad])
    return jnp.concatenate(outputs)


def encode_numeric_tokens(params, points, *, config: ml_collections.ConfigDict, batch_size: int = 256) -> jax.Array:
    """Latents [B, latent_dim] of point sets given as float-token ids [B, N, 3·(Dmax+1)] (as the training
    batches hold them, `snipjax.data.tokens.encode_point_sets`): the exact input, no preprocessing."""
    _check_pair(params, config)
    points = np.asarray(points, dtype=np.int32)
    width = tokens.point_width(config.data.max_dim)
    if points.ndim != 3 or points.shape[-1] != width:
        raise ValueError(f"points must be float-token ids [B, N, {width}] for a model of Dmax "
                         f"{config.data.max_dim}, got shape {points.shape}")
    _check_ids("points", points, get_vocab(config.data.max_dim).float_size)
    return _numeric_latents(params, points, config, batch_size)


def _numeric_latents(params, points: np.ndarray, config: ml_collections.ConfigDict, batch_size: int) -> jax.Array:
    """`encode_numeric_tokens` of ids known to be valid (checked there, or made by tokens.encode_point_sets)."""
    numeric, _ = _encoders(ml_collections.FrozenConfigDict(config))
    return _in_chunks(functools.partial(numeric, params), [points], batch_size, config.model.latent_dim)


def encode_symbolic_tokens(params, symbols, symbol_len, *, config: ml_collections.ConfigDict,
                           batch_size: int = 256) -> jax.Array:
    """Latents [B, latent_dim] of expressions given as equation-token ids [B, T] and lengths [B] (`<EOS>`
    prefix `<EOS>` then padding, as `snipjax.data.tokens.encode_expressions` writes them)."""
    _check_pair(params, config)
    _check_symbolic(params)
    symbols, symbol_len = np.asarray(symbols, dtype=np.int32), np.asarray(symbol_len, dtype=np.int32)
    if symbols.ndim != 2 or symbol_len.shape != symbols.shape[:1]:
        raise ValueError(f"symbols must be [B, T] ids with symbol_len [B], got {symbols.shape} and "
                         f"{symbol_len.shape}")
    _check_ids("symbols", symbols, get_vocab(config.data.max_dim).equation_size)
    if ((symbol_len < 2) | (symbol_len > symbols.shape[1])).any():
        raise ValueError(f"symbol_len must count both <EOS> and lie in 2..{symbols.shape[1]} (the width of "
                         f"symbols), got {symbol_len.min()}..{symbol_len.max()}")
    _, symbolic = _encoders(ml_collections.FrozenConfigDict(config))
    return _in_chunks(functools.partial(symbolic, params), [symbols, symbol_len], batch_size,
                      config.model.latent_dim)


def _point_subsets(n: int, n_points: int, count: int, seed: int) -> np.ndarray:
    """[count, n_points] sorted row indices: random subsets of n rows (the identity when n == n_points)."""
    if n == n_points:
        return np.arange(n)[None]
    rng = np.random.default_rng(seed)
    return np.stack([np.sort(rng.choice(n, n_points, replace=False)) for _ in range(count)])


def _real_array(name: str, values) -> np.ndarray:
    """`values` as a float64 array; complex values, text and ragged lists raise naming the argument."""
    try:
        array = np.asarray(values)
        if not np.iscomplexobj(array):
            return array.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be an array of real numbers, of one length per axis ({error})") from None
    raise ValueError(f"{name} is complex; SNIP encodes real values: pass the real part (np.real) or the modulus "
                     "explicitly")


def _normalized(name: str, values: np.ndarray, normalize) -> np.ndarray:
    """`normalize(values)`, raising where it overflows: numpy would only warn, and a standard deviation that
    overflows to inf scales every point to 0, the latent of a constant dataset."""
    try:
        with np.errstate(over="raise", invalid="raise"):
            return normalize(values)
    except FloatingPointError:
        raise ValueError(f"{name} is too large to normalize: its spread overflows float64 (largest |value| "
                         f"{np.max(np.abs(values)):.3g}); rescale it, or normalize it yourself and pass "
                         "normalize=False") from None


def encode_numeric(params, X, y, *, config: ml_collections.ConfigDict, normalize: bool = True,
                   subsamples: int = 1, reduce: str | None = "mean", seed: int = 0,
                   allow_fewer_points: bool = False, batch_size: int = 256) -> jax.Array:
    """Latents [B, latent_dim] of B datasets of N points each.

    X: [N, D] or [N] (one dataset) or [B, N, D] or [B, N] (a batch), any float dtype; y: [N] or [B, N].
    D may be at most `config.data.max_dim`. With `normalize=True` the points get the training data's
    preprocessing: each input dimension standardized over the points and, for models trained with
    `data.normalize_y` (the 1-D model), y min-max scaled to [0, 1]. Pass `normalize=False` if that is done.

    The models saw exactly `config.data.n_points` (200) points per dataset, in the generator's order, and the
    official-style encoder has learned positions, so count and order change the latent. More points are
    subsampled to n_points (rows kept in their order; `subsamples` random subsets drawn with `seed`, their
    latents averaged, or returned as [B, subsamples, latent_dim] with `reduce=None`). Fewer points raise an
    error unless `allow_fewer_points=True`.
    """
    _check_pair(params, config)
    X, y = _real_array("X", X), _real_array("y", y)
    _check_count("subsamples", subsamples, 1)
    _check_count("seed", seed, 0)
    for name, flag in (("normalize", normalize), ("allow_fewer_points", allow_fewer_points)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {flag!r}")
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be [N] (one dataset) or [B, N] (a batch), got shape {y.shape}")
    if X.ndim == y.ndim:
        X = X[..., None]  # one input dimension
    if X.ndim != y.ndim + 1 or X.shape[:-1] != y.shape:
        raise ValueError(f"X must be y's shape {y.shape} plus an optional trailing input dimension D, "
                         f"got X {X.shape}")
    if y.size == 0 or X.shape[-1] == 0:
        raise ValueError(f"X and y hold no data (X {X.shape}, y {y.shape}): each dataset needs points")
    max_dim = config.data.max_dim
    if X.shape[-1] > max_dim:
        raise ValueError(f"X has {X.shape[-1]} input dimensions, but this model takes at most {max_dim} "
                         f"(config.data.max_dim); use a model trained with max_dim >= {X.shape[-1]}")
    n, n_points = X.shape[-2], config.data.n_points
    if n < n_points and not allow_fewer_points:
        raise ValueError(f"{n} points per dataset, but the model was trained on exactly {n_points}: sample "
                         f"{n_points} points, or pass allow_fewer_points=True to encode {n} (positions the model "
                         "saw filled, so the latent differs from a full set's)")
    if reduce not in ("mean", None):
        raise ValueError(f"reduce must be 'mean' or None, got {reduce!r}")
    floats.check_finite(X, "X")
    floats.check_finite(y, "y")
    if y.ndim == 1:
        X, y = X[None], y[None]
    subsets = _point_subsets(n, min(n, n_points), subsamples if n > n_points else 1, seed)
    X = X[:, subsets].reshape(-1, subsets.shape[1], X.shape[-1])  # [B * subsets, n_points, D]
    y = y[:, subsets].reshape(-1, subsets.shape[1])
    if normalize:
        X = _normalized("X", X, standardize_inputs)
        if config.data.normalize_y:
            y = _normalized("y", y, lambda rows: np.stack([normalize_outputs(row) for row in rows]))
    points = tokens.encode_point_sets(list(X), list(y), max_dim)
    z = _numeric_latents(params, points, config, batch_size)  # ids of our own encoding: checked already
    z = z.reshape(-1, len(subsets), z.shape[-1])
    if reduce is None and n > n_points:
        return z
    return z.mean(axis=1)


def _check_symbolic(params) -> None:
    if "symbolic_encoder" not in params:
        raise ValueError("these parameters have no symbolic encoder: a symbolic-regression release such as "
                         "snip-e2e-sr.pth holds the numeric encoder, mapper and decoder only")


def encode_symbolic(params, exprs, *, config: ml_collections.ConfigDict, batch_size: int = 256) -> jax.Array:
    """Latents [B, latent_dim] of B formulas: strings such as "sin(x_0) + 2.5*x_1", sympy expressions or
    `snipjax.data.expressions.Expression`s (a single one is taken as a batch of one). Strings and sympy
    expressions take the generator's canonical prefix (`snipjax.data.formulas.parse`). Variables are
    x_0 .. x_{max_dim-1}; constants keep 4 significant digits, as the model's float tokens do."""
    _check_pair(params, config)
    _check_symbolic(params)
    if isinstance(exprs, str) or not isinstance(exprs, Sequence):
        exprs = [exprs]
    symbols, lengths = tokens.encode_expressions(list(exprs), config.data.max_dim, config.data.max_len)
    return encode_symbolic_tokens(params, symbols, lengths, config=config, batch_size=batch_size)
