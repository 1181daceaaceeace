import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snipjax.data import floats
from snipjax.data.vocab import float_words

WORDS = float_words()


def official_words(value: float) -> list[str]:
    """The official rule, written from its description: '%.3e', sign v >= 0 -> '+', flush below E-100."""
    sign = "+" if value >= 0 else "-"
    mantissa, exponent = (f"{value:.3e}").split("e")
    digits = mantissa.lstrip("-").replace(".", "")
    exponent = int(exponent) - 3
    if exponent < -100:
        digits, exponent = "0000", 0
    return [sign, "N" + digits, f"E{exponent}"]


def words(ids) -> list[str]:
    return [WORDS[i] for i in ids]


BOUNDARY = [0.0, -0.0, 1.0, -1.0, 9.9995, 9.99949999, 9.9996e-98, 9.9994e-98, 1e-97, 1e-100, 1e-103,
            9.999e-104, 1e-300, 5e-324, -5e-324, 2.2250738585072014e-308, 999.95, 1000.0, 0.001, 123.45,
            1.2345e103, 9.999e103, -9.999e103, 9.99949e103, 0.5, 2.5, 1e16, 1.7976931348623157e308 / 1e205]


@pytest.mark.parametrize("value", BOUNDARY)
def test_boundary_values_match_official_rule(value):
    assert words(floats.encode(np.array([value]))[0]) == official_words(value)
    assert words(floats.encode_scalar(value)) == official_words(value)


def test_negative_zero_is_plus_and_zero_decodes_to_zero():
    ids = floats.encode(np.array([-0.0, 0.0]))
    assert words(ids[0]) == ["+", "N0000", "E-3"] == words(ids[1])
    assert floats.decode(ids).tolist() == [0.0, 0.0]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, min_value=-9.9e103, max_value=9.9e103),
                min_size=1, max_size=64))
def test_vectorized_encoding_equals_official_rule(values):
    ids = floats.encode(np.array(values))
    assert [words(row) for row in ids] == [official_words(v) for v in values]


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-9.9e103, max_value=9.9e103))
def test_round_trip_keeps_four_significant_digits(value):
    decoded = floats.decode(floats.encode(np.array([value])))[0]
    if abs(value) < 1e-97:  # flushed to zero, or rounded at the bottom of the exponent range
        assert abs(decoded) <= 1e-96
    else:
        assert math.isclose(decoded, value, rel_tol=5.001e-4)


def test_dense_random_arrays_match_official_rule():
    rng = np.random.default_rng(0)
    values = rng.normal(size=20_000) * 10.0 ** rng.integers(-110, 100, 20_000)
    values = np.concatenate([values, np.round(rng.normal(size=5_000), 4), rng.integers(-99_999, 99_999, 5_000) / 1e3])
    ids = floats.encode(values.reshape(100, 300))
    flat = ids.reshape(-1, 3)
    assert all(words(row) == official_words(v) for row, v in zip(flat, values))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_raise_naming_the_problem(bad):
    with pytest.raises(ValueError, match="non-finite"):
        floats.encode(np.array([1.0, bad]))


@pytest.mark.parametrize("value", [9.9995e103, 1e104, -1e200])
def test_too_large_value_raises(value):
    with pytest.raises(ValueError, match="too large"):
        floats.encode(np.array([value]))
    with pytest.raises(ValueError, match="too large"):
        floats.encode_scalar(value)


def test_decode_marks_malformed_triples_as_nan():
    ids = floats.encode(np.array([1.5]))
    assert np.isnan(floats.decode(ids[:, ::-1]))[0]
