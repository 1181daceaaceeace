import numpy as np
import pytest

from snipjax.data import points, properties
from snipjax.data.draws import Draws
from snipjax.data.expressions import Expression


@pytest.mark.parametrize("dim", [1, 3, 10])
def test_inputs_are_standardized_per_dimension(dim):
    rng = np.random.default_rng(dim)
    for _ in range(20):
        x = points.sample_inputs(Draws(rng), dim, 200)
        assert x.shape == (200, dim)
        np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose(x.std(axis=0), 1.0, rtol=1e-12)


def test_rotations_are_proper_and_orthonormal():
    r = points.rotations_from_normals(np.random.default_rng(0).standard_normal((50, 5, 5)))
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(5), (50, 5, 5)), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, rtol=1e-12)


def test_output_validity_and_normalization():
    assert points.valid_outputs(np.array([1.0, -9e102]))
    assert not points.valid_outputs(np.array([1.0, 1e103]))
    assert not points.valid_outputs(np.array([1.0, np.nan]))
    assert not points.valid_outputs(np.array([np.inf, 0.0]))
    y = points.normalize_outputs(np.array([2.0, 4.0, 3.0]))
    np.testing.assert_allclose(y, [0.0, 1.0, 0.5], atol=1e-9)


def grid_properties(formula_prefix, low=-3.0, high=3.0):
    x = np.random.default_rng(0).permutation(np.linspace(low, high, 200))[:, None]  # unsorted on purpose
    y = Expression(formula_prefix).evaluate(x)
    return properties.properties(x, y, np.random.default_rng(1))


def test_convex_function_has_ncr_zero_and_concave_one():
    assert grid_properties(("pow2", "x_0"))["ncr"] == 0.0
    assert grid_properties(("mul", -1.0, "pow2", "x_0"))["ncr"] == 1.0


def test_increasing_function_has_upwardness_0995():
    props = grid_properties(("mul", 10.0, "x_0"))
    assert props["upwardness"] == pytest.approx(199 / 200)
    assert grid_properties(("mul", -10.0, "x_0"))["upwardness"] == pytest.approx(-199 / 200)
    assert props["oscillation"] == 0.0


def test_sine_over_several_periods_oscillates():
    # sin(5x) on [-3, 3] has 10 extrema inside the interval: 10 direction changes.
    x = np.linspace(-3, 3, 200)[:, None]
    y = np.sin(5 * x[:, 0])
    props = properties.properties(x, y, np.random.default_rng(0))
    assert props["oscillation"] == pytest.approx(np.log(1 + 10))
    assert 0.3 < props["ncr"] < 0.7


def test_oscillation_start_rule_counts_a_first_rise_after_a_flat_start():
    y = np.array([0.0, 0.0, 1.0, 2.0, 1.0])  # flat first step: the walk starts 'down', so rise = change
    assert properties.oscillation(y) == pytest.approx(np.log(1 + 2))


def test_yavg_is_mean_of_normalized_y():
    assert properties.mean_normalized(np.array([1.0, 3.0, 2.0, 2.0])) == pytest.approx(0.5)


def test_triplets_are_distinct_and_sorted():
    t = properties.random_triplets(np.random.default_rng(0), 5, 1000)
    assert (t[:, 0] < t[:, 1]).all() and (t[:, 1] < t[:, 2]).all()
    assert len({tuple(row) for row in t}) == 10  # all 5-choose-3 subsets show up


def test_properties_need_three_points():
    with pytest.raises(ValueError, match="at least 3 points"):
        properties.properties(np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.random.default_rng(0))
