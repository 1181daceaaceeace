"""SNIPRegressor: the scikit-learn contract, the fit pipeline, sympy/LaTeX output and its errors."""

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy
from sklearn.base import clone
from sklearn.utils.estimator_checks import check_estimator

from snipjax import checkpoint, models
from snipjax.data.expressions import Expression
from snipjax.data.vocab import get_vocab
from snipjax.tasks.sr import regressor
from snipjax.tasks.sr.regressor import SNIPRegressor, r2_score
from test_sr_train import tiny_sr_config

# Checks that do not apply, and why.
NOT_APPLICABLE = {
    "check_regressors_train": "an untrained model cannot reach the check's R² > 0.5 on its random data",
}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """An untrained 2-D SR model whose next-token distribution is fixed (a zero output kernel and a bias
    that favours `<EOS>`, x_0, x_1, add and sin), so it writes short formulas such as x_0 or add x_0 x_1."""
    config = tiny_sr_config(**{"data.max_len": 16, "model.decoder.tie_embeddings": False})
    model = models.make_sr_model(config)
    points = jnp.zeros((1, config.data.n_points, 3 * (config.data.max_dim + 1)), jnp.int32)
    params = model.init(jax.random.key(0), points, jnp.zeros((1, 16), jnp.int32), jnp.array([16]))["params"]
    vocab = get_vocab(config.data.max_dim)
    bias = np.full(vocab.equation_size, -20.0)
    for word, logit in (("<EOS>", 0.5), ("x_0", 0.5), ("x_1", -1.0), ("add", -1.5), ("sin", -1.5)):
        bias[vocab.equation_id[word]] = logit
    params["decoder"]["proj"] = {"kernel": jnp.zeros_like(params["decoder"]["proj"]["kernel"]),
                                 "bias": jnp.asarray(bias, jnp.float32)}
    path = tmp_path_factory.mktemp("sr_model")
    checkpoint.export_params(str(path), config, params)
    return str(path)


def linear_data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, 2))
    return X, 3.0 * X[:, 0] + 1.0


def test_fit_refits_the_decoded_skeletons_and_keeps_the_best(tiny_checkpoint):
    X, y = linear_data()
    model = SNIPRegressor(checkpoint=tiny_checkpoint, n_samples=16, temperature=1.0).fit(X, y)
    assert model.n_features_in_ == 2 and list(model.features_) == [0, 1]
    r2 = [e.r2 for e in model.equations_]
    assert r2 == sorted(r2, reverse=True) and model.expression_ == model.equations_[0].expression
    # x_0 is decoded and rewritten for raw inputs as (1/σ)·(x_0 − μ); its refit constants fit y exactly.
    assert model.equations_[0].r2 > 0.9999
    np.testing.assert_allclose(model.predict(X), y, rtol=1e-4, atol=1e-4)
    assert model.score(X, y) > 0.9999
    front = [e for e in model.equations_ if e.pareto]
    assert front and all(a.complexity < b.complexity and a.r2 < b.r2 for a, b in zip(front, front[1:]))
    assert all(e.complexity == e.expression.n_nodes for e in model.equations_)
    phases = {k: model.timings_[k] for k in ("encode", "decode", "refit", "score")}
    assert all(v > 0 for v in phases.values()) and sum(phases.values()) <= model.timings_["total"]


def test_sympy_and_latex_name_the_features(tiny_checkpoint):
    X, y = linear_data()
    model = SNIPRegressor(checkpoint=tiny_checkpoint, n_samples=16, temperature=1.0).fit(X, y)
    expression = model.sympy(["mass", "velocity"])
    assert sympy.Symbol("x_0", real=True) not in expression.free_symbols
    value = expression.subs({sympy.Symbol("mass"): 0.5, sympy.Symbol("velocity"): 1.0})
    np.testing.assert_allclose(float(value), model.predict(np.array([[0.5, 1.0]]))[0], rtol=1e-6)
    assert "mass" in model.latex(["mass", "velocity"])
    with pytest.raises(ValueError, match="1 feature names for 2 features"):
        model.sympy(["mass"])


def test_the_estimator_checks_that_apply_pass(tiny_checkpoint):
    # The checks fit data with up to 10 features; a Dmax-2 model reads them with feature selection.
    estimator = SNIPRegressor(checkpoint=tiny_checkpoint, refit_iterations=20, feature_selection=True,
                              optimizer=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator, expected_failed_checks=NOT_APPLICABLE, on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert failed == [], failed
    assert sum(r["status"] == "passed" for r in results) >= 45


def test_clone_keeps_the_parameters(tiny_checkpoint):
    model = SNIPRegressor(checkpoint=tiny_checkpoint, decoding="beam", beam_size=3)
    assert clone(model).get_params() == model.get_params()
    assert model.get_params()["optimizer"] == "gwo"  # the paper's search, which results/sr/ favours


def test_beam_decoding_fits(tiny_checkpoint):
    X, y = linear_data()
    model = SNIPRegressor(checkpoint=tiny_checkpoint, decoding="beam", beam_size=4).fit(X, y)
    assert model.equations_[0].r2 > 0.99


@pytest.mark.parametrize("change, message", [
    (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X), y), "NaN"),
    (lambda X, y: (X, np.where(np.arange(y.size) == 5, np.inf, y)), "infinity"),
    (lambda X, y: (X[:-1], y), "inconsistent numbers of samples"),
    (lambda X, y: (X, np.full_like(y, 2.0)), "y is constant"),
    (lambda X, y: (X[:3], y[:3]), "at least 5 points"),
    (lambda X, y: (np.hstack([X, X]), y), "4 features but this model reads at most 2"),
])
def test_bad_data_gets_a_clear_error(tiny_checkpoint, change, message):
    X, y = change(*linear_data())
    with pytest.raises(ValueError, match=message):
        SNIPRegressor(checkpoint=tiny_checkpoint).fit(X, y)


def test_feature_selection_keeps_the_columns_most_correlated_with_y(tiny_checkpoint):
    X, y = linear_data()
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(len(y), 3))
    wide = np.column_stack([noise[:, 0], X[:, 0], noise[:, 1], X[:, 0] + 0.3 * noise[:, 2]])
    with pytest.warns(UserWarning, match=r"keeping columns \[1, 3\]"):
        model = SNIPRegressor(checkpoint=tiny_checkpoint, feature_selection=True, n_samples=16,
                              temperature=1.0).fit(wide, y)
    assert list(model.features_) == [1, 3]
    assert model.expression_.input_dim <= 4 and "x_0" not in model.expression_.prefix
    assert model.score(wide, y) > 0.9999


def test_missing_or_wrong_checkpoints_are_named(tiny_checkpoint, tmp_path):
    X, y = linear_data()
    with pytest.raises(ValueError, match="needs checkpoint=PATH"):
        SNIPRegressor().fit(X, y)
    with pytest.raises(FileNotFoundError, match="config.json"):
        SNIPRegressor(checkpoint=str(tmp_path / "missing")).fit(X, y)
    with pytest.raises(ValueError, match="decoding must be"):
        SNIPRegressor(checkpoint=tiny_checkpoint, decoding="greedy").fit(X, y)


def test_an_encoder_pair_is_not_an_sr_model(tmp_path):
    from training_helpers import small_config

    checkpoint.export_params(str(tmp_path), small_config(), {"numeric_encoder": {"bias": np.zeros(2)}})
    with pytest.raises(ValueError, match="not a symbolic-regression model"):
        SNIPRegressor(checkpoint=str(tmp_path)).fit(*linear_data())


def test_pareto_front_and_raw_input_rewrite():
    assert list(regressor.pareto_front([1, 3, 5, 5, 7], [0.5, 0.4, 0.9, 0.95, 0.95])) == [
        True, False, False, True, False]
    standardized = Expression(("mul", 2.0, "x_0"))
    raw = regressor.for_raw_inputs(standardized, np.array([1.0]), np.array([4.0]))
    x = np.array([[1.0], [5.0], [9.0]])
    np.testing.assert_allclose(raw.evaluate(x), standardized.evaluate((x - 1.0) / 4.0))


@pytest.mark.slow
def test_a_converted_official_sr_checkpoint_fits(tmp_path):
    from snipjax import convert
    from test_convert import random_state_dict, training_params

    config, params = convert.convert_state_dicts(random_state_dict("state_dict_sr_dmax10.tsv"), training_params(10))
    checkpoint.export_params(str(tmp_path), config, params)
    X, y = linear_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights may decode nothing valid: the mean stands in
        model = SNIPRegressor(checkpoint=str(tmp_path), max_len=24, optimizer=None).fit(X, y)
    assert model.equations_ and np.all(np.isfinite(model.predict(X)))


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["gwo", "es", "cma"])
def test_latent_optimization_runs_until_a_formula_fits_or_the_budget_ends(tiny_checkpoint, optimizer):
    X, y = linear_data()
    solved = SNIPRegressor(checkpoint=tiny_checkpoint, n_samples=16, temperature=1.0, optimizer=optimizer,
                           lso_iterations=2).fit(X, y)
    assert solved.n_iter_ == 0  # direct decoding already fits: no search
    hard = np.sin(3 * X[:, 0] * X[:, 1]) + X[:, 1] ** 3
    sampling = dict(checkpoint=tiny_checkpoint, refit_iterations=10, temperature=1.0)  # varied formulas
    direct = SNIPRegressor(**sampling, optimizer=None).fit(X, hard)
    searched = SNIPRegressor(**sampling, optimizer=optimizer, lso_iterations=2).fit(X, hard)
    assert searched.n_iter_ == 2
    assert len(searched.equations_) > len(direct.equations_)
    assert searched.equations_[0].r2 >= direct.equations_[0].r2
    skeletons = [regressor.skeleton(e.expression) for e in searched.equations_]
    assert len(skeletons) <= 2 * len(set(skeletons))  # each skeleton scored once (decoded and refit forms)


def test_the_initial_population_has_snips_composition(tiny_checkpoint):
    X, y = linear_data(n=300)
    model = SNIPRegressor(checkpoint=tiny_checkpoint)
    config, params = regressor._load(tiny_checkpoint)
    session = regressor._Search(model, config, params, X, y)
    z = session.encode([np.arange(200)])[0]
    population = np.asarray(session.initial_population(z, np.random.default_rng(0)))
    assert population.shape == (50, z.shape[0])
    np.testing.assert_array_equal(population[0], z)
    distances = np.linalg.norm(population[26:] - np.asarray(z), axis=1)  # the 24 perturbed latents
    assert np.all(distances > 0) and np.all(distances < 2 * 4 * np.sqrt(z.shape[0]))
    assert len({tuple(row) for row in population.round(6)}) == 50


def test_formulas_over_inputs_the_data_lacks_are_dropped(tiny_checkpoint):
    X, y = linear_data()
    model = SNIPRegressor(checkpoint=tiny_checkpoint, n_samples=16, temperature=1.0).fit(X[:, :1], y)
    assert all(e.expression.input_dim <= 1 for e in model.equations_)  # the model also writes x_1
    assert model.score(X[:, :1], y) > 0.9999


@pytest.mark.filterwarnings("ignore:no decoded candidate")  # the fixture writes few formulas
def test_verbose_prints_one_line_per_latent_search_iteration(tiny_checkpoint, capsys):
    X, _ = linear_data()
    hard = np.sin(3 * X[:, 0] * X[:, 1]) + X[:, 1] ** 3
    model = SNIPRegressor(checkpoint=tiny_checkpoint, refit_iterations=10, temperature=1.0, lso_iterations=3,
                          verbose=True).fit(X, hard)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[SNIPRegressor] gwo ")]
    assert model.n_iter_ == 3 and [line.split()[2] for line in lines] == ["1/3:", "2/3:", "3/3:"]
    for line in lines:
        assert "best fit R² " in line and line.endswith(" s)")
    # The last line names the best formula of the whole fit, with its R².
    assert f"best fit R² {model.equations_[0].r2:.4f}: {model.expression_} (" in lines[-1]


@pytest.mark.filterwarnings("ignore:no decoded candidate")  # the fixture writes few formulas
def test_the_time_limit_stops_the_search_before_an_iteration_that_would_pass_it(tiny_checkpoint, monkeypatch):
    import time

    X, _ = linear_data()
    hard = np.sin(3 * X[:, 0] * X[:, 1]) + X[:, 1] ** 3
    clock, offset = time.perf_counter, [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock() + offset[0])
    score = regressor._Search.score

    def slow_score(self, z, step):  # each round of scoring takes 100 s on the fit's clock
        result = score(self, z, step)
        offset[0] += 100.0
        return result

    monkeypatch.setattr(regressor._Search, "score", slow_score)
    model = SNIPRegressor(checkpoint=tiny_checkpoint, refit_iterations=10, temperature=1.0, lso_iterations=5,
                          time_limit=350.0).fit(X, hard)
    # Direct decoding ends at 100 s, the initial population at 200 s, iteration 1 at 300 s; iteration 2 would
    # end at 400 s, past the limit, so it does not start.
    assert model.n_iter_ == 1 and 300 <= model.timings_["total"] <= 350
    assert SNIPRegressor(checkpoint=tiny_checkpoint, refit_iterations=10, temperature=1.0, lso_iterations=5,
                         time_limit=50.0).fit(X, hard).n_iter_ == 0


def test_refit_method_is_checked(tiny_checkpoint):
    with pytest.raises(ValueError, match="refit_method must be one of"):
        SNIPRegressor(checkpoint=tiny_checkpoint, refit_method="bfgs").fit(*linear_data())


@pytest.mark.parametrize("parameters, message", [
    ({"n_samples": 0}, "n_samples must be an integer >= 1, got 0"),
    ({"decoding": "beam", "beam_size": 0}, "beam_size must be an integer >= 1, got 0"),
    ({"temperature": -1.0}, "temperature must be > 0, got -1.0"),
    ({"max_len": 0}, "max_len must be None (the model's) or an integer >= 2, got 0"),
    ({"max_fit_points": 0}, "max_fit_points must be an integer >= 1, got 0"),
    ({"lso_iterations": -1}, "lso_iterations must be an integer >= 0, got -1"),
    ({"random_state": -1}, "random_state must be an integer >= 0, got -1"),
])
def test_parameters_out_of_range_are_named_before_the_fit(tiny_checkpoint, parameters, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SNIPRegressor(checkpoint=tiny_checkpoint, **parameters).fit(*linear_data())


def test_inputs_too_large_to_standardize_are_refused_not_fit_as_constants(tiny_checkpoint):
    X, y = linear_data()
    with pytest.raises(ValueError, match="X is too large to standardize"):
        SNIPRegressor(checkpoint=tiny_checkpoint, optimizer=None).fit(X * 1e300, y)


def test_r2_is_scikit_learns():
    """The scoring loop's numpy R² (sklearn's call costs more than a candidate's evaluation) gives sklearn's
    numbers, constant targets included."""
    import sklearn.metrics

    rng = np.random.default_rng(0)
    for y, prediction in [(rng.normal(size=50), rng.normal(size=50)), (np.ones(5), np.ones(5)),
                          (np.ones(5), np.arange(5.0))]:
        assert r2_score(y, prediction) == pytest.approx(sklearn.metrics.r2_score(y, prediction), abs=1e-12)
    assert r2_score(np.ones(3), np.array([1.0, np.nan, 1.0])) == -np.inf
