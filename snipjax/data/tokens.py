"""Model inputs: float-token ids of points and equation-token ids of prefix expressions."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from snipjax.data import floats
from snipjax.data.expressions import Expression, is_constant
from snipjax.data.vocab import TOKENS_PER_FLOAT, get_vocab


def point_width(max_dim: int) -> int:
    """Tokens per point: sign, mantissa and exponent of x_0..x_{max_dim-1} and of y."""
    return TOKENS_PER_FLOAT * (max_dim + 1)


def encode_points(x, y, max_dim: int) -> np.ndarray:
    """int32 [N, 3 * (max_dim + 1)]: the tokens of x_0..x_{D-1}, `<INPUT_PAD>` for missing dims, then y."""
    return encode_point_sets([x], [y], max_dim)[0]


def _checked_points(x, y, max_dim: int, n: int | None) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"expected x [N, D] and y [N], got x {x.shape} and y {y.shape}")
    if x.shape[1] > max_dim:
        raise ValueError(f"x has {x.shape[1]} input dimensions but the model was trained for at most {max_dim}")
    if n is not None and len(y) != n:
        raise ValueError(f"all point sets of a batch need the same number of points: {len(y)} vs {n}")
    return x, y


def encode_point_sets(xs: Sequence, ys: Sequence, max_dim: int) -> np.ndarray:
    """int32 [B, N, 3 * (max_dim + 1)] for B point sets of N points each, tokenized in one vectorized pass."""
    n = len(ys[0])
    values = np.zeros((len(ys), n, max_dim + 1))
    dims = np.empty(len(ys), dtype=np.int64)
    for row, (x, y) in enumerate(zip(xs, ys)):
        x, y = _checked_points(x, y, max_dim, n)
        values[row, :, : x.shape[1]] = x
        values[row, :, max_dim] = y
        dims[row] = x.shape[1]
    if not np.isfinite(values).all():  # one pass for the batch; the message names the set, point and column
        floats.check_finite(values[..., :max_dim], "x values")
        floats.check_finite(values[..., max_dim], "y values")
    present = np.arange(max_dim + 1) < dims[:, None]  # [B, max_dim + 1]: the set's inputs, and y
    present[:, max_dim] = True
    if present.all():
        ids = floats.encode_finite(values)
    else:  # only values that are there are encoded: at Dmax 10 about half the columns are padding
        ids = np.full(values.shape + (3,), get_vocab(max_dim).input_pad_id, dtype=np.int32)
        where = np.ascontiguousarray(np.broadcast_to(present[:, None, :], values.shape))
        # A value's three ids as one 12-byte item: a masked write of items is ~20x faster than of [3] rows.
        ids.view("V12")[..., 0][where] = floats.encode_finite(values[where]).view("V12")[:, 0]
    return ids.reshape(len(ys), n, point_width(max_dim))


def sequence_length(expression: Expression) -> int:
    """Symbolic positions the expression takes: its tokens (3 per constant) between two `<EOS>`."""
    return expression.n_nodes + (TOKENS_PER_FLOAT - 1) * len(expression.constants) + 2


def expression_ids(expression: Expression, max_dim: int) -> np.ndarray:
    """Equation-vocabulary ids of the prefix, each constant as its three float tokens."""
    vocab = get_vocab(max_dim)
    if expression.input_dim > max_dim:
        raise ValueError(
            f"expression uses x_{expression.input_dim - 1} but the model knows only x_0..x_{max_dim - 1}")
    ids, offset, equation_id = [], vocab.n_symbols, vocab.equation_id
    for token in expression.prefix:
        if is_constant(token):
            sign, mantissa, exponent = floats.encode_scalar(token)
            ids += (sign + offset, mantissa + offset, exponent + offset)
        else:
            ids.append(equation_id[token])
    return np.asarray(ids, dtype=np.int32)


def _as_expression(item) -> Expression:
    from snipjax.data.formulas import as_expression  # sympy loads only when formulas are given

    return as_expression(item)


def encode_expressions(expressions: Sequence, max_dim: int, max_len: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(ids int32 [B, max_len], lengths int32 [B]): `<EOS>` prefix `<EOS>`, then `<PAD>`.

    Items may be Expressions, formula strings or sympy expressions.
    """
    vocab = get_vocab(max_dim)
    ids = np.full((len(expressions), max_len), vocab.pad_id, dtype=np.int32)
    lengths = np.empty(len(expressions), dtype=np.int32)
    for row, item in enumerate(expressions):
        expression = item if isinstance(item, Expression) else _as_expression(item)
        length = sequence_length(expression)
        if length > max_len:
            raise ValueError(f"expression {row} needs {length} tokens, more than max_len={max_len}")
        ids[row, 0] = ids[row, length - 1] = vocab.eos_id
        ids[row, 1:length - 1] = expression_ids(expression, max_dim)
        lengths[row] = length
    return ids, lengths


def power_of_two(n: int, smallest: int = 1) -> int:
    """`n` rounded up to a power of two (at least `smallest`): sizes padded so, so that arrays of many sizes
    share a few compiled shapes."""
    return max(smallest, 1 << max(n - 1, 0).bit_length())


def bucketed_length(symbol_len: np.ndarray, bucket: int, max_len: int) -> int:
    """Positions a batch of symbol sequences needs: its longest, rounded up to a multiple of `bucket` so that
    few distinct shapes are compiled, and at most `max_len`; bucket 0 keeps `max_len`."""
    if bucket <= 0:
        return max_len
    return min(max_len, -(-int(np.max(symbol_len)) // bucket) * bucket)


def trim_symbols(batch: dict, length: int) -> dict:
    """The batch with its symbol sequences cut to `length` positions (only padding may be cut)."""
    if int(np.max(batch["symbol_len"])) > length:
        raise ValueError(f"cannot cut symbol sequences of up to {int(np.max(batch['symbol_len']))} tokens to {length}")
    return {**batch, "symbols": batch["symbols"][:, :length]}
