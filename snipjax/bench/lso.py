"""Where latent space optimization's time goes: seconds per Feynman problem, split by phase.

  python -m snipjax.bench lso --checkpoint DIR [--optimizer gwo] [--iterations 5] [--problems 4] [--stop-r2 0.99]
      [--methods lm,lbfgs] [--time-limit 30] [--max-features 2]
"""

from __future__ import annotations

import json

from absl import flags

from snipjax.config import parse_flags


def run_lso(checkpoint: str, optimizer: str, iterations: int, n_problems: int, stop_r2: float | None = None,
            methods=("lm",), time_limit: float | None = None, max_features: int = 2) -> None:
    """Fit the first `n_problems` Feynman problems of at most `max_features` variables with latent
    optimization of at most `iterations`, stopping at fit R² above `stop_r2` (None: never, every iteration
    runs), with each refit method of `methods` in turn on each problem, after a warm-up fit per method that
    compiles. Per problem and method: the iterations run and the seconds spent encoding, decoding, refitting,
    scoring and in the rest (the optimizer, bookkeeping), and with `time_limit` the fit's seconds over it;
    per method the median seconds per problem and the shares of the total."""
    import numpy as np

    from snipjax.data import benchmarks
    from snipjax.tasks.sr.regressor import SNIPRegressor

    problems = benchmarks.srbench_feynman(max_features=max_features)[:n_problems + 1]
    phases = ("encode", "decode", "refit", "score")
    rows = {method: [] for method in methods}
    for position, problem in enumerate(problems):
        X, y = problem.sample(750, seed=0)
        for method in methods:
            model = SNIPRegressor(checkpoint=checkpoint, optimizer=optimizer, lso_iterations=iterations,
                                  lso_stop_r2=1.0 + 1e-9 if stop_r2 is None else stop_r2, refit_method=method,
                                  time_limit=time_limit).fit(X, y)
            if position == 0:
                continue  # compiles
            seconds = {k: round(v, 3) for k, v in model.timings_.items()}
            row = {"name": "lso", "problem": problem.name, "optimizer": optimizer, "refit_method": method,
                   "iterations": model.n_iter_, "best_fit_r2": round(model.equations_[0].r2, 4), **seconds,
                   "other": round(model.timings_["total"] - sum(model.timings_[k] for k in phases), 3)}
            if time_limit:
                row["total_over_time_limit"] = round(model.timings_["total"] / time_limit, 3)
            rows[method].append(row)
            print(json.dumps(row), flush=True)
    for method, done in rows.items():
        total = sum(row["total"] for row in done)
        summary = {"name": "lso_summary", "problems": len(done), "optimizer": optimizer, "refit_method": method,
                   "max_iterations": iterations, "stop_r2": stop_r2, "time_limit": time_limit,
                   "median_seconds": round(float(np.median([row["total"] for row in done])), 2),
                   "median_iterations": float(np.median([row["iterations"] for row in done])),
                   **{f"share_{k}": round(sum(row[k] for row in done) / total, 3) for k in (*phases, "other")}}
        if time_limit:
            summary["max_total_over_time_limit"] = max(row["total_over_time_limit"] for row in done)
        print(json.dumps(summary), flush=True)


def main(argv: list[str]) -> int:
    """`python -m snipjax.bench lso ...`: prints its JSON lines."""
    fv = flags.FlagValues()
    from snipjax.tasks.sr import search  # the latent optimizers' names

    flags.DEFINE_string("checkpoint", None, "an SR model", required=True, flag_values=fv)
    flags.DEFINE_enum("optimizer", "gwo", tuple(search.OPTIMIZERS), "latent optimizer", flag_values=fv)
    flags.DEFINE_integer("iterations", 5, "latent optimization iterations at most", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("problems", 4, "Feynman problems", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("max-features", 2, "Feynman problems of at most this many variables", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_float("stop-r2", None, "stop at this fit R² (default: run every iteration)", flag_values=fv)
    flags.DEFINE_list("methods", ["lm"], "refit methods, in turn per problem", flag_values=fv)
    flags.DEFINE_float("time-limit", None, "SNIPRegressor(time_limit=...) of each fit", lower_bound=0.0,
                       flag_values=fv)
    parse_flags(fv, ["bench lso", *argv], __doc__)
    run_lso(fv["checkpoint"].value, fv["optimizer"].value, fv["iterations"].value, fv["problems"].value,
            fv["stop-r2"].value, tuple(fv["methods"].value), fv["time-limit"].value, fv["max-features"].value)
    return 0
