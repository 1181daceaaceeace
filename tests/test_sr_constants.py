"""The compiled prefix-program evaluator, its forward-mode Jacobian and the batched refits of constants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snipjax.data import benchmarks
from snipjax.data.expressions import Expression
from snipjax.data.formulas import FormulaError, parse
from snipjax.tasks.sr import constants


@pytest.mark.slow
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


@pytest.mark.slow
def test_the_jacobian_equals_autodiff_of_the_values():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 2.0, size=(40, 2))
    population = [parse(f) for f in ("2.5*sin(1.3*x_0) + 0.7", "x_0**1.5 / (0.4 + x_1)", "3.2*exp(-0.6*x_0)*x_1",
                                     "log(1.1*x_0 + 0.2)*sqrt(0.9*x_1)", "arctan(0.5*x_1)**3 - 2.0/x_0")]
    programs = constants.compile_programs(population, 2)
    for row, expression in enumerate(population):
        program = [jnp.asarray(a[row]) for a in programs[:3]]
        c = jnp.asarray(programs.constants[row], jnp.float32)
        evaluate = lambda c: constants.evaluate(*program, c, jnp.asarray(x, jnp.float32), programs.depth)  # noqa: E731
        value, jacobian = constants.evaluate(*program, c, jnp.asarray(x, jnp.float32), programs.depth, jacobian=True)
        np.testing.assert_allclose(value, evaluate(c), rtol=1e-6, err_msg=str(expression))
        np.testing.assert_allclose(jacobian, jax.jacfwd(evaluate)(c), rtol=1e-5, atol=1e-6, err_msg=str(expression))
        assert np.all(np.asarray(jacobian)[:, len(expression.constants):] == 0)  # padding slots are free


@pytest.mark.parametrize("method", constants.METHODS)
@pytest.mark.parametrize("seed", [0, 1])
def test_batched_refits_recover_the_constants_of_known_formulas(seed, method):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 3.0, size=(300, 2))
    truths = [parse("2.5*sin(1.3*x_0) + 0.7"), parse("0.8*x_0**2 - 1.7*x_1"), parse("3.2*exp(-0.6*x_0)*x_1"),
              parse("x_0/(x_1 + 1.9)")]
    starts = [Expression(tuple(t * rng.uniform(0.7, 1.3) if type(t) is float else t for t in e.prefix))
              for e in truths]
    for truth, start in zip(truths, starts):
        y = truth.evaluate(x)
        refit = constants.fit_constants([start, parse("x_0 + x_1")], x, y, max_iter=200, method=method,
                                        vectorize=1)
        np.testing.assert_allclose(refit[0].constants, truth.constants, rtol=2e-3, err_msg=str(truth))
        assert refit[1] == parse("x_0 + x_1")  # nothing to fit: unchanged


def test_a_refit_keeps_the_best_constants_when_the_objective_is_undefined():
    x = np.linspace(0.5, 2.0, 40)[:, None]
    start = parse("log(x_0 - 1.0)")  # undefined below x = 1 whatever the constant
    for method in constants.METHODS:
        assert constants.fit_constants([start], x, np.log(x[:, 0]), max_iter=20, method=method,
                                       vectorize=1) == [start]


def test_the_time_limit_stops_the_refit_at_the_first_check():
    x = np.linspace(0.5, 2.0, 40)[:, None]
    truth = parse("2.0*x_0 + 1.0")
    refit = constants.fit_constants([parse("1.0*x_0 + 0.0")], x, truth.evaluate(x), max_iter=10_000,
                                    time_limit=0.0, steps_per_call=3, method="lbfgs", vectorize=1)
    assert refit[0] != truth and refit[0].constants != [1.0, 0.0]  # three steps taken, not converged


def test_the_vmapped_kernel_gives_the_sequential_result():
    rng = np.random.default_rng(2)
    x = rng.uniform(0.5, 3.0, size=(200, 2))
    y = 2.5 * np.sin(1.3 * x[:, 0]) + 0.7 * x[:, 1]
    population = [parse(f) for f in ("1.0*sin(1.0*x_0) + 1.0*x_1", "0.5*x_0 + 0.5*x_1", "2.0*cos(0.9*x_0)*x_1",
                                     "1.0*x_0**2 + 1.0*x_1")]
    sequential = constants.fit_constants(population, x, y, vectorize=1)
    vmapped = constants.fit_constants(population, x, y, vectorize=len(population))
    for a, b in zip(sequential, vmapped):
        np.testing.assert_allclose(a.constants, b.constants, rtol=1e-4, atol=1e-5, err_msg=str(a))


def test_refit_steps_traces_from_shapes_alone():
    shapes = {"codes": (16, 32), "positions": (16, 32), "slots": (16, 32)}
    arguments = {k: jax.ShapeDtypeStruct(v, jnp.int32) for k, v in shapes.items()}
    data = [jax.ShapeDtypeStruct(s, jnp.float32) for s in ((1024, 2), (1024,), (1024,))]
    for method in constants.METHODS:
        state = jax.eval_shape(lambda c, method=method: constants.init_state(c, method),
                               jax.ShapeDtypeStruct((16, 8), jnp.float32))
        lowered = constants.refit_steps.lower(state, *arguments.values(), *data, depth=8, n_steps=10,
                                              method=method, vectorize=16)
        assert lowered.out_info.constants.shape == (16, 8)


def test_the_refit_method_is_checked():
    with pytest.raises(ValueError, match="method must be one of"):
        constants.fit_constants([parse("2.0*x_0")], np.ones((5, 1)), np.ones(5), method="bfgs", vectorize=1)


def test_programs_reject_formulas_over_more_inputs_than_x_has():
    with pytest.raises(ValueError, match="x_1"):
        constants.compile_programs([parse("x_0 + x_1")], n_inputs=1)
