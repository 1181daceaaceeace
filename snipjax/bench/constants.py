"""The batched constant refit (Levenberg–Marquardt, L-BFGS) against scipy's BFGS run per candidate.

  python -m snipjax.bench constants [--problems 20] [--population 16] [--methods lm,lbfgs]
"""

from __future__ import annotations

import functools
import json
import time

from absl import flags

from snipjax.config import parse_flags


def run_constants(n_problems: int, population: int, methods=("lm", "lbfgs"), seed: int = 0) -> None:
    """Refit the constants of `population` perturbed copies (each constant × U(0.5, 1.5)) of each of the first
    `n_problems` Feynman formulas with constants, on 1024 points of the formula: all at once with
    `fit_constants` by each of `methods` (one compiled call per 10 steps, one program at a time on a CPU),
    and one at a time with scipy's BFGS on the same objective and gradient (the compiled evaluator, jitted
    once). The paths take turns on each problem, so a drift of the machine's speed falls on all alike; a
    warm-up pass over the same problems compiles each path for every shape first. Prints the R² and the
    seconds of each, and each method's speed-up over scipy per candidate."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import scipy.optimize

    from snipjax.data import benchmarks
    from snipjax.tasks.sr import constants
    from snipjax.tasks.sr.regressor import r2_score

    rng = np.random.default_rng(seed)
    problems = []
    for problem in benchmarks.srbench_feynman():
        try:
            truth = problem.expression()
        except ValueError:
            continue
        if truth.constants:
            problems.append((problem, truth))
    problems = problems[:n_problems]
    objective = jax.jit(jax.value_and_grad(constants.half_mse), static_argnums=7)
    platform = jax.devices()[0].platform
    vectorize = constants.vectorize_for(platform)

    def scipy_refit(expression, x, y):
        program = constants.compile_programs([expression], x.shape[1])
        arguments = (*(jnp.asarray(a[0]) for a in program[:3]), *constants.padded_points(x, y), program.depth)

        def value_and_grad(c):
            value, grad = objective(jnp.asarray(c, jnp.float32), *arguments)
            return float(value), np.asarray(grad, np.float64)

        start = program.constants[0]
        result = scipy.optimize.minimize(value_and_grad, start, jac=True, method="BFGS", options={"maxiter": 100})
        return constants.with_constants(expression, result.x[:len(expression.constants)])

    paths = {method: functools.partial(constants.fit_constants, max_iter=100, method=method, vectorize=vectorize)
             for method in methods}
    paths["scipy"] = lambda candidates, x, y: [scipy_refit(c, x, y) for c in candidates]
    seconds = dict.fromkeys(paths, 0.0)
    r2 = {name: [] for name in paths}
    for position, (problem, truth) in enumerate(problems + problems):  # the first pass compiles
        x, y = problem.sample(1024, seed=seed)
        candidates = [constants.with_constants(truth, np.array(truth.constants) * rng.uniform(0.5, 1.5, len(
            truth.constants))) for _ in range(population)]
        for name, refit in paths.items():
            start = time.perf_counter()
            fitted = refit(candidates, x, y)
            if position >= len(problems):
                seconds[name] += time.perf_counter() - start
                r2[name] += [r2_score(y, e.evaluate(x)) for e in fitted]
    r2 = {name: np.array(values) for name, values in r2.items()}
    row = {"name": "constants_refit", "problems": len(problems), "population": population,
           "candidates": len(r2["scipy"]), "platform": platform, "vectorize": min(vectorize, population)}
    for name in paths:
        row[name] = {"seconds": round(seconds[name], 3), "median_r2": float(np.median(r2[name])),
                     "share_r2_above_0.99": float(np.mean(r2[name] > 0.99))}
        if name != "scipy":
            row[name]["share_at_least_scipy"] = float(np.mean(r2[name] >= r2["scipy"] - 1e-6))
            row[name]["speedup_over_scipy"] = round(seconds["scipy"] / seconds[name], 2)
    print(json.dumps(row), flush=True)


def main(argv: list[str]) -> int:
    """`python -m snipjax.bench constants ...`: prints its JSON lines."""
    fv = flags.FlagValues()
    flags.DEFINE_integer("problems", 20, "Feynman formulas with constants", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("population", 16, "perturbed copies of each", lower_bound=1, flag_values=fv)
    flags.DEFINE_list("methods", ["lm", "lbfgs"], "refit methods of fit_constants", flag_values=fv)
    parse_flags(fv, ["bench constants", *argv], __doc__)
    run_constants(fv["problems"].value, fv["population"].value, tuple(fv["methods"].value))
    return 0
