"""The compiled prefix-program evaluator and the batched L-BFGS refit of constants."""

import numpy as np
import pytest

from snipjax.data import benchmarks
from snipjax.data.expressions import Expression
from snipjax.data.formulas import FormulaError, parse
from snipjax.tasks.sr import constants


def test_the_evaluator_equals_sympy_on_every_feynman_formula_it_can_express():
    expressible, values, expected = [], [], []
    for problem in benchmarks.srbench_feynman():
        try:
            expression = problem.expression()
        except FormulaError:
            continue
        x, y = problem.sample(64, seed=0)
        expressible.append(expression)
        values.append(constants.evaluate_programs(constants.compile_programs([expression], x.shape[1]), x)[0])
        expected.append(y)
    assert len(expressible) == 118  # all but II.35.21, whose tanh SNIP's operators cannot write
    for expression, value, y in zip(expressible, values, expected):
        # float32 against float64: relative to the formula's scale where terms cancel
        np.testing.assert_allclose(value, y, rtol=2e-4, atol=1e-5 * np.abs(y).max(), err_msg=str(expression))


def test_a_population_of_different_formulas_evaluates_in_one_call_as_numpy_does():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(50, 2))
    population = [parse(f) for f in ("x_0", "2.5*sin(1.3*x_0) + 0.7", "log(x_0)*x_1", "sqrt(x_0)",
                                     "arcsin(x_1/3)", "x_0**x_1", "1/x_0 - exp(x_1)/3.5", "tan(x_0)**3")]
    values = constants.evaluate_programs(constants.compile_programs(population, 2), x)
    for expression, value in zip(population, values):
        reference = expression.evaluate(x)
        np.testing.assert_array_equal(np.isnan(value), np.isnan(reference), err_msg=str(expression))
        np.testing.assert_allclose(value[~np.isnan(value)], reference[~np.isnan(reference)], rtol=1e-4,
                                   err_msg=str(expression))


@pytest.mark.parametrize("seed", [0, 1])
def test_batched_lbfgs_recovers_the_constants_of_known_formulas(seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 3.0, size=(300, 2))
    truths = [parse("2.5*sin(1.3*x_0) + 0.7"), parse("0.8*x_0**2 - 1.7*x_1"), parse("3.2*exp(-0.6*x_0)*x_1"),
              parse("x_0/(x_1 + 1.9)")]
    starts = [Expression(tuple(t * rng.uniform(0.7, 1.3) if type(t) is float else t for t in e.prefix))
              for e in truths]
    for truth, start in zip(truths, starts):
        y = truth.evaluate(x)
        refit = constants.fit_constants([start, parse("x_0 + x_1")], x, y, max_iter=200)
        np.testing.assert_allclose(refit[0].constants, truth.constants, rtol=2e-3, err_msg=str(truth))
        assert refit[1] == parse("x_0 + x_1")  # nothing to fit: unchanged


def test_a_refit_keeps_the_best_constants_when_the_objective_is_undefined():
    x = np.linspace(0.5, 2.0, 40)[:, None]
    start = parse("log(x_0 - 1.0)")  # undefined below x = 1 whatever the constant
    assert constants.fit_constants([start], x, np.log(x[:, 0]), max_iter=20) == [start]


def test_the_time_limit_stops_the_refit_at_the_first_check():
    x = np.linspace(0.5, 2.0, 40)[:, None]
    truth = parse("2.0*x_0 + 1.0")
    refit = constants.fit_constants([parse("1.0*x_0 + 0.0")], x, truth.evaluate(x), max_iter=10_000,
                                    time_limit=0.0, steps_per_call=3)
    assert refit[0] != truth and refit[0].constants != [1.0, 0.0]  # three steps taken, not converged


def test_programs_reject_formulas_over_more_inputs_than_x_has():
    with pytest.raises(ValueError, match="x_1"):
        constants.compile_programs([parse("x_0 + x_1")], n_inputs=1)
