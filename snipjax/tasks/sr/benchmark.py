"""SRBench-style benchmark runner: fit SNIPRegressor on each problem, one CSV row per problem.

  python -m snipjax.tasks.sr.benchmark --checkpoint runs/sr_cpu --formulas feynman --max-features 2 \
      --optimizer gwo --out runs/feynman.csv [--noise 0.01] [--shard 0/4] [--compare snip=published.csv]
  python -m snipjax.tasks.sr.benchmark --checkpoint DIR --data table.csv [--target y] --out runs/table.csv

`--formulas` is `feynman` (SRBench's ground-truth Feynman problems, shipped), `classic:PREFIX` (the DSO table,
e.g. `classic:Nguyen-`) or a CSV in the SRBench index layout (`dataset, group, formula, features, ranges`);
`--group` keeps one group. Points are sampled uniformly in each formula's ranges (seeded by the problem's
name), split 75/25 as the official evaluation (random_state 14423), and the fit part gets Gaussian noise of
`noise`·RMS(y) if asked. `--data` reads one dataset instead (the target column named, or the last).

The output columns are those of the published SNIP/TPSR result files (problem, formula, predicted_tree,
r2_fit, r2_predict, _complexity_predict, time, input_dimension), so files compare row by row. Rows are
appended as problems finish; a rerun skips the problems already in `--out`. `--shard i/n` takes every n-th
problem from the i-th, so a job array of n splits the list. The summary (JSON) gives the share of test R² above
0.99 and 0.999, the median test R², the mean complexity and the median time, and the same for every
`--compare NAME=FILE` on the same problems.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import zlib

import numpy as np

COLUMNS = ("problem", "formula", "predicted_tree", "r2_fit", "r2_predict", "_complexity_predict", "time",
           "input_dimension", "noise", "optimizer")
SPLIT_SEED = 14423  # LSO_eval.py's train/test split


def formula_problems(source: str, group: str | None) -> list:
    from snipjax.data import benchmarks

    if source == "feynman":
        problems = benchmarks.srbench_feynman()
    elif source.startswith("classic:"):
        problems = benchmarks.classic(source.split(":", 1)[1])
    else:
        problems = benchmarks.read_index(source)
    return [p for p in problems if group is None or p.group == group]


def shard(items: list, spec: str | None) -> list:
    """Every n-th item from the i-th, for `spec` "i/n"."""
    if not spec:
        return items
    try:
        index, count = (int(part) for part in spec.split("/"))
    except ValueError:
        raise ValueError(f"--shard takes i/n (e.g. 0/4), got {spec!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard {spec}: i must be in 0..{count - 1}")
    return items[index::count]


def split(X: np.ndarray, y: np.ndarray, noise: float, seed: int):
    """(X_fit, X_test, y_fit, y_test): the official 75/25 split, noise·RMS(y_fit) Gaussian noise on y_fit."""
    from sklearn.model_selection import train_test_split

    X_fit, X_test, y_fit, y_test = train_test_split(X, y, test_size=0.25, random_state=SPLIT_SEED)
    if noise:
        rng = np.random.default_rng(seed)
        y_fit = y_fit + rng.normal(0.0, noise * np.sqrt(np.mean(y_fit**2)), size=y_fit.shape)
    return X_fit, X_test, y_fit, y_test


def finished(path: str) -> set[str]:
    if not os.path.exists(path):
        return set()
    with open(path, newline="") as file:
        return {row["problem"] for row in csv.DictReader(file)}


def append_row(path: str, row: dict) -> None:
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def fit_problem(name: str, formula: str, X: np.ndarray, y: np.ndarray, args) -> dict:
    from snipjax.tasks.sr.regressor import SNIPRegressor, r2_score

    seed = zlib.crc32(name.encode())
    X_fit, X_test, y_fit, y_test = split(X, y, args.noise, seed)
    start = time.perf_counter()
    optimizer = None if args.optimizer == "none" else args.optimizer
    model = SNIPRegressor(checkpoint=args.checkpoint, optimizer=optimizer, lso_iterations=args.iterations,
                          feature_selection=True, random_state=args.seed, verbose=args.verbose)
    model.fit(X_fit, y_fit)
    seconds = time.perf_counter() - start
    return {"problem": name, "formula": formula, "predicted_tree": str(model.expression_),
            "r2_fit": r2_score(y_fit, model.predict(X_fit)), "r2_predict": r2_score(y_test, model.predict(X_test)),
            "_complexity_predict": model.equations_[0].complexity, "time": round(seconds, 3),
            "input_dimension": X.shape[1], "noise": args.noise, "optimizer": args.optimizer}


def summarize(rows: list[dict]) -> dict:
    r2 = np.array([float(row["r2_predict"]) for row in rows])
    r2 = np.where(np.isfinite(r2), r2, -np.inf)
    return {"problems": len(rows), "share_r2_above_0.99": float(np.mean(r2 > 0.99)),
            "share_r2_above_0.999": float(np.mean(r2 > 0.999)), "median_r2": float(np.median(r2)),
            "mean_complexity": float(np.mean([float(row["_complexity_predict"]) for row in rows])),
            "median_seconds": float(np.median([float(row["time"]) for row in rows]))}


def summary(out: str, compare: list[str]) -> dict:
    with open(out, newline="") as file:
        rows = list(csv.DictReader(file))
    result = {"out": out, "ours": summarize(rows)}
    names = {row["problem"] for row in rows}
    for item in compare:
        label, path = item.split("=", 1)
        with open(path, newline="") as file:
            theirs = [row for row in csv.DictReader(file) if row["problem"] in names]
        result[label] = summarize(theirs) if theirs else {"problems": 0}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m snipjax.tasks.sr.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="an SR model: a workdir or an export dir")
    parser.add_argument("--formulas", default="feynman", help="feynman | classic:PREFIX | an index CSV")
    parser.add_argument("--group", help="keep the problems of this group")
    parser.add_argument("--max-features", type=int, help="keep the problems of at most this many variables")
    parser.add_argument("--data", help="a dataset CSV instead of formulas")
    parser.add_argument("--target", help="the target column of --data (default: the last)")
    parser.add_argument("--points", type=int, default=1000, help="points sampled per formula")
    parser.add_argument("--noise", type=float, default=0.0, help="target noise, relative to RMS(y)")
    parser.add_argument("--optimizer", choices=("gwo", "es", "cma", "none"), default="gwo",
                        help="latent space optimization (default: gwo)")
    parser.add_argument("--iterations", type=int, default=80, help="latent optimization iterations at most")
    parser.add_argument("--shard", help="i/n: every n-th problem from the i-th")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="CSV of results, appended (a rerun resumes)")
    parser.add_argument("--compare", action="append", default=[], help="NAME=FILE: published results")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    try:
        from snipjax.tasks.sr.regressor import SNIPRegressor

        SNIPRegressor(checkpoint=args.checkpoint)._model()  # a missing or wrong checkpoint says so now
        if args.data:
            X, y, target = read_dataset(args.data, args.target)
            todo = [(os.path.basename(args.data), target, lambda X=X, y=y: (X, y))]
        else:
            problems = formula_problems(args.formulas, args.group)
            if args.max_features is not None:
                problems = [p for p in problems if len(p.features) <= args.max_features]
            todo = [(p.name, p.formula, lambda p=p: p.sample(args.points, zlib.crc32(p.name.encode())))
                    for p in problems]
        todo = shard(todo, args.shard)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    done = finished(args.out)
    for name, formula, data in todo:
        if name in done:
            continue
        row = fit_problem(name, formula, *data(), args)
        append_row(args.out, row)
        print(f"{name}: test R² {row['r2_predict']:.4f}, complexity {row['_complexity_predict']}, "
              f"{row['time']:.1f} s", flush=True)
    if os.path.exists(args.out):
        print(json.dumps(summary(args.out, args.compare)), flush=True)
    return 0


def read_dataset(path: str, target: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    """(X, y, target name) of a CSV with a header row; the target is `target` or the last column."""
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    header, values = rows[0], np.array(rows[1:], dtype=np.float64)
    if target and target not in header:
        raise ValueError(f"{path} has no column {target!r} (columns: {', '.join(header)})")
    column = header.index(target) if target else len(header) - 1
    return np.delete(values, column, axis=1), values[:, column], header[column]


if __name__ == "__main__":
    sys.exit(main())
