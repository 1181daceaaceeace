"""`SNIPRegressor`: symbolic regression with a SNIP SR model behind the scikit-learn estimator API.

    model = SNIPRegressor(checkpoint="runs/sr_cpu").fit(X, y)
    model.predict(X_new); model.score(X_new, y_new)
    model.sympy(); model.latex(); model.equations_       # candidates, with the accuracy/complexity front

`fit` follows the official evaluation: X is standardized with the fit set's statistics, a random subset of
`n_points` rows (200) is encoded with raw y, the decoder writes candidates (2 samples at temperature 0.1, or a
beam), each candidate is rewritten for raw X (x_i → (x_i − μ_i)/σ_i), its constants are refit on the raw data
(Levenberg–Marquardt on ½·MSE, at most 1024 points), and the candidate with the best fit R² wins.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from snipjax import api
from snipjax.checkpoint import CHECKPOINTS_DIR
from snipjax.data.expressions import Expression, is_constant, is_variable
from snipjax.tasks.sr import constants, decoding, search

MIN_POINTS = 5
OPTIMIZERS = (None, *search.OPTIMIZERS)  # None: direct decoding only


@dataclasses.dataclass(frozen=True)
class Equation:
    """One candidate of a fit: its expression over the original features, the number of prefix nodes
    (constants count, as the official complexity), R² on the fit set, the seconds into `fit` when it was
    scored, and whether it is on the accuracy/complexity Pareto front."""

    expression: Expression
    complexity: int
    r2: float
    time: float
    pareto: bool = False

    def __str__(self) -> str:
        return str(self.expression)


def _load(path: str):
    """(config, params) of an SR model, read once per path and version (a workdir's newest checkpoint)."""
    checkpoints = Path(path) / CHECKPOINTS_DIR
    return _load_version(path, checkpoints.stat().st_mtime_ns if checkpoints.exists() else 0)


@functools.lru_cache(maxsize=4)
def _load_version(path: str, version: int):
    config, params = api.load(path)
    if "decoder" not in config.model:
        raise ValueError(f"{path} holds a SNIP encoder pair, not a symbolic-regression model (no decoder): "
                         "train one with `python -m snipjax.tasks.sr.train` or convert snip-e2e-sr.pth")
    return config, params


def r2_score(y: np.ndarray, prediction: np.ndarray) -> float:
    """R² of a prediction (scikit-learn's: for a constant y, 1 if exact, else 0); -inf where the prediction is
    not finite everywhere. Computed here, equal to sklearn.metrics.r2_score to the last bit: that validates its
    inputs at about 0.4 ms a call, 20x the cost of evaluating a candidate, and a search scores thousands."""
    if not np.all(np.isfinite(prediction)):
        return -np.inf
    residual = np.sum((y - prediction) ** 2)
    total = np.sum((y - y.mean()) ** 2)
    return float(1 - residual / total) if total > 0 else float(residual == 0)


def pareto_front(complexities, scores) -> np.ndarray:
    """Mask of the candidates no other candidate beats in both complexity (lower) and score (higher)."""
    complexities, scores = np.asarray(complexities), np.asarray(scores)
    front = np.zeros(len(scores), bool)
    best = -np.inf
    for i in sorted(range(len(scores)), key=lambda i: (complexities[i], -scores[i])):
        if scores[i] > best:
            front[i], best = True, scores[i]
    return front


def skeleton(expression: Expression) -> tuple:
    """The expression with its constants blanked: formulas that differ only in constants share it."""
    return tuple("c" if is_constant(t) else t for t in expression.prefix)


def for_raw_inputs(expression: Expression, mean: np.ndarray, scale: np.ndarray) -> Expression:
    """The expression of standardized inputs rewritten for raw ones: x_i → (1/σ_i)·(x_i − μ_i)."""
    prefix = []
    for token in expression.prefix:
        if is_variable(token):
            i = int(token[2:])
            prefix += ["mul", float(1 / scale[i]), "add", token, float(-mean[i])]
        else:
            prefix.append(token)
    return Expression.trusted(tuple(prefix))


def rename_variables(expression: Expression, columns) -> Expression:
    """x_k → x_{columns[k]}: variables of selected features back to the original column numbers."""
    return Expression.trusted(tuple(f"x_{columns[int(t[2:])]}" if is_variable(t) else t
                                    for t in expression.prefix))


class SNIPRegressor(RegressorMixin, BaseEstimator):
    """Symbolic regression with a SNIP SR model (any checkpoint `snipjax.load` reads that has a decoder: a
    workdir of `snipjax.tasks.sr.train`, or a converted `snip-e2e-sr.pth`).

    Parameters: `decoding` 'sample' (the official: `n_samples` per latent at `temperature`) or 'beam'
    (`beam_size` beams); `max_len` caps decoded sequences (None: the model's); `max_fit_points` rows
    refit the constants in at most `refit_iterations` steps of `refit_method` ('lm': Levenberg–Marquardt,
    'lbfgs': L-BFGS) or `refit_time_limit` seconds; `time_limit` bounds the seconds of `fit` (the latent
    search stops before an iteration that would end past it; the first fit of a model also compiles);
    `feature_selection` keeps the model's Dmax features most correlated with y (as E2E does) instead of
    refusing wider X; `random_state` seeds the subset and the sampling; `verbose` prints progress, one line
    per latent search iteration (best fit R², its formula, seconds so far).

    `optimizer` adds latent space optimization after direct decoding unless that already beat `lso_stop_r2`:
    'gwo' (the paper's Grey Wolf Optimizer, the default: it solved the most problems in results/sr/), 'es' (an
    evolution strategy stepped by optax's Adam), 'cma' (CMA-ES) or None (direct decoding only), for at
    most `lso_iterations` iterations of 50 latents, from SNIP's initial population (the latent, 15
    encodings of random subsets, 10 with noise on y, 24 random perturbations), stopping once a formula's fit
    R² exceeds `lso_stop_r2`. A latent's fitness is the best fit R² (clipped at 0) of its decoded formulas;
    a skeleton already scored scores 0, as in the official code.

    Fitted: `expression_` (over x_0.. of the original columns), `equations_` (every valid candidate, best R²
    first; `pandas.DataFrame(model.equations_)` tabulates them), `features_` (the columns used), `n_iter_`
    (latent optimization iterations run), `timings_` (seconds spent encoding, decoding, refitting, scoring,
    and in all).
    """

    def __init__(self, checkpoint: str | None = None, *, decoding: str = "sample", n_samples: int = 2,
                 temperature: float = 0.1, beam_size: int = 10, max_len: int | None = None,
                 max_fit_points: int = 1024, refit_iterations: int = 100, refit_time_limit: float | None = None,
                 refit_method: str = "lm", time_limit: float | None = None, feature_selection: bool = False,
                 optimizer: str | None = "gwo", lso_iterations: int = 80, lso_stop_r2: float = 0.99,
                 random_state: int = 0, verbose: bool = False):
        self.checkpoint = checkpoint
        self.decoding = decoding
        self.n_samples = n_samples
        self.temperature = temperature
        self.beam_size = beam_size
        self.max_len = max_len
        self.max_fit_points = max_fit_points
        self.refit_iterations = refit_iterations
        self.refit_time_limit = refit_time_limit
        self.refit_method = refit_method
        self.time_limit = time_limit
        self.feature_selection = feature_selection
        self.optimizer = optimizer
        self.lso_iterations = lso_iterations
        self.lso_stop_r2 = lso_stop_r2
        self.random_state = random_state
        self.verbose = verbose

    def _log(self, message: str) -> None:
        if self.verbose:
            print(f"[SNIPRegressor] {message}", flush=True)

    def _model(self):
        if not self.checkpoint:
            raise ValueError("SNIPRegressor needs checkpoint=PATH: a workdir of `python -m snipjax.tasks.sr.train` "
                             "or a converted snip-e2e-sr.pth (`python -m snipjax.convert`)")
        if self.decoding not in ("sample", "beam"):
            raise ValueError(f"decoding must be 'sample' or 'beam', got {self.decoding!r}")
        return _load(str(self.checkpoint))

    def _check_counts(self) -> None:
        """Raise naming the first count or level out of its range (each would otherwise fail deep in a
        decoder, or be ignored)."""
        for name, low in (("n_samples", 1), ("beam_size", 1), ("max_fit_points", 1), ("refit_iterations", 0),
                          ("lso_iterations", 0), ("random_state", 0)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.max_len is not None and not (isinstance(self.max_len, (int, np.integer)) and self.max_len >= 2):
            raise ValueError(f"max_len must be None (the model's) or an integer >= 2, got {self.max_len!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")

    def _select_features(self, X: np.ndarray, y: np.ndarray, max_dim: int) -> np.ndarray:
        if X.shape[1] <= max_dim:
            return np.arange(X.shape[1])
        if not self.feature_selection:
            raise ValueError(f"X has {X.shape[1]} features but this model reads at most {max_dim} "
                             f"(its Dmax): pass feature_selection=True to keep the {max_dim} most correlated "
                             "with y, or use a model trained with a larger Dmax")
        with np.errstate(invalid="ignore", divide="ignore"):
            correlation = np.abs(np.nan_to_num(
                [np.corrcoef(X[:, j], y)[0, 1] for j in range(X.shape[1])], nan=0.0))
        keep = np.sort(np.argsort(-correlation, kind="stable")[:max_dim])
        warnings.warn(f"X has {X.shape[1]} features and the model reads {max_dim}: keeping columns "
                      f"{keep.tolist()}, the most correlated with y", stacklevel=3)
        return keep

    def fit(self, X, y):
        """Find a formula for y as a function of the columns of X [n_samples, n_features]."""
        start = time.perf_counter()
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        if len(y) < MIN_POINTS:
            raise ValueError(f"SNIPRegressor needs at least {MIN_POINTS} points, got n_samples = {len(y)}")
        if np.ptp(y) == 0:
            raise ValueError(f"y is constant ({y[0]!r}): there is no function of X to find")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.refit_method not in constants.METHODS:
            raise ValueError(f"refit_method must be one of {constants.METHODS}, got {self.refit_method!r}")
        self._check_counts()
        with np.errstate(over="ignore"):
            if not np.isfinite(X.std(0)).all():  # standardizing would scale every point to 0, silently
                raise ValueError("X is too large to standardize: a column's spread overflows float64; rescale it")
        config, params = self._model()
        self.features_ = self._select_features(X, y, config.data.max_dim)
        session = _Search(self, config, params, X[:, self.features_], y, start=start)
        rng = np.random.default_rng(self.random_state)
        n_points = config.data.n_points
        rows = np.sort(rng.choice(len(y), n_points, replace=False)) if len(y) > n_points else np.arange(len(y))
        z = session.encode([rows])
        best = float(session.score(z, 0)[0])
        self._log(f"direct decoding: {len(session.scored)} candidates, {session.progress()}")
        self.n_iter_ = 0
        if self.optimizer is not None and best <= self.lso_stop_r2:
            self.n_iter_ = session.optimize(z[0], rng)
        scored = session.scored
        if not any(np.isfinite(r2) for r2, _ in scored.values()):
            warnings.warn("no decoded candidate is a valid formula with finite values on X; the constant "
                          "mean(y) stands in", stacklevel=2)
            scored = {Expression((float(y.mean()),)): (0.0, session.elapsed())}
        ranked = sorted(scored.items(), key=lambda item: -item[1][0])
        expressions = [rename_variables(e, self.features_) for e, _ in ranked]
        complexities = [e.n_nodes for e in expressions]
        front = pareto_front(complexities, [r2 for _, (r2, _) in ranked])
        self.equations_ = [Equation(e, c, r2, seconds, bool(p))
                           for e, c, (_, (r2, seconds)), p in zip(expressions, complexities, ranked, front)]
        self.expression_ = self.equations_[0].expression
        self.timings_ = {**session.seconds, "total": session.elapsed()}
        self._log(f"best fit R² {self.equations_[0].r2:.4f}: {self.expression_} ({session.elapsed():.2f} s)")
        return self

    def predict(self, X) -> np.ndarray:
        """The formula's values at the rows of X (NaN where it is undefined)."""
        check_is_fitted(self, "expression_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self.expression_.evaluate(X)

    def sympy(self, feature_names=None):
        """The formula as a sympy expression, in x_0.. or in `feature_names` (one per column of X)."""
        import sympy

        from snipjax.data.formulas import to_sympy

        check_is_fitted(self, "expression_")
        expression = to_sympy(self.expression_)
        if feature_names is not None:
            if len(feature_names) != self.n_features_in_:
                raise ValueError(f"{len(feature_names)} feature names for {self.n_features_in_} features")
            expression = expression.subs({sympy.Symbol(f"x_{i}", real=True): sympy.Symbol(name)
                                          for i, name in enumerate(feature_names)}, simultaneous=True)
        return expression

    def latex(self, feature_names=None) -> str:
        """The formula in LaTeX."""
        import sympy

        return sympy.latex(self.sympy(feature_names))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


class _Search:
    """One fit's decoding, refitting and scoring of latents, and the latent optimization around them."""

    POPULATION = {"subsets": 15, "noisy": 10, "perturbed": 24}  # with the latent itself: 50

    def __init__(self, regressor: SNIPRegressor, config, params, x: np.ndarray, y: np.ndarray,
                 start: float | None = None):
        self.regressor, self.config, self.params, self.x, self.y = regressor, config, params, x, y
        self.mean = x.mean(0)
        self.scale = np.where(x.std(0) > 0, x.std(0), 1.0)
        self.scored: dict[Expression, tuple[float, float]] = {}  # fit R², seconds into the fit
        self.skeletons: set[tuple] = set()
        self.best: tuple[float, Expression | None] = (-np.inf, None)  # fit R² and formula
        self.start = time.perf_counter() if start is None else start
        # The refit kernel for the device it runs on: one formula at a time on a CPU, all at once elsewhere.
        self.vectorize = constants.vectorize_for(jax.devices()[0].platform)
        self.seconds = dict.fromkeys(("encode", "decode", "refit", "score"), 0.0)

    def timed(self, phase: str, function, *args, **kwargs):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        jax.block_until_ready(result)  # dispatch is asynchronous: time the work, not the launch
        self.seconds[phase] += time.perf_counter() - start
        return result

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def remaining(self) -> float:
        """Seconds left of the regressor's time limit (infinite without one)."""
        limit = self.regressor.time_limit
        return np.inf if limit is None else limit - self.elapsed()

    def progress(self) -> str:
        r2, expression = self.best
        return f"best fit R² {r2:.4f}: {expression} ({self.elapsed():.1f} s)"

    def encode(self, subsets, y_noise: np.ndarray | None = None) -> jax.Array:
        """Latents [len(subsets), latent] of row subsets of one size, y plus `y_noise` [len, size] if given."""
        subsets = np.asarray(subsets)
        y = self.y[subsets] + (0.0 if y_noise is None else y_noise)
        return self.timed("encode", api.encode_numeric, self.params, (self.x[subsets] - self.mean) / self.scale, y,
                          config=self.config, normalize=False, allow_fewer_points=True)

    def decode(self, z: jax.Array, step: int) -> tuple[list, int]:
        """Expressions of raw inputs (None where invalid), and how many sequences each latent gave."""
        r = self.regressor
        max_len = r.max_len or self.config.data.max_len
        sample_latents, beam_latents = decoding.make_decoders(self.config)
        if r.decoding == "sample":
            key = jax.random.fold_in(jax.random.key(r.random_state), step)
            ids, lengths = self.timed("decode", sample_latents, self.params, z, key, n_samples=r.n_samples,
                                      temperature=r.temperature, max_len=max_len)
        else:
            ids, lengths, _ = self.timed("decode", beam_latents, self.params, z, beam_size=r.beam_size,
                                         max_len=max_len)
        decoded = self.timed("decode", decoding.to_expressions, ids, lengths, max_dim=self.config.data.max_dim,
                             seed=r.random_state + step)
        n_inputs = self.x.shape[1]  # a Dmax-D model may write variables the data does not have
        return [None if e is None or e.input_dim > n_inputs else for_raw_inputs(e, self.mean, self.scale)
                for e in decoded], ids.shape[1]

    def score(self, z: jax.Array, step: int) -> np.ndarray:
        """Fitness [len(z)] of latents: the best fit R² (clipped at 0) of their decoded, refit formulas; a
        skeleton scored before counts 0. Every new formula lands in `scored`."""
        decoded, per_latent = self.decode(z, step)
        fresh, owners = [], []
        for position, expression in enumerate(decoded):
            if expression is not None and skeleton(expression) not in self.skeletons:
                self.skeletons.add(skeleton(expression))
                fresh.append(expression)
                owners.append(position // per_latent)
        r = self.regressor
        time_limit = min(np.inf if r.refit_time_limit is None else r.refit_time_limit, self.remaining())
        refit = self.timed("refit", constants.fit_constants, fresh, self.x, self.y, max_points=r.max_fit_points,
                           max_iter=r.refit_iterations, time_limit=None if np.isinf(time_limit) else time_limit,
                           method=r.refit_method, vectorize=self.vectorize)
        start = time.perf_counter()
        fitness = np.zeros(len(z))
        for expression, fitted, owner in zip(fresh, refit, owners):
            for candidate in (expression, fitted):
                if candidate not in self.scored:
                    self.scored[candidate] = (r2_score(self.y, candidate.evaluate(self.x)), self.elapsed())
                    self.best = max(self.best, (self.scored[candidate][0], candidate), key=lambda b: b[0])
                fitness[owner] = max(fitness[owner], self.scored[candidate][0])
        self.seconds["score"] += time.perf_counter() - start
        return fitness

    def initial_population(self, z: jax.Array, rng: np.random.Generator) -> jax.Array:
        """SNIP's LSO population: the latent, encodings of random subsets (200 rows above 2,000 points, else
        half of them), encodings with Gaussian noise of 0.01·(1 + i/5)·std(y) on y, and z + r·ε, r ~ U(0, 2)."""
        n = len(self.y)
        size = min(self.config.data.n_points, n) if n > 2000 else max(n // 2, 1)
        draw = lambda count: [np.sort(rng.choice(n, size, replace=False)) for _ in range(count)]  # noqa: E731
        subsets = self.encode(draw(self.POPULATION["subsets"]))
        noisy_rows = draw(self.POPULATION["noisy"])
        sigma = 0.01 * (1 + np.arange(self.POPULATION["noisy"]) / 5)[:, None] * self.y.std()
        noisy = self.encode(noisy_rows, sigma * rng.standard_normal((len(noisy_rows), size)))
        count = self.POPULATION["perturbed"]
        radius = rng.uniform(0, 2, size=(count, 1))
        perturbed = z + radius * rng.standard_normal((count, z.shape[0]))
        return jnp.concatenate([z[None], subsets, noisy, jnp.asarray(perturbed, jnp.float32)])

    def optimize(self, z: jax.Array, rng: np.random.Generator) -> int:
        """Latent space optimization from `z`; returns the iterations run. An iteration that would end past
        the time limit (judged by the last one's duration) does not start."""
        r = self.regressor
        size = 1 + sum(self.POPULATION.values())
        optimizer = search.OPTIMIZERS[r.optimizer](r.lso_iterations, size)
        if self.remaining() <= 0:
            return 0
        started = self.elapsed()
        population = self.initial_population(z, rng)
        state = optimizer.init(population, jnp.asarray(self.score(population, 1)),
                               jax.random.key(r.random_state))
        last = self.elapsed() - started  # the initial population is as large as an iteration's
        for iteration in range(r.lso_iterations):
            if float(state.best_fitness) > r.lso_stop_r2:
                return iteration
            if self.remaining() < last:
                r._log(f"time limit of {r.time_limit} s: stopping after {iteration} iterations")
                return iteration
            started = self.elapsed()
            candidates = optimizer.ask(state)
            state = optimizer.tell(state, candidates, jnp.asarray(self.score(candidates, iteration + 2)))
            last = self.elapsed() - started
            r._log(f"{r.optimizer} {iteration + 1}/{r.lso_iterations}: {self.progress()}")
        return r.lso_iterations
