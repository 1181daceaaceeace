"""`SNIPRegressor`: symbolic regression with a SNIP SR model behind the scikit-learn estimator API.

    model = SNIPRegressor(checkpoint="runs/sr_cpu").fit(X, y)
    model.predict(X_new); model.score(X_new, y_new)
    model.sympy(); model.latex(); model.equations_       # candidates, with the accuracy/complexity front

`fit` follows the official evaluation: X is standardized with the fit set's statistics, a random subset of
`n_points` rows (200) is encoded with raw y, the decoder writes candidates (2 samples at temperature 0.1, or a
beam), each candidate is rewritten for raw X (x_i → (x_i − μ_i)/σ_i), its constants are refit by L-BFGS on the
raw data (at most 1024 points), and the candidate with the best fit R² wins.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings

import jax
import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from snipjax import api
from snipjax.data.expressions import Expression, is_variable
from snipjax.tasks.sr import constants, decoding

MIN_POINTS = 5


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


@functools.lru_cache(maxsize=4)
def _load(path: str):
    config, params = api.load(path)
    if "decoder" not in config.model:
        raise ValueError(f"{path} holds a SNIP encoder pair, not a symbolic-regression model (no decoder): "
                         "train one with `python -m snipjax.tasks.sr.train` or convert snip-e2e-sr.pth")
    return config, params


def r2_score(y: np.ndarray, prediction: np.ndarray) -> float:
    """R² of a prediction; -inf where it is not finite everywhere."""
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
    refit the constants in at most `refit_iterations` L-BFGS steps or `refit_time_limit` seconds;
    `feature_selection` keeps the model's Dmax features most correlated with y (as E2E does) instead of
    refusing wider X; `random_state` seeds the subset and the sampling; `verbose` prints progress.

    Fitted: `expression_` (over x_0.. of the original columns), `equations_` (every valid candidate, best R²
    first; `pandas.DataFrame(model.equations_)` tabulates them), `features_` (the columns used).
    """

    def __init__(self, checkpoint: str | None = None, *, decoding: str = "sample", n_samples: int = 2,
                 temperature: float = 0.1, beam_size: int = 10, max_len: int | None = None,
                 max_fit_points: int = 1024, refit_iterations: int = 100, refit_time_limit: float | None = None,
                 feature_selection: bool = False, random_state: int = 0, verbose: bool = False):
        self.checkpoint = checkpoint
        self.decoding = decoding
        self.n_samples = n_samples
        self.temperature = temperature
        self.beam_size = beam_size
        self.max_len = max_len
        self.max_fit_points = max_fit_points
        self.refit_iterations = refit_iterations
        self.refit_time_limit = refit_time_limit
        self.feature_selection = feature_selection
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
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        if len(y) < MIN_POINTS:
            raise ValueError(f"SNIPRegressor needs at least {MIN_POINTS} points, got n_samples = {len(y)}")
        if np.ptp(y) == 0:
            raise ValueError(f"y is constant ({y[0]!r}): there is no function of X to find")
        config, params = self._model()
        start = time.perf_counter()
        self.features_ = self._select_features(X, y, config.data.max_dim)
        x = X[:, self.features_]
        mean, scale = x.mean(0), x.std(0)
        scale = np.where(scale > 0, scale, 1.0)
        rng = np.random.default_rng(self.random_state)
        n_points = config.data.n_points
        rows = np.sort(rng.choice(len(y), n_points, replace=False)) if len(y) > n_points else np.arange(len(y))
        z = api.encode_numeric(params, (x[rows] - mean) / scale, y[rows], config=config, normalize=False,
                               allow_fewer_points=True)
        max_len = self.max_len or config.data.max_len
        sample_latents, beam_latents = decoding.make_decoders(config)
        if self.decoding == "sample":
            ids, lengths = sample_latents(params, z, jax.random.key(self.random_state), n_samples=self.n_samples,
                                          temperature=self.temperature, max_len=max_len)
        else:
            ids, lengths, _ = beam_latents(params, z, beam_size=self.beam_size, max_len=max_len)
        decoded = decoding.to_expressions(ids, lengths, max_dim=config.data.max_dim, seed=self.random_state)
        candidates = list(dict.fromkeys(for_raw_inputs(e, mean, scale) for e in decoded if e is not None))
        self._log(f"{len(decoded)} decoded, {len(candidates)} valid and distinct "
                  f"({time.perf_counter() - start:.2f} s)")
        refit = constants.fit_constants(candidates, x, y, max_points=self.max_fit_points,
                                        max_iter=self.refit_iterations, time_limit=self.refit_time_limit)
        scored = {}
        for expression in candidates + refit:
            scored.setdefault(expression, r2_score(y, expression.evaluate(x)))
        elapsed = time.perf_counter() - start
        if not any(np.isfinite(r2) for r2 in scored.values()):
            warnings.warn("no decoded candidate is a valid formula with finite values on X; the constant "
                          "mean(y) stands in", stacklevel=2)
            scored = {Expression((float(y.mean()),)): 0.0}
        ranked = sorted(scored.items(), key=lambda item: -item[1])
        expressions = [rename_variables(e, self.features_) for e, _ in ranked]
        complexities = [e.n_nodes for e in expressions]
        front = pareto_front(complexities, [r2 for _, r2 in ranked])
        self.equations_ = [Equation(e, c, r2, elapsed, bool(p))
                           for e, c, (_, r2), p in zip(expressions, complexities, ranked, front)]
        self.expression_ = self.equations_[0].expression
        self._log(f"best fit R² {self.equations_[0].r2:.4f}: {self.expression_} ({elapsed:.2f} s)")
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
