"""Float tokens: each value becomes a sign, a 4-digit mantissa and a base-10 exponent (the official rules).

A value v is written as `%.3e`: the sign is `+` when v >= 0 (so -0.0 gives `+`), the mantissa token holds the
four digits without the point and the exponent token is `E{e-3}`, so that v = sign * mantissa * 10**(e-3).
Exponents below E-100 flush to `N0000 E0` (zero); exponents above E100 cannot be written.

Encoding is vectorized: the digits come from floating-point arithmetic, and the few values whose rounding
that arithmetic cannot decide (a digit tail within 1e-6 of one half) are formatted exactly by Python.
"""

from __future__ import annotations

import functools

import numpy as np

from snipjax.data.vocab import MAX_EXPONENT, float_words

_AMBIGUOUS_HALF = 1e-6  # slack of the fast path's last digit; a handful of values per million fall inside
_POW10_RANGE = 300
_CHUNK = 8192
_POW10 = np.array([10.0**k for k in range(-_POW10_RANGE, _POW10_RANGE + 1)])


@functools.cache
def _tables():
    word_id = {w: i for i, w in enumerate(float_words())}
    sign_ids = np.array([word_id["+"], word_id["-"]], dtype=np.int32)
    mantissa_ids = np.array([word_id[f"N{m:04d}"] for m in range(10_000)], dtype=np.int32)
    exponent_ids = np.array([word_id[f"E{e}"] for e in range(-MAX_EXPONENT, MAX_EXPONENT + 1)], np.int32)
    # Inverse tables for decoding: what each id means (NaN where the id is not of that kind).
    n = len(word_id)
    sign_of = np.full(n, np.nan)
    sign_of[sign_ids] = [1.0, -1.0]
    mantissa_of = np.full(n, np.nan)
    mantissa_of[mantissa_ids] = np.arange(10_000)
    exponent_of = np.full(n, np.nan)
    exponent_of[exponent_ids] = np.arange(-MAX_EXPONENT, MAX_EXPONENT + 1)
    return sign_ids, mantissa_ids, exponent_ids, sign_of, mantissa_of, exponent_of


def token_meanings() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per float-vocabulary id: its sign (±1), mantissa digits (0..9999) and exponent (-100..100), each NaN
    where the id is not a word of that kind."""
    *_, sign_of, mantissa_of, exponent_of = _tables()
    return sign_of.copy(), mantissa_of.copy(), exponent_of.copy()


def check_finite(values: np.ndarray, what: str = "values") -> None:
    """Raise a ValueError naming the first NaN or infinite entry."""
    bad = ~np.isfinite(values)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        count = int(bad.sum())
        raise ValueError(
            f"{what} holds {count} non-finite {'entry' if count == 1 else 'entries'} (first: {values[where]!r} at "
            f"index {where}); "
            "SNIP tokenizes finite numbers only: drop or impute these points first"
        )


def _scientific(value: float) -> tuple[int, int]:
    """Digits and decimal exponent of `%.3e`, exactly (Python's correctly rounded formatting)."""
    mantissa, exponent = f"{abs(value):.3e}".split("e")
    return int(mantissa.replace(".", "")), int(exponent)


@functools.lru_cache(maxsize=65_536)
def encode_scalar(value: float) -> tuple[int, int, int]:
    """Ids of one value; cached, since sampled constants repeat (2 signs x 999 mantissas x 3 exponents)."""
    check_finite(np.array([value]), "constants")
    sign_ids, mantissa_ids, exponent_ids, *_ = _tables()
    digits, exponent = _scientific(value)
    exponent -= 3
    if exponent > MAX_EXPONENT:
        raise ValueError(_too_large(value))
    if exponent < -MAX_EXPONENT:
        digits, exponent = 0, 0
    return int(sign_ids[int(value < 0)]), int(mantissa_ids[digits]), int(exponent_ids[exponent + MAX_EXPONENT])


def _too_large(value) -> str:
    return f"value {value!r} is too large for float tokens (|v| must be below 1e{MAX_EXPONENT + 4})"


def mantissa_exponent(values) -> tuple[np.ndarray, np.ndarray]:
    """Digits (0..9999) and exponent (e-3) of `%.3e` for each |value|, before the flush to zero."""
    a = np.abs(np.asarray(values, dtype=np.float64))
    nonzero = a > 0
    e = np.floor(np.log10(np.where(nonzero, a, 1.0))).astype(np.int64)
    shift = np.clip(3 - e, -_POW10_RANGE, _POW10_RANGE)
    out_of_table = shift != 3 - e  # subnormals: Python decides them below
    scaled = a * _POW10[shift + _POW10_RANGE]
    digits = np.rint(scaled)
    carry = digits >= 10_000  # 9999.5 and above round up into the next decade
    digits = np.where(carry, 1_000, digits)
    e = e + carry
    # Python decides the rare values the arithmetic cannot: a digit tail too close to one half, or a
    # log10 that rounded across a decade boundary.
    tail = scaled - np.floor(scaled)
    exact = nonzero & ((np.abs(tail - 0.5) < _AMBIGUOUS_HALF) | (digits < 1_000) | out_of_table)
    flat_a, flat_digits, flat_e = a.reshape(-1), digits.reshape(-1), e.reshape(-1)
    for i in np.flatnonzero(exact):
        flat_digits[i], flat_e[i] = _scientific(flat_a[i])
    digits, e = flat_digits.reshape(a.shape), flat_e.reshape(a.shape)
    digits = np.where(nonzero, digits, 0).astype(np.int64)
    e = np.where(nonzero, e, 0)
    return digits, e - 3


def encode(values) -> np.ndarray:
    """Float-vocabulary ids of shape values.shape + (3,): sign, mantissa, exponent."""
    values = np.asarray(values, dtype=np.float64)
    check_finite(values)
    return encode_finite(values)


def encode_finite(values: np.ndarray) -> np.ndarray:
    """`encode` of float64 values the caller has checked to be finite."""
    flat = values.reshape(-1)
    out = np.empty((flat.size, 3), dtype=np.int32)
    # Cache-sized chunks: large temporaries would spend more time in page faults than in arithmetic.
    for start in range(0, flat.size, _CHUNK):
        out[start:start + _CHUNK] = _encode_flat(flat[start:start + _CHUNK])
    return out.reshape(values.shape + (3,))


def _encode_flat(values: np.ndarray) -> np.ndarray:
    sign_ids, mantissa_ids, exponent_ids, *_ = _tables()
    digits, exponent = mantissa_exponent(values)
    if (exponent > MAX_EXPONENT).any():
        raise ValueError(_too_large(values[np.argmax(exponent)]))
    tiny = exponent < -MAX_EXPONENT
    out = np.empty((values.size, 3), dtype=np.int32)
    out[:, 0] = sign_ids[(values < 0).astype(np.int64)]
    out[:, 1] = mantissa_ids[np.where(tiny, 0, digits)]
    out[:, 2] = exponent_ids[np.where(tiny, 0, exponent) + MAX_EXPONENT]
    return out


def decode(ids) -> np.ndarray:
    """Values of float-token triples [..., 3]; NaN where a triple is not sign, mantissa, exponent."""
    ids = np.asarray(ids)
    *_, sign_of, mantissa_of, exponent_of = _tables()
    sign = sign_of[ids[..., 0]]
    mantissa = mantissa_of[ids[..., 1]]
    exponent = exponent_of[ids[..., 2]]
    with np.errstate(over="ignore"):
        return sign * mantissa * np.power(10.0, exponent)
